"""One preprocess spec (usclip_sdk.pixels.PreprocessSpec): every manifest field is honoured or
refused by name; a BGR or NHWC bundle is never fed RGB NCHW silently."""
import json
import zipfile

import numpy as np
import pytest

from sdk_bundle import make_tiny_bundle
from usclip_sdk import Classifier
from usclip_sdk.bundle import Bundle
from usclip_sdk.errors import BundleError
from usclip_sdk.pixels import PreprocessSpec, model_input, parse_preprocess
from usclip_sdk.region import full_region


def _with_preprocess(src, dst, **changes):
    """A copy of a folder bundle with manifest preprocess fields changed (sha256s kept valid:
    the manifest is not in its own file list)."""
    import shutil

    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["preprocess"].update(changes)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.mark.parametrize("key,value", [("layout", "NHWC"), ("interpolation", "nearest"),
                                       ("antialias", False), ("dtype", "uint8"),
                                       ("resize_mode", "crop"), ("region", "fan")])
def test_unimplemented_values_are_refused_by_name(tmp_path, key, value):
    b = _with_preprocess(make_tiny_bundle(tmp_path / "b"), tmp_path / "c", **{key: value})
    with pytest.raises(BundleError, match=f"preprocess.{key}"):
        Bundle.open(b)


def test_dtype_must_match_the_encoder_input(tmp_path):
    b = _with_preprocess(make_tiny_bundle(tmp_path / "b"), tmp_path / "c", dtype="float16")
    with pytest.raises(BundleError, match="disagrees with the fp32 image encoder"):
        Bundle.open(b)


def test_bgr_fill_and_full_region_are_honoured(tmp_path):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
    frame[:, :, 0] = 250  # a strongly red frame: channel order shows in the output
    rgb = PreprocessSpec(image_size=(16, 16))
    bgr = PreprocessSpec(image_size=(16, 16), channel_order="BGR")
    a = model_input(frame, None, None, rgb)[0]
    b = model_input(frame, None, None, bgr)[0]
    np.testing.assert_allclose(b[0], model_input(frame[:, :, ::-1].copy(), None, None, rgb)[0][0], atol=1e-6)
    assert not np.allclose(a, b)
    mask = np.zeros((60, 80), np.uint8)
    mask[10:50, 10:70] = 1
    spec = PreprocessSpec(image_size=(16, 16), mean=(0, 0, 0), std=(1, 1, 1), fill_color=255)
    out = model_input(frame, (0, 0, 80, 60), mask, spec)[0]
    assert out[:, 0, 0] == pytest.approx([1.0, 1.0, 1.0])  # masked corner = fill 255 -> 1.0
    full = PreprocessSpec(image_size=(16, 16), region="full")
    np.testing.assert_array_equal(model_input(frame, (10, 10, 70, 50), mask, full),
                                  model_input(frame, None, None, full))


def test_classifier_feeds_a_bgr_bundle_bgr(tmp_path):
    tiny = make_tiny_bundle(tmp_path / "b")
    bgr = _with_preprocess(tiny, tmp_path / "c", channel_order="BGR")
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[..., 0] = 255  # pure red
    r = full_region(64, 64)
    a = Classifier(tiny, backend="onnxruntime", device="cpu").embed_image(frame)
    b = Classifier(bgr, backend="onnxruntime", device="cpu").embed_image(frame)
    c = Classifier(tiny, backend="onnxruntime", device="cpu").embed_image(frame[:, :, ::-1].copy())
    assert r.bbox == (0, 0, 64, 64)
    np.testing.assert_allclose(b, c, atol=1e-5)
    assert not np.allclose(a, b, atol=1e-3)


def test_legacy_size_key_and_open_clip_resize_names():
    s = parse_preprocess({"size": [8, 12], "mean": [0.5] * 3, "std": [0.2] * 3, "resize_mode": "squash"})
    assert s.image_size == (8, 12) and s.resize_mode == "stretch"
    with pytest.raises(ValueError, match="unknown keys"):
        parse_preprocess({"size": [8, 8], "mean": [0.5] * 3, "std": [0.2] * 3}, legacy=False)
    assert parse_preprocess(s.to_dict(), legacy=False) == s


def test_zip_bundles_parse_the_same_spec(tmp_path):
    z = make_tiny_bundle(tmp_path / "b.zip", as_zip=True)
    with zipfile.ZipFile(z) as f:
        m = json.loads(f.read("manifest.json"))
    with Bundle.open(z) as b:
        assert b.preprocess == parse_preprocess(m["preprocess"], legacy=False)
