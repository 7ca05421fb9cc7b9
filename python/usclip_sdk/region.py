"""Imaging-region detection: where on a scanner screen the ultrasound image actually is.

Real frames carry burned-in text, depth scales, colour bars and UI around (and sometimes on)
the image. The model must see only the scan, so every frame goes through a Region: a bounding
box (the preprocessing kernel's ``roi``) and a full-frame mask (its ``mask``: 0 = fill).

Sources, in order of trust:
1. the DICOM Sequence of Ultrasound Regions, when it passes validation against the frame
   (it can be stale, e.g. after a resize or a crop) - ``region_from_dicom``;
2. automatic detection - ``detect_region``: the scan is the largest dense, textured area;
   text and bars are sparse strokes or flat blocks. Linear probes give a rectangle,
   convex/phased probes a fan, reconstructed as the convex hull of the detected area;
3. the whole frame, as a documented last resort (``Region.kind == "full"``).

``RegionTracker`` caches the result across the frames of a stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from .errors import InvalidInputError

__all__ = ["Region", "detect_region", "region_from_dicom", "full_region", "RegionTracker", "iou"]

# A pixel counts as "signal" above this grey level: scanners paint the background 0..~5.
_SIGNAL_LEVEL = 6
# A region smaller than this fraction of the frame is not a scan (a logo, a thumbnail).
_MIN_AREA_FRACTION = 0.04
# Local 3x3 variance below which an area is flat (background, UI block), not speckle.
_FLAT_VARIANCE = 1.0
# A component at least this fraction of the largest one, in the same columns, is another
# band of the same scan.
_BAND_FRACTION = 0.1
# Local density of textured pixels that marks the scan (text lines stay below it).
_DENSITY = 0.7
# Bounding-box fill above which the area is a rectangle (linear probe), not a fan.
_RECT_FILL = 0.93


@dataclass(frozen=True)
class Region:
    """The imaging region of a frame.

    bbox: (x0, y0, x1, y1), end-exclusive, in frame pixels - the preprocess ``roi``.
    mask: H x W uint8, 1 inside the imaging region - the preprocess ``mask``.
    kind: "linear" (rectangle), "sector" (fan), "dicom" (from the DICOM region sequence)
          or "full" (nothing better was found: the whole frame).
    """

    bbox: tuple[int, int, int, int]
    mask: np.ndarray = field(repr=False, compare=False)
    kind: str
    frame_shape: tuple[int, int]

    @property
    def area_fraction(self) -> float:
        return cv2.countNonZero(self.mask) / float(self.mask.size)

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": list(self.bbox), "kind": self.kind, "area_fraction": round(self.area_fraction, 4)}


def full_region(height: int, width: int) -> Region:
    """The whole frame (used when no scan area can be found)."""
    return Region((0, 0, width, height), np.ones((height, width), np.uint8), "full", (height, width))


def _check(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise InvalidInputError(f"frame: expected a uint8 numpy array, found "
                                f"{getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4)):
        return frame if frame.ndim == 2 or frame.shape[2] == 3 else frame[..., :3]
    raise InvalidInputError(f"frame: expected H x W or H x W x 3/4, found shape {frame.shape}")


def _gray_small(frame: np.ndarray, scale: float) -> np.ndarray:
    """Downscale first (OpenCV, fast), then take the channel maximum so Doppler colour
    (saturated red/blue) counts as signal like the grey tissue under it."""
    h, w = frame.shape[:2]
    if scale < 1.0:
        frame = cv2.resize(np.ascontiguousarray(frame), (max(8, round(w * scale)), max(8, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    if frame.ndim == 3:
        frame = cv2.max(cv2.max(frame[..., 0], frame[..., 1]), frame[..., 2])
    return frame


def detect_region(frame: np.ndarray) -> Region:
    """Find the imaging region of a scanner frame automatically.

    Steps: texture map (local variance: speckle varies pixel to pixel; the screen background,
    banners and buttons are flat) -> local density of texture in a window of ~3 % of the frame
    (speckle is dense; text strokes and scale ticks are sparse) -> the dense components that
    belong to the scan: the largest, plus those stacked above or below it (a dark band - lung
    A-line gaps, fluid, muscle - can split a scan into bands) -> their convex hull (fans and
    rectangles are convex). A hull that fills its bounding box is a linear-probe rectangle.
    """
    frame = _check(frame)
    h, w = frame.shape[:2]
    if h < 16 or w < 16:
        return full_region(h, w)
    # Work on a downscaled copy: region boundaries need ~2 px accuracy, not full resolution.
    # An integer factor keeps OpenCV's INTER_AREA on its fast path.
    small = _gray_small(frame, 1.0 / max(1, -(-max(h, w) // 320)))
    sh, sw = small.shape
    f = small.astype(np.float32)
    local_var = cv2.blur(f * f, (3, 3)) - cv2.blur(f, (3, 3)) ** 2
    signal = (local_var > _FLAT_VARIANCE).astype(np.uint8)
    k = max(5, int(round(0.03 * max(sh, sw))) | 1)
    dense = (cv2.blur(signal.astype(np.float32), (k, k)) > _DENSITY).astype(np.uint8)
    scan = _scan_components(dense, sh * sw)
    if scan is None:
        return full_region(h, w)
    # The density window moves the boundary by up to k/2; the texture itself is sharp, so
    # intersect the dilated components with it. Opening then drops text strokes and scale
    # ticks touching the scan (thinner than 5 px at this scale).
    grow = cv2.dilate(scan, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    sig_closed = cv2.morphologyEx(signal, cv2.MORPH_CLOSE,
                                  cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    refined = cv2.morphologyEx(grow & sig_closed, cv2.MORPH_OPEN,
                               cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    refined = _scan_components(refined, sh * sw) if refined.any() else None
    if refined is None:
        return full_region(h, w)
    contours, _ = cv2.findContours(refined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    x, y, bw, bh = cv2.boundingRect(hull)
    kind = "linear" if cv2.contourArea(hull) >= _RECT_FILL * bw * bh else "sector"
    small_mask = np.zeros((sh, sw), np.uint8)
    if kind == "linear":
        small_mask[y:y + bh, x:x + bw] = 1
    else:
        cv2.fillConvexPoly(small_mask, hull, 1)
    return _to_frame_region(small_mask, (h, w), kind)


def _scan_components(binary: np.ndarray, frame_area: int) -> np.ndarray | None:
    """The largest component plus every sizeable component stacked above or below it."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = 1 + int(np.argmax(areas))
    if stats[best, cv2.CC_STAT_AREA] < _MIN_AREA_FRACTION * frame_area:
        return None
    bx0 = stats[best, cv2.CC_STAT_LEFT]
    bx1 = bx0 + stats[best, cv2.CC_STAT_WIDTH]
    keep = [best]
    for i in range(1, n):
        if i == best or stats[i, cv2.CC_STAT_AREA] < _BAND_FRACTION * stats[best, cv2.CC_STAT_AREA]:
            continue
        x0 = stats[i, cv2.CC_STAT_LEFT]
        x1 = x0 + stats[i, cv2.CC_STAT_WIDTH]
        if min(x1, bx1) - max(x0, bx0) >= 0.6 * (x1 - x0):  # lies within the scan's columns
            keep.append(i)
    return np.isin(labels, keep).astype(np.uint8)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every background area not connected to the image border."""
    padded = np.pad(mask, 1)
    flood = padded.copy()
    ff_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return (mask | holes).astype(np.uint8)


def _to_frame_region(small_mask: np.ndarray, shape: tuple[int, int], kind: str) -> Region:
    h, w = shape
    mask = small_mask if small_mask.shape == (h, w) else cv2.resize(
        small_mask, (w, h), interpolation=cv2.INTER_NEAREST)
    x, y, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return full_region(h, w)
    return Region((x, y, x + bw, y + bh), np.ascontiguousarray(mask, dtype=np.uint8), kind, (h, w))


def region_from_dicom(regions: Sequence[dict[str, Any]], frame: np.ndarray,
                      min_signal: float = 0.5) -> Region | None:
    """A Region from DICOM Sequence of Ultrasound Regions entries, or None if none is valid.

    ``regions`` holds dicts with RegionLocationMinX0/MinY0/MaxX1/MaxY1 (inclusive pixel
    coordinates, as in the standard). An entry is rejected when it lies outside the frame, is
    tiny, or covers mostly background (a stale region after a resize or crop). The largest
    valid entry wins; the mask is its rectangle (DICOM regions are rectangles), intersected
    with the detected signal so a fan inside the rectangle keeps its shape.
    """
    gray = _check(frame)
    h, w = gray.shape[:2]
    best: tuple[int, tuple[int, int, int, int]] | None = None
    for r in regions:
        try:
            x0, y0 = int(r["RegionLocationMinX0"]), int(r["RegionLocationMinY0"])
            x1, y1 = int(r["RegionLocationMaxX1"]) + 1, int(r["RegionLocationMaxY1"]) + 1
        except (KeyError, TypeError, ValueError):
            continue
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            continue
        area = (x1 - x0) * (y1 - y0)
        if area < _MIN_AREA_FRACTION * h * w:
            continue
        if float((_gray_small(gray[y0:y1, x0:x1], 1.0) > _SIGNAL_LEVEL).mean()) < min_signal * 0.5:
            continue
        if best is None or area > best[0]:
            best = (area, (x0, y0, x1, y1))
    if best is None:
        return None
    x0, y0, x1, y1 = best[1]
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 1
    detected = detect_region(frame)
    inner = mask & detected.mask
    # Keep the detected shape inside the rectangle only when detection agrees with DICOM.
    if detected.kind != "full" and inner.sum() > 0.5 * detected.mask.sum():
        mask = inner
    return _to_frame_region(mask, (h, w), "dicom")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks of the same shape."""
    if a.shape != b.shape:
        raise InvalidInputError(f"iou: mask shapes differ: {a.shape} vs {b.shape}")
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


