"""Concurrency: many threads on one Classifier (and on several) give exactly the serial results,
without deadlock; a stream reads while other threads classify; label swaps are atomic.

Every worker is joined with a timeout, so a deadlock fails the test instead of hanging CI.
USCLIP_STRESS_CALLS sets the calls per thread (default 500: the full 8 x 500 fits CI, about
13 s for one classifier on a loaded 2-core machine, 64 x 80 frames on the tiny bundle).
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

pytest.importorskip("onnx")

from sdk_bundle import make_tiny_bundle  # noqa: E402

from usclip_sdk.classifier import Classifier  # noqa: E402

__all__ = ["small_frame", "run_threads", "pred_key"]

THREADS = 8
CALLS = int(os.environ.get("USCLIP_STRESS_CALLS", "500"))
JOIN_TIMEOUT_S = float(os.environ.get("USCLIP_STRESS_TIMEOUT", "300"))


def small_frame(seed: int, h: int = 64, w: int = 80) -> np.ndarray:
    """A small scanner-like frame: speckle rectangle, a bright target, burned-in text bar."""
    r = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[8:h - 6, 12:w - 10] = r.rayleigh(50, (h - 14, w - 22, 1)).clip(0, 255).astype(np.uint8)
    y, x = int(r.integers(14, h - 14)), int(r.integers(20, w - 20))
    img[y - 4:y + 4, x - 4:x + 4] = 220
    img[1:4, 2:20] = 255
    return img if seed % 4 else np.ascontiguousarray(img[..., 0])  # some gray frames too


def pred_key(p) -> dict:
    """Everything a caller sees except the timings (which differ run to run)."""
    d = p.to_dict()
    d.pop("timings_ms", None)
    return d


def run_threads(target: Callable[[int], None], n: int, timeout: float = JOIN_TIMEOUT_S) -> list:
    """Start n threads at once (barrier), join with a deadline; returns the errors raised."""
    errors: list = []
    barrier = threading.Barrier(n)

    def body(t: int) -> None:
        try:
            barrier.wait(timeout=60)
            target(t)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            errors.append((t, e))

    threads = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + timeout
    for th in threads:
        th.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [i for i, th in enumerate(threads) if th.is_alive()]
    if stuck:
        raise AssertionError(f"threads {stuck} still running after {timeout:.0f} s: deadlock?")
    return errors


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("conc") / "tiny")


@pytest.fixture(scope="module")
def frames():
    return [small_frame(s) for s in range(16)]


@pytest.fixture(scope="module")
def serial(bundle, frames):
    clf = Classifier.from_bundle(bundle, backend="onnxruntime", device="cpu")
    return [pred_key(clf.classify(f)) for f in frames]


def _hammer(clfs: list, frames, serial, calls: int) -> None:
    mismatches: list = []

    def work(t: int) -> None:
        clf = clfs[t % len(clfs)]
        for j in range(calls):
            k = (7 * t + j) % len(frames)
            if j % 25 == 24:  # now and then a batch of three mixed frames
                ks = [k, (k + 5) % len(frames), (k + 11) % len(frames)]
                got = [pred_key(p) for p in clf.classify_batch([frames[i] for i in ks])]
                mismatches.extend((t, j, i) for i, g in zip(ks, got) if g != serial[i])
            elif pred_key(clf.classify(frames[k])) != serial[k]:
                mismatches.append((t, j, k))

    errors = run_threads(work, THREADS)
    assert not errors, errors[:3]
    assert not mismatches, f"{len(mismatches)} results differ from serial, e.g. {mismatches[:5]}"


@pytest.mark.slow
def test_threads_on_one_classifier_match_serial(bundle, frames, serial):
    clf = Classifier.from_bundle(bundle, backend="onnxruntime", device="cpu")
    _hammer([clf], frames, serial, CALLS)


@pytest.mark.slow
def test_threads_on_several_classifiers_match_serial(bundle, frames, serial):
    clfs = [Classifier.from_bundle(bundle, backend="onnxruntime", device="cpu") for _ in range(3)]
    _hammer(clfs, frames, serial, CALLS)


def test_stream_reads_while_other_threads_classify(bundle, frames, serial, tmp_path):
    cv2 = pytest.importorskip("cv2")
    clf = Classifier.from_bundle(bundle, backend="onnxruntime", device="cpu")
    video = tmp_path / "clip.mkv"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 64))
    if not vw.isOpened():
        pytest.skip("OpenCV cannot write MJPG video here")
    for i in range(40):
        f = frames[i % len(frames)]
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR if f.ndim == 2 else cv2.COLOR_RGB2BGR))
    vw.release()
    want_stream = [pred_key(p) for p in clf.stream(video, smoothing=0.6, refresh_region_every=7)]
    got_stream: list = []
    mismatches: list = []

    def work(t: int) -> None:
        if t == 0:  # the reader: decodes, tracks the region, smooths
            got_stream.extend(pred_key(p) for p in clf.stream(video, smoothing=0.6,
                                                             refresh_region_every=7))
            return
        for j in range(max(CALLS // 2, 20)):
            k = (3 * t + j) % len(frames)
            if pred_key(clf.classify(frames[k])) != serial[k]:
                mismatches.append((t, j, k))

    errors = run_threads(work, 4)
    assert not errors, errors[:3]
    assert len(want_stream) == 40 and got_stream == want_stream
    assert not mismatches, mismatches[:5]


def test_label_swaps_are_atomic_under_load(bundle, frames):
    """A thread swapping the label set never makes a prediction mix two sets."""
    clf = Classifier.from_bundle(bundle, backend="onnxruntime", device="cpu")
    sets = {"diag": None, "custom": ["benign cyst", "solid mass", "normal tissue"]}
    want = {}
    for name, labels in sets.items():
        clf.set_labels(labels)
        want[name] = [pred_key(clf.classify(f)) for f in frames]
    stop = threading.Event()
    bad: list = []

    def work(t: int) -> None:
        if t == 0:
            for j in range(60):
                clf.set_labels(sets["custom" if j % 2 else "diag"])
            stop.set()
            return
        j = 0
        while not stop.is_set() or j < 10:
            k = (t + j) % len(frames)
            got = pred_key(clf.classify(frames[k]))
            if got not in (want["diag"][k], want["custom"][k]):
                bad.append((t, j, got["label"], [n for n, _ in got["topk"]]))
            j += 1

    errors = run_threads(work, 4)
    clf.set_labels(None)
    assert not errors, errors[:3]
    assert not bad, bad[:3]
