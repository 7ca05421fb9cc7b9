"""Classifier end to end on a tiny real-ONNX bundle: API, labels, streams, threads, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("onnx")

from sdk_bundle import D  # noqa: E402

from usclip_sdk import taxonomy  # noqa: E402
from usclip_sdk.classifier import Classifier  # noqa: E402
from usclip_sdk.errors import BackendUnavailableError, BundleError, InvalidInputError  # noqa: E402
from usclip_sdk.region import detect_region  # noqa: E402


def screen(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    """A scanner-like frame: speckle rectangle with a seed-dependent bright blob, and text."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[30:h - 30, 60:w - 60] = rng.rayleigh(50, (h - 60, w - 120, 1)).clip(0, 255).astype(np.uint8)
    cv2.circle(img, (int(rng.integers(90, w - 90)), int(rng.integers(60, h - 60))), 20, (230,) * 3, -1)
    cv2.putText(img, "L12 MSK", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255,) * 3, 1)
    return img


# bundle_path, clf: the tiny bundle and a Classifier on it (tests/conftest.py)


def test_classify_returns_structured_prediction(clf):
    p = clf.classify(screen(0))
    assert p.label in taxonomy.dimension("Diagnosis").values
    assert 0.0 < p.score <= 1.0 and p.topk[0] == (p.label, p.score)
    assert sum(s for _, s in p.topk) == pytest.approx(1.0, abs=1e-4)  # all 5 diagnosis values
    assert set(p.attributes) == set(taxonomy.FIELDS)
    for field, a in p.attributes.items():
        assert a.value in taxonomy.dimension(field).values
        assert a.topk[0][0] == a.value and all(x[1] >= y[1] for x, y in zip(a.topk, a.topk[1:]))
    assert p.region["kind"] in ("linear", "sector") and p.backend.startswith("onnxruntime")
    assert set(p.timings) == {"region", "preprocess", "encode", "similarity", "triage", "total"}
    d = json.loads(p.to_json())
    assert d["label"] == p.label and d["attributes"]["Organ_level"]["value"] == p.organ


def test_scores_match_an_independent_numpy_computation(clf):
    frame = screen(3)
    p = clf.classify(frame, return_embedding=True)
    emb = clf.embed_image(frame)[0]
    np.testing.assert_allclose(p.embedding, emb, atol=1e-6)
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5) and emb.shape == (D,)
    cls = clf.class_embeddings
    off = taxonomy.group_offsets()[taxonomy.FIELDS.index("Echogenicity")]
    n = taxonomy.group_sizes()[taxonomy.FIELDS.index("Echogenicity")]
    logits = clf.bundle.logit_scale * cls[off:off + n] @ emb
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    assert p.attributes["Echogenicity"].value == taxonomy.dimension("Echogenicity").values[int(probs.argmax())]
    assert p.attributes["Echogenicity"].score == pytest.approx(float(probs.max()), abs=1e-4)


def test_batch_of_mixed_sizes_equals_single_calls(clf):
    frames = [screen(1), screen(2, 300, 400), screen(3)[..., 0], screen(4, 200, 260)]
    batch = clf.classify_batch(frames)
    for f, p in zip(frames, batch):
        q = clf.classify(f)
        assert (p.label, p.attributes["Organ_level"].value) == (q.label, q.attributes["Organ_level"].value)
        assert p.score == pytest.approx(q.score, abs=1e-5)
    assert len(clf.embed_image(np.stack([screen(1), screen(2)]))) == 2


def test_custom_labels_field_labels_and_reset(clf):
    try:
        clf.set_labels(["benign cyst", "malignant mass", "normal tissue"])
        p = clf.classify(screen(5))
        assert p.label in ("benign cyst", "malignant mass", "normal tissue") and len(p.topk) == 3
        assert set(p.attributes) == set(taxonomy.FIELDS)  # attributes stay available
        clf.set_labels("Organ_level")
        assert clf.classify(screen(5)).label in taxonomy.organs()
        with pytest.raises(InvalidInputError):
            clf.set_labels([])
        with pytest.raises(InvalidInputError, match="duplicates"):
            clf.set_labels(["a", "a"])
        with pytest.raises(InvalidInputError, match="templates"):
            clf.set_labels(["a"], templates=["no placeholder"])
        with pytest.raises(InvalidInputError, match="dimension"):
            clf.set_labels("Colour")
    finally:
        clf.set_labels(None)
    assert clf.labels == taxonomy.dimension("Diagnosis").values