class RegionTracker:
    """Caches the region across the frames of one stream.

    A scanner's layout changes rarely (a preset or depth change), so detection runs on the
    first frame, whenever the frame size changes, and every ``refresh_every`` frames; a
    refresh that disagrees with the cached region (IoU < ``replace_below``) replaces it.
    Not thread-safe by itself: one tracker per stream.
    """

    def __init__(self, refresh_every: int = 30, replace_below: float = 0.97,
                 dicom_regions: Sequence[dict[str, Any]] | None = None):
        if refresh_every < 1:
            raise ValueError(f"refresh_every: expected >= 1, found {refresh_every}")
        self.refresh_every = refresh_every
        self.replace_below = replace_below
        self.dicom_regions = list(dicom_regions or [])
        self._region: Region | None = None
        self._since = 0
        self.detections = 0

    def __call__(self, frame: np.ndarray) -> Region:
        shape = frame.shape[:2]
        stale = self._region is None or self._region.frame_shape != shape
        if stale or self._since >= self.refresh_every:
            new = self._detect(frame)
            self.detections += 1
            if stale or iou(new.mask, self._region.mask) < self.replace_below:  # type: ignore[union-attr]
                self._region = new
            self._since = 0
        self._since += 1
        return self._region  # type: ignore[return-value]

    def _detect(self, frame: np.ndarray) -> Region:
        if self.dicom_regions:
            r = region_from_dicom(self.dicom_regions, frame)
            if r is not None:
                return r
        return detect_region(frame)
