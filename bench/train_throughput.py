"""Training throughput (samples/s) of the model configs on this machine.

One optimizer step = forward of both towers, the loss, backward, AdamW. Measured for the full
Ultrasound-CLIP objective (soft labels + attribute graph) and, in the same run, for plain
InfoNCE (what a user of open_clip's trainer would run), reported as a ratio. Inputs are random
tensors at the config's image size with 32-token captions, so data loading is excluded.

    python bench/train_throughput.py [--models usclip-edge,usclip-b16] [--batch 8] [--steps 3]
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
from usclip_train.factory import build_model, count_parameters
from usclip_train.graph import AttributeGraphFusion
from usclip_train.loss import UltrasoundClipLoss
from usclip_train.semantic import TagSimilarity
from usclip_train.train import TrainModule, model_spec_for, param_groups


def _one(model_name: str, full: bool, batch: int, steps: int, ctx: int) -> dict:
    cfg = RunConfig(model=model_name, use_graph=full, use_soft_labels=full, context_length=ctx)
    torch.manual_seed(0)
    spec = model_spec_for(cfg)
    model = build_model(spec)
    fusion = AttributeGraphFusion(int(spec.model_cfg["embed_dim"])) if full else None
    module = TrainModule(model, fusion).train()
    loss_fn = UltrasoundClipLoss(TagSimilarity.prior() if full else None, lambda_sm=1.0 if full else 0.0)
    opt = torch.optim.AdamW(param_groups(module, cfg), lr=1e-4)
    size = spec.preprocess.image_size
    images = torch.randn(batch, 3, *size)
    tokens = torch.randint(1000, 20000, (batch, ctx))
    labels = torch.zeros(batch, 93)
    labels[torch.arange(batch), torch.randint(0, 5, (batch,))] = 1
    times = []
    for i in range(steps + 1):  # the first step warms up allocators and kernels
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        img, txt, scale = module(images, tokens, labels)
        loss_fn(img, txt, scale, labels)["loss"].backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    return {"model": model_name, "objective": "ultrasound-clip" if full else "infonce",
            "image_size": list(size), "batch": batch, "context_length": ctx,
            "params": count_parameters(model), "step_s_median": med, "samples_per_s": batch / med}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="usclip-edge,usclip-b16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--json", default="bench/results/train_throughput.json")
    args = ap.parse_args()
    rows = []
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        for full in (False, True):
            rows.append(_one(name, full, args.batch, args.steps, args.context))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            out.write_text(json.dumps({"partial": True, "rows": rows}, indent=1))
    print(f"{'model':<12} {'objective':<16} {'img':>4} {'batch':>5} {'step s':>7} {'samples/s':>9} {'vs infonce':>10}")
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["objective"] == "infonce")
        r["ratio_vs_infonce"] = r["samples_per_s"] / base["samples_per_s"]
        print(f"{r['model']:<12} {r['objective']:<16} {r['image_size'][0]:>4} {r['batch']:>5} "
              f"{r['step_s_median']:>7.2f} {r['samples_per_s']:>9.2f} {r['ratio_vs_infonce']:>10.2f}")
    out.write_text(json.dumps({"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                           "torch": torch.__version__, "threads": torch.get_num_threads(),
                                           "load_avg": os.getloadavg()},
                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
