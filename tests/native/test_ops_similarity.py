"""usclip_sdk.ops.similarity (CPU) against the float64 numpy reference.

Tolerances (float32 accumulation over D <= 96, float64 reference):
  logits      |diff| <= 3e-6 * |scale| + 1e-5
  probs       |diff| <= 1e-4 (absolute; probabilities are in [0, 1])
  top-k       the chosen classes' reference logits equal the reference top-k logits within
              the logit tolerance (exact indices only where logits are exact ties), values
              within 1e-4; the same for group argmax.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import importlib

from usclip_sdk import taxonomy
from usclip_sdk.ops.similarity import SimilarityResult, similarity
from usclip_sdk.ops.similarity_reference import similarity_reference

sim_mod = importlib.import_module("usclip_sdk.ops.similarity")


def _tol(scale):
    return 3e-6 * abs(scale) + 1e-5


def assert_matches(got: SimilarityResult, ref: SimilarityResult, scale: float):
    tol = _tol(scale)
    # softmax's Jacobian diag(p) - p p^T has infinity norm 2 p (1 - p) <= 1/2, so logits within
    # tol move probabilities by at most tol / 2 (first order): 1e-4, or that at large scales
    # (hypothesis found |scale| 889 with the prepared path's 1e-6 x max|logit|: 1.3e-4)
    ptol = max(1e-4, 0.5 * tol)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=tol)
    np.testing.assert_allclose(got.probs, ref.probs, rtol=0, atol=ptol)
    assert got.topk_indices.shape == ref.topk_indices.shape
    assert got.topk_indices.dtype == np.int64 and got.logits.dtype == np.float32
    rl = np.atleast_2d(ref.logits)
    gi = np.atleast_2d(got.topk_indices)
    ri = np.atleast_2d(ref.topk_indices)
    for n in range(rl.shape[0]):
        np.testing.assert_allclose(rl[n, gi[n]], rl[n, ri[n]], rtol=0, atol=2 * tol)
        assert len(set(gi[n].tolist())) == gi.shape[1]  # distinct classes
    np.testing.assert_allclose(got.topk_values, ref.topk_values, rtol=0, atol=ptol)
    if ref.group_argmax is None:
        assert got.group_argmax is None and got.group_probs is None
        return
    ga, ra = np.atleast_2d(got.group_argmax), np.atleast_2d(ref.group_argmax)
    for n in range(rl.shape[0]):
        np.testing.assert_allclose(rl[n, ga[n]], rl[n, ra[n]], rtol=0, atol=2 * tol)
    np.testing.assert_allclose(got.group_probs, ref.group_probs, rtol=0, atol=1e-4)


def _partition(draw, k):
    cuts = sorted(draw(st.sets(st.integers(1, k - 1), max_size=min(k - 1, 12)))) if k > 1 else []
    bounds = [0, *cuts, k]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:])]


@st.composite
def cases(draw):
    n = draw(st.integers(0, 40))
    k = draw(st.integers(1, 70))
    d = draw(st.integers(1, 96))
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    ctype = draw(st.sampled_from([dtype, np.float32]))
    seed = draw(st.integers(0, 2**31 - 1))
    groups = _partition(draw, k) if draw(st.booleans()) else None
    return dict(n=n, k=k, d=d, dtype=dtype, ctype=ctype, seed=seed, groups=groups,
                normalize=draw(st.booleans()), topk=draw(st.integers(0, k + 3)),
                scale=draw(st.sampled_from([100.0, 1.0, -7.5, 0.0])),
                bias=draw(st.sampled_from([0.0, -3.25])),
                strided=draw(st.booleans()), one=draw(st.booleans()))


def _inputs(c):
    rng = np.random.default_rng(c["seed"])
    scale_in = 1.0 if c["normalize"] else 0.3
    x = (rng.standard_normal((c["n"], 2 * c["d"])) * scale_in).astype(c["dtype"])
    w = (rng.standard_normal((2 * c["k"], c["d"])) * scale_in).astype(c["ctype"])
    if c["strided"]:  # non-contiguous rows and columns, and a negative row stride
        x, w = x[:, ::2], w[::-2][::-1]
    else:
        x, w = np.ascontiguousarray(x[:, :c["d"]]), np.ascontiguousarray(w[:c["k"]])
    if c["one"] and c["n"] >= 1:
        x = x[0]
    return x, w


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_matches_reference(c):
    x, w = _inputs(c)
    kw = dict(scale=c["scale"], bias=c["bias"], topk=c["topk"], groups=c["groups"],
              normalize=c["normalize"])
    got = similarity(x, w, **kw)
    ref = similarity_reference(x, w, **kw)
    assert_matches(got, ref, c["scale"])


@settings(max_examples=25, deadline=None)
@given(cases())
def test_blas_product_path_matches(c):
    """The large-size path: numpy's BLAS product, then the native epilogue."""
    x, w = _inputs(c)
    kw = dict(scale=c["scale"], topk=c["topk"], groups=c["groups"], normalize=c["normalize"])
    old, sim_mod.BLAS_MIN_MACS = sim_mod.BLAS_MIN_MACS, 0
    try:
        got = similarity(x, w, **kw)
    finally:
        sim_mod.BLAS_MIN_MACS = old
    assert_matches(got, similarity_reference(x, w, **kw), c["scale"])


