"""The native kernels called from many Python threads at once. Both ops release the GIL and share
one thread pool (csrc/common/parallel.cpp: one job at a time, workers pull chunks), so these
tests are what .ci/tsan.sh runs under ThreadSanitizer; here they also check that every
concurrent result equals, exactly, the one computed alone, while another thread changes the
pool's thread count and some calls fail inside the kernel (an exception crossing the pool).

USCLIP_THREADS_ITERS sets the calls per thread (default 30; TSan runs are ~10x slower)."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from usclip_sdk import ops
from usclip_sdk.ops._native import native

THREADS = 6
ITERS = int(os.environ.get("USCLIP_THREADS_ITERS", "30"))
DEADLINE_S = 300


def _cases():
    rng = np.random.default_rng(0)
    pre = []
    for i in range(6):
        h, w = 40 + 13 * i, 64 + 7 * i
        shape = (3, h, w) if i % 3 == 0 else ((h, w, 3) if i % 3 == 1 else (h, w))
        frames = rng.integers(0, 256, shape, np.uint8)
        kw = {"size": (24 + i, 32), "resize": "letterbox" if i % 2 else "stretch"}
        if i % 2:
            kw["roi"] = (2, 3, w - 5, h - 1)
        if i == 4:
            kw["mask"] = (rng.random((h, w)) > 0.3).astype(np.uint8)
        pre.append((frames, kw))
    sim = []
    for n, k, d in ((1, 93, 16), (16, 93, 32), (7, 1000, 24), (64, 40, 8)):
        x = rng.standard_normal((n, d)).astype(np.float32)
        c = rng.standard_normal((k, d)).astype(np.float32)
        groups = [31, 31, 31] if k == 93 else None
        sim.append((x, c, {"topk": 5, "groups": groups}))
    return pre, sim


def _sim_tuple(r):
    return tuple(np.asarray(getattr(r, f)) for f in r._fields) if hasattr(r, "_fields") else \
        tuple(np.asarray(v) for v in vars(r).values())


def _run_threads(work, n=THREADS):
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(t):
        try:
            barrier.wait()
            work(t)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(DEADLINE_S)
    assert not any(th.is_alive() for th in threads), "deadlock: threads still running after the deadline"
    if errors:
        raise errors[0]


@pytest.fixture()
def pool_threads():
    before = native().num_threads()
    native().set_num_threads(4)
    yield
    native().set_num_threads(before)


def test_concurrent_preprocess_and_similarity_equal_serial(pool_threads):
    pre, sim = _cases()
    want_pre = [ops.preprocess(f, **kw) for f, kw in pre]
    want_sim = [_sim_tuple(ops.similarity(x, c, **kw)) for x, c, kw in sim]

    def work(t):
        for i in range(ITERS):
            j = (t + i) % len(pre)
            np.testing.assert_array_equal(ops.preprocess(pre[j][0], **pre[j][1]), want_pre[j])
            m = (t * 3 + i) % len(sim)
            x, c, kw = sim[m]
            for got, want in zip(_sim_tuple(ops.similarity(x, c, **kw)), want_sim[m]):
                np.testing.assert_array_equal(got, want)

    _run_threads(work)


def test_thread_count_changes_and_failing_calls_while_others_run(pool_threads):
    """One thread flips the pool size (1..4: the pool grows its workers mid-run), one makes the
    kernel raise (similarity logits overflowing float32 is detected inside the native loop), the
    rest compute; results stay exact and every failure is the documented ValueError."""
    pre, sim = _cases()
    want_pre = [ops.preprocess(f, **kw) for f, kw in pre]
    big = np.full((64, 4), 1e30, np.float32)  # 16 row blocks: the throw happens in a pool chunk

    def work(t):
        for i in range(ITERS):
            if t == 0:
                native().set_num_threads(1 + i % 4)
            elif t == 1:
                with pytest.raises(ValueError):
                    ops.similarity(big, big, scale=1e30, normalize=False)
            else:
                j = (t + i) % len(pre)
                np.testing.assert_array_equal(ops.preprocess(pre[j][0], **pre[j][1]), want_pre[j])

    _run_threads(work)
