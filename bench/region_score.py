"""Score imaging-region detection against the synthetic engine's true region masks.

Goal (issue: SDK): IoU >= 0.9 on >= 95 % of frames. Prints a table (per probe geometry and
screen layout), compares against what a user would otherwise do in the same run (feed the
whole frame; a naive "largest bright blob" box), writes JSON and, with --worst, overlays of the
worst frames (green = truth, red = detected).
Usage: python bench/region_score.py [--n 300] [--seed 0] [--json out.json] [--worst DIR]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from usclip_data.synth import render_view, sample_case
from usclip_sdk.region import detect_region, iou

__all__ = ["score", "naive_region", "main"]


def naive_region(image: np.ndarray) -> np.ndarray:
    """What a quick script would do: threshold the grey image, keep the largest blob's box."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    binary = (grey > 20).astype(np.uint8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary)
    mask = np.zeros(grey.shape, np.uint8)
    if n > 1:
        i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = stats[i, :4]
        mask[y:y + h, x:x + w] = 1
    return mask


def _summary(v: list[float]) -> dict:
    a = np.asarray(v, dtype=np.float64)
    return {"n": int(a.size), "frac_ge_0.9": round(float((a >= 0.9).mean()), 4),
            "iou_mean": round(float(a.mean()), 4), "iou_min": round(float(a.min()), 4)}


def score(n: int, seed: int, worst_dir: Path | None = None) -> dict:
    rng = np.random.default_rng(seed)
    rows, times, worst, failures = [], [], [], []
    for i in range(n):
        case = sample_case(rng, f"r{i}")
        view, vseed = int(rng.integers(0, 4)), int(rng.integers(1 << 30))
        try:
            frame = render_view(case, view=view, seed=vseed)
        except ValueError as e:  # a renderer bug must not hide the detector's score
            failures.append(f"r{i} {case.organ_model}: {e}")
            continue
        t = time.perf_counter()
        r = detect_region(frame.image)
        times.append((time.perf_counter() - t) * 1e3)
        truth = frame.region_mask
        full = float(truth.sum() / truth.size)  # IoU of the whole frame with the truth
        rows.append({"i": i, "probe": frame.params["probe"], "layout": frame.params["layout"],
                     "kind": r.kind, "iou": iou(r.mask, truth), "iou_full_frame": full,
                     "iou_naive": iou(naive_region(frame.image), truth)})
        worst = sorted(worst + [(rows[-1]["iou"], i, frame, r)], key=lambda t: t[0])[:6]
    if not rows:
        raise SystemExit("no frame rendered")
    res = {"frames": len(rows), "seed": seed, "render_failures": failures,
           "detector": _summary([r["iou"] for r in rows]),
           "baseline_full_frame": _summary([r["iou_full_frame"] for r in rows]),
           "baseline_naive_blob": _summary([r["iou_naive"] for r in rows]),
           "by_geometry": {g: _summary([r["iou"] for r in rows if r["probe"] == g])
                           for g in sorted({r["probe"] for r in rows})},
           "by_layout": {g: _summary([r["iou"] for r in rows if r["layout"] == g])
                         for g in sorted({r["layout"] for r in rows})},
           "wrong_kind": sum((r["probe"] == "linear") != (r["kind"] == "linear") for r in rows),
           "detect_ms_median": round(float(np.median(times)), 2),
           "detect_ms_p90": round(float(np.percentile(times, 90)), 2),
           "worst": [{"i": i, "iou": round(v, 4)} for v, i, _, _ in worst]}
    if worst_dir:
        _write_overlays(worst, worst_dir)
    return res


def _write_overlays(worst: list, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for v, i, frame, r in worst:
        vis = frame.image.copy()
        for m, col in ((frame.region_mask, (0, 255, 0)), (r.mask, (255, 0, 0))):
            cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(vis, cs, -1, col, 2)
        cv2.imwrite(str(out / f"worst_{i}_{v:.3f}.png"), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))


def _table(res: dict) -> str:
    lines = [f"{'group':<22}{'n':>5}{'IoU>=0.9':>10}{'mean IoU':>10}{'min IoU':>9}"]
    groups = [("detector (all)", res["detector"]), ("baseline: full frame", res["baseline_full_frame"]),
              ("baseline: naive blob", res["baseline_naive_blob"])]
    groups += [(f"  probe {k}", v) for k, v in res["by_geometry"].items()]
    groups += [(f"  layout {k}", v) for k, v in res["by_layout"].items()]
    for name, g in groups:
        lines.append(f"{name:<22}{g['n']:>5}{g['frac_ge_0.9']:>10.3f}{g['iou_mean']:>10.3f}{g['iou_min']:>9.3f}")
    d, b = res["detector"], res["baseline_naive_blob"]
    lines.append(f"detector / naive blob: IoU>=0.9 fraction x{d['frac_ge_0.9'] / max(b['frac_ge_0.9'], 1e-9):.2f}, "
                 f"mean IoU x{d['iou_mean'] / b['iou_mean']:.2f}; detect {res['detect_ms_median']} ms median "
                 f"(p90 {res['detect_ms_p90']} ms); wrong kind {res['wrong_kind']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--worst", type=Path, help="write overlays of the worst frames here")
    a = ap.parse_args()
    res = score(a.n, a.seed, a.worst)
    print(_table(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
