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

Class embeddings that stay fixed across calls (a classifier's prompts) can be prepared once:
``ClassEmbeddings(class_emb)`` checks them, stores each row's direction in float16 (half the
bytes every call reads) with its norm in float32, and is passed in place of ``class_emb``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from ._native import native

__all__ = ["similarity", "SimilarityResult", "ClassEmbeddings"]

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
# Up to this many image rows the CPU kernel makes one pass over the class rows, reading each
# once per call (bandwidth-bound: compact rows pay); above it, the tiles reload every class row
# N/4 times (compute-bound), and float16 rows would be widened per call. Mirrors kSmallN in
# csrc/ops/similarity/similarity_cpu.cpp (a mismatch costs speed only).
_FUSED_MAX_N = 4
# From this many multiply-adds (N x K x D) the CPU path hands the product to numpy's BLAS and
# keeps only the fused epilogue native. Measured idle on a 2-core EPYC (docs/performance.md,
# "Similarity"), K = 1000, D = 512: the tiles win at N = 8 (BLAS 0.62x wall) and tie at N = 32
# (16 M MACs), multi-threaded OpenBLAS wins at N = 256 (131 M MACs: 1.88x wall, 0.94x in
# one thread's CPU time). 2^26 (67 M) sits between; 0 sends every call to BLAS.
BLAS_MIN_MACS = 1 << 26


@dataclass(frozen=True)
class SimilarityResult:
    """Scores of N images against K classes (1-D fields when one embedding was given)."""

    logits: np.ndarray        # N x K float32: scale * cos + bias
    probs: np.ndarray         # N x K float32: softmax over K, or within each group
    topk_indices: np.ndarray  # N x k int64: largest logits over all K, best first
    topk_values: np.ndarray   # N x k float32: their probability under the all-K softmax
    group_argmax: Optional[np.ndarray] = None  # N x G int64 flat class index (groups only)
    group_probs: Optional[np.ndarray] = None   # N x G float32 within-group probability


