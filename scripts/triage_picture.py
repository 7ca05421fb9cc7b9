"""Draw a triage result: a shipped example frame, its detected imaging region and the
Classifier's answer (organ, diagnosis, key attributes, confidence, latency) -> PNG.

python scripts/triage_picture.py [--frame python/usclip_sdk/models/examples/03_liver.png]
                                 [--out docs/images/triage_example.png] [--bundle B]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from usclip_sdk import Classifier
from usclip_sdk.inputs import load_image
from usclip_sdk.region import detect_region

_EX = Path(__file__).resolve().parent.parent / "python/usclip_sdk/models/examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", nargs="+", type=Path,
                    default=[_EX / "03_liver.png", _EX / "08_thyroid.png"])
    ap.add_argument("--out", type=Path, default=Path("docs/images/triage_example.png"))
    ap.add_argument("--bundle")
    a = ap.parse_args()
    clf = Classifier(a.bundle)
    panels = []
    for path in a.frames:
        img = load_image(path)
        p = clf.classify(img)
        vis = img.copy() if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        cs, _ = cv2.findContours(detect_region(img).mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(vis, cs, -1, (0, 220, 120), 2)
        lines = [f"{p.organ}  |  {p.label} ({p.score:.0%})"]
        for f in ("Echogenicity", "Margins", "PosteriorAcoustics", "Vascularity"):
            at = p.attributes[f]
            lines.append(f"{f}: {at.value} ({at.score:.0%})")
        lines.append(f"{p.timings['total']:.1f} ms on {p.backend}")
        panel = np.zeros((vis.shape[0], 330, 3), np.uint8)
        for k, text in enumerate(lines):
            cv2.putText(panel, text, (8, 28 + 24 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255) if k else (120, 255, 160), 1, cv2.LINE_AA)
        panels.append(np.hstack([vis, panel]))
    width = max(p.shape[1] for p in panels)
    out = np.vstack([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in panels])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(a.out)


if __name__ == "__main__":
    main()
