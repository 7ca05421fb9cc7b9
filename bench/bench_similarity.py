"""Benchmark usclip_sdk.ops.similarity (CPU) against what a user would write in numpy.

One run, interleaved (median of many repetitions; the CPU is shared), side by side per case:
  numpy     the user's usual code with the class embeddings normalised ONCE outside the timed
            call (they are fixed): normalise x, matmul, scale + bias, softmax (per group in a
            Python loop when groups are given), argpartition + sort of the top k;
  fp32      the op on the raw float32 class embeddings (normalize=True: it also normalises and
            checks them every call, so it does the larger job);
  prep32    the op on ClassEmbeddings(c, "float32") (checked and normed once, same bytes);
  compact   the op on ClassEmbeddings(c) (float16 directions: half the bytes per call);
  blas      (N > 4 only) fp32 with the product from numpy's BLAS and the native epilogue
            (similarity.BLAS_MIN_MACS = 0): the hand-written tiles against OpenBLAS.
Ratios: numpy / each kernel column, and fp32 / blas (> 1: BLAS faster).

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
from usclip_sdk.ops.similarity import ClassEmbeddings, similarity  # noqa: E402

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
    yield 1, 2, None
    yield 1, 93, None
    yield 1, 93, "taxonomy"
    yield 1, 1000, None
    yield 8, 93, None
    yield 8, 1000, None
    yield 32, 1000, None
    yield 256, 1000, None


def _blas(x, c, groups):
    old, sim_mod.BLAS_MIN_MACS = sim_mod.BLAS_MIN_MACS, 0
    try:
        return similarity(x, c, groups=groups)
    finally:
        sim_mod.BLAS_MIN_MACS = old


def run(seconds: float, clock) -> list:
    rng = np.random.default_rng(0)
    rows = []
    for n, k, grp in _cases():
        x = rng.standard_normal((n, 512)).astype(np.float32)
        c = rng.standard_normal((k, 512)).astype(np.float32)
        groups = taxonomy.group_sizes() if grp else None
        x_in = x[0] if n == 1 else x  # batch 1 is one embedding, as a caller has it
        c_unit = c / np.linalg.norm(c, axis=-1, keepdims=True)
        p32, p16 = ClassEmbeddings(c, "float32"), ClassEmbeddings(c)
        fns = {"numpy": lambda: numpy_similarity(x_in, c_unit, groups=groups),
               "fp32": lambda: similarity(x_in, c, groups=groups),
               "prep32": lambda: similarity(x_in, p32, groups=groups),
               "compact": lambda: similarity(x_in, p16, groups=groups)}
        if n > 4:
            fns["blas"] = lambda: _blas(x_in, c, groups)
        times, reps = _median_us(list(fns.values()), seconds, clock)
        t = dict(zip(fns, times))
        row = {"N": n, "K": k, "D": 512, "groups": grp, "reps": reps}
        row.update({f"{m}_us": round(v, 2) for m, v in t.items()})
        row.update({f"speedup_{m}": round(t["numpy"] / t[m], 2) for m in fns if m != "numpy"})
        if "blas" in t:
            row["own_vs_blas"] = round(t["fp32"] / t["blas"], 2)
        rows.append(row)
        blas = f"{t['blas']:>9.1f} {t['fp32'] / t['blas']:>6.2f}x" if "blas" in t else f"{'-':>9} {'-':>7}"
        print(f"{n:>4} {k:>5} {str(grp or '-'):>9} {t['numpy']:>9.1f} {t['fp32']:>9.1f} {t['prep32']:>9.1f} "
              f"{t['compact']:>9.1f} {t['numpy'] / t['fp32']:>6.2f}x {t['numpy'] / t['compact']:>6.2f}x {blas}",
              flush=True)
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
    ap.add_argument("--json", default="bench/results/similarity_cpu_compact.json")
    ap.add_argument("--seconds", type=float, default=0.25, help="time per case and method")
    ap.add_argument("--threads", type=int, default=0, help="native threads (0: default)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="thread CPU time, 1 native + 1 BLAS thread (stable on a busy machine)")
    args = ap.parse_args(argv)
    from usclip_sdk.ops._native import native
    if args.threads or args.cpu_time:
        native().set_num_threads(1 if args.cpu_time else args.threads)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    print(f"cpu: {_cpu_model()} x{os.cpu_count()}, kernel {native().similarity_cpu_variant()}, "
          f"threads {native().num_threads()}")
    print(f"clock: {'thread CPU time, 1 thread' if args.cpu_time else 'wall, default threads'}")
    print(f"{'N':>4} {'K':>5} {'groups':>9} {'numpy':>9} {'fp32':>9} {'prep32':>9} {'compact':>9} "
          f"{'np/fp32':>7} {'np/cmp':>7} {'blas':>9} {'fp32/blas':>7}   (us)")
    load0 = os.getloadavg()
    rows = run(args.seconds, clock)
    out = {"cpu": _cpu_model(), "cpus": os.cpu_count(), "numpy": np.__version__,
           "loadavg_start": [round(v, 2) for v in load0],
           "loadavg_end": [round(v, 2) for v in os.getloadavg()],
           "kernel": native().similarity_cpu_variant(), "threads": native().num_threads(),
           "clock": "thread_cpu" if args.cpu_time
           else "wall", "command": " ".join(["python"] + sys.argv), "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
