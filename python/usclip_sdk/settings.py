"""The SDK's environment variables, read in one place (README: Environment variables).

- ``USCLIP_BUNDLE``: default bundle (read by ``usclip_sdk.models.default_bundle_path``).
- ``USCLIP_THREADS``: onnxruntime intra-op threads when ``threads=`` is not given.
- ``USCLIP_ENGINE_CACHE``: TensorRT engine folder when ``cache_dir=`` is not given.
- ``USCLIP_LOG_LEVEL``: level of the ``usclip`` command's stderr log.

The default engine cache is the user cache folder, as platformdirs would place it (without the
dependency): ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
``%LOCALAPPDATA%`` on Windows; then ``usclip/engines``. Never site-packages: engines are
machine-specific, large, and written after install (often by a non-root service user).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["user_cache_dir", "engine_cache_root", "env_threads", "env_log_level", "usable_cores"]


def user_cache_dir(app: str = "usclip") -> Path:
    """The per-user cache folder for ``app`` on this platform."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Caches")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else str(Path.home() / ".cache")  # the XDG spec ignores relative paths
    return Path(base) / app


def engine_cache_root() -> Path:
    """``USCLIP_ENGINE_CACHE`` if set, else ``<user cache>/usclip/engines``."""
    env = os.environ.get("USCLIP_ENGINE_CACHE", "").strip()
    return Path(env).expanduser() if env else user_cache_dir() / "engines"


def env_threads() -> int | None:
    """``USCLIP_THREADS`` as a positive int, None when unset; a bad value is a clear error."""
    raw = os.environ.get("USCLIP_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"USCLIP_THREADS: expected a positive integer, found {raw!r}")
    return n


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, e.g. a
    container limited to 2 of 64 cores), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def env_log_level(default: str = "WARNING") -> str:
    """``USCLIP_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR; case-insensitive), else ``default``."""
    raw = os.environ.get("USCLIP_LOG_LEVEL", "").strip().upper()
    if not raw:
        return default
    if raw not in _LEVELS:
        raise ValueError(f"USCLIP_LOG_LEVEL: expected one of {list(_LEVELS)}, found {raw!r}")
    return raw
