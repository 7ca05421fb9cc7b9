"""What a classification returns: plain, frozen, numpy-only, JSON-ready."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Attribute", "Prediction", "STATUSES"]

# Prediction.status values (docs/triage.md says how each is decided).
STATUSES = ("ok", "no_image", "frozen", "out_of_distribution", "uncertain")


@dataclass(frozen=True)
class Attribute:
    """One diagnostic dimension's answer: the best value, its probability (softmax within the
    dimension, calibrated when the bundle has temperatures) and the runners-up.

    applicable: False for the six lesion descriptors when the frame is judged normal or the
        prediction's status is not "ok" - the values are still computed, but there is no
        lesion to describe, so a display should not show them.
    """

    field: str
    value: str
    score: float
    topk: tuple[tuple[str, float], ...]
    applicable: bool = True

    def __repr__(self) -> str:  # short, like Prediction's; the runners-up are in topk
        na = "" if self.applicable else ", not applicable"
        return f"Attribute({self.field}={self.value!r} {self.score:.2f}{na})"

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "score": round(self.score, 6),
                "topk": [[v, round(p, 6)] for v, p in self.topk], "applicable": self.applicable}


@dataclass(frozen=True)
class Prediction:
    """One frame's result.

    label, score, topk: over the active label set (the taxonomy's Diagnosis values by default,
        or the labels given to ``Classifier.set_labels``).
    attributes: the nine taxonomy dimensions, each an Attribute.
    region: the imaging region used ({"bbox": [x0, y0, x1, y1], "kind": ...}).
    timings: milliseconds per stage (region, preprocess, encode, similarity, total); in a batch,
        the batch stages are divided evenly over its frames.
    backend: the inference backend that ran (e.g. "onnxruntime:CPUExecutionProvider").
    source: a non-identifying description of the input (file name and frame index).
    embedding: the L2-normalised image embedding, when asked for.
    status: whether the SDK stands behind the answer - "ok", or why not: "no_image",
        "frozen", "out_of_distribution", "uncertain" (STATUSES; docs/triage.md). The values
        are computed and returned either way; status says whether to show them.
    reasons: the measured figures behind the status ({"quality": gate figures, "failed":
        failed gate checks, "ood": score and threshold, "confidence": per-dimension score and
        threshold, "frozen": unchanged frames, "calibrated": bool}), for a policy of your own.

    Research and development use only: not a medical device, not for diagnosis.
    """

    label: str
    score: float
    topk: tuple[tuple[str, float], ...]
    attributes: Mapping[str, Attribute]
    region: Mapping[str, Any]
    timings: Mapping[str, float]
    backend: str
    bundle: str
    source: str = "array"
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    status: str = "ok"
    reasons: Mapping[str, Any] = field(default_factory=dict)

    @property
    def organ(self) -> str:
        return self.attributes["Organ_level"].value if "Organ_level" in self.attributes else ""

    @property
    def diagnosis(self) -> str:
        return self.attributes["Diagnosis"].value if "Diagnosis" in self.attributes else ""

    def to_dict(self, embedding: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "reasons": dict(self.reasons),
            "label": self.label,
            "score": round(self.score, 6),
            "topk": [[v, round(p, 6)] for v, p in self.topk],
            "attributes": {k: a.to_dict() for k, a in self.attributes.items()},
            "region": dict(self.region),
            "timings_ms": {k: round(v, 4) for k, v in self.timings.items()},
            "backend": self.backend,
            "bundle": self.bundle,
            "source": self.source,
        }
        if embedding and self.embedding is not None:
            out["embedding"] = [float(x) for x in self.embedding]
        return out

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    def __repr__(self) -> str:  # the generated one is > 1.5 KB; every field is in to_dict()
        ms = self.timings.get("total")
        took = f", {ms:.1f} ms" if ms is not None else ""
        return (f"Prediction({self.status}: organ={self.organ!r}, label={self.label!r} "
                f"{self.score:.2f}{took}, source={self.source!r})")
