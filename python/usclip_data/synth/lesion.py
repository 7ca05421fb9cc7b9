"""Focal lesions drawn from their attributes onto the tissue canvas.

Every attribute value maps to something the physics then turns into pixels:
- shape: the outline (round, oval, lobulated harmonics, nodular cluster, tubular band,
  flattened lens, irregular multi-harmonic);
- margins: a sharp edge (optionally a thin halo) vs a feathered edge with spicules;
- echogenicity: backscatter relative to the tissue ring around the lesion;
- internal characteristics: anechoic pockets, septa, mural nodules, cystic/solid mixtures,
  calcified foci (point reflectors that also attenuate);
- posterior acoustics: the lesion's attenuation coefficient (fluid-like for enhancement,
  high for shadowing, tissue-like for none), integrated along the beams by the physics;
- vascularity: flow segments in the canvas flow channel, shown by the Doppler box.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .canvas import FLUID_ATTEN, Canvas, smooth_noise
from .case import LesionSpec
from .physics import TISSUE_ATTEN

__all__ = ["LesionRender", "draw_lesion", "ECHO_FACTOR"]

# Backscatter amplitude relative to the surrounding tissue (20 log10: -inf, -8, 0, +8 dB).
ECHO_FACTOR = {"anechoic": 0.0, "hypoechoic": 0.4, "isoechoic": 1.0, "hyperechoic": 2.6}


@dataclass
class LesionRender:
    """Where the lesion ended up on this view and what it was drawn with (for params)."""

    center_mm: tuple[float, float]
    axes_mm: tuple[float, float]
    angle_deg: float
    bbox_mm: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax
    ref_echo: float
    atten: float
    n_calcifications: int
    mask: np.ndarray  # canvas mask (uint8)

    def to_dict(self) -> dict:
        return {"center_mm": [round(v, 2) for v in self.center_mm],
                "axes_mm": [round(v, 2) for v in self.axes_mm], "angle_deg": round(self.angle_deg, 2),
                "bbox_mm": [round(v, 2) for v in self.bbox_mm], "ref_echo": round(self.ref_echo, 3),
                "atten_db_cm_mhz": round(self.atten, 3), "n_calcifications": self.n_calcifications}


def _outline(shape: str, a: float, b: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Polygons (local mm, unrotated) whose union is the lesion."""
    phi = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(phi)
    if shape in ("round", "oval"):
        r += 0.025 * np.sin(3 * phi + rng.uniform(0, 6.3))
    elif shape == "lobulated":
        k = int(rng.integers(3, 6))
        r += rng.uniform(0.13, 0.2) * np.sin(k * phi + rng.uniform(0, 6.3)) \
            + 0.05 * np.sin((k + 2) * phi + rng.uniform(0, 6.3))
    elif shape == "irregular":
        for k in range(2, 14):
            r += rng.uniform(0.05, 0.2) / k ** 0.6 * np.sin(k * phi + rng.uniform(0, 6.3))
        r += 0.04 * rng.standard_normal(phi.size)
    elif shape == "flattened":
        c, s = np.abs(np.cos(phi)), np.abs(np.sin(phi))
        r = 1.0 / (c ** 4 + s ** 4) ** 0.25  # superellipse: flat top and bottom
    elif shape == "nodular":  # a cluster of confluent nodules: a clover with notches between
        k = int(rng.integers(3, 6))
        polys = [np.stack([0.5 * a * np.cos(phi), 0.5 * b * np.sin(phi)], 1)]
        for i in range(k):
            t = 2 * np.pi * i / k + rng.uniform(-0.3, 0.3)
            rr = rng.uniform(0.42, 0.52)
            cx, cy = (1 - rr) * a * np.cos(t), (1 - rr) * b * np.sin(t)
            polys.append(np.stack([cx + rr * a * np.cos(phi), cy + rr * b * np.sin(phi)], 1))
        return polys
    elif shape == "tubular/linear":
        t = np.linspace(-1, 1, 40)
        bend = rng.uniform(-0.6, 0.6) * b
        cx, cy = a * t, bend * (t * t - 0.3)
        half = b * np.clip(np.sqrt(1 - t * t), 0.35, 1.0)
        return [np.concatenate([np.stack([cx, cy - half], 1), np.stack([cx, cy + half], 1)[::-1]])]
    else:
        raise ValueError(f"shape: unknown value {shape!r}")
    return [np.stack([a * r * np.cos(phi), b * r * np.sin(phi)], 1)]


