"""Input-quality gate: is there an ultrasound image in this frame at all?

Cheap statistics of the imaging region, measured by one native pass (usclip_sdk.ops.gate, whose
numpy reference defines them) on a strided sample of at most ~96 px a side, which is enough for
every figure. A frame fails the gate - status "no_image" - when any check fails; every figure is
returned, so a device maker can apply a policy of their own. The limits were set on synthetic
scans, pydicom's real scanner frames and generated non-ultrasound frames (docs/triage.md gives the
figures and each kind's pass rate):

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

from .ops.gate import MIN_PIXELS, GateFigures, gate_figures, grey
from .region import Region

__all__ = ["Quality", "GateLimits", "DEFAULT_LIMITS", "assess", "verdict", "FrozenDetector"]


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


def assess(pixels: np.ndarray, region: Region, limits: GateLimits = DEFAULT_LIMITS) -> Quality:
    """Gate one frame (H x W or H x W x 3 uint8) with its imaging region."""
    # One native pass (ops.gate: ~50 small numpy/cv2 calls before, ~0.85 ms at 720p).
    return verdict(gate_figures(pixels, region.mask, region.bbox), region.kind, limits)


def verdict(f: GateFigures, region_kind: str, limits: GateLimits = DEFAULT_LIMITS) -> Quality:
    """The verdict and the reported (rounded) figures from measured ones (``gate_figures`` or
    its numpy reference)."""
    if f.pixels < MIN_PIXELS:
        return Quality(False, (f"region: fewer than {MIN_PIXELS} pixels inside the imaging region",),
                       {"region": "full" if f.whole_frame else region_kind, "pixels": int(f.pixels)})
    std, p99, colour, flat, corr, texture = (f.contrast, f.echo_p99, f.colour_fraction, f.flat_fraction,
                                             f.correlation, f.texture)
    figures = {"region": region_kind, "area_fraction": round(f.area_fraction, 4),
               "measured_on": "frame" if f.whole_frame else "region",
               "contrast": round(std, 3), "echo_p99": p99, "mean": round(f.mean, 3),
               "dark_fraction": round(f.dark_fraction, 4),
               "colour_fraction": round(colour, 4), "grey_levels": int(f.grey_levels),
               "flat_fraction": round(flat, 4), "correlation": round(corr, 4),
               "texture": round(texture, 4), "speckle_snr": round(f.speckle_snr, 3)}
    # Messages are formatted only for the checks that fail (formatting all seven cost ~8 us).
    lim, levels, failed = limits, figures["grey_levels"], []
    if std < lim.min_contrast:
        failed.append(f"contrast: grey-level std {std:.2f} < {lim.min_contrast} (blank or constant frame)")
    if p99 < lim.min_echo:
        failed.append(f"echo: 99th percentile grey level {p99:.0f} < {lim.min_echo:.0f} (no echo)")
    if colour > lim.max_colour:
        failed.append(f"colour: {colour:.2f} of the frame is coloured > {lim.max_colour} (not a grey-scale scan)")
    if levels < lim.min_grey_levels:
        failed.append(f"grey_levels: {levels} distinct < {lim.min_grey_levels} (graphics)")
    if flat > lim.max_flat:
        failed.append(f"flat: {flat:.2f} of non-dark pixels share one grey level > {lim.max_flat} (document or UI)")
    if corr < lim.min_correlation:
        failed.append(f"correlation: neighbour correlation {corr:.2f} < {lim.min_correlation} "
                      "(uncorrelated noise, not speckle)")
    if texture < lim.min_texture:
        failed.append(f"texture: {texture:.3f} < {lim.min_texture} (no fine structure: gradient or smooth render)")
    return Quality(not failed, tuple(failed), figures)


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
        thumb = cv2.resize(grey(pixels[y0:y1, x0:x1]), (64, 64), interpolation=cv2.INTER_AREA)
        if self._last is not None and self._last.shape == thumb.shape:
            self.difference = float(np.mean(np.abs(thumb - self._last)))
            self.unchanged = self.unchanged + 1 if self.difference < self.tolerance else 0
        self._last = thumb
        return self.frozen

    @property
    def frozen(self) -> bool:
        return self.unchanged >= self.after
