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

# Backscatter amplitude relative to the surrounding tissue (20 log10: -inf, -10, 0, +9.5 dB):
# a step of ~10 dB is about twice the speckle's own spread in dB, so the class survives the
# averaging of a 128 px input.
ECHO_FACTOR = {"anechoic": 0.0, "hypoechoic": 0.32, "isoechoic": 1.0, "hyperechoic": 3.0}


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
    ipx = input_pixel_mm(c.geom)  # septa and foci at least ~1.5 model-input pixels across
    fluid_base = spec.echogenicity == "anechoic"
    if "mixed cystic and solid mass" in tags or "complex cystic solid" in tags:
        complex_ = "complex cystic solid" in tags
        n = smooth_noise(c.shape, rng, 12 if complex_ else 7)
        # mixed: clear (black) pockets, ~40 %, in a solid part at least as bright as the
        # tissue; complex: mostly fluid (~65 %) full of low-level echoes (debris), thick septa.
        ins = inside > 0
        cut = float(np.quantile(n[ins], 0.35 if complex_ else 0.6)) if ins.any() else 0.0
        cyst = (n > cut) & ins
        solid_part = (inside > 0) & ~cyst
        c.echo[solid_part] = np.maximum(c.echo[solid_part], 1.2 * ref)
        c.echo[cyst] = 0.18 * ref if complex_ else 0.0
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
        thick = max(1.4, 2.2 * ipx) if "complex cystic solid" in tags else max(0.6, 1.5 * ipx)
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
            rr = max(rng.uniform(0.35, 1.1), rng.uniform(0.8, 1.2) * ipx)
            px = ctr[0] + rng.uniform(-0.65, 0.65) * a
            py = ctr[1] + rng.uniform(-0.55, 0.55) * b
            c.paint(c.mask_ellipse(px, py, rr, rr) & inside, echo=18.0 * max(ref, 0.8), atten=10.0)
    return n_calc


def _half_width(geom, y: float) -> float:
    """Half the width of the field of view at depth ``y`` (mm below the face centre)."""
    if not geom.curved:
        return geom.width_mm / 2
    r_in = geom.radius_mm + max(y, 0.0)  # distance to the apex along the centre line
    return float(min(r_in * np.tan(geom.half_angle),
                     np.sqrt(max((geom.radius_mm + geom.depth_mm) ** 2 - r_in ** 2, 0.0))))


def input_pixel_mm(geom) -> float:
    """About one model-input pixel in mm: the region crop's long side over 128 (the shipped
    model's input). Internal structure thinner than this would vanish in the resize."""
    xmin, xmax, ymin, ymax = geom.bbox()
    return max(xmax - xmin, ymax - ymin) / 128.0


def _posterior_atten(spec: LesionSpec, f0_mhz: float, thick_mm: float) -> float:
    if spec.posterior == "enhancement":
        return FLUID_ATTEN if spec.echogenicity in ("anechoic",) else 0.1
    if spec.posterior == "shadowing":
        target_db = 22.0  # round-trip loss across the lesion: a clear shadow
        return max(TISSUE_ATTEN, target_db / (2.0 * f0_mhz * max(thick_mm, 2.0) / 10.0))
    return TISSUE_ATTEN


