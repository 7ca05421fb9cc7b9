"""`usclip synth` with the renderer of an earlier commit: regenerate the exact data a model was
trained on after the renderer moved on (the shipped model and the ablation trained on renderer
v4, commit 9f8f555; `usclip synth` today renders v5b).

    python scripts/synth_at_commit.py 9f8f555 --out data/synth-v4 --n 12000 --size 256 --workers 2 --seed 31

The commit's python/usclip_data is extracted (git archive) to a per-user cache folder
(usclip_sdk.settings.user_cache_dir(): ~/.cache/usclip/synth_at_commit on Linux) and imported in its
place, in this process and in the writer's spawned workers; the rest (usclip_sdk: taxonomy,
the CLI) is this checkout's. The output is byte-identical for any --workers.
"""
from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from usclip_sdk.settings import user_cache_dir

_ENV = "USCLIP_SYNTH_DATA_ROOT"  # where the old usclip_data lives; read again by spawned workers


class _OldDataFinder:
    """Resolves usclip_data and its submodules from the extracted tree, ahead of the editable
    install's finder (which would otherwise map them back to this checkout). A module the
    extracted tree lacks is an import error, not a silent fallback to this checkout's."""

    root = ""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "usclip_data" and not name.startswith("usclip_data."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [cls.root] if name == "usclip_data" else path)
        if spec is None:  # returning None would let the editable install's finder answer
            raise ModuleNotFoundError(f"No module named {name!r} in the extracted {cls.root}", name=name)
        return spec


def _install(root: str) -> None:
    _OldDataFinder.root = root
    sys.meta_path.insert(0, _OldDataFinder)
    import usclip_data

    if not usclip_data.__file__.startswith(root):
        raise SystemExit(f"usclip_data resolved to {usclip_data.__file__}, not the extracted {root}")


def _extract(commit: str) -> str:
    repo = Path(__file__).resolve().parents[1]
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{commit}^{{commit}}"],
                         capture_output=True, text=True)
    if rev.returncode:
        raise SystemExit(f"not a commit of {repo}: {commit!r} ({rev.stderr.strip()})")
    sha = rev.stdout.strip()
    # the per-user cache, not shared /tmp: another user could plant code under a predictable name there
    cache = user_cache_dir() / "synth_at_commit"
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"usclip_data-{sha[:12]}"
    complete = dest / "python" / "usclip_data" / "__init__.py"
    if not complete.is_file():
        archive = subprocess.run(["git", "-C", str(repo), "archive", sha, "python/usclip_data"], capture_output=True)
        if archive.returncode:
            raise SystemExit(f"commit {commit!r} has no python/usclip_data ({archive.stderr.decode().strip()})")
        # extract beside dest, then rename: an interrupted run leaves no half tree that looks complete
        tmp = tempfile.mkdtemp(prefix=dest.name + ".", dir=cache)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        try:
            os.rename(tmp, dest)
        except OSError:  # dest appeared meanwhile (another run), or is a stale partial folder
            shutil.rmtree(tmp)
            if not complete.is_file():
                raise SystemExit(f"{dest} exists but holds no python/usclip_data: remove it and retry") from None
    return str(dest / "python")


if os.environ.get(_ENV) and __name__ != "__main__":  # a spawned worker importing this as __mp_main__
    _install(os.environ[_ENV])

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit(__doc__)
    os.environ[_ENV] = _extract(sys.argv[1])
    _install(os.environ[_ENV])
    from usclip_sdk.cli import main

    sys.argv = ["usclip", "synth"] + sys.argv[2:]
    sys.exit(main())
