"""Synthetic B-mode engine speed, single process (one core).

    python bench/bench_synth.py [--n 200] [--json bench/results/synth.json]

Rows: full frames (sample_case + render_view) at 256x256 and at the scanners' native screen
sizes (640x480 .. 1024x768), plus the physics chain alone. Reports wall and CPU time per image;
images/s per core = 1 / CPU seconds per image (the CPU clock is what a shared machine cannot
inflate). Target: >= 100 images/s per core at 256x256 (issue 11; the spec asked 50).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from usclip_data.synth import render_view, sample_case
from usclip_data.synth.geometry import ScanGeometry
from usclip_data.synth.render import simulate_beams

TARGET = 100.0  # issue 11: >= 100 images/s per core at 256 x 256


def _time(fn, n: int) -> tuple[float, float]:
    fn(0)  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i + 1)
    return (time.perf_counter() - w0) / n, (time.process_time() - c0) / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--json", default="bench/results/synth.json")
    a = ap.parse_args()
    cv2.setNumThreads(1)  # one core: OpenCV must not fan out over a pool
    cases = [sample_case(np.random.default_rng(i), f"b{i}") for i in range(a.n + 1)]
    geom = ScanGeometry("convex", 150.0, radius_mm=50.0, half_angle=0.6)
    echo = np.ones((544, 128), np.float32)
    alpha = np.full_like(echo, 0.5)
    st = {"gain_db": 0.0, "dr_db": 60.0, "focus_mm": 60.0, "f_number": 2.5, "noise_db": -70.0}
    rows = {
        "frame 256x256": _time(lambda i: render_view(cases[i], 0, i, size=(256, 256)), a.n),
        "frame native (640x480..1024x768)": _time(lambda i: render_view(cases[i], 0, i), max(20, a.n // 4)),
        "physics chain only, 544x128 beams": _time(
            lambda i: simulate_beams(echo, alpha, geom, 3.5, st, np.random.default_rng(i)), a.n),
    }
    print(f"{'workload':38s} {'wall ms':>8s} {'cpu ms':>8s} {'img/s/core':>11s} {'x target':>9s}")
    out = {"target_images_per_s_per_core": TARGET, "n": a.n, "cpu_count": os.cpu_count(), "rows": {}}
    for name, (wall, cpu) in rows.items():
        ips = 1.0 / cpu
        print(f"{name:38s} {wall * 1e3:8.2f} {cpu * 1e3:8.2f} {ips:11.1f} {ips / TARGET:9.2f}")
        out["rows"][name] = {"wall_ms": round(wall * 1e3, 3), "cpu_ms": round(cpu * 1e3, 3),
                             "images_per_s_per_core": round(ips, 1), "ratio_to_target": round(ips / TARGET, 2)}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
