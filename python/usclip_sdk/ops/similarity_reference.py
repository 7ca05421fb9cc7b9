"""Slow, obvious numpy reference of ``usclip_sdk.ops.similarity`` (float64 inside).

Same arguments and result semantics as the native op (see ``similarity.py``); used by the
tests, never as a fallback.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .similarity import ClassEmbeddings, SimilarityResult

__all__ = ["similarity_reference"]


def _check(a, name: str, ndims: tuple) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float16):
        raise TypeError(f"{name} must be float32 or float16, found {a.dtype}")
    if a.ndim not in ndims:
        raise ValueError(f"{name} must be {ndims}-D, found shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a.astype(np.float64)


def _unit(a: np.ndarray, name: str) -> np.ndarray:
    n = np.sqrt((a * a).sum(axis=1, keepdims=True))
    if np.any(n == 0):
        raise ValueError(f"{name} row {int(np.flatnonzero(n[:, 0] == 0)[0])} has zero L2 norm")
    return a / n


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def similarity_reference(image_emb, class_emb, scale: float = 100.0, bias: float = 0.0,
                         topk: int = 5, groups: Optional[Sequence[int]] = None,
                         normalize: bool = True, device: str = "cpu") -> SimilarityResult:
    """The obvious computation, row by row; ``device`` is accepted and ignored. A
    ``ClassEmbeddings`` is scored as the matrix it stands for (``values()``: its rounded
    directions times its norms, float64)."""
    x = _check(image_emb, "image_emb", (1, 2))
    c = class_emb.values() if isinstance(class_emb, ClassEmbeddings) else _check(class_emb, "class_emb", (2,))
    one = x.ndim == 1
    x = x.reshape(1, -1) if one else x
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"class_emb has D={c.shape[1]} but image_emb has D={x.shape[1]}")
    kk = c.shape[0]
    sizes = [kk] if groups is None else [int(g) for g in groups]
    if sum(sizes) != kk or min(sizes) < 1:
        raise ValueError(f"groups must be positive sizes summing to K={kk}, found {sizes}")
    if normalize:
        x, c = _unit(x, "image_emb"), _unit(c, "class_emb")
    logits = scale * (x @ c.T) + bias
    k = min(int(topk), kk)
    probs = np.empty_like(logits)
    tidx = np.zeros((len(x), k), np.int64)
    tval = np.zeros((len(x), k))
    garg = np.zeros((len(x), len(sizes)), np.int64)
    gprob = np.zeros((len(x), len(sizes)))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for n, row in enumerate(logits):
        for g, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
            probs[n, a:b] = _softmax(row[a:b])
            garg[n, g] = a + int(np.argmax(row[a:b]))  # argmax: first (lowest) index wins
            gprob[n, g] = probs[n, garg[n, g]]
        order = sorted(range(kk), key=lambda j: (-row[j], j))[:k]  # ties: lower index first
        tidx[n] = order
        tval[n] = _softmax(row)[order]
    out = [logits.astype(np.float32), probs.astype(np.float32), tidx, tval.astype(np.float32)]
    out += [None, None] if groups is None else [garg, gprob.astype(np.float32)]
    if one:
        out = [None if a is None else a[0] for a in out]
    return SimilarityResult(*out)
