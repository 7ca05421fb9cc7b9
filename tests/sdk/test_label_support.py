"""A bundle declares the taxonomy values its model was trained on (manifest label_support);
the Classifier scores only those by default and the whole taxonomy with scope="taxonomy"."""
import json
import shutil

import numpy as np
import pytest

from sdk_bundle import make_tiny_bundle
from usclip_sdk import Classifier
from usclip_sdk.bundle import Bundle
from usclip_sdk.errors import BundleError

SUPPORT = {"Organ_level": ["Liver", "Kidney and ureter", "Thyroid gland"],
           "Diagnosis": ["cyst", "normal appearance"]}


def _with(src, dst, support):
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["label_support"] = support
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("ls")
    tiny = make_tiny_bundle(root / "tiny")
    return tiny, _with(tiny, root / "scoped", SUPPORT)


def _frames():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (80, 100, 3)).astype(np.uint8) for _ in range(6)]


def test_only_trained_values_are_scored_by_default(bundles):
    _tiny, scoped = bundles
    clf = Classifier(scoped, backend="onnxruntime", device="cpu")
    for p in clf.classify_batch(_frames()):
        organ, dx = p.attributes["Organ_level"], p.attributes["Diagnosis"]
        assert organ.value in SUPPORT["Organ_level"] and dx.value in SUPPORT["Diagnosis"]
        assert sum(s for v, s in organ.topk if v in SUPPORT["Organ_level"]) == pytest.approx(1.0, abs=1e-5)
        assert all(s == 0.0 for v, s in organ.topk if v not in SUPPORT["Organ_level"])
    assert clf.info()["scope"] == "trained" and clf.info()["label_support"] == SUPPORT


def test_scope_taxonomy_scores_everything_and_bundles_without_support_are_unchanged(bundles):
    tiny, scoped = bundles
    frames = _frames()
    whole = [p.to_dict()["attributes"] for p in
             Classifier(scoped, backend="onnxruntime", device="cpu", scope="taxonomy").classify_batch(frames)]
    plain = [p.to_dict()["attributes"] for p in
             Classifier(tiny, backend="onnxruntime", device="cpu").classify_batch(frames)]
    assert whole == plain
    with pytest.raises(ValueError, match="scope"):
        Classifier(tiny, backend="onnxruntime", device="cpu", scope="all")


@pytest.mark.parametrize("bad", [{"Organ": ["Liver"]}, {"Organ_level": ["Lung"]}, {"Organ_level": []}])
def test_bad_label_support_is_refused_by_name(bundles, tmp_path, bad):
    tiny, _ = bundles
    with pytest.raises(BundleError, match="label_support"):
        Bundle.open(_with(tiny, tmp_path / "b", bad))
