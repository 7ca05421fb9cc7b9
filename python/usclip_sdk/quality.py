"""Input-quality gate: is there an ultrasound image in this frame at all?

Cheap statistics of the imaging region (about 0.2 ms a frame on one core; a strided sample
of at most ~96 px a side is enough for every figure). A frame fails the gate - status
"no_image" - when any check fails; every figure is returned, so a device maker can apply a
policy of their own. The limits were set on synthetic scans, pydicom's real scanner frames and
generated non-ultrasound frames (docs/triage.md gives the figures and each kind's pass rate):

- contrast: a blank, constant or near-constant frame (probe in air, no signal, black screen);
- echo: nothing brighter than a few grey levels (a black frame with a little noise);
- colour: most of the frame's pixels are coloured. Ultrasound is grey; Doppler colour sits in
  a box inside a grey image, so a mostly colourful frame is a photo or a UI screen;
- grey_levels: a handful of distinct grey levels (checkerboards, graphics, masks);
- flat: one non-dark grey value covers most of the region (documents, UI panels). Fluid and
  shadow are dark, so dark pixels are left out of this count;
- correlation: neighbouring pixels uncorrelated (iid noise). Speckle is correlated over its
  resolution cell, which spans several pixels on every scanner;
- texture: no high-frequency content at all (gradients, smooth renders).

Also reported, not decided on: the region kind ("full" when no imaging region was found - a
tightly cropped scan has no screen around it, so that alone cannot mean "no image"), its area
fraction (a region under 4 % of the frame is a detection failure, so the figures are then
measured on the whole frame: ``measured_on``), the median speckle mean/std ratio of 8x8
patches (fully developed speckle on the linear envelope is 1.91; log compression raises it),
and the dark fraction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import cv2
import numpy as np

from .region import Region

__all__ = ["Quality", "GateLimits", "DEFAULT_LIMITS", "assess", "FrozenDetector"]

_SIDE = 96  # the strided sample's longer side, at most
_CHROMA = 24  # max-min channel difference above which a pixel counts as coloured
_DARK = 16  # grey level below which a pixel is dark (fluid, shadow, background)
# A region smaller than this fraction of the frame is a detection failure (a band, a box), not
# where the scan is: the gate then measures the whole frame (region detection keeps scans >= 4 %).
_MIN_REGION = 0.04


@dataclass(frozen=True)
class GateLimits:
    """Where each check fails (see the module docstring for why each exists)."""

    min_contrast: float = 3.0  # std of the region's grey levels
    min_echo: float = 24.0  # 99th percentile grey level
    max_colour: float = 0.5  # fraction of the frame's pixels that are coloured
    min_grey_levels: int = 32  # distinct grey levels in the region
    max_flat: float = 0.6  # fraction of non-dark pixels at the most common grey level
    min_correlation: float = 0.3  # lag-1 correlation of horizontal neighbours
    min_texture: float = 0.06  # mean |Laplacian| / std


DEFAULT_LIMITS = GateLimits()


@dataclass(frozen=True)
class Quality:
    """The gate's verdict: ``ok``, the failed checks (messages naming figure and limit) and
    every figure measured."""

    ok: bool
    failed: tuple[str, ...]
    figures: Mapping[str, Any] = field(default_factory=dict)


def _grey(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    # Channel maxima/means with numpy's axis=2 reductions cost ~1 ms a frame; elementwise is ~20x faster.
    r, g, b = (pixels[..., i].astype(np.float32) for i in range(3))
    return (r + g + b) * np.float32(1.0 / 3.0)


def assess(pixels: np.ndarray, region: Region, limits: GateLimits = DEFAULT_LIMITS) -> Quality:
    """Gate one frame (H x W or H x W x 3 uint8) with its imaging region."""
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = region.bbox
    st = max(1, -(-max(y1 - y0, x1 - x0) // _SIDE))
    inside = region.mask[y0:y1:st, x0:x1:st] > 0
    # Area from the strided mask (Region.area_fraction counts the full-frame mask: 0.15 ms at 1080p).
    area = float(np.count_nonzero(inside)) * st * st / (h * w)
    whole_frame = area < _MIN_REGION  # a sliver: measure the whole frame (no mask allocated)
    if whole_frame:
        x0, y0, x1, y1 = 0, 0, w, h
        st = max(1, -(-max(h, w) // _SIDE))
        inside = np.ones((-(-h // st), -(-w // st)), bool)
    crop = pixels[y0:y1:st, x0:x1:st]
    g = _grey(crop)
    v = g[inside]
    if v.size < 16:
        return Quality(False, ("region: fewer than 16 pixels inside the imaging region",),
                       {"region": "full" if whole_frame else region.kind, "pixels": int(v.size)})
    hist = np.bincount(v.astype(np.uint8), minlength=256)
    cdf = np.cumsum(hist)
    p99 = float(np.searchsorted(cdf, 0.99 * v.size))
    std = float(v.std())
    bright = hist[_DARK:]
    flat = float(bright.max() / bright.sum()) if bright.sum() else 0.0
    # Neighbour correlation at full resolution (lag 1): each sampled pixel with its right-hand
    # neighbour (the strided sample itself would measure the correlation at lag st).
    left, right = g, _grey(pixels[y0:y1:st, x0 + 1:x1 + 1:st])
    n = min(left.shape[1], right.shape[1])
    both = inside[:, :n] if whole_frame else inside[:, :n] & (region.mask[y0:y1:st, x0 + 1:x1 + 1:st][:, :n] > 0)
    corr = _correlation(left[:, :n][both], right[:, :n][both])
    lap = np.abs(cv2.Laplacian(g, cv2.CV_32F))[inside]
    texture = float(lap.mean() / max(std, 1e-3))
    fs = max(1, -(-max(h, w) // _SIDE))
    whole = pixels[::fs, ::fs]
    if whole.ndim == 3:
        r, g_, b = whole[..., 0], whole[..., 1], whole[..., 2]
        chroma = np.maximum(np.maximum(r, g_), b).astype(np.int16) - np.minimum(np.minimum(r, g_), b)
        colour = float(np.mean(chroma > _CHROMA))
    else:
        colour = 0.0
    figures = {"region": region.kind, "area_fraction": round(area, 4),
               "measured_on": "frame" if whole_frame else "region",
               "contrast": round(std, 3), "echo_p99": p99, "mean": round(float(v.mean()), 3),
               "dark_fraction": round(float(hist[:_DARK].sum() / v.size), 4),
               "colour_fraction": round(colour, 4), "grey_levels": int(np.count_nonzero(hist)),
               "flat_fraction": round(flat, 4), "correlation": round(corr, 4),
               "texture": round(texture, 4), "speckle_snr": round(_speckle_snr(g, inside), 3)}
    lim, levels = limits, figures["grey_levels"]
    checks = (
        (std < lim.min_contrast, f"contrast: grey-level std {std:.2f} < {lim.min_contrast} (blank or constant frame)"),
        (p99 < lim.min_echo, f"echo: 99th percentile grey level {p99:.0f} < {lim.min_echo:.0f} (no echo)"),
        (colour > lim.max_colour,
         f"colour: {colour:.2f} of the frame is coloured > {lim.max_colour} (not a grey-scale scan)"),
        (levels < lim.min_grey_levels, f"grey_levels: {levels} distinct < {lim.min_grey_levels} (graphics)"),
        (flat > lim.max_flat,
         f"flat: {flat:.2f} of non-dark pixels share one grey level > {lim.max_flat} (document or UI)"),
        (corr < lim.min_correlation,
         f"correlation: neighbour correlation {corr:.2f} < {lim.min_correlation} (uncorrelated noise, not speckle)"),
        (texture < lim.min_texture,
         f"texture: {texture:.3f} < {lim.min_texture} (no fine structure: gradient or smooth render)"),
    )
    failed = tuple(msg for bad, msg in checks if bad)
    return Quality(not failed, failed, figures)


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
    keep = full & (m > _DARK) & (var > 1e-6)
    return float(np.median(m[keep] / np.sqrt(var[keep]))) if keep.any() else 0.0


class FrozenDetector:
    """Counts how many consecutive frames of a stream left the imaging region unchanged.

    A live scan always changes: speckle decorrelates with the slightest probe or tissue motion
    and electronic noise alone moves pixels by several grey levels. A frozen scanner (or an
    unplugged cable behind a still last frame) repeats the image exactly, up to codec noise,
    so a mean absolute difference below ``tolerance`` grey levels on a 64 x 64 thumbnail of the
    region counts as "unchanged". ``frozen`` once ``after`` frames in a row were unchanged.
    """

    def __init__(self, after: int = 10, tolerance: float = 0.5):
        if after < 1:
            raise ValueError(f"after: expected >= 1, found {after}")
        self.after, self.tolerance = after, tolerance
        self._last: np.ndarray | None = None
        self.unchanged = 0
        self.difference = float("nan")

    def update(self, pixels: np.ndarray, region: Region) -> bool:
        """Add a frame; True while the feed is judged frozen."""
        x0, y0, x1, y1 = region.bbox
        thumb = cv2.resize(_grey(pixels[y0:y1, x0:x1]), (64, 64), interpolation=cv2.INTER_AREA)
        if self._last is not None and self._last.shape == thumb.shape:
            self.difference = float(np.mean(np.abs(thumb - self._last)))
            self.unchanged = self.unchanged + 1 if self.difference < self.tolerance else 0
        self._last = thumb
        return self.frozen

    @property
    def frozen(self) -> bool:
        return self.unchanged >= self.after