def _flow(c: Canvas, spec: LesionSpec, ctr: tuple[float, float], a: float, b: float, ang: float,
          mask: np.ndarray, rng: np.random.Generator) -> None:
    """Flow for the vascularity level, so the class reads off the colour box:

    no: none; reduced: one or two short vessels at the edge; normal/regular: an even basket of
    rim vessels; increased: the rim plus dense central branches at high velocity;
    inhomogeneous: dense flow crowded into one part of the lesion, none in the rest.
    Vessels are at least ~1.5 model-input pixels wide, so they survive the resize.
    """
    kind = spec.vascularity
    if kind == "no":
        return
    t = np.radians(ang)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    width = max(1.5 * input_pixel_mm(c.geom), 0.08 * min(a, b), 0.6)

    def vessel(local: np.ndarray, v: float, w: float = width) -> None:
        pts = local @ rot.T + np.array(ctr)
        m = c.mask_poly(pts, max(1, int(round(w / c.mm_per_px))), False)
        c.flow[m > 0] = v * (1 if rng.random() < 0.5 else -1)

    def arc(t0: float, span: float, r: float) -> np.ndarray:
        th = np.linspace(t0, t0 + span, 12)
        return np.stack([r * a * np.cos(th), r * b * np.sin(th)], 1)

    if kind == "reduced/diminished":
        for _ in range(int(rng.integers(1, 3))):
            vessel(arc(rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 0.6), 0.92), rng.uniform(0.25, 0.4))
    elif kind == "normal/regular":
        n = int(rng.integers(4, 6))
        t0 = rng.uniform(0, 2 * np.pi)
        for k in range(n):  # evenly spaced rim vessels around the whole lesion
            vessel(arc(t0 + 2 * np.pi * k / n, 2 * np.pi / n * 0.55, 0.9), rng.uniform(0.45, 0.6))
    elif kind == "increased":
        for k in range(8):  # a near-complete rim
            vessel(arc(2 * np.pi * k / 8, 2 * np.pi / 8 * 0.85, 0.88), rng.uniform(0.75, 1.0))
        for _ in range(int(rng.integers(7, 11))):  # and branches crossing the centre
            p0 = rng.uniform(-0.8, 0.8, 2) * (a, b)
            walk = p0 + np.cumsum(rng.normal(0, 0.22, (5, 2)) * (a, b), 0)
            vessel(walk, rng.uniform(0.7, 1.0), width * rng.uniform(1.0, 1.5))
    else:  # indeterminate/inhomogeneous: a dense patch on one side of the lesion only
        side = rng.uniform(0, 2 * np.pi)
        hub = 0.45 * np.array([a * np.cos(side), b * np.sin(side)])
        for _ in range(int(rng.integers(6, 9))):
            p0 = hub + rng.normal(0, 0.18, 2) * (a, b)
            walk = p0 + np.cumsum(rng.normal(0, 0.14, (4, 2)) * (a, b), 0)
            vessel(walk, rng.uniform(0.4, 1.0), width * rng.uniform(0.8, 1.6))


