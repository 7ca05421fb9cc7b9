"""DiagnosisBalance: within each diagnosis every value of a dimension weighs the same, the
diagnosis mix is kept, and the weighted prompt term is the weighted mean it claims to be."""
import math

import pytest

torch = pytest.importorskip("torch")

from usclip_sdk import taxonomy  # noqa: E402
from usclip_train.balance import MAX_WEIGHT, DiagnosisBalance  # noqa: E402
from usclip_train.config import RunConfig  # noqa: E402
from usclip_train.loss import PromptAlignmentLoss  # noqa: E402
from train_fixtures import multi_hot  # noqa: E402

WELL, ILL = "well-defined", "ill-defined/indistinct"
MARGINS = torch.tensor([taxonomy.class_index("Margins", v) for v in (WELL, ILL)])
DX = torch.tensor([taxonomy.class_index("Diagnosis", v) for v in ("cyst", "mass")])


_labels = multi_hot


def _train():
    # masses: 7 ill-defined, 3 well-defined; cysts: 4 well-defined only; 2 normal frames
    rows = ([[("Diagnosis", "mass"), ("Margins", ILL)]] * 7 + [[("Diagnosis", "mass"), ("Margins", WELL)]] * 3
            + [[("Diagnosis", "cyst"), ("Margins", WELL)]] * 4 + [[("Diagnosis", taxonomy.NORMAL)]] * 2)
    return _labels(*rows)


def test_each_value_weighs_the_same_within_a_diagnosis():
    lab = _train()
    bal = DiagnosisBalance(lab, [MARGINS, DX])
    w_m, w_dx = bal.weights(lab)
    assert torch.equal(w_dx, torch.ones(len(lab)))  # the Diagnosis dimension is not reweighted
    mass_ill, mass_well, cyst = w_m[:7], w_m[7:10], w_m[10:14]
    assert mass_ill.sum().item() == pytest.approx(5.0) and mass_well.sum().item() == pytest.approx(5.0)
    assert cyst.sum().item() == pytest.approx(4.0)  # one value under cyst: weight 1, the mix kept
    assert torch.equal(w_m[14:], torch.ones(2))  # untagged in Margins: 1 (the loss skips them)
    # unweighted, answering "ill-defined" for every mass is right 7 times in 10; weighted, 5 in 10
    assert (mass_ill.sum() / (mass_ill.sum() + mass_well.sum())).item() == pytest.approx(0.5)


def test_rare_pairs_are_clipped_and_unseen_pairs_weigh_nothing():
    lab = _labels(*([[("Diagnosis", "mass"), ("Margins", ILL)]] * 40 + [[("Diagnosis", "mass"), ("Margins", WELL)]]))
    bal = DiagnosisBalance(lab, [MARGINS])
    (w,) = bal.weights(lab)
    assert w[-1].item() == MAX_WEIGHT  # 41 / 2 / 1 = 20.5, clipped
    unseen = _labels([("Diagnosis", "cyst"), ("Margins", ILL)])  # never in training
    assert bal.weights(unseen)[0].item() == 0.0


def test_weighted_prompt_term_is_the_weighted_mean():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    prompts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = _labels([("Margins", WELL)], [("Margins", ILL)], [("Margins", ILL)])
    ce = [math.log(1 + math.exp(-5)), math.log(1 + math.exp(-5)), math.log(1 + math.exp(5))]
    w = torch.tensor([1.0, 3.0, 0.5])
    got = PromptAlignmentLoss()(image, prompts, 5.0, labels, [MARGINS], [w]).item()
    assert got == pytest.approx(sum(a * b for a, b in zip(w.tolist(), ce)) / w.sum().item(), rel=1e-5)
    plain = PromptAlignmentLoss()(image, prompts, 5.0, labels, [MARGINS]).item()
    assert plain == pytest.approx(sum(ce) / 3, rel=1e-5) and abs(got - plain) > 0.1
    with pytest.raises(ValueError, match="weights"):
        PromptAlignmentLoss()(image, prompts, 5.0, labels, [MARGINS], [w, w])


def test_config_names_the_choice_and_needs_the_prompt_term():
    assert RunConfig(prompt_loss=3.0, prompt_balance="diagnosis").prompt_balance == "diagnosis"
    with pytest.raises(ValueError, match="prompt_balance"):
        RunConfig(prompt_loss=3.0, prompt_balance="organ")
    with pytest.raises(ValueError, match="prompt_balance"):
        RunConfig(prompt_loss=0.0, prompt_balance="diagnosis")


@pytest.mark.slow
def test_training_uses_the_weights(tmp_path):
    import json

    pytest.importorskip("open_clip")
    from train_fixtures import make_dataset, make_text_model
    from usclip_train.train import train

    data = make_dataset(tmp_path / "data", n=48, size=40)
    bert = make_text_model(tmp_path / "bert")
    first = {}
    for balance in ("none", "diagnosis"):
        cfg = RunConfig(data=str(data), model="usclip-tiny", text_model=str(bert), batch_size=8, max_steps=2,
                        lr=2e-3, warmup_steps=1, save_every=0, log_every=1, eval_at_end=False, progress=False,
                        seed=0, use_graph=False, prompt_loss=1.0, prompt_balance=balance, lock_text=True,
                        unlock_text_layers=1)
        train(cfg, tmp_path / balance)
        rec = [json.loads(x) for x in (tmp_path / balance / "log.jsonl").read_text().splitlines()]
        first[balance] = rec[0]
        assert json.loads((tmp_path / balance / "run_config.json").read_text())["prompt_balance"] == balance
    # step 1: the same model, batch and prompts; only the sample weights differ
    assert first["none"]["clip"] == pytest.approx(first["diagnosis"]["clip"], rel=1e-5)
    assert abs(first["none"]["prompt"] - first["diagnosis"]["prompt"]) > 1e-4
