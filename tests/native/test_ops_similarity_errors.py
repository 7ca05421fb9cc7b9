"""usclip_sdk.ops.similarity: bad inputs raise typed errors naming the argument."""
from __future__ import annotations

import numpy as np
import pytest

from usclip_sdk.errors import DeviceError
from usclip_sdk.ops import cuda_available
from usclip_sdk.ops.similarity import similarity

X = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((10, 16)).astype(np.float32)


def test_dimension_mismatch_names_both():
    with pytest.raises(ValueError, match=r"class_emb has D=8.*image_emb has D=16"):
        similarity(X, W[:, :8])


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint8, ">f4"])
def test_wrong_dtype_is_type_error(dtype):
    with pytest.raises(TypeError, match="image_emb must be float32 or float16"):
        similarity(X.astype(dtype), W)
    with pytest.raises(TypeError, match="class_emb must be float32 or float16"):
        similarity(X, W.astype(dtype))


def test_wrong_ndim():
    with pytest.raises(ValueError, match="image_emb must be 1-D or 2-D"):
        similarity(X[None], W)
    with pytest.raises(ValueError, match="class_emb must be 2-D"):
        similarity(X, W[0])


@pytest.mark.parametrize("n", [2, 9])  # fused small-N path and blocked path
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_embeddings(n, bad):
    x = np.repeat(X[:1], n, 0)
    x[n - 1, 5] = bad
    with pytest.raises(ValueError, match=rf"image_emb row {n - 1} column 5 is"):
        similarity(x, W)
    w = W.copy()
    w[7, 0] = bad
    with pytest.raises(ValueError, match=r"class_emb row 7 column 0 is"):
        similarity(x[:1], w, normalize=False)


def test_non_finite_float16():
    w = W.astype(np.float16)
    w[2, 3] = np.float16(np.inf)
    with pytest.raises(ValueError, match="class_emb row 2 column 3 is infinite"):
        similarity(X.astype(np.float16), w)


def test_zero_norm_rows_are_errors_when_normalizing():
    x = X.copy()
    x[1] = 0
    with pytest.raises(ValueError, match="image_emb row 1 has zero L2 norm"):
        similarity(x, W)
    w = W.copy()
    w[4] = 0
    with pytest.raises(ValueError, match="class_emb row 4 has zero L2 norm"):
        similarity(X, w)
    r = similarity(x, w, normalize=False, bias=2.0)  # without normalisation: just dot = 0
    assert r.logits[1, 0] == 2.0 and r.logits[0, 4] == 2.0


def test_overflowing_logits_without_normalize():
    with pytest.raises(ValueError, match="overflow float32"):
        similarity(X * np.float32(1e37), W, normalize=False)


@pytest.mark.parametrize("groups,msg", [
    ([3, 3], "groups must sum to K=10"),
    ([5, 0, 5], "groups must be positive integer sizes"),
    ([5, -1, 6], "groups must be positive integer sizes"),
    ([5, 2.5, 2.5], "groups must be positive integer sizes"),
    ([True] * 10, "groups must be positive integer sizes"),
])
def test_bad_groups(groups, msg):
    with pytest.raises(ValueError, match=msg):
        similarity(X, W, groups=groups)


def test_bad_scalars_and_topk():
    with pytest.raises(ValueError, match="scale must be finite"):
        similarity(X, W, scale=float("nan"))
    with pytest.raises(ValueError, match="bias must be finite"):
        similarity(X, W, bias=float("inf"))
    with pytest.raises(ValueError, match="topk must be >= 0"):
        similarity(X, W, topk=-1)
    with pytest.raises(TypeError, match="topk must be an int"):
        similarity(X, W, topk=2.0)


def test_empty_class_set_and_width():
    with pytest.raises(ValueError, match="at least one row"):
        similarity(X, W[:0])
    with pytest.raises(ValueError, match="D >= 1"):
        similarity(X[:, :0], W[:, :0])


def test_device_array_on_cpu_is_type_error():
    class FakeCuda:
        __cuda_array_interface__ = {"shape": (3, 16), "typestr": "<f4", "data": (1, False),
                                    "version": 3}
    with pytest.raises(TypeError, match="image_emb is a CUDA device array"):
        similarity(FakeCuda(), W)


def test_bad_device_name():
    with pytest.raises((ValueError, DeviceError)):
        similarity(X, W, device="tpu")


@pytest.mark.skipif(cuda_available(), reason="CUDA is usable here")
def test_cuda_without_cuda_raises_device_error():
    with pytest.raises(DeviceError, match="CUDA (is not usable here|kernels).*"):
        similarity(X, W, device="cuda")
