"""Loads the compiled module once and says clearly why when it cannot."""
from __future__ import annotations

from functools import lru_cache

__all__ = ["native"]


@lru_cache(maxsize=1)
def native():
    """The compiled ``usclip_sdk._native`` module."""
    try:
        from .. import _native as mod  # type: ignore[attr-defined]
    except ImportError as e:  # pragma: no cover - only on a broken install
        raise ImportError(
            "usclip_sdk's native extension is not built or failed to load "
            f"({e}); reinstall with `pip install .` from the source tree") from e
    return mod
