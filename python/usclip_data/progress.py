"""A small progress bar on stderr (tqdm is not an SDK dependency).

On a terminal it redraws one line at most ten times a second; into a file or pipe it writes
a plain line at each tenth of the work, so logs stay readable.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``with Progress(total, "images") as p: p.update(k)``; ``enabled=False`` prints nothing."""

    def __init__(self, total: int, unit: str = "it", desc: str = "", enabled: bool = True,
                 stream: TextIO | None = None, width: int = 28):
        if total < 0:
            raise ValueError(f"total: expected >= 0, found {total}")
        self.total, self.unit, self.desc, self.enabled = total, unit, desc, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.n = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_tenth = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.n / elapsed if elapsed > 0 else 0.0

    def update(self, k: int = 1) -> None:
        self.n += k
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last_draw >= 0.1 or self.n >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        else:
            tenth = (10 * self.n) // max(self.total, 1)
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def _line(self) -> str:
        frac = min(self.n / self.total, 1.0) if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = self.rate
        eta = (self.total - self.n) / rate if rate > 0 and self.total > self.n else 0.0
        head = f"{self.desc}: " if self.desc else ""
        return (f"{head}{frac * 100:5.1f}% [{bar}] {self.n}/{self.total} {self.unit} "
                f"{rate:.1f} {self.unit}/s eta {eta:.0f}s")

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
