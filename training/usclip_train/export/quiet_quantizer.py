"""Keep onnxruntime's quantizer quiet without touching the root logger.

``onnxruntime.quantization`` logs through the ``logging`` module's functions (``logging.warning``
...), i.e. on the root logger; the first such call even runs ``logging.basicConfig`` when the
root has no handler, adding one to the application's logging. Changing the root logger's level
around it (what the exporters did) changes logging for the whole process and every thread.
Instead, for the duration of the call, the quantizer modules' ``logging`` global is swapped for
a proxy that sends those records to the named logger ``onnxruntime.quantization`` at ``level``:
the root logger's level and handlers are never touched.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["quiet_quantizer"]

_METHODS = ("debug", "info", "warning", "warn", "error", "exception", "critical", "log")


class _Proxy:
    """The ``logging`` module, except that its module-level log functions use ``target``."""

    def __init__(self, target: logging.Logger):
        self._target = target

    def __getattr__(self, name: str):
        if name in _METHODS:
            return getattr(self._target, "warning" if name == "warn" else name)
        return getattr(logging, name)


@contextmanager
def quiet_quantizer(level: int = logging.ERROR) -> Iterator[logging.Logger]:
    """Within the block, the quantizer logs to ``onnxruntime.quantization`` at ``level``."""
    import onnxruntime.quantization  # noqa: F401  (loads the submodules whose globals are swapped)

    target = logging.getLogger("onnxruntime.quantization")
    mods = [m for name, m in list(sys.modules.items())
            if name.startswith("onnxruntime.quantization") and getattr(m, "logging", None) is logging]
    old = target.level
    target.setLevel(level)
    proxy = _Proxy(target)
    for m in mods:
        m.logging = proxy
    try:
        yield target
    finally:
        for m in mods:
            m.logging = logging
        target.setLevel(old)
