"""What Linux's /proc/cpuinfo says about this CPU (flags, model name); None where it cannot be read.

One reader for the places that choose by CPU feature: the onnxruntime backend's int8_cpu choice,
the training's bf16 warning, the benchmarks' machine line."""
from __future__ import annotations

__all__ = ["cpu_field", "cpu_flags"]

CPUINFO = "/proc/cpuinfo"


def cpu_field(name: str, path: str = CPUINFO) -> str | None:
    """The first ``name : value`` line's value (e.g. "model name"), or None."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == name:
                    return value.strip()
    except OSError:
        return None
    return None


def cpu_flags(path: str = CPUINFO) -> frozenset[str] | None:
    """The CPU's feature flags (x86 "flags"), or None when ``path`` is unreadable or has none."""
    value = cpu_field("flags", path)
    return None if value is None else frozenset(value.split())
