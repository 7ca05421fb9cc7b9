"""Classifier.stream with the next frame prepared in a worker thread (prefetch, the default on
host backends): the same predictions as the inline stream, errors raised in order, nothing left
running when the consumer stops early; and Prefetcher itself."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from usclip_sdk.errors import InvalidInputError
from usclip_sdk.prefetch import Prefetcher

from test_classifier import screen


def _key(p):
    d = p.to_dict()
    d.pop("timings_ms")
    return d


@pytest.mark.parametrize("every,smoothing", [(1, 0.0), (1, 0.6), (3, 0.6)])
def test_prefetched_stream_equals_the_inline_one(clf, every, smoothing):
    frames = [screen(i % 4) for i in range(12)] + [np.zeros((120, 160), np.uint8)] * 3
    inline = [_key(p) for p in clf.stream(frames, every=every, smoothing=smoothing, prefetch=False)]
    ahead = [_key(p) for p in clf.stream(frames, every=every, smoothing=smoothing, prefetch=True)]
    assert len(ahead) == len(inline) == 15
    assert ahead == inline  # labels, scores, statuses (blank frames: no_image), regions


def test_prefetched_stream_reports_every_stage(clf):
    p = next(iter(clf.stream([screen(0)] * 2, prefetch=True)))
    t = p.timings
    assert {"region", "preprocess", "encode", "similarity", "triage", "total"} <= set(t)
    assert t["total"] == pytest.approx(sum(v for k, v in t.items() if k != "total"), rel=1e-6)


def test_prefetch_is_the_default_on_the_cpu_backend(clf, monkeypatch):
    called = []
    monkeypatch.setattr(clf, "_stream_prefetched", lambda *a: called.append(a) or iter(()))
    list(clf.stream([screen(0)]))
    assert called


def test_a_bad_frame_mid_stream_raises_in_order(clf):
    def frames():
        yield screen(0)
        yield screen(1)
        yield np.zeros((4, 4, 7), np.uint8)  # 7 channels: not a frame

    got = []
    with pytest.raises(InvalidInputError):
        for p in clf.stream(frames(), prefetch=True):
            got.append(p)
    assert len(got) == 2  # the frames before the bad one were all delivered


def test_stopping_early_stops_the_worker_and_closes_the_source(clf):
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield screen(0)
        finally:
            closed.set()

    before = threading.active_count()
    it = clf.stream(endless(), prefetch=True)
    for _, _p in zip(range(3), it):
        pass
    it.close()
    assert closed.wait(5.0)
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_prefetcher_order_errors_and_depth():
    assert list(Prefetcher(iter(range(50)), depth=2)) == list(range(50))

    def boom():
        yield 1
        raise KeyError("source broke")

    p = Prefetcher(boom())
    assert next(p) == 1
    with pytest.raises(KeyError, match="source broke"):
        next(p)
    with pytest.raises(StopIteration):
        next(p)
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(iter(()), depth=0)


def test_prefetcher_runs_ahead_by_at_most_depth():
    pulled = []

    def counted():
        for i in range(100):
            pulled.append(i)
            yield i

    p = Prefetcher(counted(), depth=2)
    assert next(p) == 0
    time.sleep(0.2)
    assert len(pulled) <= 4  # the one handed out, two queued, one waiting to be queued
    p.close()
