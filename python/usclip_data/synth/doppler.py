"""Colour / power Doppler: a colour box over the lesion with flow painted over the B-mode.

The box is defined on the beam grid (a depth window x a range of lines), so on a convex or
phased probe it is a sector of an annulus, as on a scanner. Flow comes from the canvas flow
channel (signed axial velocity); colour Doppler maps +v to red-yellow and -v to blue-cyan,
power Doppler maps |v| to orange-yellow. Flow 'blooms' one pixel, as low wall filters do.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import ScanGeometry

__all__ = ["DopplerBox", "doppler_overlay", "flow_colours", "FLOW_THRESHOLD"]

FLOW_THRESHOLD = 0.04


@dataclass
class DopplerBox:
    mode: str  # "color" | "power"
    scale_cm_s: float
    depth_index: tuple[int, int]
    line_index: tuple[int, int]
    bbox_px: tuple[int, int, int, int]  # x0, y0, x1, y1 inside the region image
    n_flow_pixels: int
    box_pixels: int

    def to_dict(self) -> dict:
        return {"mode": self.mode, "scale_cm_s": round(self.scale_cm_s, 1),
                "depth_index": list(self.depth_index), "line_index": list(self.line_index),
                "bbox_px": list(self.bbox_px), "n_flow_pixels": self.n_flow_pixels,
                "box_pixels": self.box_pixels}


def flow_colours(v: np.ndarray, mode: str) -> np.ndarray:
    """RGB uint8 (N, 3) for signed velocities ``v`` in -1..1."""
    a = np.clip(np.abs(v), 0, 1).astype(np.float32)
    hi = np.clip((a - 0.65) / 0.35, 0, 1)
    out = np.zeros(v.shape + (3,), np.float32)
    if mode == "power":
        out[..., 0] = 200 + 55 * a
        out[..., 1] = 70 + 170 * a
        out[..., 2] = 20 + 60 * hi
        return out.astype(np.uint8)
    pos = v >= 0
    main = 110 + 145 * a
    out[..., 0] = np.where(pos, main, 0)
    out[..., 2] = np.where(pos, 0, main)
    out[..., 1] = 230 * hi
    return out.astype(np.uint8)


def _bloom(flow: np.ndarray) -> np.ndarray:
    k = np.ones((3, 3), np.uint8)
    pos = cv2.dilate(np.maximum(flow, 0), k)
    neg = cv2.dilate(np.maximum(-flow, 0), k)
    return np.where(pos >= neg, pos, -neg)


def doppler_overlay(rgb: np.ndarray, flow: np.ndarray, inside: np.ndarray, ij: np.ndarray,
                    les, geom: ScanGeometry, grid: tuple[int, int], layout,
                    rng: np.random.Generator) -> DopplerBox:
    """Paint the colour box over ``rgb`` (region image, in place) and return its description."""
    n_depth, n_lines = grid
    bx0, bx1, by0, by1 = les.bbox_mm
    mx, my = 0.35 * (bx1 - bx0) + 2.0, 0.35 * (by1 - by0) + 2.0
    cx = np.array([bx0 - mx, bx1 + mx, bx0 - mx, bx1 + mx, (bx0 + bx1) / 2, (bx0 + bx1) / 2], np.float32)
    cy = np.array([by0 - my, by0 - my, by1 + my, by1 + my, by0 - my, by1 + my], np.float32)
    bi, bj, _ = geom.to_beam(cx, cy, n_depth, n_lines)
    i0, i1 = int(max(0, np.floor(bi.min()))), int(min(n_depth - 1, np.ceil(bi.max())))
    j0, j1 = int(max(0, np.floor(bj.min()))), int(min(n_lines - 1, np.ceil(bj.max())))
    i, j = ij
    box = inside & (i >= i0) & (i <= i1) & (j >= j0) & (j <= j1)
    mode = "power" if rng.random() < 0.3 else "color"
    f = _bloom(flow)
    show = box & (np.abs(f) > FLOW_THRESHOLD)
    rgb[show] = flow_colours(f[show], mode)
    cnts, _ = cv2.findContours(box.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(rgb, cnts, -1, (200, 200, 200), 1)
    ys, xs = np.nonzero(box)
    bb = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if xs.size else (0, 0, 0, 0)
    return DopplerBox(mode, float(rng.uniform(8, 60)), (i0, i1), (j0, j1), bb, int(show.sum()), int(box.sum()))
