"""Imaging-region detection: where on a scanner screen the ultrasound image actually is.

Real frames carry burned-in text, depth scales, colour bars and UI around (and sometimes on)
the image. The model must see only the scan, so every frame goes through a Region: a bounding
box (the preprocessing kernel's ``roi``) and a full-frame mask (its ``mask``: 0 = fill).

Sources, in order of trust:
1. the DICOM Sequence of Ultrasound Regions, when it passes validation against the frame
   (it can be stale, e.g. after a resize or a crop) - ``region_from_dicom``;
2. automatic detection - ``detect_region``: everything that differs from the flat screen
   background, the scan's body is its largest dense, non-flat area (text and ticks are thin,
   banners and keys flat), and an explicit geometry is fitted to it: a rectangle for linear
   probes, an annular sector (apex, two side rays, inner and outer arcs) for convex/phased
   ones, extended across dark parts of the scan (docs/region.md);
3. the whole frame, as a documented last resort (``Region.kind == "full"``).

``RegionTracker`` caches the result across the frames of a stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Sequence

import numpy as np

from ._deps import cv2  # names what to install when OpenCV is missing
from .errors import InvalidInputError
from .layout import FramePrint, LayoutPrint, foreground
from .layout import check_frame as _check

__all__ = ["Region", "detect_region", "region_from_dicom", "region_from_mask", "full_region", "RegionTracker",
           "iou"]

# The longer side of the working map: boundaries need ~1 % accuracy, not every pixel.
_WORK_SIDE = 320
# A scan smaller than this fraction of the frame is not a scan (a logo, a thumbnail).
_MIN_AREA_FRACTION = 0.04
# Local density of foreground pixels that marks the body of the scan (text lines stay below).
_DENSITY = 0.6
# A rectangle's side edge is the outermost column that this fraction of the rows reach.
_SIDE_SUPPORT = 0.1
# A body whose most common colour covers more than this fraction of it is a flat UI block.
_FLAT_FRACTION = 0.6
# A row (linear) or arc (fan) of the scan is at least this fraction foreground...
_SCAN_COVER = 0.5
# ...and reaches both ends of the span (within this fraction of it): text and tick rows do not.
_ANCHOR = 0.025
# A side edge within this |dx/dy| of vertical: a rectangle (linear probe), else a fan.
_VERTICAL = 0.04
# A dark band inside the scan (shadow, lung, fluid) may span up to this multiple of the body's
# extent along the beam, if a row/arc spanning the scan follows it (the far-field noise rim).
_MAX_GAP = 2.5
# An inner arc smaller than this fraction of the outer one is a sector's tip (phased array).
_APEX_SNAP = 0.15
# Angular resolution of the polar resampling around a fan's apex (samples per degree).
_PER_DEGREE = 4
# Convex-hull fill above which the fallback hull is called a rectangle.
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

    @cached_property
    def area_fraction(self) -> float:
        # Counted once per Region (~70 us at 720p): a stream or the layout cache hands the same
        # Region to every frame of a layout, and each Prediction reports it (to_dict).
        return cv2.countNonZero(self.mask) / float(self.mask.size)

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": list(self.bbox), "kind": self.kind, "area_fraction": round(self.area_fraction, 4)}


def full_region(height: int, width: int) -> Region:
    """The whole frame (used when no scan area can be found)."""
    return Region((0, 0, width, height), np.ones((height, width), np.uint8), "full", (height, width))


def region_from_mask(mask: np.ndarray, kind: str = "stored") -> Region:
    """A Region from a full-frame mask (nonzero inside), e.g. a data set's stored true mask:
    its bounding box and the mask as 0/1 uint8. An empty mask is refused."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InvalidInputError(f"mask: expected H x W, found shape {m.shape}")
    pts = cv2.findNonZero((m != 0).astype(np.uint8))
    if pts is None:
        raise InvalidInputError("mask: empty (no pixel inside the imaging region)")
    x, y, w, h = cv2.boundingRect(pts)
    return Region((x, y, x + w, y + h), (m != 0).astype(np.uint8), kind, m.shape[:2])


