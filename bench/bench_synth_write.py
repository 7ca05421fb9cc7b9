"""Benchmark writing a synthetic US-365K data set (images/s) against what a user would write.

* render only: ``sample_case`` + ``render_view`` in a loop, nothing written - the engine's
  ceiling on one core;
* naive writer: the same loop, each frame saved with PIL's PNG defaults plus a caption, one
  process (how a quick script would do it);
* write_dataset, workers=1 and workers=all cores: the layout writer (PNG image + region mask,
  caption, jsonl/json tables), with process start-up included.

All on the same cases (same seed), one after the other in this process. Besides wall time
it reports images per CPU-second (this process and its finished children), the per-core
rate, which a shared, loaded machine distorts much less than wall time.

    python bench/bench_synth_write.py [--cases 40] [--size 256] [--json bench/results/synth_write.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from usclip_data.synth import caption, render_view, sample_case
from usclip_data.us365k import write_dataset
from usclip_data.us365k_writer import _case_streams, _n_views

__all__ = ["render_only", "naive_writer", "main"]


def _views(n_cases: int, seed: int, views: tuple[int, int]):
    """The (case, view, render seed) triples write_dataset renders, via its own seeding."""
    for i in range(n_cases):
        case_ss, views_ss, _, render_ss = _case_streams(seed, i)
        case = sample_case(np.random.default_rng(case_ss), f"case{i:06d}")
        for v, s in enumerate(render_ss.generate_state(_n_views(views_ss, views))):
            yield case, v, int(s)


def render_only(n_cases: int, seed: int, views, size) -> tuple[int, float]:
    t0, n = time.perf_counter(), 0
    for case, v, s in _views(n_cases, seed, views):
        render_view(case, v, s, size)
        n += 1
    return n, time.perf_counter() - t0


def naive_writer(out: Path, n_cases: int, seed: int, views, size) -> tuple[int, float]:
    from PIL import Image

    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    t0, n, lines = time.perf_counter(), 0, []
    for case, v, s in _views(n_cases, seed, views):
        f = render_view(case, v, s, size)
        name = f"{case.case_id}_{v}.png"
        Image.fromarray(f.image).save(out / name)
        lines.append(json.dumps({"image": name, "caption": caption(f.labels, rng)}))
        n += 1
    (out / "train.jsonl").write_text("\n".join(lines) + "\n")
    return n, time.perf_counter() - t0


def _cpu() -> float:
    """CPU seconds of this process plus its waited-for children (the pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default="bench/results/synth_write.json")
    a = ap.parse_args(argv)
    size, views, cores = (a.size, a.size), (2, 4), os.cpu_count() or 1
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        c0 = _cpu()
        n, t = render_only(a.cases, a.seed, views, size)
        rows.append(("render only (no output)", 1, n, t, _cpu() - c0))
        c0 = _cpu()
        n, t = naive_writer(Path(tmp) / "naive", a.cases, a.seed, views, size)
        rows.append(("naive writer (PIL PNG, 1 process)", 1, n, t, _cpu() - c0))
        for w in sorted({1, cores}):
            c0 = _cpu()
            s = write_dataset(Path(tmp) / f"w{w}", a.cases, a.seed, views, size, workers=w, progress=False)
            rows.append((f"write_dataset workers={w}", w, s.n_images, s.seconds, _cpu() - c0))
    naive_rate = rows[1][2] / rows[1][4]
    print(f"{'case':36s} {'workers':>7s} {'images':>6s} {'wall s':>7s} {'img/s':>6s} "
          f"{'CPU s':>6s} {'img/CPU-s':>9s} {'x naive (CPU)':>13s}")
    results = []
    for name, w, n, t, cpu in rows:
        print(f"{name:36s} {w:7d} {n:6d} {t:7.2f} {n / t:6.1f} {cpu:6.2f} {n / cpu:9.1f} "
              f"{n / cpu / naive_rate:13.2f}")
        results.append({"case": name, "workers": w, "images": n, "wall_s": round(t, 3),
                        "images_per_s": round(n / t, 2), "cpu_s": round(cpu, 3),
                        "images_per_cpu_s": round(n / cpu, 2),
                        "ratio_vs_naive_cpu": round(n / cpu / naive_rate, 3)})
    meta = {"cases": a.cases, "size": list(size), "views_per_case": list(views), "seed": a.seed,
            "cpu_count": cores, "machine": platform.machine(), "processor": platform.processor(),
            "load_average_before": list(load), "load_average_after": list(os.getloadavg()),
            "note": "shared CPU: other jobs ran at the same time; img/CPU-s is the per-core rate"}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
