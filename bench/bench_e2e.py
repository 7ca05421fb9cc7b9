"""End to end: usclip Classifier vs what a user would otherwise write, same weights, one run.

Baseline ("open_clip eager"): PIL image from the scanner frame -> open_clip-style torchvision
preprocessing (bicubic resize of the shorter side, centre crop, ToTensor, Normalize) ->
model.encode_image in torch eager (no_grad, the same checkpoint) -> normalise -> logits against
the 93 precomputed class embeddings -> softmax per dimension -> argmax.
usclip: Classifier.classify / classify_batch on the exported bundle of the same checkpoint
(region detection, fused preprocess kernel, onnxruntime encoder, fused similarity kernel),
plus the streaming path (region cached across frames).

python bench/bench_e2e.py --checkpoint CKPT [--bundle BUNDLE] [--frame 720p]
Without --bundle the checkpoint is exported to a temporary bundle first. Prints a table,
writes JSON (--json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _timeit(fn, warmup: int, iters: int) -> dict:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    a = np.array(ts)
    return {"p50": float(np.median(a)), "p90": float(np.percentile(a, 90)), "mean": float(a.mean())}


def _frames(n: int, shape: tuple[int, int]) -> list[np.ndarray]:
    from usclip_data.synth import render_view, sample_case

    rng = np.random.default_rng(0)
    return [render_view(sample_case(rng, f"e{i}"), 0, i, size=shape).image for i in range(n)]


def _baseline(model, class_emb: np.ndarray, groups: list[int], image_size: int, mean, std):
    import torch
    from PIL import Image
    from torchvision import transforms as T

    pre = T.Compose([T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC),
                     T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean, std)])
    W = torch.from_numpy(class_emb)
    scale = float(model.logit_scale.exp())
    bounds = np.cumsum([0] + groups)

    @torch.no_grad()
    def run(frames: list[np.ndarray]):
        x = torch.stack([pre(Image.fromarray(f)) for f in frames])
        e = model.encode_image(x)
        e = e / e.norm(dim=-1, keepdim=True)
        logits = scale * e @ W.T
        return [torch.softmax(logits[:, a:b], dim=-1).argmax(dim=-1) for a, b in zip(bounds[:-1], bounds[1:])]

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="usclip checkpoint")
    ap.add_argument("--bundle", help="bundle exported from the same checkpoint (default: export it)")
    ap.add_argument("--frame", default="720p", choices=["480p", "720p", "1080p"])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0 = default)")
    ap.add_argument("--json", help="write results here")
    a = ap.parse_args()
    import torch

    from usclip_sdk import Classifier
    from usclip_train.checkpoint import load_model
    from usclip_train.export.bundle_writer import export_checkpoint

    if a.threads:
        torch.set_num_threads(a.threads)
    shape = {"480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920)}[a.frame]
    model = load_model(a.checkpoint).model
    bundle = a.bundle or str(export_checkpoint(a.checkpoint, Path(tempfile.mkdtemp()) / "bundle"))
    clf = Classifier(bundle, backend="onnxruntime", device="cpu",
                     threads=a.threads or None)
    frames = _frames(8, shape)
    base = _baseline(model.eval(), clf.class_embeddings, list(clf.group_sizes),
                     clf.image_size[0], clf.preprocess.mean, clf.preprocess.std)
    res: dict = {"frame": list(shape), "cpu": platform.processor() or platform.machine(),
                 "cores": os.cpu_count(), "model": clf.bundle.manifest.model.name, "rows": {}}
    for batch in (1, 8):
        fs = frames[:batch]
        b = _timeit(lambda: base(fs), a.warmup, a.iters)
        u = _timeit((lambda: clf.classify(fs[0])) if batch == 1 else (lambda: clf.classify_batch(fs)),
                    a.warmup, a.iters)
        res["rows"][f"batch{batch}"] = {"open_clip_eager_ms_per_frame": b["p50"] / batch,
                                        "usclip_ms_per_frame": u["p50"] / batch,
                                        "speedup": b["p50"] / u["p50"]}
    seq = frames * (a.iters // len(frames) + 2)
    it = clf.stream(iter(seq), smoothing=0.0)
    for _ in range(a.warmup):
        next(it)
    t = time.perf_counter()
    n = a.iters
    for _ in range(n):
        next(it)
    res["stream_frames_per_s"] = n / (time.perf_counter() - t)
    print(f"{'':10}{'open_clip eager ms/frame':>26}{'usclip ms/frame':>18}{'speed-up':>10}")
    for k, r in res["rows"].items():
        print(f"{k:10}{r['open_clip_eager_ms_per_frame']:>26.1f}{r['usclip_ms_per_frame']:>18.1f}"
              f"{r['speedup']:>9.2f}x")
    print(f"usclip streaming: {res['stream_frames_per_s']:.1f} frames/s")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