class ClassEmbeddings:
    """K class embeddings prepared once for many ``similarity`` calls, stored in fewer bytes.

    ``similarity`` reads every class row on every call (K = 1000, D = 512: 2 MB of float32).
    This object checks ``class_emb`` once (float32/float16, 2-D, K >= 1, finite: the op's own
    messages) and keeps each row as its direction ``c_k / |c_k|`` (computed in float64) rounded
    to ``dtype`` - float16 by default: half the bytes of float32, 11 significant bits - plus its
    norm in float32. Rows are stored unit length so float16's range never clips or flushes a
    row, whatever its magnitude. A call then reads the compact rows, converting them to float32
    as they load and accumulating in float32, and computes no class norms and no class checks.
    Batches of more than 4 rows (compute-bound) read a float32 copy of the same rounded rows,
    made on the first such call, instead of widening them every call.

    It stands for the matrix ``values()`` = norm x rounded direction (float64, exact), which is
    what ``similarity_reference`` scores when given this object; against the float32 original
    the float16 rounding moves a unit-vector cosine by at most 2**-11 (about 5e-4; typically
    ~1e-5). ``dtype="float32"`` keeps full precision and only saves the per-call checks.
    Fields are read-only.
    """

    def __init__(self, class_emb, dtype="float16"):
        try:
            dt = np.dtype(dtype)
        except TypeError:
            dt = None
        if dt != _F16 and dt != _F32:
            raise TypeError(f"dtype must be float16 or float32, found {dtype!r}")
        c = _host(class_emb, "class_emb", (2,))
        if c.shape[0] < 1:
            raise ValueError("class_emb must have at least one row (K >= 1), found K=0")
        _check_class_values(c, normalize=False)  # NaN / infinite, named by row and column
        c64 = c.astype(np.float64)
        norms = np.sqrt(np.einsum("kd,kd->k", c64, c64))
        if norms.max() > np.finfo(np.float32).max:
            r = int(np.argmax(norms))
            raise ValueError(f"class_emb row {r} has L2 norm {norms[r]:.3g}, beyond float32; "
                             "rescale the class embeddings")
        zero = np.flatnonzero(norms == 0)
        self.rows = np.ascontiguousarray((c64 / np.where(norms > 0, norms, 1.0)[:, None]).astype(dt))
        r64 = self.rows.astype(np.float64)
        unit = np.sqrt(np.einsum("kd,kd->k", r64, r64))  # |rounded direction|: 1 within 2**-11
        self.norms = norms.astype(np.float32)  # |c_k|: the factor when normalize=False
        self._inv_unit = np.divide(1.0, unit, out=np.zeros_like(unit), where=unit > 0).astype(np.float32)
        self._zero_row = int(zero[0]) if zero.size else -1
        self._f32 = self._wide = None
        for a in (self.rows, self.norms, self._inv_unit):
            a.setflags(write=False)

    @property
    def shape(self) -> tuple:
        return self.rows.shape

    @property
    def dtype(self) -> np.dtype:
        return self.rows.dtype

    def values(self) -> np.ndarray:
        """The K x D float64 matrix these rows stand for: norm x rounded direction."""
        return self.rows.astype(np.float64) * self.norms.astype(np.float64)[:, None]

    def _scale(self, normalize: bool) -> np.ndarray:
        """Per-class factors for the kernel: 1/|rounded direction| (normalize) or |c_k|."""
        if not normalize:
            return self.norms
        if self._zero_row >= 0:
            raise ValueError(f"class_emb row {self._zero_row} has zero L2 norm and cannot be "
                             "normalised (normalize=True)")
        return self._inv_unit

    def _rows_for(self, n: int) -> np.ndarray:
        """The rows a CPU call with n image rows reads: compact ones for the one-pass kernel,
        else their exact float32 widening (made once; a racing second copy is harmless)."""
        if n <= _FUSED_MAX_N or self.rows.dtype == _F32:
            return self.rows
        if self._wide is None:
            wide = self.rows.astype(_F32)
            wide.setflags(write=False)
            self._wide = wide
        return self._wide

    def _matrix_f32(self) -> np.ndarray:
        """``values()`` as float32, made once (the CUDA path takes a plain matrix)."""
        if self._f32 is None:
            self._f32 = self.values().astype(np.float32)
            self._f32.setflags(write=False)
        return self._f32

    def __repr__(self) -> str:
        return f"ClassEmbeddings(K={self.shape[0]}, D={self.shape[1]}, dtype={self.dtype})"


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
    CUDA cannot run (no build, driver or device). ``class_emb`` may be a ``ClassEmbeddings``
    (prepared once; on CUDA the float32 matrix it stands for is used)."""
    s, b = float(scale), float(bias)
    if not (math.isfinite(s) and math.isfinite(b)):
        _scalars(scale, bias)
    prep = class_emb if type(class_emb) is ClassEmbeddings else None
    if device != "cpu":
        if prep is not None:
            class_emb = prep._matrix_f32()
        if type(image_emb) is np.ndarray and image_emb.ndim == 2 and image_emb.shape[0] == 0 \
                and type(class_emb) is np.ndarray:
            _check_class_values(class_emb, bool(normalize))  # host inputs: same rule as the CPU path
        from .similarity_cuda import similarity_cuda  # only CUDA callers pay for it
        return similarity_cuda(image_emb, class_emb, s, b, topk, groups, bool(normalize),
                               device, stream, output)
    x = _host(image_emb, "image_emb", (1, 2))
    c = _host(class_emb, "class_emb", (2,)) if prep is None else prep._rows_for(x.shape[0] if x.ndim == 2 else 1)
    cs = None if prep is None else prep._scale(bool(normalize))
    one = x.ndim == 1
    if one:
        x = x[None]
    kk, d = c.shape
    _check_shapes(x.shape[1], kk, d)
    k = _topk(topk, kk)
    offs = None if groups is None else _offsets(tuple(groups), tuple(map(type, groups)), kk)
    if x.shape[0] == 0 and prep is None:
        _check_class_values(c, bool(normalize))
    dots = None
    if x.shape[0] * kk * d >= BLAS_MIN_MACS:
        dots = np.matmul(x.astype(_F32, copy=False), c.astype(_F32, copy=False).T)
    out = native().similarity_cpu(x, c, s, b, bool(normalize), k, offs, dots, cs)
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
