"""A Cartesian tissue canvas in millimetres: echogenicity, attenuation and flow maps.

Anatomy and lesions are drawn here with OpenCV primitives in physical coordinates (so a round
cyst stays round after scan conversion), then resampled onto the beam grid.
Channels: ``echo`` (relative backscatter amplitude; 1 = reference parenchyma, 0 = fluid),
``atten`` (dB/cm/MHz), ``flow`` (signed axial velocity, -1..1, 0 = no flow).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .geometry import ScanGeometry
from .physics import TISSUE_ATTEN

__all__ = ["Canvas", "Site", "smooth_noise", "new_canvas"]

_SHIFT = 4  # sub-pixel bits for cv2 drawing
FLUID_ATTEN = 0.02


@dataclass
class Site:
    """Where a lesion may sit: centre (mm), half extents (mm), echogenicity of its parenchyma."""

    cx: float
    cy: float
    half_w: float
    half_h: float
    ref_echo: float = 1.0


@dataclass
class Canvas:
    geom: ScanGeometry
    x0: float
    y0: float
    mm_per_px: float
    echo: np.ndarray
    atten: np.ndarray
    flow: np.ndarray
    face_depth: np.ndarray  # depth below the probe face of every canvas pixel (mm)
    site: Site | None = None
    notes: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.echo.shape  # type: ignore[return-value]

    def px(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        # cv2 draws with pixel centres at integers; canvas pixel k covers [k, k+1) * mm.
        return ((x_mm - self.x0) / self.mm_per_px - 0.5, (y_mm - self.y0) / self.mm_per_px - 0.5)

    def pts(self, xy_mm: np.ndarray) -> np.ndarray:
        """mm polygon -> int32 cv2 points with _SHIFT fractional bits."""
        xy = np.asarray(xy_mm, dtype=np.float64).reshape(-1, 2)
        u = (xy[:, 0] - self.x0) / self.mm_per_px - 0.5
        v = (xy[:, 1] - self.y0) / self.mm_per_px - 0.5
        return np.round(np.stack([u, v], 1) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)

    def mask_poly(self, xy_mm: np.ndarray, thickness: int = -1, closed: bool = True) -> np.ndarray:
        """uint8 mask of a filled polygon (thickness -1) or a polyline of ``thickness`` px."""
        m = np.zeros(self.shape, np.uint8)
        p = self.pts(xy_mm)
        if thickness < 0:
            cv2.fillPoly(m, [p], 1, cv2.LINE_8, _SHIFT)
        else:
            cv2.polylines(m, [p], closed, 1, max(1, thickness), cv2.LINE_8, _SHIFT)
        return m

    def flow_line(self, xy_mm: np.ndarray, value: float, thickness: int) -> None:
        """Draw a polyline of ``thickness`` px straight into the flow map (a vessel).

        The same pixels as ``flow[mask_poly(xy_mm, thickness, False) > 0] = value``, without a
        canvas-sized mask per vessel (a hypervascular lesion draws a dozen).
        """
        cv2.polylines(self.flow, [self.pts(xy_mm)], False, float(value), max(1, thickness), cv2.LINE_8, _SHIFT)

    def mask_ellipse(self, cx: float, cy: float, a: float, b: float, angle_deg: float = 0.0,
                     thickness_mm: float = -1.0) -> np.ndarray:
        m = np.zeros(self.shape, np.uint8)
        u, v = self.px(cx, cy)
        s = 1 << _SHIFT
        th = -1 if thickness_mm < 0 else max(1, int(round(thickness_mm / self.mm_per_px)))
        cv2.ellipse(m, (int(u * s), int(v * s)), (max(1, int(a / self.mm_per_px * s)),
                    max(1, int(b / self.mm_per_px * s))), angle_deg, 0, 360, 1, th, cv2.LINE_8, _SHIFT)
        return m

    def paint(self, mask: np.ndarray, echo: float | np.ndarray | None = None,
              atten: float | None = None, flow: float | None = None, soft_mm: float = 0.0) -> None:
        """Set channels inside ``mask``; ``soft_mm`` feathers the edge (ill-defined borders)."""
        if soft_mm > 0:
            w = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), soft_mm / self.mm_per_px)
            if echo is not None:
                self.echo += w * (echo - self.echo)
            if atten is not None:
                self.atten += w * (np.float32(atten) - self.atten)
        else:
            # copyto(where=) writes in place, without boolean indexing's gathered temporaries
            # (as fast for a plain assignment; texture's masked multiply below is 2.4x faster).
            sel = mask > 0
            if echo is not None:
                np.copyto(self.echo, echo, casting="unsafe", where=sel)
            if atten is not None:
                np.copyto(self.atten, atten, casting="unsafe", where=sel)
        if flow is not None:
            np.copyto(self.flow, flow, casting="unsafe", where=mask > 0)

    def layer(self, top_mm: float, bottom_mm: float, echo: float, atten: float = TISSUE_ATTEN) -> np.ndarray:
        """A band parallel to the probe face (skin, fat, muscle); returns its mask."""
        sel = (self.face_depth >= top_mm) & (self.face_depth < bottom_mm)
        np.copyto(self.echo, echo, casting="unsafe", where=sel)
        np.copyto(self.atten, atten, casting="unsafe", where=sel)
        return sel.view(np.uint8)

    def texture(self, mask: np.ndarray | None, rng: np.random.Generator, amount: float,
                grain: int = 10) -> None:
        """Multiply echo by a smooth random field (parenchymal heterogeneity)."""
        t = 1.0 + amount * smooth_noise(self.shape, rng, grain)
        if mask is None:
            self.echo *= t
        else:
            np.multiply(self.echo, t, out=self.echo, where=mask > 0)


def paste(dst: np.ndarray, src: np.ndarray, where: np.ndarray) -> None:
    """dst[where] = src[where] for H x W x C images and an H x W mask, in place.

    cv2.copyTo does this ~40x faster than numpy, whose boolean indexing (or copyto with the mask
    broadcast over channels) runs a C-element inner loop per pixel.
    """
    out = cv2.copyTo(src, where.astype(np.uint8, copy=False), dst)
    if not np.shares_memory(out, dst):  # a strided view OpenCV could not write through
        dst[...] = out


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, grain: int) -> np.ndarray:
    """Zero-mean, unit-ish std smooth random field: a grain x grain grid upsampled cubically."""
    g = rng.standard_normal((grain, grain)).astype(np.float32)
    return cv2.resize(g, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def new_canvas(geom: ScanGeometry, long_side_px: int) -> Canvas:
    """A blank canvas (unit echogenicity, tissue attenuation) covering the field of view."""
    xmin, xmax, ymin, ymax = geom.bbox()
    mm = max(xmax - xmin, ymax - ymin) / float(long_side_px)
    w = int(np.ceil((xmax - xmin) / mm)) + 2
    h = int(np.ceil((ymax - ymin) / mm)) + 2
    x0, y0 = xmin - mm, ymin - mm
    xs = (x0 + (np.arange(w, dtype=np.float32) + 0.5) * mm)[None, :]
    ys = (y0 + (np.arange(h, dtype=np.float32) + 0.5) * mm)[:, None]
    face = geom.depth_below_face(np.broadcast_to(xs, (h, w)), np.broadcast_to(ys, (h, w)))
    return Canvas(geom, x0, y0, mm, np.ones((h, w), np.float32),
                  np.full((h, w), TISSUE_ATTEN, np.float32), np.zeros((h, w), np.float32),
                  np.ascontiguousarray(face, dtype=np.float32))
