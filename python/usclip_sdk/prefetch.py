"""Run an iterator one or two items ahead in a worker thread (Classifier.stream's prefetch).

The worker pulls items from the wrapped iterator into a bounded queue; the consumer takes them in
order. Whatever the iterator raises is raised to the consumer at the same position, with its
own type and traceback. ``close()`` (or leaving a ``with`` block; Classifier.stream calls it
from its generator's ``finally``, which also runs when an abandoned generator is collected)
stops the worker: it finishes the item in hand, then closes the wrapped iterator in its own
thread, so a video file or camera is released. numpy, OpenCV and the native kernels release
the GIL, so the worker's pixel work overlaps the encoder's run.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

__all__ = ["Prefetcher"]

_DONE = object()


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Iterate ``items`` with up to ``depth`` of them prepared ahead in a daemon thread."""

    def __init__(self, items: Iterator[Any], depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth: expected >= 1, found {depth}")
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="usclip-prefetch", daemon=True)
        self._finished = False
        self._thread.start()

    def _put(self, item: Any) -> bool:
        """Queue ``item`` unless stopped; False once the consumer has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            else:
                self._put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_Raised(e))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> "Prefetcher":
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _DONE:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Raised):
            self._finished = True
            raise item.error
        return item

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the worker and wait up to ``timeout`` s for it (a source blocked in a read, such
        as a camera with no signal, can take longer); True once it has finished."""
        self._stop.set()
        self._finished = True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