def _place(polys: list[np.ndarray], cx: float, cy: float, angle_deg: float) -> list[np.ndarray]:
    t = np.radians(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return [p @ rot.T + np.array([cx, cy]) for p in polys]


def _ring_median(c: Canvas, mask: np.ndarray, fallback: float) -> float:
    """Median echogenicity of the tissue ring around the lesion: 'relative to surroundings'."""
    k = max(3, int(round(4.0 / c.mm_per_px)) * 2 + 1)
    ring = (cv2.dilate(mask, np.ones((k, k), np.uint8)) > 0) & (mask == 0)
    vals = c.echo[ring]
    vals = vals[vals > 0.15]  # fluid neighbours (a gallbladder lumen) do not count
    return float(np.median(vals)) if vals.size > 20 else fallback


def _spicules(c: Canvas, polys: list[np.ndarray], echo: float, rng: np.random.Generator, scale: float) -> None:
    """Radial spicules and a blurred rim: the look of an infiltrative margin."""
    ring = polys[0]
    ctr = ring.mean(0)
    for idx in rng.choice(len(ring), size=int(rng.integers(6, 12)), replace=False):
        p = ring[idx]
        d = p - ctr
        tip = p + d / max(np.linalg.norm(d), 1e-6) * scale * rng.uniform(0.25, 0.6)
        c.paint(c.mask_poly(np.array([p, tip]), max(1, int(0.8 / c.mm_per_px)), False), echo=echo)


def _internal(c: Canvas, spec: LesionSpec, mask: np.ndarray, solid: float, ref: float,
              a: float, b: float, ctr: tuple[float, float], ang: float, rng: np.random.Generator) -> int:
    """Internal characteristics inside the lesion; returns the number of calcified foci."""
    inside = cv2.erode(mask, np.ones((3, 3), np.uint8))
    tags = set(spec.internal)
    fluid_base = spec.echogenicity == "anechoic"
    if "mixed cystic and solid mass" in tags or "complex cystic solid" in tags:
        n = smooth_noise(c.shape, rng, 12 if "complex cystic solid" in tags else 7)
        cyst = (n > (0.1 if "complex cystic solid" in tags else -0.1)) & (inside > 0)  # ~half fluid
        c.echo[cyst] = 0.12 * ref if "complex cystic solid" in tags else 0.0  # debris vs clear
        c.atten[cyst] = FLUID_ATTEN
    if "cystic components" in tags and not fluid_base:
        for _ in range(int(rng.integers(1, 4))):
            rr = rng.uniform(0.15, 0.3) * b
            px = ctr[0] + rng.uniform(-0.5, 0.5) * a
            py = ctr[1] + rng.uniform(-0.4, 0.4) * b
            c.paint(c.mask_ellipse(px, py, rr * 1.3, rr, ang) & inside, echo=0.0, atten=FLUID_ATTEN)
    if "solid components" in tags and (fluid_base or spec.diagnosis in ("cyst", "fluid collection")):
        side = rng.uniform(0, 2 * np.pi)  # mural nodule on the wall
        px, py = ctr[0] + 0.6 * a * np.cos(side), ctr[1] + 0.6 * b * np.sin(side)
        c.paint(c.mask_ellipse(px, py, 0.35 * b, 0.3 * b) & inside, echo=max(solid, ref))
    if "septations" in tags or "complex cystic solid" in tags:
        thick = 1.4 if "complex cystic solid" in tags else 0.6
        for _ in range(int(rng.integers(1, 4))):
            t1, t2 = rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
            p = np.array([[ctr[0] + a * np.cos(t1), ctr[1] + b * np.sin(t1)],
                          [ctr[0] + a * np.cos(t2), ctr[1] + b * np.sin(t2)]])
            line = c.mask_poly(p, max(1, int(round(thick / c.mm_per_px))), False) & inside
            c.paint(line, echo=3.0 * max(ref, 0.8))
    n_calc = 0
    if "calcifications" in tags:
        n_calc = int(rng.integers(3, 10))
        for _ in range(n_calc):
            rr = rng.uniform(0.35, 1.1)
            px = ctr[0] + rng.uniform(-0.65, 0.65) * a
            py = ctr[1] + rng.uniform(-0.55, 0.55) * b
            c.paint(c.mask_ellipse(px, py, rr, rr) & inside, echo=18.0 * max(ref, 0.8), atten=10.0)
    return n_calc


def _posterior_atten(spec: LesionSpec, f0_mhz: float, thick_mm: float) -> float:
    if spec.posterior == "enhancement":
        return FLUID_ATTEN if spec.echogenicity in ("anechoic",) else 0.1
    if spec.posterior == "shadowing":
        target_db = 22.0  # round-trip loss across the lesion: a clear shadow
        return max(TISSUE_ATTEN, target_db / (2.0 * f0_mhz * max(thick_mm, 2.0) / 10.0))
    return TISSUE_ATTEN


def _flow(c: Canvas, spec: LesionSpec, ctr: tuple[float, float], a: float, b: float,
          rng: np.random.Generator) -> None:
    """Flow segments for the vascularity level (central and peripheral vessels)."""
    plan = {"no": (0, 0.0), "reduced/diminished": (2, 0.3), "normal/regular": (4, 0.55),
            "increased": (11, 0.85), "indeterminate/inhomogeneous vascularity": (7, 0.7)}[spec.vascularity]
    n, vmax = plan
    for k in range(n):
        if spec.vascularity.startswith("indeterminate"):
            base = rng.uniform(-0.3, 0.3, 2) * (a, b) + rng.uniform(0, 0.45, 2) * (a, b)  # one patchy side
        elif spec.vascularity == "normal/regular":
            t = 2 * np.pi * k / n  # peripheral rim vessels, regularly spaced
            base = np.array([0.95 * a * np.cos(t), 0.95 * b * np.sin(t)])
        else:
            base = rng.uniform(-0.8, 0.8, 2) * (a, b)
        steps = int(rng.integers(3, 7)) if n > 2 else 2
        walk = np.cumsum(rng.normal(0, 0.18, (steps, 2)) * (a, b), 0)
        pts = base + walk + np.array(ctr)
        v = vmax * rng.uniform(0.6, 1.0) * (1 if rng.random() < 0.5 else -1)
        w = max(1, int(round(rng.uniform(0.5, 1.2) / c.mm_per_px)))
        m = c.mask_poly(pts, w, False)
        c.flow[m > 0] = v


def draw_lesion(c: Canvas, spec: LesionSpec, f0_mhz: float, view_rng: np.random.Generator) -> LesionRender:
    """Paint ``spec`` at the canvas site; the view rng varies pose slightly between views."""
    if c.site is None:
        raise ValueError("canvas: the anatomy set no lesion site")
    rng = np.random.default_rng(spec.seed)  # the same lesion in every view
    site = c.site
    xmin, xmax, _, D = c.geom.bbox()
    scale = min(1.0, 0.55 * (xmax - xmin) / spec.size_mm[0], 0.4 * D / spec.size_mm[1])
    scale *= view_rng.uniform(0.9, 1.05)  # out-of-plane cut differs between views
    a, b = spec.size_mm[0] / 2 * scale, spec.size_mm[1] / 2 * scale
    ang = spec.angle_deg + view_rng.normal(0.0, 6.0)
    cx = site.cx + spec.center[0] * 2 * site.half_w + view_rng.normal(0, 1.5)
    cy = site.cy + (spec.center[1] - 0.5) * 2 * site.half_h
    cy = float(np.clip(cy, b + 3.0, 0.8 * D - b))
    lim = (xmax - xmin) / 2 * 0.8 - a
    cx = float(np.clip(cx, -max(lim, 0.0), max(lim, 0.0)))
    polys = _place(_outline(spec.shape, a, b, rng), cx, cy, ang)
    mask = np.zeros(c.shape, np.uint8)
    for p in polys:
        mask |= c.mask_poly(p)
    ref = _ring_median(c, mask, site.ref_echo)
    ill = spec.margins.startswith("ill")
    if spec.echogenicity == "mixed echogenicity":
        mix = smooth_noise(c.shape, rng, 10)
        solid = np.where(mix > 0, 2.2 * ref, 0.35 * ref).astype(np.float32)
    else:
        solid = np.full(c.shape, ECHO_FACTOR[spec.echogenicity] * ref, np.float32)
    if not ill and spec.echogenicity in ("isoechoic", "hyperechoic") and spec.diagnosis != "cyst":
        halo = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(0.8 / c.mm_per_px)))
        c.paint(halo, echo=0.3 * ref)  # thin hypoechoic halo around a well-defined solid nodule
    soft = max(1.0, 0.18 * min(a, b)) if ill else 0.0
    atten = _posterior_atten(spec, f0_mhz, 2 * b)
    c.paint(mask, echo=solid, atten=atten, soft_mm=soft)
    if ill and spec.diagnosis in ("mass", "nodule"):
        _spicules(c, polys, float(np.mean(solid[mask > 0])) if mask.any() else ref, rng, min(a, b))
    if spec.echogenicity == "isoechoic":
        c.texture(mask, rng, 0.35, grain=24)  # coarser texture is what sets it apart
    n_calc = _internal(c, spec, mask, float(np.median(solid[mask > 0])) if mask.any() else ref,
                       ref, a, b, (cx, cy), ang, rng)
    if spec.posterior is None:
        c.atten[mask > 0] = TISSUE_ATTEN  # no posterior feature: tissue-like path, whatever inside
    c.flow[mask > 0] = 0.0  # the lesion displaces whatever vessel the anatomy put here
    _flow(c, spec, (cx, cy), a, b, rng)
    ys, xs = np.nonzero(mask)
    bb = (c.x0 + (xs.min() + 0.5) * c.mm_per_px, c.x0 + (xs.max() + 0.5) * c.mm_per_px,
          c.y0 + (ys.min() + 0.5) * c.mm_per_px, c.y0 + (ys.max() + 0.5) * c.mm_per_px) if xs.size \
        else (cx - a, cx + a, cy - b, cy + b)
    return LesionRender((cx, cy), (a, b), ang, tuple(float(v) for v in bb), ref, atten, n_calc, mask)
