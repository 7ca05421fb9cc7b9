"""How a device maker wires usclip into a scanner: a frame callback, a worker thread, a display.

The scanner's acquisition thread must never block on inference, so frames go into a queue of
length 1 (the newest frame wins; stale frames are dropped) and one worker classifies them.
The imaging region is detected once and cached by the classifier's stream (a layout change -
new preset, new depth - is picked up at the next refresh).

Run it against the shipped synthetic cine:  python examples/scanner_loop.py
or a video/DICOM cine of your own:          python examples/scanner_loop.py path/to/cine.avi
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

from usclip_sdk import Classifier
from usclip_sdk.inputs import iter_frames


class TriageWorker:
    """Owns the classifier; the scanner calls ``on_frame`` from its acquisition thread."""

    def __init__(self, clf: Classifier, every: int = 1, smoothing: float = 0.6):
        self._frames: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=1)
        self._clf, self._every, self._smoothing = clf, every, smoothing
        self.latest = None  # the newest Prediction, read by the UI thread
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def on_frame(self, frame: np.ndarray) -> None:
        """Called by the scanner for every displayed frame; returns immediately."""
        try:
            self._frames.put_nowait(frame)
        except queue.Full:  # inference is behind: replace the waiting frame with this one
            try:
                self._frames.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self._frames.put_nowait(frame)

    def close(self) -> None:
        self._frames.put(None)
        self._thread.join()

    def _source(self):
        while (frame := self._frames.get()) is not None:
            yield frame

    def _run(self) -> None:
        for pred in self._clf.stream(self._source(), every=self._every, smoothing=self._smoothing):
            self.latest = pred


def main() -> None:
    default = Path(__file__).resolve().parent.parent / "python/usclip_sdk/models/examples"
    source = sys.argv[1] if len(sys.argv) > 1 else next(iter(sorted(default.glob("*.avi"))), None)
    if source is None:
        sys.exit("give a video or DICOM cine path")
    worker = TriageWorker(Classifier())
    for i, frame in enumerate(iter_frames(source)):
        worker.on_frame(frame.pixels)  # what the scanner's acquisition callback would do
        time.sleep(1 / 30)  # 30 frames/s display
        p = worker.latest
        if p is not None and i % 10 == 0:
            print(f"frame {i:4d}: {p.organ:<28} {p.label:<18} {p.score:.2f}  "
                  f"({p.timings['total']:.1f} ms)")
    worker.close()
    print(f"dropped {worker.dropped} frames while inference was busy")


if __name__ == "__main__":
    main()
