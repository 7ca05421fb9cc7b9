"""Issue 16 (the first hour of a new user), training-side commands through the real entry point:
`usclip train` into an existing run folder, `usclip export` into a new folder with a quiet,
parity-checked trace, the training-end report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")


def _usclip(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "usclip_sdk.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from train_fixtures import make_dataset, make_text_model

    base = tmp_path_factory.mktemp("first_hour")
    return make_dataset(base / "data", n=32, size=40), make_text_model(base / "bert")


def _fake_old_run(run: Path) -> None:
    (run / "checkpoints" / "step-00000030").mkdir(parents=True)
    (run / "checkpoints" / "latest").write_text("step-00000030\n")
    (run / "log.jsonl").write_text('{"step": 30, "loss": 1.0}\n')


@pytest.mark.slow  # the subprocess imports torch (~6-12 s on a loaded box)
def test_train_into_an_existing_run_refuses_and_names_both_flags(tmp_path):
    run = tmp_path / "run"
    _fake_old_run(run)
    proc = _usclip("train", "--data", str(tmp_path), "--model", "usclip-tiny", "--out", str(run))
    assert proc.returncode == 1, proc.stderr
    assert "--resume" in proc.stderr and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert (run / "log.jsonl").read_text() == '{"step": 30, "loss": 1.0}\n'  # nothing touched
    assert (run / "checkpoints" / "latest").read_text() == "step-00000030\n"
    both = _usclip("train", "--data", str(tmp_path), "--out", str(run), "--resume", "--overwrite")
    assert both.returncode == 1 and "pass one" in both.stderr


@pytest.mark.slow  # two real training steps of the tiny model (~15 s)
def test_train_overwrite_starts_clean_and_the_report_names_the_model(tiny_data, tmp_path):
    data, text = tiny_data
    run = tmp_path / "run"
    _fake_old_run(run)
    proc = _usclip("train", "--data", str(data), "--model", "usclip-tiny", "--out", str(run), "--overwrite",
                   "--set", f"text_model={text}", "--set", "batch_size=8", "--set", "max_steps=2",
                   "--set", "save_every=0", "--set", "progress=false", "--set", "warmup_steps=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-00000002"]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    assert [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    # item 5: the training-end report is titled with the model and links only pictures it wrote
    report = (run / "eval-valid" / "report.md").read_text()
    assert report.startswith("# Evaluation: usclip-tiny on ")
    assert "CustomTextCLIP" not in report
    for link in (line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")):
        assert (run / "eval-valid" / link).is_file(), link
    # item 11: usclip eval says what it is doing (a large split used to run silently)
    ev = _usclip("eval", str(run), "--data", str(data), "--split", "test", "--out", str(tmp_path / "ev"), "--no-plots")
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert "eval: encoding the class prompts" in ev.stderr and "eval: encoding 4 images" in ev.stderr
    assert "eval: computing the metrics" in ev.stderr


def test_eval_progress_reports_every_chunk_of_images():
    import numpy as np

    from usclip_train.evaluate import runner

    class Enc:
        calls = []

        def encode_image(self, paths):
            self.calls.append(len(paths))
            return np.ones((len(paths), 4), np.float32)

    lines = []
    out = runner._encode_images(Enc(), [f"p{i}" for i in range(2500)], lines.append)
    assert out.shape == (2500, 4) and Enc.calls == [1024, 1024, 452]
    assert [x.split(" (")[0] for x in lines] == ["images 1024/2500", "images 2048/2500", "images 2500/2500"]


@pytest.mark.slow  # a real (tiny) export: ~12 s
def test_export_zip_into_a_new_folder_quiet_and_parity_checked(tmp_path):
    from _export_helpers import tiny_model
    from usclip_train.checkpoint import save_checkpoint

    model, spec, _ = tiny_model(tmp_path)
    ck = save_checkpoint(tmp_path / "ckpt", model, spec, step=1, epoch=0, save_rng=False)
    out = tmp_path / "models" / "deeper" / "x.zip"  # neither folder exists
    proc = _usclip("export", str(ck), "--out", str(out), "--zip", "--int8-text")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and not out.with_name("x.zip.partial").exists()
    err = proc.stderr
    assert "ONNX matches torch" in err and "harmless as this check shows" in err
    for scary in ("TracerWarning", "incorrect results", "WARNING:root", "pre-processing"):
        assert scary not in err, err
    assert err.count("\nexport: ") >= 3  # stage lines: no long silence
    assert proc.stdout.startswith(str(out))


def test_parity_check_fails_on_a_graph_that_differs(tmp_path):
    import torch

    from usclip_train.export.parity import ExportParityError, check_image_parity

    class Tower(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x.mean(dim=(2, 3)) * self.scale

    path = tmp_path / "t.onnx"
    torch.onnx.export(Tower(1.0), (torch.zeros(2, 3, 8, 8),), str(path), dynamo=False,
                      input_names=["image"], output_names=["e"], dynamic_axes={"image": {0: "b"}})
    assert check_image_parity(Tower(1.0), path, (8, 8)) < 1e-6
    with pytest.raises(ExportParityError, match="image encoder: onnxruntime differs"):
        check_image_parity(Tower(1.5), path, (8, 8))
