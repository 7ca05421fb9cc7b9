"""CUDA dispatch of ``usclip_sdk.ops.similarity``.

Operands are host numpy arrays (uploaded) or device arrays read zero-copy through
``__cuda_array_interface__`` or DLPack (CuPy, torch, ``ops.device.DeviceArray``); rows may
have any stride, elements within a row must be contiguous. Results come back as host numpy
arrays (``output="host"``) or as ``DeviceArray`` fields (``output="device"``, always 2-D,
also for a 1-D ``image_emb``). Either way the call synchronises its stream before returning,
so a NaN input or a zero-norm row is always reported as a ValueError, never returned as
numbers. One difference from the CPU: with ``normalize=True`` a row whose L2 norm is outside
1e-15..1e15 is a ValueError on CUDA (the CPU rescales such rows in double precision).
Softmax uses ``__expf``; probabilities agree with the reference within 2e-4.
"""
from __future__ import annotations

import numpy as np

from .device import DeviceArray, device_view, is_device_array, parse_device, require_cuda, stream_handle
from .similarity import SimilarityResult, _check_shapes, _host, _offsets, _result, _topk
from ._native import native

__all__ = ["similarity_cuda"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float16))


def _ordinal(device) -> int:
    ordinal = parse_device(device)  # the ops' one device convention (ops/device.py)
    if ordinal is None:
        raise ValueError(f"device: expected 'cuda' or 'cuda:N' here, found {device!r}")
    return ordinal


def _device_operand(obj, name: str, ndims: tuple, stream: int):
    v = device_view(obj, name, stream)
    if v.dtype not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float16, found {v.dtype}")
    if len(v.shape) not in ndims:
        raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in ndims)} "
                         f"(N x D embeddings), found shape {v.shape}")
    item = v.dtype.itemsize
    if (v.shape[-1] > 1 and v.strides[-1] != item) or v.strides[0] % item:
        raise ValueError(f"{name} must have contiguous rows on the device, found byte strides "
                         f"{v.strides}; make it contiguous first")
    rows = v.shape[0] if len(v.shape) == 2 else 1
    row = v.strides[0] // item if len(v.shape) == 2 else v.shape[-1]
    return (v.ptr, rows, v.shape[-1], row, v.dtype == _FLOATS[1]), v.shape, v.owner


def _operand(x, name: str, ndims: tuple, stream: int):
    if is_device_array(x):
        return _device_operand(x, name, ndims, stream)
    h = np.ascontiguousarray(_host(x, name, ndims))
    return (h.reshape(1, -1) if h.ndim == 1 else h), h.shape, h


def _device_outputs(n: int, k: int, topk: int, g: int, stream: int) -> list:
    f32, i64 = np.float32, np.int64
    outs = [DeviceArray((n, k), f32, stream), DeviceArray((n, k), f32, stream),
            DeviceArray((n, topk), i64, stream), DeviceArray((n, topk), f32, stream)]
    outs += [DeviceArray((n, g), i64, stream), DeviceArray((n, g), f32, stream)] if g else [None] * 2
    return outs


def similarity_cuda(image_emb, class_emb, scale: float, bias: float, topk, groups,
                    normalize: bool, device, stream, output: str) -> SimilarityResult:
    """The CUDA branch of ``similarity``."""
    ordinal = _ordinal(device)
    if output not in ("host", "device"):
        raise ValueError(f"output must be 'host' or 'device', found {output!r}")
    require_cuda()
    st = stream_handle(stream)
    x, xshape, keep_x = _operand(image_emb, "image_emb", (1, 2), st)
    c, cshape, keep_c = _operand(class_emb, "class_emb", (2,), st)
    kk, d = cshape
    _check_shapes(xshape[-1], kk, d)
    k = _topk(topk, kk)
    offs = None if groups is None else _offsets(tuple(groups), tuple(map(type, groups)), kk)
    if output == "host":
        out = native().similarity_cuda(x, c, scale, bias, normalize, k, offs, st, ordinal)
        return _result(out, len(xshape) == 1)
    n = 1 if len(xshape) == 1 else xshape[0]
    outs = _device_outputs(n, kk, k, 0 if offs is None else len(offs) - 1, st)
    ptrs = tuple(0 if a is None else a.ptr for a in outs)
    native().similarity_cuda(x, c, scale, bias, normalize, k, offs, st, ordinal, ptrs)
    del keep_x, keep_c  # the inputs (or DLPack capsules) stay alive until the call is done
    return SimilarityResult(*outs)
