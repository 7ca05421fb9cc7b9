"""The model shipped inside the package: the ``usclip-edge`` bundle trained by this project.

Its provenance, metrics and the command that reproduces it are in README.md beside it.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import BundleError

__all__ = ["default_bundle_path", "DEFAULT_MODEL"]

DEFAULT_MODEL = "usclip-edge"
_HERE = Path(__file__).resolve().parent


def default_bundle_path() -> Path:
    """Path of the shipped bundle (folder or .zip); USCLIP_BUNDLE overrides it."""
    env = os.environ.get("USCLIP_BUNDLE")
    if env:
        return Path(env)
    for candidate in (_HERE / DEFAULT_MODEL, _HERE / f"{DEFAULT_MODEL}.zip"):
        if candidate.exists():
            return candidate
    raise BundleError(f"the default model bundle is not installed (looked for {DEFAULT_MODEL} and "
                      f"{DEFAULT_MODEL}.zip in {_HERE}); pass a bundle path or set USCLIP_BUNDLE")
