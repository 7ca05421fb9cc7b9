"""Crash-safe training: SIGKILL mid-epoch and inside checkpoint writes, then resume.

Faults injected (each in a real `python -m usclip_train.train` subprocess, killed with SIGKILL,
so no finally/except block of the trainer runs):
1. from outside, mid-epoch, while the trainer runs (timed on its log), with a watcher that
   checks every checkpoint folder it can see while the run is alive;
2. from inside the second checkpoint save: after the weights are written (before the rename),
   and after the rename but before ``latest`` is updated.
Afterwards every checkpoint folder under its final name is complete (config, weights and
optimizer state load), ``latest`` names a complete one, and ``--resume`` continues to the same
loss curve, step for step, as an uninterrupted run (CPU, deterministic).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from usclip_train import checkpoint as ckpt  # noqa: E402
from usclip_train.config import load_run_config, parse_overrides  # noqa: E402
from usclip_train.train import train  # noqa: E402

STEPS, SAVE_EVERY = 8, 2  # 36 training samples / batch 8 = 4 steps per epoch
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from train_fixtures import make_dataset, make_text_model

    base = tmp_path_factory.mktemp("crash")
    data = make_dataset(base / "data", n=48, size=40)
    text = make_text_model(base / "bert")
    sets = [f"text_model={text}", "batch_size=8", f"max_steps={STEPS}", "lr=2e-3",
            "warmup_steps=2", f"save_every={SAVE_EVERY}", "log_every=1", "eval_at_end=false",
            "progress=false", "seed=0", "keep_checkpoints=2"]
    # The exact RunConfig the CLI builds from these arguments (same function, same inputs).
    cfg = load_run_config(None, parse_overrides(sets), data=str(data), model="usclip-tiny")
    return base, data, sets, cfg


@pytest.fixture(scope="module")
def launched(setup):
    """All crashing runs start at once (they overlap with each other and with the
    uninterrupted run below: CI has 2 cores and each run is mostly import time)."""
    base, data, sets, _ = setup
    timed = _TimedKill(base / "killed", _cmd(data, base / "killed", sets))
    procs = {point: _popen(_cmd(data, _run_dir(base, point), sets, prelude), _run_dir(base, point))
             for point, prelude in KILL_POINTS.items()}
    yield timed, procs
    for p in [timed.proc, *procs.values()]:
        if p.poll() is None:
            p.kill()


@pytest.fixture(scope="module")
def curve(setup, launched):
    base, _, _, cfg = setup
    train(cfg, base / "full")
    return _losses(base / "full")


def _popen(cmd: list[str], run: Path) -> subprocess.Popen:
    # stderr to a file, not a pipe: nobody reads while it runs, and a full pipe would block it.
    with open(run.parent / f"{run.name}.stderr", "wb") as err:
        return subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)


def _stderr(run: Path) -> str:
    return (run.parent / f"{run.name}.stderr").read_text(errors="replace")[-2000:]


def _run_dir(base: Path, point: str) -> Path:
    return base / point.replace(" ", "_").replace(",", "")


def _losses(run: Path) -> dict[int, float]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}


def _env() -> dict:
    # tests/ for the fixtures; the packages come from wherever the tests import them (the
    # installed package in CI - the source tree has no compiled extension there).
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _cmd(data: Path, out: Path, sets: list[str], prelude: str = "") -> list[str]:
    args = ["--data", str(data), "--model", "usclip-tiny", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    code = (prelude + "\nimport sys\nfrom usclip_train.train import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    return [sys.executable, "-c", code, *args]


def check_complete(folder: Path) -> int:
    """A checkpoint under its final name must be whole: returns its step."""
    ck = ckpt.read_checkpoint(folder)
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert len(list(f.keys())) > 10
    states = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
    assert {"optimizer", "scheduler"} <= set(states)
    return ck.step


def _check_run_folder(run: Path) -> int:
    """Every step-* folder is complete; latest names one; returns latest's step."""
    cks = run / "checkpoints"
    for folder in sorted(cks.glob("step-*")):
        check_complete(folder)
    return check_complete(ckpt.resolve_checkpoint(run))


def _resume_and_compare(run: Path, cfg, curve: dict, killed_after: int) -> int:
    start = _check_run_folder(run)
    assert start < killed_after, (start, killed_after)  # work was lost and must be redone
    again = train(cfg, run, resume=True)
    tail = _losses(run)
    assert again.steps == STEPS and sorted(tail) == list(range(1, STEPS + 1))
    for s in range(1, STEPS + 1):  # one clean curve: kept prefix + resumed tail
        assert tail[s] == curve[s], (s, tail[s], curve[s])  # bit-identical on CPU
    assert not list((run / "checkpoints").glob(".old-*"))
    return start


