"""Issue 16 (the first hour of a new user), SDK-side commands through the real entry point
(`python -m usclip_sdk.cli` in a subprocess): what an SDK-only install says, folders to
classify, build-engine without TensorRT, help texts and messages in CLI words, the triage
table, `usclip info` in plain words, a short Prediction repr and a quiet camera error."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from usclip_sdk.cli import build_parser


def _hide(tmp: Path, *modules: str) -> dict:
    """An environment in which ``modules`` look uninstalled (find_spec -> None, import fails),
    as in an SDK-only install: a sitecustomize on PYTHONPATH sets sys.modules[name] = None."""
    site = tmp / "hide"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def _usclip(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 180,
            module: str = "usclip_sdk.cli") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


# ---- item 3: an SDK-only install ---------------------------------------------------------------
def test_sdk_only_training_commands_say_which_extra(tmp_path):
    env = _hide(tmp_path, "torch", "open_clip")
    for cmd in ("train", "eval", "export"):
        r = _usclip(cmd, "--data", "x", env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"usclip {cmd}: needs torch, open_clip" in r.stderr and "pip install 'usclip-sdk[train]'" in r.stderr
    r = _usclip("--data", "x", "--out", "y", env=env, module="usclip_train.train")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "usclip_train.train: needs" in r.stderr and "[train] extra" in r.stderr
    # what the README says runs without the extra does run (help parses, no import of torch)
    for cmd in ("synth", "build-engine", "export-triton", "classify", "bench"):
        r = _usclip(cmd, "--help", env=env)
        assert r.returncode == 0 and "needs the [train] extra" not in r.stdout, (cmd, r.stderr)
    top = _usclip("--help", env=env).stdout
    assert "``" not in top and "(needs the [train] extra)" in top


# ---- item 4: folders ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    pytest.importorskip("onnx")
    from sdk_bundle import make_tiny_bundle

    return str(make_tiny_bundle(tmp_path_factory.mktemp("fh") / "tiny.zip", as_zip=True))


def _screens(folder: Path, names) -> None:
    from test_classifier import screen

    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        cv2.imwrite(str(folder / n), screen(i))


def test_classify_a_folder_classifies_its_images_in_name_order(tiny_bundle, tmp_path):
    _screens(tmp_path / "scans", ["b.png", "a.png", "c.jpg"])
    (tmp_path / "scans" / "notes.txt").write_text("not an image")
    r = _usclip("classify", str(tmp_path / "scans"), "--bundle", tiny_bundle, "--json")
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["file"] for x in r.stdout.splitlines()] == ["a.png", "b.png", "c.jpg"]
    (tmp_path / "empty").mkdir()
    r = _usclip("classify", str(tmp_path / "empty"), "--bundle", tiny_bundle)
    assert r.returncode == 1 and "no image, video or DICOM files" in r.stderr and "not found" not in r.stderr


# ---- item 7: build-engine without TensorRT -----------------------------------------------------
def test_build_engine_without_tensorrt_prints_short_runnable_lines(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _export_helpers import fake_bundle

    path = fake_bundle(tmp_path, image_precisions=("fp32",))
    env = _hide(tmp_path, "tensorrt")
    r = _usclip("build-engine", str(path), "--precision", "fp16", "--batch", "1,1,4", env=env)
    assert r.returncode == 3, r.stderr
    assert "TensorRT not installed" in r.stderr
    (run_line,) = r.stdout.strip().splitlines()
    assert len(run_line) < 300  # not kilobytes of --layerPrecisions
    sh, script = shlex.split(run_line)
    assert sh == "sh" and Path(script).is_file()
    trtexec = shlex.split(Path(script).read_text().splitlines()[-1])[1:]
    engine = Path(next(a for a in trtexec if a.startswith("--saveEngine="))[len("--saveEngine="):])
    assert engine.parent.is_dir()  # trtexec cannot create it
    adopt = next(x.strip() for x in r.stderr.splitlines() if "--adopt" in x)
    assert adopt.startswith("usclip build-engine ") and f"--adopt {engine}" in adopt and "--trt-version" in adopt
    for extra in (["--precision", "int8"], ["--precision", "fp16", "--trt-major", "11"]):
        r = _usclip("build-engine", str(path), *extra, env=env)
        assert r.returncode == 1 and r.stdout == "", r.stdout
        err = r.stderr.lower()
        assert "flags" not in err and "strongly_typed" not in err and " a int8" not in err, err
        assert "re-export it with usclip export" in err


# ---- item 8: help texts and messages in CLI words ----------------------------------------------
def test_every_option_is_described_and_no_help_shows_markup():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for choice in sub._choices_actions:
        assert "`" not in (choice.help or ""), choice.dest
    for name, p in sub.choices.items():
        for text in (p.description or "", p.format_help()):
            assert "``" not in text and "Lives in the SDK" not in text, name
        for a in p._actions:
            if a.dest != "help":
                assert a.help, f"usclip {name} {a.option_strings or a.dest}: no description"
    train = sub.choices["train"].format_help() if "train" in sub.choices else ""
    if "--model" in train:
        assert "usclip-edge" in train and "list_models" not in train


def test_bench_help_and_messages_use_cli_words(tmp_path):
    r = _usclip("bench", "--help")
    for words in ("timed calls", "untimed calls first", "frames per classify call", "encoder precision",
                  "inference runtime", "where the encoder runs"):
        assert words in " ".join(r.stdout.split()), words
    from usclip_sdk.backends import onnxruntime as ortb

    src = Path(ortb.__file__).read_text()
    assert "use device='cpu')" not in src and "--device cpu" in src
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mine.txt").write_text("x")
    r = _usclip("synth", "--out", str(tmp_path / "d"), "--n", "1", "--quiet")
    assert r.returncode == 1 and "--overwrite" in r.stderr and "overwrite=True" not in r.stderr, r.stderr


# ---- item 9: the triage table ------------------------------------------------------------------
@pytest.mark.slow  # the shipped model on the shipped examples (~5 s)
def test_demo_table_shows_truth_labelled_attributes_and_a_legend():
    r = _usclip("demo")
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[0]
    assert "true organ" in head and "true diagnosis" in head and "conf" not in head
    rows = [x for x in r.stdout.splitlines() if x.startswith("0")]
    assert len(rows) == 8 and all("Liver" in x for x in rows if x.startswith("03_liver"))
    assert any("vascularity " in x for x in rows) or all("n/a (no lesion)" in x for x in rows)
    assert not any(x.rstrip().endswith(("inhomogeneou", "enhancemen")) for x in rows)
    assert "p: the model's probability" in r.stdout


def test_classify_every_marks_reused_frames_instead_of_repeating_latency(tiny_bundle, tmp_path):
    from test_classifier import screen

    vw = cv2.VideoWriter(str(tmp_path / "cine.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(8):
        vw.write(screen(i))
    vw.release()
    r = _usclip("classify", str(tmp_path / "cine.avi"), "--bundle", tiny_bundle, "--every", "4")
    assert r.returncode == 0, r.stderr
    ms = [x.split()[-1] if "reused" not in x else "reused" for x in r.stdout.splitlines() if x.startswith("cine")]
    assert len(ms) == 8 and [m == "reused" for m in ms] == [i % 4 != 0 for i in range(8)]


# ---- item 10: info, repr, camera --------------------------------------------------------------
def test_info_speaks_plainly(tiny_bundle):
    r = _usclip("info", "--bundle", tiny_bundle)
    assert r.returncode == 0, r.stderr
    assert "cudaError" not in r.stdout and "tensorrt: None" not in r.stdout
    from usclip_sdk.backends.tensorrt import tensorrt_version

    if tensorrt_version() is None:
        assert "tensorrt: TensorRT not installed" in r.stdout
    info = json.loads(_usclip("info", "--bundle", tiny_bundle, "--json").stdout)
    if "InsufficientDriver" in str(info["native"].get("cuda_reason")):
        assert "no GPU driver found" in r.stdout


def test_prediction_repr_is_short_and_camera_errors_are_quiet(tiny_bundle, tmp_path):
    code = ("import sys\nfrom usclip_sdk import Classifier\n"
            f"c = Classifier({tiny_bundle!r})\n"
            "from test_classifier import screen\n"
            "print(repr(c.classify(screen(0))))\n"
            "try:\n    next(iter(c.stream(7)))\n"
            "except Exception as e:\n    print(type(e).__name__, e, file=sys.stderr)\n")
    tests = Path(__file__).resolve().parent
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])})
    assert r.returncode == 0, r.stderr
    rep = r.stdout.strip()
    assert rep.startswith("Prediction(") and len(rep) < 200, rep
    assert r.stderr.strip() == "InvalidInputError cannot open camera 7", r.stderr  # no OpenCV [ WARN ] line


def test_keygen_creates_the_key_folder(tmp_path):
    key = tmp_path / "new" / "keys" / "release.pem"  # docs/deployment.md: usclip keygen ~/keys/...
    r = _usclip("keygen", str(key))
    assert r.returncode == 0, r.stderr
    assert key.is_file() and (key.parent.stat().st_mode & 0o777) == 0o700 and "key id:" in r.stdout


# ---- item 1: a bundle folder gets the umask mode, the .zip's folder is created ----------------
def test_write_bundle_creates_the_parent_and_a_readable_folder(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _export_helpers import fake_bundle

    old = os.umask(0o022)
    try:
        folder = fake_bundle(tmp_path / "new" / "deeper", name="b")
        zipped = fake_bundle(tmp_path / "other" / "x", name="z", as_zip=True)
    finally:
        os.umask(old)
    assert (folder.stat().st_mode & 0o777) == 0o755, oct(folder.stat().st_mode)
    assert zipped.is_file() and not any(p.name.endswith(".partial") for p in zipped.parent.iterdir())
