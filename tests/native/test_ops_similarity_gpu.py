"""CUDA similarity against the numpy reference (runs on a lent GPU via bench/gpu_check.sh).

Tolerances as in test_ops_similarity.py, with __expf (fast-math) in the softmax: probs and
top-k values within 2e-4 absolute.
"""
from __future__ import annotations

import numpy as np
import pytest

from usclip_sdk import taxonomy
from usclip_sdk.ops import cuda_available
from usclip_sdk.ops.similarity import similarity
from usclip_sdk.ops.similarity_reference import similarity_reference

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device")]


def _check(got, ref, scale=100.0):
    tol = 3e-6 * abs(scale) + 2e-5
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=tol)
    np.testing.assert_allclose(got.probs, ref.probs, rtol=0, atol=2e-4)
    rl = np.atleast_2d(ref.logits)
    gi, ri = np.atleast_2d(got.topk_indices), np.atleast_2d(ref.topk_indices)
    for n in range(rl.shape[0]):
        np.testing.assert_allclose(rl[n, gi[n]], rl[n, ri[n]], rtol=0, atol=2 * tol)
    np.testing.assert_allclose(got.topk_values, ref.topk_values, rtol=0, atol=2e-4)
    if ref.group_argmax is not None:
        ga, ra = np.atleast_2d(got.group_argmax), np.atleast_2d(ref.group_argmax)
        for n in range(rl.shape[0]):
            np.testing.assert_allclose(rl[n, ga[n]], rl[n, ra[n]], rtol=0, atol=2 * tol)
        np.testing.assert_allclose(got.group_probs, ref.group_probs, rtol=0, atol=2e-4)


# (N, K, D): fused single-launch path (N <= 32, D <= 3008) and tiled GEMM path (the others).
SHAPES = [(1, 1, 1), (1, 2, 512), (1, 93, 512), (1, 1000, 512), (3, 17, 33), (32, 1000, 512),
          (33, 93, 512), (256, 1000, 512), (5, 70, 3008), (5, 70, 3009), (100, 3, 7)]


@pytest.mark.parametrize("n,k,d", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cuda_matches_reference(n, k, d, dtype):
    rng = np.random.default_rng(n * 7 + k + d)
    x = rng.standard_normal((n, d)).astype(dtype)
    w = rng.standard_normal((k, d)).astype(dtype)
    for groups in (None, [k] if k < 3 else [1, k - 2, 1]):
        for topk in (1, 5, 80):
            kw = dict(groups=groups, topk=topk)
            _check(similarity(x, w, device="cuda", **kw), similarity_reference(x, w, **kw))


def test_cuda_taxonomy_groups_fresh_random():
    sizes = taxonomy.group_sizes()
    rng = np.random.default_rng()
    for n in (1, 4, 31, 64):
        x = rng.standard_normal((n, 512)).astype(np.float32)
        w = rng.standard_normal((sum(sizes), 512)).astype(np.float32)
        _check(similarity(x, w, device="cuda", groups=sizes, topk=5),
               similarity_reference(x, w, groups=sizes, topk=5))


def test_cuda_stale_workspace_is_never_read():
    rng = np.random.default_rng(1)
    big = similarity(rng.standard_normal((300, 512)).astype(np.float32),
                     rng.standard_normal((900, 512)).astype(np.float32), device="cuda")
    assert np.isfinite(big.logits).all()
    x = rng.standard_normal((2, 64)).astype(np.float32)
    w = rng.standard_normal((5, 64)).astype(np.float32)
    _check(similarity(x, w, device="cuda"), similarity_reference(x, w))


def test_cuda_ties_and_errors():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, 40)).astype(np.float32)
    w = np.stack([base[0], base[1], base[1], base[1]])
    r = similarity(base[1] + 0.01, w, device="cuda", topk=3, groups=[2, 2])
    assert r.topk_indices.tolist() == [1, 2, 3] and r.group_argmax.tolist() == [1, 2]
    for n in (1, 40):
        x = rng.standard_normal((n, 40)).astype(np.float32)
        x[n - 1, 3] = np.nan
        with pytest.raises(ValueError, match=f"image_emb row {n - 1} contains NaN"):
            similarity(x, w, device="cuda")
        x[n - 1] = 0
        with pytest.raises(ValueError, match=f"image_emb row {n - 1} has zero L2 norm"):
            similarity(x, w, device="cuda")


def test_cuda_device_inputs_zero_copy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 256)).astype(np.float32)
    w = rng.standard_normal((120, 256)).astype(np.float32)
    xt = torch.from_numpy(np.concatenate([x, x], 1)).cuda()[:, :256]  # strided rows
    wt = torch.from_numpy(w).cuda().half()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = similarity(xt, wt, device="cuda", stream=stream)
        dev = similarity(xt, wt, device="cuda", stream=stream, output="device")
    np.testing.assert_array_equal(dev.logits.numpy(), got.logits)
    np.testing.assert_array_equal(torch.as_tensor(dev.topk_indices, device='cuda').cpu().numpy(), got.topk_indices)
    _check(got, similarity_reference(x, w.astype(np.float16)))
    one = similarity(xt[0], wt, device="cuda")
    assert one.logits.shape == (120,)


def test_cuda_prepared_class_embeddings():
    """A ClassEmbeddings on CUDA is scored as the float32 matrix it stands for."""
    from usclip_sdk.ops import ClassEmbeddings
    rng = np.random.default_rng(4)
    p = ClassEmbeddings(rng.standard_normal((1000, 512)).astype(np.float32))
    for n in (1, 40):  # fused and tiled-GEMM paths
        x = rng.standard_normal((n, 512)).astype(np.float32)
        for normalize in (True, False):
            kw = dict(normalize=normalize, scale=100.0 if normalize else 0.1)
            _check(similarity(x, p, device="cuda", **kw), similarity_reference(x, p, **kw), kw["scale"])