def _core(occ: np.ndarray, frame: np.ndarray, s: int) -> np.ndarray | None:
    """The body of the scan: the largest area densely covered with foreground that is not a
    flat block (a banner, a button bar: one colour, where speckle takes many values; black is
    left out of the count, since anechoic fluid is legitimately flat black).
    ``occ`` is ``frame``'s foreground pooled by ``s``; colours are read at the top-left pixel of
    each s x s block (``frame[::s, ::s]``)."""
    sh, sw = occ.shape
    k = max(5, int(round(0.03 * max(sh, sw))) | 1)
    dense = (cv2.blur(occ.astype(np.float32), (k, k)) > _DENSITY).astype(np.uint8)
    n, labels = cv2.connectedComponents(dense, connectivity=4)
    areas = np.bincount(labels.ravel()) if n > 24 else np.array(
        [0] + [np.count_nonzero(labels == i) for i in range(1, n)])  # few labels: compare, not index
    # One int per pixel: the RGB bytes (and an opaque alpha) read as a uint32.
    packed = frame[::s, ::s] if frame.ndim == 2 else cv2.cvtColor(
        np.ascontiguousarray(frame[::s]), cv2.COLOR_RGB2RGBA).view(np.uint32)[:, ::s, 0]
    lit = 0xF8 if frame.ndim == 2 else 0xF8F8F8  # some channel above 7
    for i in 1 + np.argsort(-areas[1:]):
        if areas[i] < _MIN_AREA_FRACTION * sh * sw:
            return None
        comp = labels == i
        vals = packed[comp]
        vals = vals[(vals & lit) != 0]
        if vals.size < 0.2 * areas[i]:
            return comp.astype(np.uint8)  # a mostly black scan (a full bladder, a cyst)
        # A colour on more than half of the values is their median: no sort, no unique.
        mid = np.partition(vals, vals.size // 2)[vals.size // 2]
        if np.count_nonzero(vals == mid) <= _FLAT_FRACTION * vals.size:
            return comp.astype(np.uint8)
    return None


def _body(occ: np.ndarray, core: np.ndarray) -> np.ndarray:
    """The core plus the sparse foreground connected to it, below the core's top: the dark
    part of a scan (lung below the pleura, shadow) keeps some noise, which a small closing
    joins up, so the side edges of the whole scan, not just of its bright part, are fitted."""
    grown = cv2.morphologyEx(occ, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    n, labels = cv2.connectedComponents(grown, connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[core > 0]] = True
    keep[0] = False
    body = _members(labels, np.flatnonzero(keep))
    # The probe face is bright, so the scan's top is in the core: never grow above it (into
    # a banner or text block that happens to touch the scan).
    body[:max(0, int(np.argmax(core.any(axis=1))) - 1)] = 0
    return body


def _members(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """0/1 uint8 map of the pixels whose label is in ``ids``: one comparison per label when
    they are few (a lookup table indexes every pixel, ~10x the cost of a comparison)."""
    if ids.size > 8:
        keep = np.zeros(int(labels.max()) + 1, np.uint8)
        keep[ids] = 1
        return keep[labels]
    out = np.zeros(labels.shape, np.uint8)
    for i in ids:
        out |= labels == i
    return out


def _fit_edge(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float]:
    """Robust straight line x = a * y + b through boundary points (RANSAC, then least squares
    on the inliers): arcs at a fan's top and bottom and notches where a dark structure touches
    the side are outliers. Returns (a, b, inlier fraction)."""
    n = ys.size
    if n < 8:
        return 0.0, float(np.median(xs)) if n else 0.0, 0.0
    i, j = _pairs(n)
    ok = np.abs(ys[j] - ys[i]) >= max(2, (ys.max() - ys.min()) // 4)
    i, j = i[ok], j[ok]
    if i.size == 0:
        return 0.0, float(np.median(xs)), 0.0
    a = (xs[j] - xs[i]) / (ys[j] - ys[i])
    b = xs[i] - a * ys[i]
    inl = np.abs(xs[None, :] - (a[:, None] * ys[None, :] + b[:, None])) <= 1.5
    m = inl[int(np.argmax(inl.sum(1)))]
    a1, b1 = np.polyfit(ys[m], xs[m], 1)
    return float(a1), float(b1), float(m.mean())


@lru_cache(maxsize=256)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC's 96 point pairs among n points, drawn from a fixed seed (the same frame gives the
    same region), kept per n: seeding a generator costs more than the fit."""
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, 96), rng.integers(0, n, 96)
    i.flags.writeable = j.flags.writeable = False
    return i, j


def _extent(occ: np.ndarray, span: tuple[int, int], lo: int, hi: int, max_gap: int,
            shrink: bool = True) -> tuple[int, int]:
    """Extent [lo, hi) along axis 0 of an occupancy map whose axis 1 crosses the scan; the
    scan spans ``span`` = [c0, c1) on axis 1.

    A position (row, or arc) belongs to the scan when at least half its span is foreground,
    it reaches both ends of the span, and it does not spill over them (a row of soft keys or a
    separator line runs past the scan's sides). Starting from the body [lo, hi), the extent
    grows outward across gaps of up to ``max_gap`` positions: dark bands inside the scan
    (shadow, lung, fluid) leave gaps, but the scan continues beyond them; text and ticks never
    span the scan from side to side. ``shrink`` lets the extent first shrink to the outermost
    such positions inside [lo, hi) (when [lo, hi) is a body that may carry merged text)."""
    c0, c1 = max(0, span[0]), min(occ.shape[1], span[1])
    n = c1 - c0
    if n <= 0:
        return lo, hi
    m = max(2, int(round(_ANCHOR * n)))
    p = occ[:, c0:c1]
    good = (p.sum(axis=1) >= _SCAN_COVER * n) & p[:, :m].any(axis=1) & p[:, -m:].any(axis=1)
    # The spill test skips m positions past each end, so a span a little narrow still passes.
    for side in (occ[:, max(0, c0 - 3 * m):max(0, c0 - m)], occ[:, c1 + m:c1 + 3 * m]):
        if side.shape[1]:
            good &= side.sum(axis=1) < 0.5 * side.shape[1]
    idx = np.flatnonzero(good)
    inside = idx[(idx >= lo) & (idx < hi)]
    if not shrink or inside.size == 0:
        a, b = lo, hi - 1
    else:
        a, b = int(inside[0]), int(inside[-1])
    for t in idx[idx > b]:
        if t - b - 1 > max_gap:
            break
        b = int(t)
    for t in idx[idx < a][::-1]:
        if a - t - 1 > max_gap:
            break
        a = int(t)
    return a, b + 1


def detect_region(frame: np.ndarray) -> Region:
    """Find the imaging region of a scanner frame automatically.

    1. Foreground: every pixel that differs from the screen background (the mode colour of the
       frame border), max-pooled to ~320 px so faint noise in dark parts of the scan survives.
    2. Body: the largest area densely covered with foreground (text, ticks and bars are thin
       or small, so their local density stays low).
    3. Side edges: robust straight lines through the left and right boundary of the body and
       the sparse foreground joined to it. A vertical side: a linear probe's rectangle;
       converging sides: a convex/phased fan whose apex is where they meet.
    4. Extent along the beam (rows, or arcs around the apex) and across it (columns, or rays):
       a row/arc belongs to the scan when it is half foreground and reaches both sides, and the
       extent grows across dark bands (shadow, lung, fluid) to the last such row/arc.
    A frame where nothing fits falls back to the body's convex hull, then to the whole frame.
    """
    frame = _check(frame)
    h, w = frame.shape[:2]
    if h < 16 or w < 16:
        return full_region(h, w)
    s = max(1, -(-max(h, w) // _WORK_SIDE))
    occ = foreground(frame, s)
    core = _core(occ, frame, s)
    if core is None:
        return full_region(h, w)
    rows, xl, xr = _row_ends(_body(occ, core))
    fl, fr = _fit_edge(rows.astype(np.float64), xl), _fit_edge(rows.astype(np.float64), xr)
    left, right = fl[:2], fr[:2]
    # The better-supported side decides: a dark structure touching one side of a rectangle
    # can bend that side's fit, never both; a fan has no vertical side.
    if abs((fl if fl[2] >= fr[2] else fr)[0]) < _VERTICAL:
        # A rectangle's sides come from the dense core: the sparse foreground joined to the
        # body can include a colour bar or ticks a few pixels off the side.
        rows, xl, xr = _row_ends(core)
        return _rectangle(occ, rows, (_outer_line(xl, -1), _outer_line(xr, 1)), s, (h, w))
    if left[0] <= -_VERTICAL and right[0] >= _VERTICAL:
        r = _sector(occ, core, rows, left, right, s, (h, w))
        if r is not None:
            return r
    return _hull_region(core, s, (h, w))


def _row_ends(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows holding the mask, and each one's first and last column (float)."""
    rows = np.flatnonzero(mask.any(axis=1))
    m = mask[rows]
    xl = np.argmax(m, axis=1).astype(np.float64)
    xr = (mask.shape[1] - 1 - np.argmax(m[:, ::-1], axis=1)).astype(np.float64)
    return rows, xl, xr


def _outer_line(xs: np.ndarray, side: int) -> int:
    """The outermost vertical line (side -1: left, 1: right) that at least ``_SIDE_SUPPORT``
    of the rows reach, and the scan's top rows too. A dark vessel or cyst touching a
    rectangle's side can hide the edge in most rows, but the rows above it (the probe face is
    bright) still reach the edge; a colour bar, ticks or text touching the side reach further,
    but in few rows, or not in the top rows. ``xs`` holds each row's extreme column, top row
    first."""
    cand = np.unique(np.round(xs))
    support = (np.abs(xs[None, :] - cand[:, None]) <= 1.5).mean(axis=1)
    ok = cand[support >= _SIDE_SUPPORT]
    if ok.size == 0:
        return int(np.median(xs))
    top = xs[:max(3, int(0.08 * xs.size))] * side
    reached = ok[[(top >= c * side - 1.5).mean() >= 0.5 for c in ok]]
    ok = reached if reached.size else ok
    return int(ok.max() if side > 0 else ok.min())


def _rectangle(occ: np.ndarray, rows: np.ndarray, sides: tuple[int, int], s: int,
               shape: tuple[int, int]) -> Region:
    """A linear probe's rectangle: side edges ``sides`` (first and last column), then rows
    and columns refined on the foreground, across dark bands."""
    x0, x1 = sides[0], sides[1] + 1
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    gap = int(_MAX_GAP * (y1 - y0))
    y0, y1 = _extent(occ, (x0, x1), y0, y1, gap)
    x0, x1 = _extent(occ.T, (y0, y1), x0, x1, int(_MAX_GAP * (x1 - x0)), shrink=False)
    y0, y1 = _extent(occ, (x0, x1), y0, y1, gap)
    h, w = shape
    # Max-pooling grew the foreground by up to s-1 pixels; take the middle of that range.
    X0, Y0 = min(w - 1, x0 * s + (s - 1) // 2), min(h - 1, y0 * s + (s - 1) // 2)
    X1, Y1 = min(w, x1 * s - (s - 1) // 2), min(h, y1 * s - (s - 1) // 2)
    if X1 <= X0 or Y1 <= Y0:
        return full_region(h, w)
    mask = np.zeros((h, w), np.uint8)
    mask[Y0:Y1, X0:X1] = 1
    return Region((X0, Y0, X1, Y1), mask, "linear", (h, w))


def _sector(occ: np.ndarray, core: np.ndarray, rows: np.ndarray, left: tuple[float, float],
            right: tuple[float, float], s: int, shape: tuple[int, int]) -> Region | None:
    """A convex/phased fan: apex where the side edges meet, then the radial extent (inner and
    outer arcs) and the angular extent (side rays) refined on the foreground in polar form."""
    (al, bl), (ar, br) = left, right
    ay = (br - bl) / (al - ar)
    ax = al * ay + bl
    if ay > rows[0] + 0.5 * (rows[-1] - rows[0]):
        return None  # the sides must meet above the body: a fan opens downward
    # Image angles (y down): the left edge points down-left (> 90 deg), the right down-right.
    # Polar maps (row = angle, column = radius) cover the fan and 15 degrees either side.
    base = int(np.floor((np.degrees(np.arctan2(1.0, ar)) - 15.0) * _PER_DEGREE))
    top = int(np.ceil((np.degrees(np.arctan2(1.0, al)) + 15.0) * _PER_DEGREE))
    a0, a1 = 15 * _PER_DEGREE, top - base - 15 * _PER_DEGREE
    if a1 - a0 < 10 * _PER_DEGREE:
        return None
    sh, sw = occ.shape
    nr = int(np.ceil(max(np.hypot(cx - ax, cy - ay) for cx in (0, sw) for cy in (0, sh)))) + 1
    th = np.radians((base + np.arange(top - base, dtype=np.float32)) / _PER_DEGREE)[:, None]
    rr = np.arange(nr, dtype=np.float32)[None, :]
    mx, my = (ax + rr * np.cos(th)).astype(np.float32), (ay + rr * np.sin(th)).astype(np.float32)
    # One resampling for both maps: the foreground in bit 0, the core in bit 1.
    both = cv2.remap(occ | (core << 1), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)
    pol, pcore = both & 1, both >> 1
    radii = np.flatnonzero(pcore[a0:a1].any(axis=0))
    if radii.size == 0:
        return None
    r0, r1 = int(radii[0]), int(radii[-1]) + 1
    gap = int(_MAX_GAP * (r1 - r0))
    m = _PER_DEGREE  # keep 1 degree off the side edges while measuring arcs
    r0, r1 = _extent(pol.T, (a0 + m, a1 - m), r0, r1, gap)
    a0, a1 = _extent(pol, (r0, r1), a0, a1, _PER_DEGREE, shrink=False)
    r0, r1 = _extent(pol.T, (a0 + m, a1 - m), r0, r1, gap)
    if r0 < _APEX_SNAP * r1:
        r0 = 0  # a phased array's sector starts at a point; pooling blurs the tip
    return _fan_region((ax, ay), (r0, r1), (base + a0, base + a1), s, shape)


def _fan_region(apex: tuple[float, float], radii: tuple[int, int], angles: tuple[int, int],
                s: int, shape: tuple[int, int]) -> Region:
    """Draw the annular sector at full resolution (sub-pixel polygon).

    ``radii`` and ``angles`` are [first, last + 1) polar samples that hold the scan, so its
    edges lie half a sample further out; max-pooling grew it by (s - 1) / 2 frame pixels,
    which comes off again (measured on synthetic fans: edges within ~1 px, no outward bias)."""
    half = (s - 1) / 2.0
    cx, cy = apex[0] * s + half, apex[1] * s + half
    rin = (radii[0] - 0.5) * s + half if radii[0] > 0 else 0.0
    rout = (radii[1] - 0.5) * s - half
    trim = np.degrees(half / max(rout, 1.0)) * 2.0  # the pooling growth, at mid radius
    th = np.radians(np.linspace((angles[0] - 0.5) / _PER_DEGREE + trim,
                                (angles[1] - 0.5) / _PER_DEGREE - trim, 181))
    outer = np.stack([cx + rout * np.cos(th), cy + rout * np.sin(th)], 1)
    inner = np.stack([cx + rin * np.cos(th[::-1]), cy + rin * np.sin(th[::-1])], 1)
    poly = np.round(np.concatenate([outer, inner]) * 16).astype(np.int32)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [poly], 1, cv2.LINE_8, 4)
    # Nothing is drawn outside the polygon's box: the bounding box is searched there only.
    lo, hi = np.maximum(poly.min(axis=0) // 16 - 1, 0), poly.max(axis=0) // 16 + 2
    x, y, bw, bh = cv2.boundingRect(mask[lo[1]:hi[1], lo[0]:hi[0]])
    if bw == 0 or bh == 0:
        return full_region(*shape)
    x, y = x + int(lo[0]), y + int(lo[1])
    return Region((x, y, x + bw, y + bh), mask, "sector", shape)


def _hull_region(core: np.ndarray, s: int, shape: tuple[int, int]) -> Region:
    """Fallback when no rectangle or fan fits: the body's convex hull."""
    contours, _ = cv2.findContours(core, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    x, y, bw, bh = cv2.boundingRect(hull)
    kind = "linear" if cv2.contourArea(hull) >= _RECT_FILL * bw * bh else "sector"
    small = np.zeros(core.shape, np.uint8)
    cv2.fillConvexPoly(small, hull, 1)
    h, w = shape
    mask = cv2.resize(small, (core.shape[1] * s, core.shape[0] * s), interpolation=cv2.INTER_NEAREST)[:h, :w]
    return _to_frame_region(np.ascontiguousarray(mask), shape, kind)


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
    frame = _check(frame)
    h, w = frame.shape[:2]
    fg = foreground(frame, 1)
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
        if float(fg[y0:y1, x0:x1].mean()) < min_signal * 0.5:
            continue
        if best is None or area > best[0]:
            best = (area, (x0, y0, x1, y1))
    if best is None:
        return None
    x0, y0, x1, y1 = best[1]
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 1
    detected = detect_region(frame)
    # DICOM regions are rectangles; a fan inside one keeps its shape, but only when detection
    # agrees with DICOM: the detected fan lies inside the rectangle and fills most of it.
    if detected.kind == "sector":
        dx0, dy0, dx1, dy1 = detected.bbox
        inner = mask & detected.mask
        if (int(inner.sum()) >= 0.9 * int(detected.mask.sum())
                and (dx1 - dx0) * (dy1 - dy0) >= 0.7 * (x1 - x0) * (y1 - y0)):
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

    A scanner's layout changes rarely (a preset, depth or probe change), so full detection
    runs on the first frame and whenever the frame size changes. Every ``refresh_every``
    frames the frame's layout print (usclip_sdk.layout: a 32 x 24 cell fingerprint of the frame
    sampled to 320 x 240, and the foreground along the region's edge) is compared with the one
    taken at the last detection; only a changed layout (more than ``tolerance`` of the cells,
    or the scan's edge moved) triggers a new detection. So a steady stream pays ~0.4 ms
    per check instead of a full detection, and latency tails stay flat.
    Not thread-safe by itself: one tracker per stream.
    """

    def __init__(self, refresh_every: int = 10, tolerance: float = 0.06,
                 dicom_regions: Sequence[dict[str, Any]] | None = None):
        if refresh_every < 1:
            raise ValueError(f"refresh_every: expected >= 1, found {refresh_every}")
        if not 0.0 <= tolerance < 1.0:
            raise ValueError(f"tolerance: expected 0 <= tolerance < 1, found {tolerance}")
        self.refresh_every = refresh_every
        self.tolerance = tolerance
        self.dicom_regions = list(dicom_regions or [])
        self._print: LayoutPrint | None = None
        self._since = 0
        self.detections = 0

    @staticmethod
    def fingerprint(frame: np.ndarray) -> np.ndarray:
        """24 x 32 booleans: which coarse cells hold something other than the background."""
        return FramePrint(frame).cells

    def __call__(self, frame: np.ndarray) -> Region:
        if self._print is None or self._print.region.frame_shape != frame.shape[:2]:
            return self._redetect(frame)
        self._since += 1
        if self._since >= self.refresh_every:
            self._since = 0
            if self._print.matches(FramePrint(frame), self.tolerance) is None:
                return self._redetect(frame)
        return self._print.region

    def _redetect(self, frame: np.ndarray) -> Region:
        region = self._detect(frame)
        self._print = LayoutPrint(FramePrint(frame), region)
        self._since = 0
        self.detections += 1
        return region

    def _detect(self, frame: np.ndarray) -> Region:
        if self.dicom_regions:
            r = region_from_dicom(self.dicom_regions, frame)
            if r is not None:
                return r
        return detect_region(frame)
