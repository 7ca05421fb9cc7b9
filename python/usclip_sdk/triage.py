"""Prediction.status: when the SDK stands behind an answer, and when it says why not.

Decided in this order, the first that holds wins (docs/triage.md):

1. "no_image": the input-quality gate failed (quality.assess: blank, dark, colour image,
   graphics, document/UI, noise, gradient);
2. "frozen": in a stream, the imaging region stopped changing (quality.FrozenDetector);
3. "out_of_distribution": the embedding's OOD score is above the bundle's threshold;
4. "uncertain": every dimension's calibrated top-1 probability is below its threshold;
5. "ok".

3 and 4 need the bundle's calibration section; a bundle without one (older bundles) gets its
status from the gate (and, in a stream, the frozen check) alone, and says so in
``reasons["calibrated"]``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from . import taxonomy
from .calibration import Calibration
from .prediction import Attribute
from .quality import FrozenDetector, Quality

__all__ = ["decide", "mark_applicable", "LESION_DESCRIPTORS", "NORMAL"]

LESION_DESCRIPTORS = ("Shape", "Margins", "Echogenicity", "InternalCharacteristics",
                      "PosteriorAcoustics", "Vascularity")
NORMAL = taxonomy.NORMAL  # the Diagnosis value for a frame without a lesion


def decide(quality: Quality, attributes: Mapping[str, Attribute], embedding: np.ndarray,
           calibration: Calibration | None, frozen: FrozenDetector | None = None
           ) -> tuple[str, dict[str, Any]]:
    """(status, reasons) of one frame."""
    reasons: dict[str, Any] = {"quality": quality.figures, "failed": list(quality.failed),
                               "calibrated": calibration is not None}
    if frozen is not None:
        diff = frozen.difference
        reasons["frozen"] = {"unchanged_frames": frozen.unchanged, "after": frozen.after,
                             "difference": None if diff != diff else round(diff, 4)}
    ood = calibration.ood(embedding) if calibration is not None else None
    if ood is not None:
        reasons["ood"] = {"score": round(ood, 4), "threshold": round(calibration.spec.ood.threshold, 4)}
    unsure = False
    if calibration is not None and calibration.spec.confidence_thresholds:
        conf = {f: {"score": round(attributes[f].score, 4), "threshold": round(t, 4)}
                for f, t in calibration.spec.confidence_thresholds.items() if f in attributes}
        reasons["confidence"] = conf
        unsure = bool(conf) and all(c["score"] < c["threshold"] for c in conf.values())
    if not quality.ok:
        status = "no_image"
    elif frozen is not None and frozen.frozen:
        status = "frozen"
    elif ood is not None and ood > calibration.spec.ood.threshold:
        status = "out_of_distribution"
    elif unsure:
        status = "uncertain"
    else:
        status = "ok"
    return status, reasons


def mark_applicable(attributes: Mapping[str, Attribute], status: str) -> dict[str, Attribute]:
    """The attributes with the lesion descriptors marked not applicable when the frame is
    judged normal (Diagnosis "normal appearance") or the status is not "ok"."""
    diagnosis = attributes.get("Diagnosis")
    off = status != "ok" or (diagnosis is not None and diagnosis.value == NORMAL)
    if not off:
        return dict(attributes)  # every attribute is applicable already (the default)
    return {f: dataclasses.replace(a, applicable=False) if f in LESION_DESCRIPTORS else a
            for f, a in attributes.items()}