class _Watcher(threading.Thread):
    """Checks every checkpoint folder visible under a final name while the trainer runs."""

    def __init__(self, cks: Path):
        super().__init__(daemon=True)
        self.cks, self.seen, self.errors, self.stop = cks, set(), [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for folder in list(self.cks.glob("step-*")) if self.cks.is_dir() else []:
                if folder.name in self.seen:
                    continue
                try:
                    check_complete(folder)
                    self.seen.add(folder.name)
                except FileNotFoundError:
                    pass  # pruned (keep=2) between listing and reading: not a partial write
                except Exception as e:  # noqa: BLE001 - a half-written checkpoint
                    if folder.exists():
                        self.errors.append((folder.name, repr(e)))
            time.sleep(0.02)


class _TimedKill(threading.Thread):
    """Runs the trainer and SIGKILLs it from outside as soon as step 5 is logged: early in
    epoch 1 (steps 5-8), after the step-4 checkpoint, in the middle of a training step."""

    def __init__(self, run: Path, cmd: list[str]):
        super().__init__(daemon=True)
        self.run_dir, self.error = run, None
        self.watcher = _Watcher(run / "checkpoints")
        self.watcher.start()
        self.proc = _popen(cmd, run)
        self.start()

    def run(self) -> None:
        log = self.run_dir / "log.jsonl"
        deadline = time.monotonic() + 240
        try:
            while not (log.is_file() and '"step": 5,' in log.read_text()):
                if self.proc.poll() is not None:
                    raise AssertionError("the trainer exited early: " + _stderr(self.run_dir))
                if time.monotonic() > deadline:
                    raise AssertionError("the trainer never reached step 5")
                time.sleep(0.005)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.watcher.stop.set()
            self.watcher.join(timeout=10)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_same_curve(setup, launched, curve):
    _, _, _, cfg = setup
    timed = launched[0]
    timed.join(timeout=300)
    assert not timed.is_alive() and timed.error is None, timed.error
    assert timed.proc.returncode == -signal.SIGKILL
    assert not timed.watcher.errors, timed.watcher.errors
    assert "step-00000004" in timed.watcher.seen
    run = timed.run_dir
    logged = max(_losses(run))
    assert 5 <= logged < STEPS
    start = _resume_and_compare(run, cfg, curve, killed_after=logged)
    assert start % SAVE_EVERY == 0 and start >= 4


# Kill points inside the second periodic save (step 4); the first (step 2) must survive.
KILL_POINTS = {
    "weights written, not renamed": (
        "from usclip_train import checkpoint as ck\n"
        "import os, signal\n_n = [0]\n_orig = ck._fsync_file\n"
        "def _hook(p):\n"
        "    _orig(p)\n"
        "    if p.name == 'model.safetensors':\n"
        "        _n[0] += 1\n"
        "        if _n[0] == 2:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "ck._fsync_file = _hook\n"),
    "renamed, latest not updated": (
        "from usclip_train import checkpoint as ck\n"
        "import os, signal\n_n = [0]\n_orig = ck.atomic_write_text\n"
        "def _hook(p, text):\n"
        "    if p.name == 'latest':\n"
        "        _n[0] += 1\n"
        "        if _n[0] == 2:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "    _orig(p, text)\n"
        "ck.atomic_write_text = _hook\n"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_write_never_leaves_a_partial_checkpoint(setup, launched,
                                                                            curve, point):
    base, _, _, cfg = setup
    proc = launched[1][point]
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, _stderr(_run_dir(base, point))
    run = _run_dir(base, point)
    cks = run / "checkpoints"
    final = sorted(p.name for p in cks.glob("step-*"))
    leftovers = [p.name for p in cks.iterdir() if p.name.startswith(".tmp-")]
    if point == "weights written, not renamed":
        assert final == ["step-00000002"] and leftovers  # the partial one never got its name
    else:  # complete but unreferenced; the resumed run writes step 4 again over it
        assert final == ["step-00000002", "step-00000004"] and not leftovers
    assert (cks / "latest").read_text().strip() == "step-00000002"
    _resume_and_compare(run, cfg, curve, killed_after=4)
    # Leftover temporary folders are inert: never resolved, never listed as checkpoints.
    assert ckpt.resolve_checkpoint(run).name == f"step-{STEPS:08d}"
