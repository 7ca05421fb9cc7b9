"""Fused batched image-text similarity: logits, softmax, top-k and per-group argmax in one call.

``similarity(image_emb, class_emb)`` scores N image embeddings against K class (prompt)
embeddings the way CLIP zero-shot classification does, in one native call:

* ``logits = scale * cos(image, class) + bias`` (``normalize=True``: both sides are L2
  normalised first; ``normalize=False``: ``scale * dot + bias``);
* ``probs``: softmax over all K classes of each row, or, when ``groups`` is given, a
  softmax inside each group of consecutive classes (``taxonomy.group_sizes()``: the nine
  diagnostic dimensions, K=93), so each group's probabilities sum to 1;
* ``topk_indices`` / ``topk_values``: the k classes with the largest logits over the whole
  set of K, best first, and their probability under the softmax over all K classes (with
  ``groups=None`` these are exactly ``probs`` at those indices; with groups they are still
  the all-K softmax, so values are comparable across groups and descending). ``topk`` larger
  than K is clamped to K; ``topk=0`` gives empty N x 0 arrays;
* ``group_argmax`` (N x G, a flat class index in 0..K-1) and ``group_probs`` (N x G, that
  class's within-group probability), only when ``groups`` is given.

Ties (equal logits) go to the lower class index, in top-k and in the group argmax.
A zero-norm row with ``normalize=True`` is an error (ValueError naming the argument and
row): it has no direction, and a silent zero vector would look like a confident answer.

A 1-D ``image_emb`` (one embedding) gives 1-D outputs (K, k, G). Inputs are float32 or
float16 (converted on load, accumulated in float32); any other dtype is a TypeError.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from ._native import native

__all__ = ["similarity", "SimilarityResult"]

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
# Above this many multiply-adds the CPU path hands the product to numpy's BLAS and keeps only
# the fused epilogue native (see docs/performance.md, "Similarity"). 0 disables BLAS.
BLAS_MIN_MACS = 1 << 62


@dataclass(frozen=True)
class SimilarityResult:
    """Scores of N images against K classes (1-D fields when one embedding was given)."""

    logits: np.ndarray        # N x K float32: scale * cos + bias
    probs: np.ndarray         # N x K float32: softmax over K, or within each group
    topk_indices: np.ndarray  # N x k int64: largest logits over all K, best first
    topk_values: np.ndarray   # N x k float32: their probability under the all-K softmax
    group_argmax: Optional[np.ndarray] = None  # N x G int64 flat class index (groups only)
    group_probs: Optional[np.ndarray] = None   # N x G float32 within-group probability


def _host(x, name: str, ndims: tuple) -> np.ndarray:
    # Fast path first (a float32 C-contiguous array: nothing to do); this face is most of the
    # cost of a batch-1 call, so it stays a handful of attribute reads.
    if type(x) is np.ndarray and x.dtype is _F32 and x.ndim in ndims and x.flags.c_contiguous:
        return x
    if type(x) is not np.ndarray:
        if hasattr(x, "__cuda_array_interface__"):
            raise TypeError(f"{name} is a CUDA device array; pass device='cuda' "
                            "or copy it to host memory")
        x = np.asarray(x)
    dt = x.dtype
    if dt != _F32 and dt != _F16:
        raise TypeError(f"{name} must be float32 or float16, found {dt}; "
                        "convert with .astype(np.float32)")
    if x.ndim not in ndims:
        raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in ndims)} "
                         f"(N x D embeddings), found shape {x.shape}")
    item = dt.itemsize
    st = x.strides
    if (x.shape[-1] > 1 and st[-1] != item) or st[0] % item:
        x = np.ascontiguousarray(x)
    return x


@lru_cache(maxsize=64)
def _offsets(groups: tuple, types: tuple, k: int) -> np.ndarray:
    # ``types`` is only part of the cache key: (1.0, 1.0) and (True,) hash and compare equal
    # to (1, 1) and (1,), so without it a cached valid tuple let float/bool sizes through.
    for g in groups:
        if type(g) is bool or not isinstance(g, (int, np.integer)) or g < 1:
            raise ValueError(f"groups must be positive integer sizes, found {g!r} in {groups}")
    if sum(groups) != k:
        raise ValueError(f"groups must sum to K={k} (the rows of class_emb), "
                         f"found sizes {groups} summing to {sum(groups)}")
    out = np.zeros(len(groups) + 1, np.int64)
    np.cumsum(groups, out=out[1:])
    out.setflags(write=False)
    return out


def _topk(topk, k: int) -> int:
    if type(topk) is bool or not isinstance(topk, (int, np.integer)):
        raise TypeError(f"topk must be an int, found {type(topk).__name__}")
    if topk < 0:
        raise ValueError(f"topk must be >= 0, found {topk}")
    return int(min(topk, k))  # k > K clamps to K


def _scalars(scale, bias) -> tuple:
    s, b = float(scale), float(bias)
    if not math.isfinite(s):
        raise ValueError(f"scale must be finite, found {scale}")
    if not math.isfinite(b):
        raise ValueError(f"bias must be finite, found {bias}")
    return s, b


def similarity(image_emb, class_emb, scale: float = 100.0, bias: float = 0.0, topk: int = 5,
               groups: Optional[Sequence[int]] = None, normalize: bool = True,
               device: str = "cpu", stream=None, output: str = "host") -> SimilarityResult:
    """Score image embeddings (N x D or D) against class embeddings (K x D); see the module
    docstring for the exact semantics. ``device`` is ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
    On CUDA the inputs may be host arrays or device arrays (``__cuda_array_interface__`` or
    DLPack: CuPy, torch, ``ops.device.DeviceArray``), ``stream`` is None (the default
    stream), an int ``cudaStream_t`` or a CuPy/torch stream, and ``output="device"`` returns
    ``DeviceArray`` fields instead of host numpy arrays (CPU ignores both). Raises
    ValueError/TypeError naming the argument, and ``usclip_sdk.errors.DeviceError`` when
    CUDA cannot run (no build, driver or device)."""
    s, b = float(scale), float(bias)
    if not (math.isfinite(s) and math.isfinite(b)):
        _scalars(scale, bias)
    if device != "cpu":
        if type(image_emb) is np.ndarray and image_emb.ndim == 2 and image_emb.shape[0] == 0 \
                and type(class_emb) is np.ndarray:
            _check_class_values(class_emb, bool(normalize))  # host inputs: same rule as the CPU path
        from .similarity_cuda import similarity_cuda  # only CUDA callers pay for it
        return similarity_cuda(image_emb, class_emb, s, b, topk, groups, bool(normalize),
                               device, stream, output)
    x = _host(image_emb, "image_emb", (1, 2))
    c = _host(class_emb, "class_emb", (2,))
    one = x.ndim == 1
    if one:
        x = x[None]
    kk, d = c.shape
    _check_shapes(x.shape[1], kk, d)
    k = _topk(topk, kk)
    offs = None if groups is None else _offsets(tuple(groups), tuple(map(type, groups)), kk)
    if x.shape[0] == 0:
        _check_class_values(c, bool(normalize))
    dots = None
    if x.shape[0] * kk * d >= BLAS_MIN_MACS:
        dots = np.matmul(x.astype(_F32, copy=False), c.astype(_F32, copy=False).T)
    out = native().similarity_cpu(x, c, s, b, bool(normalize), k, offs, dots)
    return _result(out, one)


def _check_class_values(c: np.ndarray, normalize: bool) -> None:
    """The class-embedding value checks for an empty batch (N = 0): the native kernel returns
    before reading class_emb then, and a NaN or zero row must not pass just because no image
    came with it. Same messages as the native checks (rows are few: K x D on the host)."""
    c32 = np.asarray(c, np.float32)
    bad = ~np.isfinite(c32)
    if bad.any():
        r, col = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(c32[r, col]) else "infinite"
        raise ValueError(f"class_emb row {r} column {col} is {kind}; embeddings must be finite")
    if normalize:
        zero = np.flatnonzero(~np.any(c32 != 0, axis=1))
        if zero.size:
            raise ValueError(f"class_emb row {int(zero[0])} has zero L2 norm and cannot be normalised "
                             "(normalize=True)")


def _check_shapes(dx: int, kk: int, d: int) -> None:
    if dx != d:
        raise ValueError(f"class_emb has D={d} columns but image_emb has D={dx}; "
                         "both must share the embedding width")
    if kk < 1:
        raise ValueError("class_emb must have at least one row (K >= 1), found K=0")


def _result(out: tuple, one: bool) -> SimilarityResult:
    if not one:
        return SimilarityResult(*out)
    logits, probs, ti, tv, ga, gp = out
    return SimilarityResult(logits[0], probs[0], ti[0], tv[0], None if ga is None else ga[0],
                            None if gp is None else gp[0])
