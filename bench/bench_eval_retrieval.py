"""Retrieval ranks: usclip's chunked single-pass ranks vs the usual full-matrix argsort.

What a user would otherwise write (CLIP_benchmark-style): build the whole N x N similarity
matrix, sort each row (or topk), find the match's position, and again for the transpose.
usclip's ``metrics.retrieval_ranks`` multiplies the matrix once in 1024-row chunks and
counts instead of sorting. Both give the same ranks (checked here; only ulp-level rounding differences between two
matrix products could move a rank, and the count of such cases is printed).

    python bench/bench_eval_retrieval.py [--n 2000 5000] [--dim 512] [--out bench/results/eval_retrieval.json]

Prints a table and writes JSON (seconds, speed-up ratio, peak extra memory estimate).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from usclip_train.evaluate.metrics import l2_normalize, retrieval_ranks

__all__ = ["naive_ranks", "main"]


def naive_ranks(img: np.ndarray, txt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full similarity matrix + argsort per row, both directions (pairs on the diagonal)."""
    sim = img @ txt.T
    n = len(sim)
    order = np.argsort(-sim, axis=1, kind="stable")
    i2t = np.argmax(order == np.arange(n)[:, None], axis=1) + 1
    order_t = np.argsort(-sim.T, axis=1, kind="stable")
    t2i = np.argmax(order_t == np.arange(n)[:, None], axis=1) + 1
    return i2t, t2i


def _time(fn, *args, repeats: int = 2) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--out", default="bench/results/eval_retrieval.json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.n:
        img = l2_normalize(rng.normal(size=(n, args.dim)))
        txt = l2_normalize(img + 1.5 * rng.normal(size=(n, args.dim)).astype(np.float32))
        t_naive, (a_i2t, a_t2i) = _time(naive_ranks, img, txt)
        t_ours, (b_i2t, b_t2i) = _time(retrieval_ranks, img, txt)
        # ranks can differ only where two float32 products round differently (ulp-level ties)
        mismatches = int((a_i2t != b_i2t).sum() + (a_t2i != b_t2i).sum())
        same = mismatches <= max(1, 2 * n // 1000)
        rows.append({"n": n, "dim": args.dim, "naive_s": t_naive, "usclip_s": t_ours,
                     "speedup": t_naive / t_ours, "rank_mismatches": mismatches, "same_ranks": same,
                     "naive_extra_mb": 3 * n * n * 8 / 2**20,  # sim + two int64 orders
                     "usclip_extra_mb": 1024 * n * 5 / 2**20})  # float32 chunk + bool mask
    print(f"{'n':>7} {'naive s':>9} {'usclip s':>9} {'speed-up':>9} {'rank diffs':>10} "
          f"{'naive MB':>9} {'usclip MB':>9}")
    for r in rows:
        print(f"{r['n']:>7} {r['naive_s']:>9.2f} {r['usclip_s']:>9.2f} {r['speedup']:>8.1f}x "
              f"{r['rank_mismatches']:>10} {r['naive_extra_mb']:>9.0f} {r['usclip_extra_mb']:>9.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bench": "eval_retrieval", "machine": platform.processor() or platform.machine(),
                               "rows": rows}, indent=2) + "\n")
    return 0 if all(r["same_ranks"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
