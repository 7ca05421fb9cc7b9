"""Draw a triage result: shipped example frames, their detected imaging region, the
Classifier's answer (organ, diagnosis, key attributes, probability, status, latency) and, beside
each, the synthetic ground truth (examples/labels.json) -> PNG; prints the agreement over all
shipped example frames for the caption.

python scripts/triage_picture.py [--frame python/usclip_sdk/models/examples/03_liver.png]
                                 [--out docs/images/triage_example.png] [--bundle B]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from usclip_sdk import Classifier
from usclip_sdk.inputs import load_image
from usclip_sdk.region import detect_region

_EX = Path(__file__).resolve().parent.parent / "python/usclip_sdk/models/examples"


_KEY = ("Echogenicity", "Margins", "PosteriorAcoustics", "Vascularity")
_OK, _BAD, _TEXT, _DIM = (120, 255, 160), (255, 140, 90), (255, 255, 255), (170, 170, 170)


def _truth_of(path: Path) -> dict:
    labels = path.parent / "labels.json"
    return json.loads(labels.read_text()).get(path.name, {}) if labels.is_file() else {}


def _lines(p, truth: dict) -> list[tuple[str, tuple]]:
    """(text, colour) rows: the answer, the ground truth beside it, and per key attribute both."""
    def agree(field: str, value: str) -> bool:
        return value in truth.get(field, ())

    organ_ok, diag_ok = agree("Organ_level", p.organ), agree("Diagnosis", p.diagnosis)
    rows = [(f"model: {p.organ} | {p.label} ({p.score:.0%})  [{p.status}]", _TEXT),
            (f"truth: {' / '.join(truth.get('Organ_level', ['?']))} | {' / '.join(truth.get('Diagnosis', ['?']))}",
             _OK if organ_ok and diag_ok else _BAD),
            (f"organ {'agrees' if organ_ok else 'differs'}, diagnosis {'agrees' if diag_ok else 'differs'}",
             _OK if organ_ok and diag_ok else _BAD)]
    for f in _KEY:
        at = p.attributes[f]
        want = " / ".join(truth.get(f, ())) or "not labelled"
        said = f"{at.value} ({at.score:.0%})" if at.applicable else "n/a"
        if f not in truth:  # nothing to compare with: grey, neither right nor wrong
            colour = _DIM
        elif not at.applicable:  # the model saw no lesion where the truth describes one
            colour = _BAD
        else:
            colour = _OK if agree(f, at.value) else _BAD
        rows.append((f"{f}: {said}  | truth: {want}", colour))
    rows.append((f"{p.timings['total']:.1f} ms on {p.backend}", _DIM))
    return rows


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
        rows = _lines(p, _truth_of(path))
        panel = np.zeros((max(vis.shape[0], 32 + 22 * len(rows)), 560, 3), np.uint8)
        for k, (text, colour) in enumerate(rows):
            cv2.putText(panel, text, (8, 26 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
        vis = np.pad(vis, ((0, panel.shape[0] - vis.shape[0]), (0, 0), (0, 0)))
        panels.append(np.hstack([vis, panel]))
        print(f"{path.name}: {rows[0][0]} / {rows[1][0]}")
    # the agreement over every shipped example frame, printed for the caption (measured, not assumed)
    hits = {"Organ_level": 0, "Diagnosis": 0}
    examples = sorted(_EX.glob("*.png"))
    for path in examples:
        p, truth = clf.classify(path), _truth_of(path)
        hits["Organ_level"] += p.organ in truth.get("Organ_level", ())
        hits["Diagnosis"] += p.diagnosis in truth.get("Diagnosis", ())
    print(f"all {len(examples)} shipped example frames: organ {hits['Organ_level']}/{len(examples)}, "
          f"diagnosis {hits['Diagnosis']}/{len(examples)} agree with the synthetic ground truth")
    width = max(p.shape[1] for p in panels)
    out = np.vstack([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in panels])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(a.out)


if __name__ == "__main__":
    main()
