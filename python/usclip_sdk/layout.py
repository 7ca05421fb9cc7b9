"""The scanner screen's layout: its background, what differs from it, and whether a frame
still shows the layout a region was found on.

A scanner paints its screen one flat colour; the scan, text, scales and bars differ from it.

- ``background`` and ``foreground``: that colour, from the frame border, and the max-pooled map
  of what differs from it - the first stage of region detection (usclip_sdk.region).
- ``FramePrint``: a frame sampled to at most 320 x 240 (nearest pixels, a fixed grid: the
  static screen is sampled alike in every frame), its 32 x 24 cell fingerprint (which cells
  differ from the background) and which samples differ from it.
- ``LayoutPrint``: a FramePrint and the region found on that frame. ``matches`` says whether
  another frame shows the same layout: few cells changed, nothing new appeared just outside
  the region's edge and little vanished just inside it (a depth or probe change moves that
  edge by a few pixels, which a 32 x 24 cell grid alone can miss).
- ``RegionCache``: the regions of the last 16 layouts, for frames classified one call at a time
  (``Classifier.classify``); ``region.RegionTracker`` keeps one layout for a stream.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

import numpy as np

from ._deps import cv2  # names what to install when OpenCV is missing
from .errors import InvalidInputError

if TYPE_CHECKING:
    from .region import Region

__all__ = ["check_frame", "background", "foreground", "FramePrint", "LayoutPrint", "RegionCache"]

# Border rows/columns sampled for the screen background colour.
_RING = 2
# A frame larger than this (width, height) is sampled to it before it is printed.
_SAMPLE = (320, 240)
# The fingerprint's cells (width, height), and the level by which a cell or sample (its
# brightest channel) differs from the background.
_CELLS = (32, 24)
_LEVEL = 8
# The edge bands, in samples: outside the region from 1 to 4 samples off its edge (the first
# sample is left out: detection places an edge to ~1 sample), inside from 1 to 4 samples in.
_BAND = (1, 4)
# A layout still matches when at most this fraction of the outside band changed, and at most
# this fraction of the inside band's foreground vanished (measured on 40 synthetic layouts at
# 480p, 720p and 1080p with re-speckled, re-gained content: same layout <= 0.019 and <= 0.20;
# docs/performance.md "Layout changes").
_OUT_CHANGED = 0.02
_IN_LOST = 0.25
# ...and at most this fraction of any one side's (of at least _SIDE_MIN samples; same layout
# <= 0.34 in the same measurement).
_SIDE_LOST = 0.5
_SIDE_MIN = 20


def check_frame(frame: np.ndarray) -> np.ndarray:
    """A uint8 H x W or H x W x 3 frame (the colour channels of an H x W x 4 one), else
    InvalidInputError."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise InvalidInputError(f"frame: expected a uint8 numpy array, found "
                                f"{getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4)):
        return frame if frame.ndim == 2 or frame.shape[2] == 3 else frame[..., :3]
    raise InvalidInputError(f"frame: expected H x W or H x W x 3/4, found shape {frame.shape}")


def background(frame: np.ndarray) -> tuple[tuple[int, ...], int]:
    """The screen background colour and its noise tolerance, from the frame border.

    Scanners paint the screen one flat colour (black, dark grey, dark blue...) that anything
    drawn on it - scan, text, bars - differs from. The background is the colour found along
    most of the border's four sides (a banner fills one side completely, the background
    appears on all of them); colours are binned by 8 levels so that compression noise does not
    split it. Its value is the median of its bin, its tolerance the 95th percentile of the
    deviations (0 on a clean synthetic screen, a few levels on a compressed real one)."""
    c = 1 if frame.ndim == 2 else frame.shape[2]
    f = frame.reshape(frame.shape[0], frame.shape[1], c)
    sides = [f[:_RING].reshape(-1, c), f[-_RING:].reshape(-1, c),
             f[:, :_RING].reshape(-1, c), f[:, -_RING:].reshape(-1, c)]
    weights = np.repeat([1.0 / len(x) for x in sides], [len(x) for x in sides])
    ring = np.concatenate(sides).astype(np.int32)
    packed = ring[:, 0] >> 3
    for k in range(1, c):  # 5 bits a channel
        packed |= (ring[:, k] >> 3) << (5 * k)
    sel = np.flatnonzero(packed == int(np.argmax(np.bincount(packed, weights=weights))))
    chans = [ring[sel, k] for k in range(c)]
    hists = [np.bincount(v, minlength=256) for v in chans]
    bg = [_median_u8(hh) for hh in hists]
    if all(np.count_nonzero(hh) == 1 for hh in hists):
        return tuple(bg), 0  # one exact colour: no deviation (a clean screen)
    dev = np.abs(chans[0] - bg[0])
    for v, m in zip(chans[1:], bg[1:]):
        np.maximum(dev, np.abs(v - m), out=dev)
    return tuple(bg), min(int(np.percentile(dev, 95)) + 1 if dev.any() else 0, 12)


