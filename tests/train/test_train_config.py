"""RunConfig: frozen, file + --set overrides with type checks."""
import dataclasses
import json

import pytest

pytest.importorskip("torch")

from usclip_train.config import RunConfig, load_run_config, parse_overrides  # noqa: E402


def test_overrides_parse_and_take_precedence(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("lr: 0.001\nbatch_size: 16\nuse_graph: false\n")
    cfg = load_run_config(f, parse_overrides(["lr=3e-4", "betas=[0.9, 0.95]", "text_model=/x/y",
                                              "max_steps=null"]), data="/d")
    assert (cfg.lr, cfg.batch_size, cfg.use_graph, cfg.data) == (3e-4, 16, False, "/d")
    assert cfg.betas == (0.9, 0.95) and cfg.text_model == "/x/y" and cfg.max_steps is None
    assert RunConfig().with_overrides(cfg.to_dict()) == cfg  # to_dict round-trips
    json.dumps(cfg.to_dict())


def test_frozen_and_checked():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown key 'lrr'"):
        cfg.with_overrides({"lrr": 1})
    with pytest.raises(ValueError, match="batch_size: expected an integer"):
        cfg.with_overrides({"batch_size": "big"})
    with pytest.raises(ValueError, match="use_graph: expected true or false"):
        cfg.with_overrides({"use_graph": 1})
    with pytest.raises(ValueError, match="precision"):
        cfg.with_overrides({"precision": "fp8"})
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])
    assert cfg.with_overrides({"lr": 1}).lr == 1.0  # int widens to float
