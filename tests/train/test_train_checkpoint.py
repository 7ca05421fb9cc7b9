"""Checkpoints: round trip, self-contained text folder, atomic replace, resume state, no pickle."""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from usclip_train import checkpoint as ckpt  # noqa: E402
from usclip_train import factory  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from train_fixtures import make_text_model

    text = make_text_model(tmp_path_factory.mktemp("text") / "bert")
    spec = factory.resolve_spec("usclip-tiny", text_model=text)
    return spec


def _trained(spec):
    torch.manual_seed(1)
    model = factory.build_model(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tok = factory.TextTokenizer(spec.tokenizer_path, spec.context_length)
    loss = (model.encode_image(torch.randn(2, 3, 32, 32)) @ model.encode_text(tok(["a", "b"])).T).sum()
    loss.backward()
    opt.step()
    return model, opt


def test_round_trip_rebuilds_an_equal_model_without_the_text_folder(tiny, tmp_path):
    model, opt = _trained(tiny)
    path = ckpt.save_checkpoint(tmp_path / "ck", model, tiny, step=7, epoch=1, optimizer=opt,
                                run_config={"lr": 0.01}, metrics={"AvgAcc": 0.5})
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["format"] == "usclip-checkpoint" and cfg["step"] == 7 and cfg["metrics"]["AvgAcc"] == 0.5
    assert cfg["model"]["text_dir"] == "text" and (path / "text" / "tokenizer.json").is_file()
    assert not (path / "text" / "model.safetensors").exists()  # weights live in model.safetensors
    loaded, pre, tok = ckpt.load_model(path)
    assert tok.path == str(path / "text" / "tokenizer.json") and pre == tiny.preprocess
    x, ids = torch.randn(3, 3, 32, 32), tok(["liver", "cyst", "anechoic"])
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(x), model.encode_image(x))
        assert torch.equal(loaded.encode_text(ids), model.encode_text(ids))


def test_restore_training_state_restores_optimizer_and_rng(tiny, tmp_path):
    model, opt = _trained(tiny)
    torch.manual_seed(123)
    ckpt.save_checkpoint(tmp_path / "ck", model, tiny, step=1, epoch=0, optimizer=opt)
    expected = torch.rand(5)
    torch.manual_seed(999)
    fresh = factory.build_model(tiny)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    ckpt.restore_training_state(ckpt.read_checkpoint(tmp_path / "ck"), fresh, optimizer=opt2)
    assert torch.equal(torch.rand(5), expected)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


def test_optimizer_file_loads_with_weights_only(tiny, tmp_path):
    model, opt = _trained(tiny)
    path = ckpt.save_checkpoint(tmp_path / "ck", model, tiny, step=1, epoch=0, optimizer=opt)
    states = torch.load(path / "optimizer.pt", weights_only=True)
    assert "optimizer" in states


def test_failed_save_leaves_previous_checkpoint_intact(tiny, tmp_path, monkeypatch):
    model, _ = _trained(tiny)
    path = ckpt.save_checkpoint(tmp_path / "ck", model, tiny, step=1, epoch=0)
    before = (path / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", boom)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path / "ck", model, tiny, step=2, epoch=0, optimizer=opt)
    assert (path / "model.safetensors").read_bytes() == before
    assert json.loads((path / "config.json").read_text())["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp folders left


def test_manager_keeps_latest_and_prunes(tiny, tmp_path):
    model, _ = _trained(tiny)
    mgr = ckpt.CheckpointManager(tmp_path / "run", keep=2)
    assert mgr.latest() is None
    for step in (10, 20, 30):
        mgr.save(step, model, tiny, epoch=0, save_rng=False)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["latest", "step-00000020", "step-00000030"]
    assert ckpt.resolve_checkpoint(tmp_path / "run").name == "step-00000030"
    assert ckpt.read_checkpoint(tmp_path / "run").step == 30
    # a run folder is also a starting point for create_model(checkpoint=...) / init_checkpoint
    fresh = factory.build_model(tiny)
    report = factory.load_weights(fresh, tmp_path / "run", strict=True)
    assert report.loaded == len(fresh.state_dict())


def test_rejects_foreign_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        ckpt.read_checkpoint(tmp_path)
