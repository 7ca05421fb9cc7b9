"""Commands of other packages (usclip.commands entry points) and what an SDK-only install says."""
import importlib.util

from usclip_sdk import cli


def test_training_commands_say_which_extra_to_install_when_torch_is_missing(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "open_clip") else real(name, *a))
    for cmd in ("train", "eval", "export"):
        assert cli.main([cmd, "--data", "x"]) == 2
        err = capsys.readouterr().err
        assert f"usclip {cmd}: needs torch, open_clip" in err and "[train]" in err


def test_synth_is_registered_from_the_data_package():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"synth", "train", "eval", "export", "classify", "demo", "info"} <= set(sub.choices)
