"""Classifier.stream with the next frame prepared in a worker thread (prefetch=True): the same
predictions as the inline stream, errors raised in order, nothing left
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


@pytest.mark.parametrize("every,smoothing", [(1, 0.0), (1, 0.6), (3, 0.6), (5, 0.0)])
def test_prefetched_stream_equals_the_inline_one(clf, every, smoothing):
    # a changing scan, then one frame repeated (frozen after 3 unchanged), then blank frames
    frames = [screen(i % 4) for i in range(12)] + [screen(1)] * 8 + [np.zeros((120, 160), np.uint8)] * 3
    inline = [_key(p) for p in clf.stream(frames, every=every, smoothing=smoothing, frozen_after=3, prefetch=False)]
    ahead = [_key(p) for p in clf.stream(frames, every=every, smoothing=smoothing, frozen_after=3, prefetch=True)]
    assert len(ahead) == len(inline) == 23
    assert ahead == inline  # labels, scores, statuses, reasons, regions
    if every == 1:
        statuses = [p["status"] for p in ahead]
        assert "frozen" in statuses and statuses[-1] == "no_image"  # the test reaches both


def test_a_source_that_refills_one_buffer_is_safe(clf):
    """Frame grabbers often hand out one array refilled in place: the worker reads each frame's
    pixels before it asks for the next, so the answers are those of copies."""
    frames = [screen(i % 4) for i in range(10)]
    want = [_key(p) for p in clf.stream([f.copy() for f in frames], smoothing=0.0, prefetch=False)]
    buf = np.empty_like(frames[0])

    def grabber():
        for f in frames:
            buf[...] = f
            yield buf

    got = [_key(p) for p in clf.stream(grabber(), smoothing=0.0, prefetch=True)]
    assert got == want


def test_prefetched_stream_reports_every_stage(clf):
    p = next(iter(clf.stream([screen(0)] * 2, prefetch=True)))
    t = p.timings
    assert {"region", "preprocess", "encode", "similarity", "triage", "total"} <= set(t)
    assert t["total"] == pytest.approx(sum(v for k, v in t.items() if k != "total"), rel=1e-6)


def _which_stream(clf, monkeypatch, **kw) -> str:
    called = []
    monkeypatch.setattr(clf, "_stream_prefetched", lambda *a: called.append("prefetched") or iter(()))
    monkeypatch.setattr(clf, "_stream_inline", lambda *a: called.append("inline") or iter(()))
    list(clf.stream([screen(0)], **kw))
    return called[0]


def test_auto_prefetches_on_a_host_backend_with_two_cores(clf, monkeypatch):
    import usclip_sdk.classifier as mod

    monkeypatch.setattr(mod, "usable_cores", lambda: 2)
    assert _which_stream(clf, monkeypatch) == "prefetched"  # 247-264 vs 175 frames/s measured
    monkeypatch.setattr(mod, "usable_cores", lambda: 1)
    assert _which_stream(clf, monkeypatch) == "inline"  # nothing to overlap with
    assert _which_stream(clf, monkeypatch, prefetch=True) == "prefetched"
    monkeypatch.setattr(mod, "usable_cores", lambda: 8)
    assert _which_stream(clf, monkeypatch, prefetch=False) == "inline"
    monkeypatch.setattr(clf.backend, "device_input", True)  # TensorRT: preprocess on the GPU, inline
    assert _which_stream(clf, monkeypatch) == "inline"


def test_prefetch_must_be_a_bool_or_auto(clf):
    with pytest.raises(ValueError, match="prefetch"):
        clf.stream([screen(0)], prefetch="yes")


def test_the_pipelined_encoder_has_one_thread_fewer_and_the_same_answers(clf, monkeypatch):
    import usclip_sdk.settings as settings

    be = clf.backend
    monkeypatch.setattr(be, "threads", None)
    monkeypatch.setattr(settings, "usable_cores", lambda: 4)
    assert be.pipelined_threads() == 3
    monkeypatch.setattr(be, "threads", 2)
    assert be.pipelined_threads() == 1
    monkeypatch.setattr(be, "threads", 1)
    assert be.pipelined_threads() == 1  # never 0 (0 would mean onnxruntime's default)
    x = np.random.default_rng(0).standard_normal((2, 3, *clf.image_size)).astype(be.input_dtype)
    np.testing.assert_allclose(be.encode_image_pipelined(x), be.encode_image(x), atol=1e-5)
    assert be.info()["pipelined_threads"] == 1


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

    def workers():
        return [t for t in threading.enumerate() if t.name == "usclip-prefetch"]

    it = clf.stream(endless(), prefetch=True)
    for _, _p in zip(range(3), it):
        pass
    assert workers()  # prefetching while the consumer holds the stream
    it.close()
    assert closed.wait(5.0)
    deadline = time.time() + 5
    while workers() and time.time() < deadline:
        time.sleep(0.01)
    assert not workers()


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

    with Prefetcher(counted(), depth=2) as p:
        assert next(p) == 0
        deadline = time.time() + 5
        while len(pulled) < 3 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert 3 <= len(pulled) <= 4  # runs ahead: the one handed out, two queued, one waiting
    assert p.close()
