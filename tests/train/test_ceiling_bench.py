"""bench/ceiling.py's scoring: a multi-label dimension is classified over exact tag sets."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]


def _ceiling():
    spec = importlib.util.spec_from_file_location("bench_ceiling", ROOT / "bench" / "ceiling.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _labels(**kw):
    from usclip_sdk import taxonomy as tx

    rec = {f: () for f in tx.FIELDS}
    rec.update(kw)
    return rec


def test_multi_label_dimension_becomes_tag_sets_and_scores_exact_sets() -> None:
    c = _ceiling()
    ic = "InternalCharacteristics"
    labels = {"a": _labels(**{ic: ("solid components", "calcifications"), "Margins": ("well-defined",)}),
              "b": _labels(**{ic: ("solid components",)}),
              "c": _labels(**{ic: ("calcifications", "solid components")}),  # same set, other order
              "d": _labels(**{ic: ("cystic components", "septations")})}
    classes = c.class_sets(["a", "b", "d"], labels)
    assert classes[ic] == [("calcifications", "solid components"), ("cystic components", "septations"),
                           ("solid components",)]
    assert classes["Margins"] == [("well-defined",), ("ill-defined/indistinct",)]  # single-label: its values
    t = c.Targets(["a", "b", "c", "d"], labels, classes)
    assert t.single[ic].tolist() == [0, 2, 0, 1]
    assert t.single["Margins"].tolist() == [0, -1, -1, -1]  # untagged frames do not count
    logits = {f: torch.zeros(4, len(classes[f])) for f in classes}
    logits[ic][:, 2] = 1.0  # always "solid components" alone
    res = c.score(logits, t, t, classes, [True, False, False, False])
    r = res[ic]
    assert r["accuracy"] == 0.25 and r["majority_value"] == "calcifications + solid components"
    assert r["majority_baseline"] == 0.5 and r["formulation"].startswith("softmax over the 3 tag sets")
    assert r["with_doppler"] == {"accuracy": 0.0, "n": 1} and r["without_doppler"]["n"] == 3