def test_text_embeddings_cached_and_consistent(clf):
    a = clf.embed_text(["a cyst", "a mass"])
    assert a.shape == (2, D) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    b = clf.embed_text("a mass")
    np.testing.assert_array_equal(a[1], b[0])
    fresh = clf.backend.encode_text(clf.bundle.tokenize(["a mass"]))
    np.testing.assert_allclose(fresh[0], b[0], atol=1e-6)


def test_stream_every_and_smoothing(clf):
    frames = [screen(i % 3) for i in range(9)]
    raw = list(clf.stream(frames, every=1, smoothing=0.0))
    assert [p.label for p in raw] == [clf.classify(f).label for f in frames]
    every3 = list(clf.stream(frames, every=3, smoothing=0.0))
    assert len(every3) == 9 and every3[1] is every3[0] and every3[4] is every3[3]
    smooth = list(clf.stream(frames, smoothing=0.9))
    # With heavy smoothing the first frame's answer persists longer than the raw sequence's.
    assert smooth[0].score == pytest.approx(raw[0].score, abs=1e-6)
    with pytest.raises(ValueError, match="every"):
        list(clf.stream(frames, every=0))
    with pytest.raises(ValueError, match="smoothing"):
        list(clf.stream(frames, smoothing=1.0))


def test_threads_give_serial_results(clf):
    frames = [screen(i) for i in range(6)]
    serial = [clf.classify(f).to_dict()["attributes"] for f in frames]
    errors, results = [], {}

    def worker(t: int) -> None:
        try:
            for j in range(30):
                k = (t + j) % len(frames)
                results.setdefault(t, []).append((k, clf.classify(frames[k]).to_dict()["attributes"]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors and all(not th.is_alive() for th in threads)
    for t, rows in results.items():
        for k, attrs in rows:
            assert attrs == serial[k]


def test_hostile_inputs_then_recovery(clf, tmp_path):
    good = screen(7)
    expect = clf.classify(good).label
    bad = [np.zeros((0, 0, 3), np.uint8), np.zeros((1, 1), np.uint8), np.full((8, 8), np.nan),
           np.zeros((2, 3, 4, 5, 6), np.uint8), "missing.png", 42]
    (tmp_path / "junk.png").write_bytes(b"not a png")
    bad.append(tmp_path / "junk.png")
    for b in bad:
        try:
            p = clf.classify(b)
        except InvalidInputError:
            continue
        # A 1x1 frame is valid input: a documented result on the full frame.
        assert p.region["kind"] == "full"
    assert clf.classify(good).label == expect


def test_explicit_region_must_match_frame(clf):
    f = screen(1)
    r = detect_region(f)
    assert clf.classify(f, region=r).region["bbox"] == list(r.bbox)
    with pytest.raises(InvalidInputError, match="region"):
        clf.classify(screen(1, 300, 400), region=r)


def test_backend_errors_are_typed(bundle_path, tmp_path):
    with pytest.raises(ValueError, match="backend"):
        Classifier(bundle_path, backend="tflite")
    with pytest.raises(BackendUnavailableError):
        Classifier(bundle_path, backend="onnxruntime", device="cuda")
    with pytest.raises(BundleError):
        Classifier(tmp_path / "nope")


def test_sdk_runtime_never_imports_torch(bundle_path):
    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'open_clip', 'transformers', 'usclip_train'):\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import numpy as np\n"
            "from usclip_sdk import Classifier\n"
            f"c = Classifier({str(bundle_path)!r}, backend='onnxruntime')\n"
            "c.set_labels(['a cyst', 'a mass'])\n"
            "print(c.classify(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)).label)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("a cyst", "a mass")


def test_region_reused_only_for_the_same_layout(bundle_path, monkeypatch):
    import usclip_sdk.classifier as cmod

    clf = Classifier(bundle_path, backend="onnxruntime", device="cpu")
    calls = []
    real = cmod.detect_region
    monkeypatch.setattr(cmod, "detect_region", lambda px: calls.append(1) or real(px))
    a = [clf.classify(screen(i)) for i in range(4)]  # same layout, new content each frame
    assert len(calls) == 1 and len({tuple(p.region["bbox"]) for p in a}) == 1
    other = screen(9)
    other[:, :100] = 0  # another layout of the same size: the scan area is narrower
    b = clf.classify(other)
    assert len(calls) == 2 and b.region["bbox"] != a[0].region["bbox"]
    assert b.region["bbox"] == list(detect_region(other).bbox)