@pytest.mark.parametrize("n", [1, 3, 4, 5, 64])
def test_taxonomy_groups(n):
    sizes = taxonomy.group_sizes()
    k = sum(sizes)
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 512)).astype(np.float32)
    w = rng.standard_normal((k, 512)).astype(np.float32)
    got = similarity(x, w, groups=sizes, topk=7)
    assert_matches(got, similarity_reference(x, w, groups=sizes, topk=7), 100.0)
    offs = np.concatenate([[0], np.cumsum(sizes)])
    for g, (a, b) in enumerate(zip(offs[:-1], offs[1:])):
        np.testing.assert_allclose(got.probs[:, a:b].sum(1), 1.0, atol=1e-5)
        assert np.all((got.group_argmax[:, g] >= a) & (got.group_argmax[:, g] < b))
    assert got.group_argmax.shape == (n, len(sizes))
    # top-k values are the all-K softmax: descending, and consistent with the logits
    assert np.all(np.diff(got.topk_values, axis=1) <= 0)


@pytest.mark.parametrize("n", [1, 2, 9])
def test_ties_go_to_the_lower_index(n):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 40)).astype(np.float32)
    w = np.stack([base[0], base[1], base[1], base[2], base[1], base[0]])  # 1,2,4 tie; 0,5 tie
    x = np.repeat(base[1:2] + 0.01, n, axis=0)
    r = similarity(x, w, topk=6, groups=[2, 4])
    assert r.topk_indices[0, :3].tolist() == [1, 2, 4]
    order = r.topk_indices[0].tolist()
    assert order.index(0) < order.index(5)
    assert r.group_argmax[0].tolist() == [1, 2]
    assert np.all(r.topk_indices == r.topk_indices[0])


def test_k1_and_topk_clamped():
    x = np.ones((3, 8), np.float32)
    w = np.arange(8, dtype=np.float32)[None] + 1
    r = similarity(x, w, topk=5)
    assert r.probs.shape == (3, 1) and np.all(r.probs == 1.0)
    assert r.topk_indices.shape == (3, 1) and np.all(r.topk_indices == 0)
    assert np.all(r.topk_values == 1.0)


def test_topk_zero_and_empty_batch():
    w = np.eye(4, dtype=np.float32)
    r = similarity(np.ones((2, 4), np.float32), w, topk=0)
    assert r.topk_indices.shape == (2, 0) and r.topk_values.shape == (2, 0)
    e = similarity(np.ones((0, 4), np.float32), w, groups=[1, 3])
    assert e.logits.shape == (0, 4) and e.group_argmax.shape == (0, 2)


