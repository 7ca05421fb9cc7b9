"""The input-quality gate's figures in plain numpy and OpenCV: the definition the native kernels
(csrc/ops/gate/) implement and the tests compare against. This was usclip_sdk.quality's own
computation (~50 small numpy/cv2 calls: ~0.85 ms a 720p frame on an AVX2 EPYC) until
``ops.gate.gate_figures`` replaced it with one native pass; the figures are unrounded
(``quality.verdict`` rounds them for the report).
"""
from __future__ import annotations

import cv2
import numpy as np

from .gate import MIN_PIXELS, GateFigures, grey

__all__ = ["gate_figures_reference", "grey"]

SIDE = 96  # the strided sample's longer side, at most
CHROMA = 24  # max-min channel difference above which a pixel counts as coloured
DARK = 16  # grey level below which a pixel is dark (fluid, shadow, background)
# A region smaller than this fraction of the frame is a detection failure (a band, a box), not
# where the scan is: the gate then measures the whole frame (region detection keeps scans >= 4 %).
MIN_REGION = 0.04


def gate_figures_reference(pixels: np.ndarray, mask: np.ndarray, bbox: tuple[int, int, int, int]) -> GateFigures:
    """The gate's figures of one frame (H x W or H x W x 3 uint8) with its imaging region
    (mask: H x W, nonzero inside; bbox: (x0, y0, x1, y1), the mask's bounding box)."""
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = bbox
    st = max(1, -(-max(y1 - y0, x1 - x0) // SIDE))
    inside = mask[y0:y1:st, x0:x1:st] > 0
    # Area from the strided mask (Region.area_fraction counts the full-frame mask: 0.15 ms at 1080p).
    area = float(np.count_nonzero(inside)) * st * st / (h * w)
    whole_frame = area < MIN_REGION  # a sliver: measure the whole frame (no mask allocated)
    if whole_frame:
        x0, y0, x1, y1 = 0, 0, w, h
        st = max(1, -(-max(h, w) // SIDE))
        inside = np.ones((-(-h // st), -(-w // st)), bool)
    crop = pixels[y0:y1:st, x0:x1:st]
    g = grey(crop)
    v = g[inside]
    if v.size < MIN_PIXELS:
        return GateFigures(int(v.size), area, whole_frame)
    hist = np.bincount(v.astype(np.uint8), minlength=256)
    cdf = np.cumsum(hist)
    p99 = float(np.searchsorted(cdf, 0.99 * v.size))
    std = float(v.std())
    bright = hist[DARK:]
    flat = float(bright.max() / bright.sum()) if bright.sum() else 0.0
    # Neighbour correlation at full resolution (lag 1): each sampled pixel with its right-hand
    # neighbour (the strided sample itself would measure the correlation at lag st).
    left, right = g, grey(pixels[y0:y1:st, x0 + 1:x1 + 1:st])
    n = min(left.shape[1], right.shape[1])
    both = inside[:, :n] if whole_frame else inside[:, :n] & (mask[y0:y1:st, x0 + 1:x1 + 1:st][:, :n] > 0)
    corr = _correlation(left[:, :n][both], right[:, :n][both])
    lap = np.abs(cv2.Laplacian(g, cv2.CV_32F))[inside]
    texture = float(lap.mean() / max(std, 1e-3))
    fs = max(1, -(-max(h, w) // SIDE))
    whole = pixels[::fs, ::fs]
    if whole.ndim == 3:
        r, g_, b = whole[..., 0], whole[..., 1], whole[..., 2]
        chroma = np.maximum(np.maximum(r, g_), b).astype(np.int16) - np.minimum(np.minimum(r, g_), b)
        colour = float(np.mean(chroma > CHROMA))
    else:
        colour = 0.0
    return GateFigures(pixels=int(v.size), area_fraction=area, whole_frame=whole_frame, contrast=std,
                       mean=float(v.mean()), echo_p99=p99, dark_fraction=float(hist[:DARK].sum() / v.size),
                       colour_fraction=colour, grey_levels=int(np.count_nonzero(hist)), flat_fraction=flat,
                       correlation=corr, texture=texture, speckle_snr=_speckle_snr(g, inside))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 8:
        return 1.0
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / den if den > 0 else 1.0  # a constant region is not noise


def _speckle_snr(g: np.ndarray, inside: np.ndarray, k: int = 8) -> float:
    """Median mean/std of k x k patches fully inside the region and not dark (box filters on
    the strided sample, read at patch centres: ~30 us)."""
    if min(g.shape) < k:
        return 0.0
    c = slice(k // 2, None, k)
    m = cv2.blur(g, (k, k))[c, c]
    var = cv2.blur(g * g, (k, k))[c, c] - m * m
    full = cv2.blur(inside.astype(np.float32), (k, k))[c, c] > 0.999
    keep = full & (m > DARK) & (var > 1e-6)
    return float(np.median(m[keep] / np.sqrt(var[keep]))) if keep.any() else 0.0
