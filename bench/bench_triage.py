"""Time the triage layer's per-frame work - the input-quality gate (quality.assess) and the
OOD score (Calibration.ood) - against the whole Classifier.classify of the same frames, in one
run, at three frame sizes. Goal (issue 13): gate + OOD <= 0.5 ms a frame on the CPU.

Usage: python bench/bench_triage.py [--bundle BUNDLE] [--frames DIR] [--n 100] [--json out.json]
(--frames: a folder of PNG scans, e.g. a synthetic split's images/; default: the shipped examples)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from usclip_sdk import Classifier
from usclip_sdk.inputs import to_frame
from usclip_sdk.quality import assess
from usclip_sdk.region import detect_region


def _median_ms(fn, items, repeats: int = 5) -> float:
    best = []
    for _ in range(repeats):  # median over frames of each repeat, then the best repeat (least load)
        t = []
        for it in items:
            t0 = time.perf_counter()
            fn(it)
            t.append((time.perf_counter() - t0) * 1e3)
        best.append(float(np.median(t)))
    return min(best)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--frames", type=Path, default=None)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    clf = Classifier(args.bundle, backend="onnxruntime", device="cpu")
    if clf.calibration is None or clf.calibration.mean is None:
        raise SystemExit("bench_triage: the bundle has no calibration section (run usclip calibrate)")
    from usclip_sdk.cli.demo import examples_dir
    folder = args.frames or examples_dir()
    paths = sorted(folder.glob("*.png"))[: args.n]
    base = [to_frame(str(p)).pixels for p in paths]
    out = {"frames": len(base), "bundle": clf.bundle.manifest.model.name, "sizes": {}}
    emb = clf.embed_image(base[:8])
    for label, size in (("native", None), ("640x480", (640, 480)), ("1920x1080", (1920, 1080))):
        frames = base if size is None else [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in base]
        items = [(f, detect_region(f), emb[i % len(emb)]) for i, f in enumerate(frames)]
        gate = _median_ms(lambda it: assess(it[0], it[1]), items)
        ood = _median_ms(lambda it: clf.calibration.ood(it[2]), items)
        both = _median_ms(lambda it: (assess(it[0], it[1]), clf.calibration.ood(it[2])), items)
        whole = _median_ms(lambda it: clf.classify(it[0]), items[:20], repeats=2)
        out["sizes"][label] = {"gate_ms": round(gate, 4), "ood_ms": round(ood, 4), "gate_plus_ood_ms": round(both, 4),
                               "classify_ms": round(whole, 3), "share_of_classify": round(both / whole, 4),
                               "frame": list(frames[0].shape[:2])}
        print(f"{label:10s} gate {gate:.3f} ms  ood {ood:.3f} ms  gate+ood {both:.3f} ms  "
              f"classify {whole:.1f} ms  (gate+ood = {100 * both / whole:.2f} % of a classification)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
