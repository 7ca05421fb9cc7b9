"""scripts/synth_at_commit.py: `usclip synth` with an earlier commit's renderer. At HEAD (with the
renderer unchanged in the working tree) it must write exactly what `usclip synth` writes, spawned
workers included (they must import the extracted renderer too); a bad commit is a clear error."""
from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "synth_at_commit.py"


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)[1:] != ([], []):
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


@pytest.fixture(scope="module")
def head() -> str:
    if _git("rev-parse", "HEAD").returncode:
        pytest.skip("not a git checkout")
    if _git("diff", "--quiet", "HEAD", "--", "python/usclip_data").returncode:
        pytest.skip("python/usclip_data has uncommitted changes: HEAD's renderer is not this tree's")
    return _git("rev-parse", "HEAD").stdout.strip()


def test_head_renderer_writes_what_usclip_synth_writes(tmp_path: Path, head: str) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = ["--n", "3", "--size", "96", "--seed", "5", "--quiet"]
    subprocess.run([sys.executable, str(SCRIPT), head, "--out", str(tmp_path / "old"), "--workers", "2", *args],
                   check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "usclip_sdk.cli", "synth", "--out", str(tmp_path / "now"),
                    "--workers", "1", *args], check=True, env=env, timeout=300)
    assert any((tmp_path / "old" / "images").iterdir())
    assert _same_tree(tmp_path / "old", tmp_path / "now")


def test_a_bad_commit_is_named(tmp_path: Path, head: str) -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "no-such-commit", "--out", str(tmp_path / "x"), "--n", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not a commit" in r.stderr and "no-such-commit" in r.stderr


def test_a_worker_imports_the_extracted_tree_and_never_falls_back(tmp_path: Path) -> None:
    # The HEAD test above cannot tell the two trees apart; here the "old" tree lacks usclip_data.synth.
    # A spawned worker runs the script as __mp_main__ (multiprocessing.spawn: runpy.run_path).
    (tmp_path / "usclip_data").mkdir()
    (tmp_path / "usclip_data" / "__init__.py").write_text("")
    code = (f"import runpy; runpy.run_path({str(SCRIPT)!r}, run_name='__mp_main__'); import usclip_data; "
            "print(usclip_data.__file__); import usclip_data.synth")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "USCLIP_SYNTH_DATA_ROOT": str(tmp_path)})
    assert r.stdout.strip() == str(tmp_path / "usclip_data" / "__init__.py")
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr and "usclip_data.synth" in r.stderr