def _median_u8(hist: np.ndarray) -> int:
    """``int(np.median(v))`` of values 0..255 from their histogram (np.median sorts)."""
    cum = np.cumsum(hist)
    n = int(cum[-1])
    hi = int(np.searchsorted(cum, n // 2, side="right"))  # the value at sorted index n // 2
    return hi if n % 2 else (int(np.searchsorted(cum, n // 2 - 1, side="right")) + hi) // 2


def foreground(frame: np.ndarray, s: int) -> np.ndarray:
    """0/1 map of pixels that differ from the background, max-pooled by ``s`` (so the faint
    noise inside a dark part of the scan survives, where averaging would erase it).

    A pixel differs when some channel is more than the tolerance off the background: the
    per-channel distance (one cv2.absdiff pass; none on a black screen) max-pooled over each
    s x (s * channels) block of the H x (W * channels) byte view - an s x s pixel block and
    its channels; partial blocks at the right and bottom edges pool what they hold."""
    bg, tol = background(frame)
    c = 1 if frame.ndim == 2 else frame.shape[2]
    frame = np.ascontiguousarray(frame)
    diff = cv2.absdiff(frame, (*bg, 0, 0, 0)[:4]) if any(bg) else frame
    return (_max_pool(diff.reshape(frame.shape[0], -1), s, s * c) > tol).astype(np.uint8)


def _max_pool(a: np.ndarray, sy: int, sx: int) -> np.ndarray:
    """Maximum over [sy * i, sy * (i + 1)) x [sx * j, sx * (j + 1)) blocks of a 2-D uint8
    array: ceil(H / sy) x ceil(W / sx). Rows and then (transposed, so that the slices stay
    contiguous) columns are pooled with strided slices: ``a`` is read once."""
    for step in (sy, sx):
        out = a[::step].copy()
        for i in range(1, step):
            part = a[i::step]
            np.maximum(out[:len(part)], part, out=out[:len(part)])
        a = cv2.transpose(out)
    return a


class FramePrint:
    """What a frame's screen shows, coarsely (~0.3-0.5 ms at 720p on a loaded 2-core box).

    shape: the frame's (height, width); cells: 24 x 32 booleans, which cells of the sampled
    frame (area means of each sample's brightest channel) differ from the background (the
    median of the border cells) by more than 8 levels; fg: the samples that do."""

    __slots__ = ("shape", "cells", "fg")

    def __init__(self, frame: np.ndarray):
        frame = check_frame(frame)
        self.shape = frame.shape[:2]
        h, w = self.shape
        small = np.ascontiguousarray(frame)
        if h * w > _SAMPLE[0] * _SAMPLE[1]:
            small = cv2.resize(small, _SAMPLE, interpolation=cv2.INTER_NEAREST)
        if small.ndim == 3:  # the brightest channel of each sample
            small = cv2.max(cv2.max(small[..., 0], small[..., 1]), small[..., 2])
        cells = cv2.resize(small, _CELLS, interpolation=cv2.INTER_AREA)
        level = int(np.median(np.concatenate([cells[0], cells[-1], cells[:, 0], cells[:, -1]])))
        self.cells = cv2.absdiff(cells, level) > _LEVEL
        self.fg = cv2.absdiff(small, level) > _LEVEL


class LayoutPrint:
    """The layout a region was found on: the frame's print, and its foreground in two bands
    along the region's edge (``_BAND``), at the print's sampling."""

    __slots__ = ("cells", "region", "_out", "_out_fg", "_in", "_side", "_per_side")

    def __init__(self, frame: FramePrint, region: Region):
        self.cells, self.region = frame.cells, region
        sh, sw = frame.fg.shape
        m = cv2.resize(region.mask, (sw, sh), interpolation=cv2.INTER_NEAREST)
        near, far = (np.ones((2 * r + 1, 2 * r + 1), np.uint8) for r in _BAND)
        out = (cv2.dilate(m, far) > 0) & (cv2.dilate(m, near) == 0)
        inside = (cv2.erode(m, near) > 0) & (cv2.erode(m, far) == 0)
        fg = frame.fg.ravel()
        self._out = np.flatnonzero(out)
        self._out_fg = fg[self._out]
        self._in = np.flatnonzero(inside.ravel() & fg)  # the inside band's foreground samples
        # ...and the side of the region's box each is nearest (left, right, top, bottom): a scan
        # that shrank on one side loses that side's band, a small part of the whole band.
        iy, ix = np.divmod(self._in, sw)
        x0, y0, bw, bh = cv2.boundingRect(m)
        self._side = np.argmin(np.stack([ix - x0, x0 + bw - ix, iy - y0, y0 + bh - iy]), axis=0)
        self._per_side = np.bincount(self._side, minlength=4)

    def matches(self, frame: FramePrint, tolerance: float) -> float | None:
        """The fraction of cells that differ when ``frame`` shows this layout (at most
        ``tolerance`` of them, and the edge bands agree), else None."""
        if frame.shape != self.region.frame_shape:
            return None
        d = float(np.count_nonzero(frame.cells != self.cells)) / self.cells.size
        if d > tolerance:
            return None
        fg = frame.fg.ravel()
        if np.count_nonzero(fg[self._out] != self._out_fg) > _OUT_CHANGED * self._out.size:
            return None  # something new just outside the edge: the scan grew or moved
        lost = ~fg[self._in]
        if np.count_nonzero(lost) > _IN_LOST * self._in.size:
            return None  # the scan's edge went dark: it shrank or moved
        side_lost = np.bincount(self._side, weights=lost, minlength=4)
        if np.any((self._per_side >= _SIDE_MIN) & (side_lost > _SIDE_LOST * self._per_side)):
            return None  # one side of the scan went dark: it shrank there
        return d


class RegionCache:
    """The regions of the last ``size`` screen layouts (thread-safe).

    A frame whose print matches a kept layout (``LayoutPrint.matches`` with ``tolerance`` of
    the cells; the closest one when several match) reuses its region and makes it the most
    recently used; any other frame goes to ``detect`` and its layout is kept, the least
    recently used one dropped. So frames from a few scanners or presets in turn cost one print
    (~0.4 ms at 720p, loaded 2-core box) once each layout has been seen. Each kept layout holds its
    full-frame mask (2 MB at 1080p). The cells alone (the old rule: at most 1 % of them)
    missed same-layout frames whose dark structures moved and matched layouts whose scan
    edge had moved by less than a cell; with the edge bands 3 % of the cells is both more
    permissive and stricter (bench/bench_region.py, docs/performance.md "Layout changes")."""

    def __init__(self, detect: Callable[[np.ndarray], Region], size: int = 16, tolerance: float = 0.03):
        if size < 1:
            raise ValueError(f"size: expected >= 1, found {size}")
        self._detect, self.size, self.tolerance = detect, size, tolerance
        self._prints: list[LayoutPrint] = []  # most recently used first
        self._lock = threading.Lock()
        self.hits = self.detections = 0

    def __call__(self, pixels: np.ndarray) -> Region:
        frame = FramePrint(pixels)
        with self._lock:
            kept = list(self._prints)
        scored = [(d, i) for i, p in enumerate(kept) if (d := p.matches(frame, self.tolerance)) is not None]
        if scored:
            best = kept[min(scored)[1]]
            with self._lock:
                if best in self._prints:
                    self._prints.remove(best)
                self._prints.insert(0, best)
                self.hits += 1
            return best.region
        region = self._detect(pixels)
        with self._lock:
            self._prints.insert(0, LayoutPrint(frame, region))
            del self._prints[self.size:]
            self.detections += 1
        return region
