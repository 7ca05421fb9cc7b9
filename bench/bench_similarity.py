"""Benchmark usclip_sdk.ops.similarity (CPU) against what a user would write in numpy.

Two numpy baselines, run in the same process, interleaved with the op (median of many
repetitions; the CPU is shared):
  numpy      the user's usual code with the class embeddings normalised ONCE outside the
             timed call (they are fixed): normalise x, matmul, scale + bias, softmax (per
             group in a Python loop when groups are given), argpartition + sort of the top k;
  numpy_all  the same work as the op, which also normalises the class embeddings each call.
The op gets the raw class embeddings (normalize=True), so it always does the larger job.

--cpu-time measures the calling thread's CPU time with one native thread and one BLAS thread
(OPENBLAS_NUM_THREADS=1 is set before numpy loads): on a loaded shared machine this is the
stable measure of work; wall-clock with default threads is the default.

    python bench/bench_similarity.py [--json PATH] [--seconds 0.25] [--threads N] [--cpu-time]
"""
from __future__ import annotations

import os
import sys

if "--cpu-time" in sys.argv:  # must precede numpy's import to take effect
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from usclip_sdk import taxonomy  # noqa: E402
from usclip_sdk.ops.similarity import similarity  # noqa: E402

sim_mod = importlib.import_module("usclip_sdk.ops.similarity")

__all__ = ["numpy_similarity", "main"]


def _softmax(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_similarity(x, c_unit, scale=100.0, bias=0.0, k=5, groups=None):
    """The user's numpy, class embeddings already unit length: normalise x, matmul, softmax
    (per group when given, with the group argmax), top-k of the logits, sorted."""
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    logits = scale * (x @ c_unit.T) + bias
    if groups is None:
        probs = _softmax(logits)
    else:
        probs = np.empty_like(logits)
        arg = []
        for a, b in zip(np.cumsum((0,) + tuple(groups[:-1])), np.cumsum(groups)):
            probs[..., a:b] = _softmax(logits[..., a:b])
            arg.append(a + np.argmax(logits[..., a:b], axis=-1))
    k = min(k, c_unit.shape[0])
    part = np.argpartition(-logits, k - 1, axis=-1)[..., :k]
    vals = np.take_along_axis(logits, part, -1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    top = np.take_along_axis(part, order, -1)
    return logits, probs, top, np.take_along_axis(probs, top, -1)


def _median_us(fns, seconds, clock):
    """Median microseconds of each fn, run interleaved so load spikes hit all of them."""
    for f in fns:
        f()
    t0 = time.perf_counter()
    fns[0]()
    one = max(time.perf_counter() - t0, 1e-6)
    reps = int(min(20000, max(15, seconds / one)))
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, f in enumerate(fns):
            t = clock()
            f()
            times[i].append(clock() - t)
    return [float(np.median(t)) * 1e6 for t in times], reps


def _cases():
    for n in (1, 32, 256):
        for k in (2, 93, 1000):
            yield n, k, "float32", None
    yield 1, 93, "float32", "taxonomy"
    yield 32, 93, "float32", "taxonomy"
    yield 1, 1000, "float16", None
    yield 256, 1000, "float16", None


def run(seconds: float, clock) -> list:
    rng = np.random.default_rng(0)
    rows = []
    for n, k, dt, grp in _cases():
        x = rng.standard_normal((n, 512)).astype(dt)
        c = rng.standard_normal((k, 512)).astype(dt)
        groups = taxonomy.group_sizes() if grp else None
        x_in = x[0] if n == 1 else x  # batch 1 is one embedding, as a caller has it
        xf, cf = x_in.astype(np.float32), c.astype(np.float32)  # numpy has no fp16 BLAS
        c_unit = cf / np.linalg.norm(cf, axis=-1, keepdims=True)
        fns = [lambda: similarity(x_in, c, groups=groups),
               lambda: numpy_similarity(xf if dt == "float32" else x_in.astype(np.float32),
                                        c_unit, groups=groups),
               lambda: numpy_similarity(xf if dt == "float32" else x_in.astype(np.float32),
                                        cf / np.linalg.norm(cf, axis=-1, keepdims=True),
                                        groups=groups)]
        (t_ours, t_np, t_all), reps = _median_us(fns, seconds, clock)
        rows.append({"N": n, "K": k, "D": 512, "dtype": dt, "groups": grp, "reps": reps,
                     "usclip_us": round(t_ours, 2), "numpy_us": round(t_np, 2),
                     "numpy_all_us": round(t_all, 2), "speedup": round(t_np / t_ours, 2),
                     "speedup_all": round(t_all / t_ours, 2)})
        print(f"{n:>4} {k:>5} {dt:>8} {str(grp or '-'):>9} {t_ours:>10.1f} {t_np:>10.1f} "
              f"{t_all:>10.1f} {t_np / t_ours:>7.2f}x {t_all / t_ours:>7.2f}x", flush=True)
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
    ap.add_argument("--cpu-time", action="store_true",
                    help="thread CPU time, 1 native + 1 BLAS thread (stable on a busy machine)")
    ap.add_argument("--blas-min-macs", type=int, default=None,
                    help="override the size from which the product goes to numpy's BLAS")
    args = ap.parse_args(argv)
    from usclip_sdk.ops._native import native
    if args.threads or args.cpu_time:
        native().set_num_threads(1 if args.cpu_time else args.threads)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    if args.blas_min_macs is not None:
        sim_mod.BLAS_MIN_MACS = args.blas_min_macs
    print(f"cpu: {_cpu_model()} x{os.cpu_count()}, kernel {native().similarity_cpu_variant()}, "
          f"threads {native().num_threads()}")
    print(f"clock: {'thread CPU time, 1 thread' if args.cpu_time else 'wall, default threads'}")
    print(f"{'N':>4} {'K':>5} {'dtype':>8} {'groups':>9} {'usclip us':>10} {'numpy us':>10} "
          f"{'np_all us':>10} {'vs numpy':>8} {'vs all':>8}")
    rows = run(args.seconds, clock)
    out = {"cpu": _cpu_model(), "cpus": os.cpu_count(), "numpy": np.__version__,
           "kernel": native().similarity_cpu_variant(), "threads": native().num_threads(),
           "blas_min_macs": sim_mod.BLAS_MIN_MACS, "clock": "thread_cpu" if args.cpu_time
           else "wall", "command": " ".join(["python"] + sys.argv), "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
