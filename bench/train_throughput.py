"""Training throughput (samples/s) of training recipes on this machine, side by side, as ratios.

One optimizer step = image tower forward, text tower (LiT: frozen prefix cached, the unlocked
top layers run), attribute-graph fusion, the Ultrasound-CLIP loss (InfoNCE + soft labels),
backward, AdamW - the pieces ``usclip_train.train`` runs, at the recipe's image size, batch and
precision. Inputs are random images and a pool of 512 captions whose frozen prefix is cached
before timing (a training run's steady state after its first epoch), so PNG decoding is
excluded; the region crops are cached in memory by the dataset in training too.

Rows (``--recipes``, comma separated ``model:image_size:precision``):
- ``usclip-edge:128:fp32`` - the ViT edge tower at 128 px in fp32: the previous session's
  training recipe (runs/edge128-v2, 29.3 samples/s measured end to end);
- ``usclip-edge:128:bf16`` - the same with bf16 autocast (AMX / AVX512-BF16 CPUs);
- ``usclip-edge-conv:128:bf16`` - the timm resnet10t tower with bf16 autocast (channels-last,
  as TrainModule runs a convolutional tower).
Every row is reported as a ratio to the first.

    python bench/train_throughput.py [--recipes ...] [--batch 64] [--steps 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from usclip_train.config import RunConfig
from usclip_train.factory import TextTokenizer, build_model, count_parameters
from usclip_train.graph import AttributeGraphFusion
from usclip_train.loss import UltrasoundClipLoss
from usclip_train.semantic import TagSimilarity
from usclip_train.train import TrainModule, cache_frozen_text, model_spec_for, param_groups

DEFAULT = "usclip-edge:128:fp32,usclip-edge:128:bf16,usclip-edge-conv:128:bf16"


def _captions(n: int) -> list[str]:
    from usclip_sdk import taxonomy

    names = taxonomy.class_names()
    return [f"ultrasound of the {names[i % len(names)][1]} with {names[(7 * i) % len(names)][1]} "
            f"and {names[(13 * i) % len(names)][1]}, case {i}" for i in range(n)]


def _one(recipe: str, batch: int, steps: int, unlock: int) -> dict:
    name, size, precision = recipe.split(":")
    cfg = RunConfig(model=name, image_size=int(size), context_length=48, lock_text=True,
                    unlock_text_layers=unlock, precision=precision)
    torch.manual_seed(0)
    spec = model_spec_for(cfg)
    model = build_model(spec)
    model.text.transformer.requires_grad_(False)
    for layer in list(model.text.transformer.encoder.layer)[-unlock:] if unlock else []:
        layer.requires_grad_(True)
    cache_frozen_text(model, {}, unlocked_layers=unlock)
    fusion = AttributeGraphFusion(int(spec.model_cfg["embed_dim"]))
    module = TrainModule(model, fusion).train()
    loss_fn = UltrasoundClipLoss(TagSimilarity.prior(), lambda_sm=1.0)
    opt = torch.optim.AdamW(param_groups(module, cfg), lr=1e-4)
    pool = TextTokenizer(spec.tokenizer_path, spec.context_length)(_captions(512))
    with torch.no_grad():
        for k in range(0, len(pool), 128):  # warm the frozen-prefix cache
            model.encode_text(pool[k:k + 128])
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, *spec.preprocess.image_size, generator=g)
    labels = torch.zeros(batch, 93)
    labels[torch.arange(batch), torch.randint(0, 5, (batch,), generator=g)] = 1
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    times = []
    for i in range(steps + 1):  # the first step warms allocators and kernels
        tokens = pool[torch.randint(0, len(pool), (batch,), generator=g)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with cast:
            img, txt, scale, _ = module(images, tokens, labels)
        loss_fn(img.float(), txt.float(), scale.float(), labels)["loss"].backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    return {"recipe": recipe, "model": name, "image_size": int(size), "precision": precision,
            "batch": batch, "unlock_text_layers": unlock, "params": count_parameters(model),
            "step_s": [round(t, 4) for t in times], "step_s_median": med, "samples_per_s": batch / med}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=DEFAULT)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--unlock", type=int, default=2, help="unlocked text layers (the rest cached)")
    ap.add_argument("--json", default=None, help="write the results here (results differ per CPU: name the file "
                                                 "after it, e.g. bench/results/train_throughput_xeon.json)")
    args = ap.parse_args()
    rows = []
    for recipe in args.recipes.split(","):
        rows.append(_one(recipe, args.batch, args.steps, args.unlock))
        rows[-1]["ratio_vs_first"] = rows[-1]["samples_per_s"] / rows[0]["samples_per_s"]
        print(json.dumps({k: rows[-1][k] for k in ("recipe", "step_s_median", "samples_per_s")}),
              file=sys.stderr, flush=True)
    print(f"{'recipe':<28} {'batch':>5} {'step s':>7} {'samples/s':>9} {'vs first':>8}")
    for r in rows:
        print(f"{r['recipe']:<28} {r['batch']:>5} {r['step_s_median']:>7.3f} {r['samples_per_s']:>9.1f} "
              f"{r['ratio_vs_first']:>8.2f}")
    if args.json is None:
        return 0
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                           "cpu": _cpu_name(), "torch": torch.__version__,
                                           "threads": torch.get_num_threads(), "load_avg": os.getloadavg()},
                               "command": " ".join(["python", "bench/train_throughput.py", *sys.argv[1:]]),
                               "rows": rows}, indent=1))
    return 0


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