def test_single_embedding_gives_1d_outputs():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((93, 64)).astype(np.float32)
    x = rng.standard_normal(64).astype(np.float32)
    r = similarity(x, w, groups=taxonomy.group_sizes())
    assert r.logits.shape == (93,) and r.topk_indices.shape == (5,)
    assert r.group_argmax.shape == (9,) and r.group_probs.shape == (9,)
    full = similarity(x[None], w, groups=taxonomy.group_sizes())
    np.testing.assert_array_equal(r.logits, full.logits[0])


def test_float16_inputs_match_reference():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 512)).astype(np.float16)
    w = rng.standard_normal((1000, 512)).astype(np.float16)
    assert_matches(similarity(x, w), similarity_reference(x, w), 100.0)


def test_large_batch_blocked_path():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((67, 300)).astype(np.float32)
    w = rng.standard_normal((301, 300)).astype(np.float32)
    assert_matches(similarity(x, w, topk=20, scale=50.0), similarity_reference(
        x, w, topk=20, scale=50.0), 50.0)


def test_extreme_magnitudes_with_normalize():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 32)).astype(np.float32)
    w = rng.standard_normal((5, 32)).astype(np.float32)
    ref = similarity(x, w)
    for s in (1e25, 1e-25):  # float32 dot products would overflow / underflow
        got = similarity(x * np.float32(s), w)
        np.testing.assert_allclose(got.logits, ref.logits, atol=1e-3)
        got = similarity(x, w * np.float32(s))
        np.testing.assert_allclose(got.logits, ref.logits, atol=1e-3)


def test_result_is_frozen():
    r = similarity(np.ones(4, np.float32), np.eye(4, dtype=np.float32))
    with pytest.raises(AttributeError):
        r.logits = None


def test_concurrent_calls_from_threads():
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((n, 128)).astype(np.float32) for n in (1, 3, 40, 80)]
    w = rng.standard_normal((200, 128)).astype(np.float32)
    want = [similarity(x, w).logits for x in xs]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda x: similarity(x, w).logits, xs * 3))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, want[i % 4])


def test_portable_kernel_matches_reference():
    """The portable (non-AVX2) kernels, as aarch64 builds run them, forced by environment."""
    import os
    import subprocess
    import sys
    code = (
        "import numpy as np, sys\n"
        "from usclip_sdk.ops._native import native\n"
        "assert native().similarity_cpu_variant() == 'generic'\n"
        "from usclip_sdk.ops.similarity import similarity\n"
        "from usclip_sdk.ops.similarity_reference import similarity_reference\n"
        "rng = np.random.default_rng(0)\n"
        "for n, k, d, dt in [(1, 93, 37, 'float32'), (3, 10, 8, 'float16'), (9, 70, 61, 'float16'),"
        " (40, 33, 19, 'float32')]:\n"
        "    x = rng.standard_normal((n, d)).astype(dt); w = rng.standard_normal((k, d)).astype(dt)\n"
        "    g, r = similarity(x, w, topk=7, groups=[k - 3, 3]), similarity_reference(x, w, topk=7,"
        " groups=[k - 3, 3])\n"
        "    assert np.abs(g.logits - r.logits).max() < 4e-4, n\n"
        "    assert np.abs(g.probs - r.probs).max() < 1e-4, n\n"
        "    assert np.abs(g.topk_values - r.topk_values).max() < 1e-4, n\n"
        "x = rng.standard_normal((2, 8)).astype('float16'); x[1, 2] = np.nan\n"
        "try:\n"
        "    similarity(x, np.ones((3, 8), 'float16')); sys.exit('no error')\n"
        "except ValueError as e:\n"
        "    assert 'image_emb row 1 column 2 is NaN' in str(e), e\n"
    )
    env = dict(os.environ, USCLIP_CPU_KERNEL="generic")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
