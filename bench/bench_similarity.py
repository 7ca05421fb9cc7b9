"""Benchmark usclip_sdk.ops.similarity (CPU) against what a user would write in numpy.

The numpy baseline does the same work as the op: L2-normalise both sides, matmul, scale,
softmax, argpartition for the top-k and a sort of those k. Both run in the same process,
interleaved, and the median over many repetitions is reported (the CPU is shared).

    python bench/bench_similarity.py [--json PATH] [--seconds 0.25] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from usclip_sdk import taxonomy
import importlib
sim_mod = importlib.import_module("usclip_sdk.ops.similarity")
from usclip_sdk.ops.similarity import similarity

__all__ = ["numpy_similarity", "main"]


def numpy_similarity(x, c, scale=100.0, bias=0.0, k=5):
    """The user's numpy: normalise, matmul, softmax, top-k (sorted)."""
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    c = c / np.linalg.norm(c, axis=-1, keepdims=True)
    logits = scale * (x @ c.T) + bias
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)
    k = min(k, c.shape[0])
    part = np.argpartition(-probs, k - 1, axis=-1)[..., :k]
    vals = np.take_along_axis(probs, part, -1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    return logits, probs, np.take_along_axis(part, order, -1), np.take_along_axis(vals, order, -1)


def _median_us(fns, seconds):
    """Median microseconds of each fn, run interleaved so load spikes hit both."""
    for f in fns:
        f()
    t0 = time.perf_counter()
    fns[0]()
    one = max(time.perf_counter() - t0, 1e-6)
    reps = int(min(20000, max(15, seconds / one)))
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t)
    return [float(np.median(t)) * 1e6 for t in times], reps


def _cases():
    for n in (1, 32, 256):
        for k in (2, 93, 1000):
            yield n, k, "float32", None
    yield 1, 93, "float32", "taxonomy"
    yield 32, 93, "float32", "taxonomy"
    yield 1, 1000, "float16", None
    yield 256, 1000, "float16", None


def run(seconds: float) -> list:
    rng = np.random.default_rng(0)
    rows = []
    for n, k, dt, grp in _cases():
        x = rng.standard_normal((n, 512)).astype(dt)
        c = rng.standard_normal((k, 512)).astype(dt)
        groups = taxonomy.group_sizes() if grp else None
        x_arg = x[0] if n == 1 else x  # batch 1 is one embedding, as a caller has it
        xf, cf = x_arg.astype(np.float32), c.astype(np.float32)  # numpy needs float32 in fp16 case
        ours = (lambda: similarity(x_arg, c, groups=groups))
        base = (lambda: numpy_similarity(xf if dt == "float32" else x_arg.astype(np.float32),
                                         cf if dt == "float32" else c.astype(np.float32)))
        (t_ours, t_np), reps = _median_us([ours, base], seconds)
        rows.append({"N": n, "K": k, "D": 512, "dtype": dt, "groups": grp, "reps": reps,
                     "usclip_us": round(t_ours, 2), "numpy_us": round(t_np, 2),
                     "speedup": round(t_np / t_ours, 2)})
        print(f"{n:>4} {k:>5} {dt:>8} {str(grp or '-'):>9} {t_ours:>11.1f} {t_np:>11.1f} "
              f"{t_np / t_ours:>8.2f}x", flush=True)
    return rows


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="bench/results/similarity_cpu.json")
    ap.add_argument("--seconds", type=float, default=0.25, help="time per case and method")
    ap.add_argument("--threads", type=int, default=0, help="native threads (0: default)")
    ap.add_argument("--blas-min-macs", type=int, default=None,
                    help="override the size from which the product goes to numpy's BLAS")
    args = ap.parse_args(argv)
    from usclip_sdk.ops._native import native
    if args.threads:
        native().set_num_threads(args.threads)
    if args.blas_min_macs is not None:
        sim_mod.BLAS_MIN_MACS = args.blas_min_macs
    print(f"cpu: {_cpu_model()} x{os.cpu_count()}, kernel {native().similarity_cpu_variant()}, "
          f"threads {native().num_threads()}")
    print(f"{'N':>4} {'K':>5} {'dtype':>8} {'groups':>9} {'usclip us':>11} {'numpy us':>11} "
          f"{'speedup':>9}")
    rows = run(args.seconds)
    out = {"cpu": _cpu_model(), "cpus": os.cpu_count(), "numpy": np.__version__,
           "kernel": native().similarity_cpu_variant(), "threads": native().num_threads(),
           "blas_min_macs": sim_mod.BLAS_MIN_MACS, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
