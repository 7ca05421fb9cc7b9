"""`usclip bench`: per-stage latency (p50/p90/p99) and throughput of the full pipeline.

Runs unchanged on a workstation or a Jetson, so device makers compare boards with one command:
frames go through region detection, the preprocess kernel, the image encoder and the
similarity kernel exactly as in `classify`.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

from ._runtime import add_runtime_options, open_classifier

__all__ = ["register", "run", "synthetic_screen"]

_SIZES = {"480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency p50/p90/p99 per stage and throughput")
    add_runtime_options(p, precision=True)
    p.add_argument("--batch", type=int, default=1, help="frames per classify call (default 1)")
    p.add_argument("--iters", type=int, default=100, help="timed calls (default 100)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls first (default 20)")
    p.add_argument("--frame", default="720p", help="480p, 720p, 1080p or HxW of the input frames")
    p.add_argument("--stream", action="store_true", help="time the streaming path (cached region)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def synthetic_screen(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A scanner-like RGB screen: a speckle fan on black with burned-in text."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - w / 2, yy - 0.05 * h)
    th = np.arctan2(xx - w / 2, yy - 0.05 * h)
    fan = (r > 0.08 * h) & (r < 0.9 * h) & (np.abs(th) < 0.6)
    img[fan] = rng.rayleigh(55, (int(fan.sum()), 1)).clip(0, 255).astype(np.uint8)
    cv2.putText(img, "usclip bench  C5-1  ABD", (10, max(20, h // 30)), cv2.FONT_HERSHEY_SIMPLEX,
                max(0.4, h / 1200), (255, 255, 255), 1)
    return img


def _frame_shape(spec: str) -> tuple[int, int]:
    if spec in _SIZES:
        return _SIZES[spec]
    try:
        h, w = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise ValueError(f"--frame: expected 480p, 720p, 1080p or HxW, found {spec!r}") from None
    if h < 16 or w < 16:
        raise ValueError(f"--frame: at least 16x16, found {spec!r}")
    return h, w


def _percentiles(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def run(args: argparse.Namespace) -> int:

    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        raise ValueError("--batch and --iters must be >= 1 and --warmup >= 0")
    h, w = _frame_shape(args.frame)
    clf = open_classifier(args)
    frames = [synthetic_screen(h, w, seed=i) for i in range(args.batch)]
    stages: dict[str, list[float]] = {}
    walls: list[float] = []
    if args.stream:
        seq = frames * (args.warmup + args.iters)
        it = clf.stream(iter(seq), smoothing=0.0)
        for _ in range(args.warmup):
            next(it)
        for _ in range(args.iters):
            t = time.perf_counter()
            p = next(it)
            walls.append((time.perf_counter() - t) * 1e3)
            for k, v in p.timings.items():
                stages.setdefault(k, []).append(v)
        per_call = 1
    else:
        for i in range(args.warmup + args.iters):
            t = time.perf_counter()
            preds = clf.classify_batch(frames)
            dt = (time.perf_counter() - t) * 1e3
            if i >= args.warmup:
                walls.append(dt)
                for k, v in preds[0].timings.items():
                    stages.setdefault(k, []).append(v * args.batch)  # batch stage time
        per_call = args.batch
    wall = _percentiles(walls)
    res = {"backend": clf.backend.name, "model": clf.bundle.manifest.model.name,
           "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
           "frame": [h, w], "batch": args.batch, "iters": args.iters, "warmup": args.warmup,
           "mode": "stream" if args.stream else "batch",
           "stages_ms": {k: _percentiles(v) for k, v in stages.items()},
           "call_ms": wall, "frames_per_s": 1e3 * per_call / wall["mean"]}
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{res['model']} on {res['backend']} | frame {h}x{w} | batch {args.batch} | "
          f"{res['mode']} | {args.iters} iters after {args.warmup} warm-up", file=sys.stderr)
    print(f"{'stage (ms per call)':<22}{'p50':>9}{'p90':>9}{'p99':>9}")
    for k, v in res["stages_ms"].items():
        print(f"{k:<22}{v['p50']:>9.2f}{v['p90']:>9.2f}{v['p99']:>9.2f}")
    print(f"{'wall':<22}{wall['p50']:>9.2f}{wall['p90']:>9.2f}{wall['p99']:>9.2f}")
    print(f"throughput: {res['frames_per_s']:.1f} frames/s")
    return 0
