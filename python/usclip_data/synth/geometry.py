"""Probe scan geometry: where each beam sample lies in the body, and scan conversion maps.

Coordinates are millimetres: x lateral (0 under the probe centre), y depth below the centre of
the probe face. Beam samples are indexed (depth i, line j). A linear probe fires parallel lines
(a rectangle); a convex probe fires lines normal to an arc of radius ``radius_mm`` (an annular
fan); a phased array steers lines from a virtual apex at the face (a sector).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ScanGeometry", "make_geometry"]


@dataclass(frozen=True)
class ScanGeometry:
    """One probe's field of view."""

    probe: str  # linear | convex | phased
    depth_mm: float
    width_mm: float = 0.0  # linear aperture
    radius_mm: float = 0.0  # convex radius of curvature (phased: 0, apex at the face)
    half_angle: float = 0.0  # radians, convex/phased

    @property
    def curved(self) -> bool:
        return self.probe != "linear"

    def bbox(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the field of view in mm."""
        if not self.curved:
            return (-self.width_mm / 2, self.width_mm / 2, 0.0, self.depth_mm)
        r0, r1, h = self.radius_mm, self.radius_mm + self.depth_mm, self.half_angle
        xmax = r1 * np.sin(h)
        ymin = r0 * np.cos(h) - r0
        return (-float(xmax), float(xmax), float(ymin), float(self.depth_mm))

    def sample_xy(self, n_depth: int, n_lines: int) -> tuple[np.ndarray, np.ndarray]:
        """Physical (x, y) of every beam sample, each float32 (n_depth, n_lines)."""
        d = np.linspace(0.0, self.depth_mm, n_depth, dtype=np.float32)[:, None]
        if not self.curved:
            x = np.linspace(-self.width_mm / 2, self.width_mm / 2, n_lines, dtype=np.float32)[None, :]
            return np.broadcast_to(x, (n_depth, n_lines)).copy(), np.broadcast_to(d, (n_depth, n_lines)).copy()
        th = np.linspace(-self.half_angle, self.half_angle, n_lines, dtype=np.float32)[None, :]
        r = d + np.float32(self.radius_mm)
        return (r * np.sin(th)).astype(np.float32), (r * np.cos(th) - self.radius_mm).astype(np.float32)

    def to_beam(self, x: np.ndarray, y: np.ndarray, n_depth: int,
                n_lines: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fractional (depth index, line index) of physical points, and the inside mask."""
        if not self.curved:
            i = y / self.depth_mm * (n_depth - 1)
            j = (x + self.width_mm / 2) / self.width_mm * (n_lines - 1)
            inside = (y >= 0) & (y <= self.depth_mm) & (np.abs(x) <= self.width_mm / 2)
        else:
            yy = y + np.float32(self.radius_mm)
            r = np.sqrt(x * x + yy * yy)
            th = np.arctan2(x, yy)
            d = r - np.float32(self.radius_mm)
            i = d / self.depth_mm * (n_depth - 1)
            j = (th + self.half_angle) / (2 * self.half_angle) * (n_lines - 1)
            inside = (d >= 0) & (d <= self.depth_mm) & (np.abs(th) <= self.half_angle)
        return i.astype(np.float32), j.astype(np.float32), inside

    def depth_below_face(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance along the beam from the probe face (layers parallel to the skin)."""
        if not self.curved:
            return y
        yy = y + np.float32(self.radius_mm)
        return np.sqrt(x * x + yy * yy) - np.float32(self.radius_mm)

    def line_pitch_mm(self, depth_mm: float, n_lines: int) -> float:
        """Lateral spacing of neighbouring lines at a depth."""
        if not self.curved:
            return self.width_mm / max(n_lines - 1, 1)
        return (self.radius_mm + depth_mm) * 2 * self.half_angle / max(n_lines - 1, 1)

    def to_dict(self) -> dict:
        return {"probe": self.probe, "depth_mm": round(self.depth_mm, 2),
                "width_mm": round(self.width_mm, 2), "radius_mm": round(self.radius_mm, 2),
                "half_angle_deg": round(float(np.degrees(self.half_angle)), 2)}


def _half_angle_for_aspect(radius_mm: float, depth_mm: float, aspect: float) -> float:
    """Half-angle whose fan has bounding-box width / height = ``aspect`` (fixed point)."""
    h = 0.5
    for _ in range(8):
        height = depth_mm + radius_mm * (1.0 - np.cos(h))
        h = float(np.arcsin(min(0.99, aspect * height / (2.0 * (radius_mm + depth_mm)))))
    return h


def make_geometry(probe: str, depth_mm: float, rng: np.random.Generator) -> ScanGeometry:
    """A plausible field of view for the probe family.

    Field width (linear) and sector width (convex, phased) are scanner controls a sonographer
    narrows to the target; they are set so the field's bounding box is 1.0-1.12 times as wide
    as it is tall. The model's input stretches that box to a square, so a near-square field
    keeps a round lesion round and an oval one oval at the model's input.
    """
    aspect = float(rng.uniform(1.0, 1.12))
    if probe == "linear":
        return ScanGeometry("linear", depth_mm, width_mm=float(np.clip(depth_mm * aspect, 25.0, 60.0)))
    if probe == "convex":
        r = float(rng.uniform(40, 60))
        return ScanGeometry("convex", depth_mm, radius_mm=r, half_angle=_half_angle_for_aspect(r, depth_mm, aspect))
    if probe == "phased":
        return ScanGeometry("phased", depth_mm, radius_mm=0.0, half_angle=float(np.arcsin(aspect / 2.0)))
    raise ValueError(f"probe: expected 'linear', 'convex' or 'phased', found {probe!r}")
