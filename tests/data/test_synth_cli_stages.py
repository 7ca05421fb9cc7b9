"""`usclip synth` says what it is doing around its progress bar (issue 16, item 11): starting
the worker pool and drawing the contact sheet were silent stages; --quiet silences them too."""
import os
import subprocess
import sys


def _synth(tmp_path, *extra):
    return subprocess.run([sys.executable, "-m", "usclip_sdk.cli", "synth", "--out", str(tmp_path / "d"), "--n", "2",
                           "--workers", "1", *extra], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_synth_names_its_silent_stages(tmp_path):
    r = _synth(tmp_path, "--contact-sheet", str(tmp_path / "sheet.png"))
    assert r.returncode == 0, r.stderr
    start = r.stderr.index("usclip synth: rendering 2 cases")
    sheet = r.stderr.index("usclip synth: drawing the contact sheet")
    assert start < sheet and (tmp_path / "sheet.png").is_file()
    q = _synth(tmp_path, "--quiet", "--overwrite")
    assert q.returncode == 0 and q.stderr == "", q.stderr
