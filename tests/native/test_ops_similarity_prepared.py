"""usclip_sdk.ops.similarity with prepared class embeddings (ops.ClassEmbeddings).

The kernel is compared with the float64 reference scoring the matrix the object stands for
(``values()``: float16-rounded unit directions times float32 norms), so the only difference is
the kernel's float32 arithmetic: the tolerances of test_ops_similarity.py (logits
3e-6 * |scale| + 1e-5 for D <= 96 and random inputs up to D = 512; probabilities and top-k
values 1e-4) plus 1e-6 of the largest |logit| (~8 float32 ulps), since the prepared path rounds
twice more (the dot product with the unit row, then the product with its float32 norm), which
matters only for the large logits of normalize=False.

The effect of the float16 rounding itself, against the float32 original, is bounded
separately: each element of a unit direction is rounded with relative error <= 2**-11 (the
few float16 subnormals, below 6e-5, with absolute error <= 2**-25), so the direction moves by
about 2**-11 in L2 norm at most, and a unit image row's cosine by at most that
(normalize=False) or twice that (normalize=True also divides by the rounded norm), x |scale|.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_ops_similarity import _inputs, assert_matches, cases
from usclip_sdk import taxonomy
from usclip_sdk.errors import DeviceError
from usclip_sdk.ops import ClassEmbeddings, cuda_available
from usclip_sdk.ops._native import native
from usclip_sdk.ops.similarity import similarity
from usclip_sdk.ops.similarity_reference import similarity_reference

sim_mod = importlib.import_module("usclip_sdk.ops.similarity")


def assert_prepared(got, ref, scale):
    """assert_matches with 1e-6 x max |logit| added to its logit tolerance (module docstring):
    its tolerance is 3e-6 * |s| + 1e-5, so s = |scale| + max|logit| / 3 adds exactly that."""
    big = float(np.abs(ref.logits).max(initial=0.0))
    assert_matches(got, ref, abs(scale) + big / 3)


def _unit(rng, n, d):
    v = rng.standard_normal((n, d))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from(["float16", "float32"]))
def test_prepared_matches_reference(c, dtype):
    x, w = _inputs(c)  # strided and negative-stride class rows included (copied when prepared)
    if c["normalize"] is False or np.all(np.any(w != 0, axis=1)):
        p = ClassEmbeddings(w, dtype)
        kw = dict(scale=c["scale"], bias=c["bias"], topk=c["topk"], groups=c["groups"],
                  normalize=c["normalize"])
        assert_prepared(similarity(x, p, **kw), similarity_reference(x, p, **kw), c["scale"])


@settings(max_examples=25, deadline=None)
@given(cases())
def test_prepared_with_the_blas_product_matches(c):
    """numpy's product of the rounded directions, the prepared factors in the native epilogue."""
    x, w = _inputs(c)
    p = ClassEmbeddings(w)
    kw = dict(scale=c["scale"], topk=c["topk"], groups=c["groups"], normalize=False)
    old, sim_mod.BLAS_MIN_MACS = sim_mod.BLAS_MIN_MACS, 0
    try:
        got = similarity(x, p, **kw)
    finally:
        sim_mod.BLAS_MIN_MACS = old
    assert_prepared(got, similarity_reference(x, p, **kw), c["scale"])


@pytest.mark.parametrize("n", [1, 3, 4, 5, 7, 256])  # fused (<= 4 rows) and blocked paths
@pytest.mark.parametrize("normalize", [True, False])
def test_prepared_d512_k1000(n, normalize):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 512)).astype(np.float32)
    p = ClassEmbeddings(rng.standard_normal((1000, 512)).astype(np.float32))
    kw = dict(normalize=normalize, topk=5, scale=100.0 if normalize else 0.1)
    assert_prepared(similarity(x, p, **kw), similarity_reference(x, p, **kw), kw["scale"])


def test_prepared_taxonomy_groups_and_1d():
    sizes = taxonomy.group_sizes()
    rng = np.random.default_rng(7)
    x = _unit(rng, 1, 512)[0]
    p = ClassEmbeddings(_unit(rng, sum(sizes), 512))
    got = similarity(x, p, groups=sizes, topk=3, normalize=False)
    assert got.logits.shape == (93,) and got.group_argmax.shape == (9,)
    assert_prepared(got, similarity_reference(x, p, groups=sizes, topk=3, normalize=False), 100.0)


