"""`usclip train --on-bad-sample skip|error`: the flag reaches the reader through RunConfig, a
corrupt folder stops the default run with the file and line, and a skipping run trains on the
rest and reports the skips (stderr at start and end, bad_samples.json, the result JSON)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from usclip_data.faults import BadSampleError  # noqa: E402
from usclip_train.cli.train import build_arg_parser  # noqa: E402
from usclip_train.config import RunConfig  # noqa: E402


def test_flag_and_config_are_checked():
    assert RunConfig().on_bad_sample == "error"
    with pytest.raises(ValueError, match="on_bad_sample"):
        RunConfig(on_bad_sample="ignore")
    assert build_arg_parser().parse_args(["--out", "x", "--on-bad-sample", "skip"]).on_bad_sample == "skip"
    with pytest.raises(SystemExit):
        build_arg_parser().parse_args(["--out", "x", "--on-bad-sample", "ignore"])


@pytest.mark.slow  # two tiny training runs: ~15 s on a loaded box
def test_training_run_errors_or_skips_and_reports(tmp_path, capsys):
    from train_fixtures import make_dataset, make_text_model

    from usclip_train.train import main

    data = make_dataset(tmp_path / "data", n=48, size=32)
    (data / "images" / "img0002.png").unlink()
    lines = (data / "train.jsonl").read_bytes().splitlines(keepends=True)
    lines[4] = b'{"image": "img0004.png", "caption": "\xff\xfe"}\n'
    (data / "train.jsonl").write_bytes(b"".join(lines))
    args = ["--data", str(data), "--model", "usclip-tiny", "--set", f"text_model={make_text_model(tmp_path / 'bert')}",
            "--set", "batch_size=8", "--set", "max_steps=2", "--set", "eval_at_end=false",
            "--set", "progress=false", "--set", "warmup_steps=0"]
    with pytest.raises(BadSampleError, match=r"train\.jsonl:5: not UTF-8"):
        main([*args, "--out", str(tmp_path / "run-error")])
    assert main([*args, "--out", str(tmp_path / "run-skip"), "--on-bad-sample", "skip"]) == 0
    out, err = capsys.readouterr()
    assert err.count("skipped 2 bad samples (missing-image 1, non-utf8 1)") == 2  # at start and end
    report = json.loads((tmp_path / "run-skip" / "bad_samples.json").read_text())
    assert report["by_kind"] == {"missing-image": 1, "non-utf8": 1} and report["policy"] == "skip"
    assert json.loads(out.strip().splitlines()[-1])["bad_samples"]["skipped"] == 2
