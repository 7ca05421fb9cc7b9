"""CUDA-event timing shared by the GPU benchmarks (run by bench/gpu_check.sh on a GPU machine)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["events_ms", "copy_rate"]


def events_ms(fn, reps: int = 50, warm: int = 10) -> float:
    """Median milliseconds of ``fn`` on the current stream, timed with CUDA events."""
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


def copy_rate() -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write)."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = events_ms(lambda: dst.copy_(src), reps=20, warm=3)
    return 2 * src.numel() / (ms / 1e3)