@pytest.mark.parametrize("k", [93, 1000])
@pytest.mark.parametrize("normalize", [False, True])
def test_float16_rounding_effect_is_within_its_bound(k, normalize):
    rng = np.random.default_rng(k)
    x, c = _unit(rng, 2000, 512), _unit(rng, k, 512)
    exact = similarity(x, c, normalize=normalize, topk=1)
    got = similarity(x, ClassEmbeddings(c), normalize=normalize, topk=1)
    bound = 100.0 * 2.0 ** -11 * (2 if normalize else 1) + 1e-3
    assert np.abs(got.logits - exact.logits).max() <= bound
    assert np.mean(got.topk_indices[:, 0] == exact.topk_indices[:, 0]) >= 0.99


def test_float32_prepared_equals_the_plain_call():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((3, 64)).astype(np.float32), rng.standard_normal((50, 64)).astype(np.float32)
    for normalize in (True, False):
        plain = similarity(x, w, normalize=normalize, scale=10.0)
        prep = similarity(x, ClassEmbeddings(w, "float32"), normalize=normalize, scale=10.0)
        # both accumulate in float32 (over u_k vs c_k): ~D ulps of sum |x_i u_i| apart at most
        np.testing.assert_allclose(prep.logits, plain.logits, rtol=2e-6, atol=1e-4)
        np.testing.assert_array_equal(prep.topk_indices, plain.topk_indices)