def draw_lesion(c: Canvas, spec: LesionSpec, f0_mhz: float, view_rng: np.random.Generator) -> LesionRender:
    """Paint ``spec`` at the canvas site; the view rng varies pose slightly between views."""
    if c.site is None:
        raise ValueError("canvas: the anatomy set no lesion site")
    rng = np.random.default_rng(spec.seed)  # the same lesion in every view
    site = c.site
    xmin, xmax, _, D = c.geom.bbox()
    if spec.extent > 0:  # zoomed to the lesion: its size follows the field of view
        scale = spec.extent * min(xmax - xmin, D) / spec.size_mm[0]
        scale = min(scale, 0.3 * D / spec.size_mm[1])  # leave tissue above and below it
    else:
        scale = min(1.0, 0.55 * (xmax - xmin) / spec.size_mm[0], 0.4 * D / spec.size_mm[1])
    scale *= view_rng.uniform(0.9, 1.05)  # out-of-plane cut differs between views
    a, b = spec.size_mm[0] / 2 * scale, spec.size_mm[1] / 2 * scale
    ang = spec.angle_deg + view_rng.normal(0.0, 6.0)
    cx = site.cx + spec.center[0] * 2 * site.half_w + view_rng.normal(0, 1.5)
    cy = site.cy + (spec.center[1] - 0.5) * 2 * site.half_h
    cy = float(np.clip(cy, b + 3.0, max(b + 3.0, 0.8 * D - b)))  # room below for posterior acoustics
    lim = 0.85 * _half_width(c.geom, cy - b) - a  # inside the fan at the lesion's top
    cx = float(np.clip(cx, -max(lim, 0.0), max(lim, 0.0)))
    polys = _place(_outline(spec.shape, a, b, rng), cx, cy, ang)
    mask = np.zeros(c.shape, np.uint8)
    for p in polys:
        mask |= c.mask_poly(p)
    # A lesion grows in tissue: where the anatomy put fluid around it (a lumen, a chamber, the
    # vitreous), a bed of the organ's parenchyma holds it, or an anechoic lesion would have
    # no outline at all.
    k = max(3, int(round(0.3 * min(a, b) / c.mm_per_px)) * 2 + 1)
    bed = (cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0) & (c.echo < 0.15)
    if bed.any():
        c.paint(bed.astype(np.uint8), echo=site.ref_echo, atten=TISSUE_ATTEN, flow=0.0)
        c.texture(bed.astype(np.uint8), np.random.default_rng(spec.seed + 1), 0.15, grain=16)  # own stream
    ref = _ring_median(c, mask, site.ref_echo)
    ill = spec.margins.startswith("ill")
    if spec.echogenicity == "mixed echogenicity":
        mix = smooth_noise(c.shape, rng, 10)
        solid = np.where(mix > 0, 2.2 * ref, 0.35 * ref).astype(np.float32)
    else:
        solid = np.full(c.shape, ECHO_FACTOR[spec.echogenicity] * ref, np.float32)
    iso = spec.echogenicity == "isoechoic"
    if (not ill and spec.echogenicity in ("isoechoic", "hyperechoic") and spec.diagnosis != "cyst") or iso:
        # Thin hypoechoic halo round a solid nodule: what makes an isoechoic one visible at
        # all. Ill-defined: a blurred halo on part of the rim only (the rest fades out).
        w = max(1, int(max(0.8, 1.2 * input_pixel_mm(c.geom)) / c.mm_per_px))
        halo = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=w)
        if ill:
            ys, xs = np.mgrid[0:c.shape[0], 0:c.shape[1]]
            u, v = c.px(cx, cy)
            t0 = rng.uniform(0, 2 * np.pi)
            halo = halo * (np.cos(np.arctan2(ys - v, xs - u) - t0) > 0).astype(np.uint8)
        c.paint(halo, echo=0.3 * ref, soft_mm=0.6 if ill else 0.0)
    soft = max(1.0, 0.25 * min(a, b)) if ill else 0.0
    atten = _posterior_atten(spec, f0_mhz, 2 * b)
    c.paint(mask, echo=solid, atten=atten, soft_mm=soft)
    if ill and spec.diagnosis in ("mass", "nodule"):
        _spicules(c, polys, float(np.mean(solid[mask > 0])) if mask.any() else ref, rng, min(a, b))
    if iso:
        c.texture(mask, rng, 0.6, grain=24)  # coarser, heterogeneous texture sets it apart
    n_calc = _internal(c, spec, mask, float(np.median(solid[mask > 0])) if mask.any() else ref,
                       ref, a, b, (cx, cy), ang, rng)
    if spec.posterior is None:
        c.atten[mask > 0] = TISSUE_ATTEN  # no posterior feature: tissue-like path, whatever inside
    # The colour box shows this lesion's flow only: a sonographer studying a lesion's
    # vascularity frames it and sets the colour gain for it; the organ's vessels next to it
    # would read as the lesion's flow (a "no flow" cyst beside a portal vein).
    c.flow[:] = 0.0
    _flow(c, spec, (cx, cy), a, b, ang, mask, rng)
    near = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(0.1 * min(a, b) / c.mm_per_px)))
    c.flow[near == 0] = 0.0  # rim vessels hug the lesion
    ys, xs = np.nonzero(mask)
    bb = (c.x0 + (xs.min() + 0.5) * c.mm_per_px, c.x0 + (xs.max() + 0.5) * c.mm_per_px,
          c.y0 + (ys.min() + 0.5) * c.mm_per_px, c.y0 + (ys.max() + 0.5) * c.mm_per_px) if xs.size \
        else (cx - a, cx + a, cy - b, cy + b)
    return LesionRender((cx, cy), (a, b), ang, tuple(float(v) for v in bb), ref, atten, n_calc, mask)