def test_prepared_object_stands_for_its_values():
    rng = np.random.default_rng(9)
    w = (rng.standard_normal((6, 10)) * [[1e-8], [1], [1e4], [1e30], [3], [5]]).astype(np.float32)
    p = ClassEmbeddings(w)  # rows of any magnitude: stored unit length, nothing clips to inf/0
    assert p.shape == (6, 10) and p.dtype == np.float16 and p.rows.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(p.rows.astype(np.float64), axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(p.values(), w, rtol=2.0 ** -10)
    with pytest.raises(ValueError):
        p.rows[0, 0] = 1.0  # read-only
    assert "K=6, D=10, dtype=float16" in repr(p)


def test_extreme_image_magnitudes_with_prepared_classes():
    """Image rows whose float norms overflow/underflow are rescaled (the retry keeps the factors)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 32)).astype(np.float32)
    p = ClassEmbeddings(rng.standard_normal((5, 32)).astype(np.float32))
    ref = similarity(x, p)
    for s in (1e25, 1e-25):
        np.testing.assert_allclose(similarity(x * np.float32(s), p).logits, ref.logits, atol=1e-3)


def test_prepared_empty_batch_and_topk_zero():
    p = ClassEmbeddings(np.eye(4, dtype=np.float32))
    e = similarity(np.ones((0, 4), np.float32), p, groups=[1, 3])
    assert e.logits.shape == (0, 4) and e.group_argmax.shape == (0, 2)
    r = similarity(np.ones((2, 4), np.float32), p, topk=0)
    assert r.topk_indices.shape == (2, 0)


# ---- bad input: typed errors naming the problem ---------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.bool_])
def test_prepare_rejects_wrong_dtype(dtype):
    with pytest.raises(TypeError, match="class_emb must be float32 or float16"):
        ClassEmbeddings(np.ones((3, 4), dtype))


@pytest.mark.parametrize("dtype", ["float64", "int8", "bfloat16x"])
def test_prepare_rejects_a_storage_dtype_it_has_no_kernel_for(dtype):
    with pytest.raises(TypeError, match="dtype must be float16 or float32"):
        ClassEmbeddings(np.ones((3, 4), np.float32), dtype)


def test_prepare_rejects_bad_shapes():
    with pytest.raises(ValueError, match="class_emb must be 2-D"):
        ClassEmbeddings(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="at least one row"):
        ClassEmbeddings(np.ones((0, 4), np.float32))
    p = ClassEmbeddings(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="class_emb has D=4 columns but image_emb has D=5"):
        similarity(np.ones(5, np.float32), p)


@pytest.mark.parametrize("bad,kind", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_prepare_rejects_non_finite_values_naming_row_and_column(bad, kind, dtype):
    w = np.ones((5, 8), dtype)
    w[3, 6] = bad
    with pytest.raises(ValueError, match=f"class_emb row 3 column 6 is {kind}"):
        ClassEmbeddings(w)


def test_prepare_rejects_a_norm_beyond_float32():
    with pytest.raises(ValueError, match="class_emb row 1 has L2 norm .* beyond float32"):
        ClassEmbeddings(np.array([[1, 0], [3e38, 3e38]], np.float32))


def test_non_contiguous_class_rows_are_copied():
    rng = np.random.default_rng(10)
    w = rng.standard_normal((20, 16)).astype(np.float32)
    x = rng.standard_normal(8).astype(np.float32)
    a = similarity(x, ClassEmbeddings(w[::2, ::2]))
    b = similarity(x, ClassEmbeddings(np.ascontiguousarray(w[::2, ::2])))
    np.testing.assert_array_equal(a.logits, b.logits)


def test_zero_row_is_an_error_only_when_normalizing():
    w = np.ones((4, 8), np.float32)
    w[2] = 0
    p = ClassEmbeddings(w)
    with pytest.raises(ValueError, match="class_emb row 2 has zero L2 norm"):
        similarity(np.ones(8, np.float32), p)
    with pytest.raises(ValueError, match="class_emb row 2 has zero L2 norm"):
        similarity(np.ones((0, 8), np.float32), p)
    r = similarity(np.ones(8, np.float32), p, normalize=False, bias=1.5)
    assert r.logits[2] == 1.5


def test_image_checks_still_run_with_prepared_classes():
    p = ClassEmbeddings(np.ones((3, 8), np.float32))
    x = np.ones((2, 8), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="image_emb row 1 column 2 is NaN"):
        similarity(x, p)
    with pytest.raises(TypeError, match="image_emb must be float32 or float16"):
        similarity(np.ones(8, np.float64), p)


def test_native_class_scale_length_is_checked():
    c = np.ones((3, 8), np.float16)
    with pytest.raises(ValueError, match="class_scale must be K float32 factors"):
        native().similarity_cpu(np.ones((1, 8), np.float32), c, 1.0, 0.0, False, 1, None, None,
                                np.ones(2, np.float32))


@pytest.mark.skipif(cuda_available(), reason="checks the no-CUDA error path")
def test_prepared_on_cuda_without_cuda_is_a_device_error():
    with pytest.raises(DeviceError):
        similarity(np.ones(8, np.float32), ClassEmbeddings(np.ones((3, 8), np.float32)), device="cuda")


def test_portable_kernel_with_prepared_classes():
    """The portable kernels (aarch64 builds) on the prepared path, forced by environment."""
    import os
    import subprocess
    import sys
    code = (
        "import numpy as np\n"
        "from usclip_sdk.ops._native import native\n"
        "assert native().similarity_cpu_variant() == 'generic'\n"
        "from usclip_sdk.ops import ClassEmbeddings, similarity\n"
        "from usclip_sdk.ops.similarity_reference import similarity_reference\n"
        "rng = np.random.default_rng(0)\n"
        "for n, k, d in [(1, 93, 37), (3, 10, 8), (4, 70, 61), (9, 33, 19)]:\n"
        "    x = rng.standard_normal((n, d)).astype('float32')\n"
        "    p = ClassEmbeddings(rng.standard_normal((k, d)).astype('float32'))\n"
        "    for norm in (True, False):\n"
        "        g, r = (f(x, p, topk=7, groups=[k - 3, 3], normalize=norm)\n"
        "                for f in (similarity, similarity_reference))\n"
        "        assert np.abs(g.logits - r.logits).max() < 4e-4, n\n"
        "        assert np.abs(g.probs - r.probs).max() < 1e-4, n\n"
    )
    env = dict(os.environ, USCLIP_CPU_KERNEL="generic")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
