"""Focal lesions drawn from their attributes onto the tissue canvas.

Every attribute value maps to something the physics then turns into pixels:
- shape: the outline (round, oval, broad lobes, a clefted cluster of nodules, a long thin
  band, a flat-topped lens, an angular polygon);
- margins: a sharp edge with a thin capsule or halo vs an edge feathered (in dB) over several
  input pixels;
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

# Backscatter amplitude relative to the surrounding tissue (20 log10: -inf, -11, 0, +11 dB;
# hypo and hyper against the ring's 15th / 85th percentile, iso against its median): a step
# of ~11 dB is about twice the speckle's own spread in dB, so the class survives the
# averaging of a 128 px input.
ECHO_FACTOR = {"anechoic": 0.0, "hypoechoic": 0.28, "isoechoic": 1.0, "hyperechoic": 3.5}


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
    """Polygons (local mm, unrotated) whose union is the lesion.

    Each class has one geometric signature a small CNN can read at the 128 px input: round
    and oval are smooth (aspect ratio tells them apart); lobulated is one body with 3-4 broad
    smooth lobes; nodular is a cluster of separate round nodules with deep clefts between;
    irregular is angular (straight edges, sharp corners, no symmetry); flattened is a
    flat-topped lens and tubular a long thin band.
    """
    phi = np.linspace(0, 2 * np.pi, 128, endpoint=False)
    r = np.ones_like(phi)
    if shape in ("round", "oval"):
        r += 0.02 * np.sin(3 * phi + rng.uniform(0, 6.3))
    elif shape == "lobulated":
        k = int(rng.integers(3, 5))
        r += rng.uniform(0.2, 0.26) * np.sin(k * phi + rng.uniform(0, 6.3))
    elif shape == "irregular":  # a jagged polygon: alternating near and far vertices
        m = int(rng.integers(8, 13))
        t = np.sort((np.arange(m) + rng.uniform(-0.3, 0.3, m)) * 2 * np.pi / m)
        rad = np.where(np.arange(m) % 2 == 0, rng.uniform(1.0, 1.2, m), rng.uniform(0.55, 0.75, m))
        v = np.stack([a * rad * np.cos(t), b * rad * np.sin(t)], 1) / 1.1
        f = np.linspace(0, 1, 10, endpoint=False)[:, None, None]  # straight edges, densely sampled
        return [(v + f * (np.roll(v, -1, 0) - v)).transpose(1, 0, 2).reshape(-1, 2)]
    elif shape == "flattened":
        c, s = np.abs(np.cos(phi)), np.abs(np.sin(phi))
        r = 1.0 / (c ** 6 + s ** 6) ** (1 / 6)  # superellipse: flat top and bottom
    elif shape == "nodular":  # confluent round nodules round a small core, clefts between them
        k = int(rng.integers(3, 6))
        polys = [np.stack([0.3 * a * np.cos(phi), 0.3 * b * np.sin(phi)], 1)]
        t0 = rng.uniform(0, 2 * np.pi)
        rr = 0.42 if k <= 4 else 0.36
        for i in range(k):
            t = t0 + 2 * np.pi * i / k + rng.uniform(-0.15, 0.15)
            cx, cy = (1 - rr) * a * np.cos(t), (1 - rr) * b * np.sin(t)
            rad = rr * min(a, b) * rng.uniform(0.95, 1.1)
            polys.append(np.stack([cx + rad * np.cos(phi), cy + rad * np.sin(phi)], 1))
        return polys
    elif shape == "tubular/linear":
        t = np.linspace(-1, 1, 48)
        bend = rng.uniform(0.8, 1.6) * b * rng.choice([-1.0, 1.0])
        cx, cy = a * t, bend * (t * t - 0.3)
        half = b * np.clip(1.6 * np.sqrt(1 - t * t), 0.5, 1.0)
        return [np.concatenate([np.stack([cx, cy - half], 1), np.stack([cx, cy + half], 1)[::-1]])]
    else:
        raise ValueError(f"shape: unknown value {shape!r}")
    return [np.stack([a * r * np.cos(phi), b * r * np.sin(phi)], 1)]


def _rotation(angle_deg: float) -> np.ndarray:
    """2 x 2 matrix turning lesion-local (long axis, short axis) mm into canvas directions."""
    t = np.radians(angle_deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _place(polys: list[np.ndarray], cx: float, cy: float, angle_deg: float) -> list[np.ndarray]:
    rot = _rotation(angle_deg)
    return [p @ rot.T + np.array([cx, cy]) for p in polys]


def _ring_values(c: Canvas, mask: np.ndarray) -> np.ndarray | None:
    """Echogenicity of the tissue ring around the lesion ('relative to surroundings'), or None
    when fewer than 21 ring pixels are tissue."""
    k = max(3, int(round(4.0 / c.mm_per_px)) * 2 + 1)
    ring = (cv2.dilate(mask, np.ones((k, k), np.uint8)) > 0) & (mask == 0)
    vals = c.echo[ring]
    vals = vals[vals > 0.15]  # fluid neighbours (a gallbladder lumen) do not count
    return vals if vals.size > 20 else None


def _internal(c: Canvas, spec: LesionSpec, mask: np.ndarray, solid: float, ref: float,
              a: float, b: float, ctr: tuple[float, float], ang: float, rng: np.random.Generator) -> int:
    """Internal characteristics inside the lesion; returns the number of calcified foci.

    Every structure is at least ~1.5-2.5 model-input pixels across, and each combination has
    its own look: mixed = a solid body punched with round clear spaces; complex = clear fluid
    with clumps of echogenic debris, thick septa and a solid wall nodule; septations = bright
    full-width septa across a clear cyst; calcifications = bright foci that shadow.
    """
    inside = cv2.erode(mask, np.ones((3, 3), np.uint8))
    tags = set(spec.internal)
    ipx = input_pixel_mm(c.geom)
    fluid_base = spec.echogenicity == "anechoic"
    rot = _rotation(ang)

    def at(u: float, v: float) -> tuple[float, float]:  # lesion-local (u along a, v along b) -> mm
        x, y = rot @ np.array([u * a, v * b])
        return float(ctr[0] + x), float(ctr[1] + y)

    if "mixed cystic and solid mass" in tags:
        # A solid body at +9.5 dB, the mixed mosaic's bright level (v4: +6 dB, about one speckle
        # spread: the body merged with the tissue and the lesion read as a few dark pockets).
        c.echo[inside > 0] = np.maximum(c.echo[inside > 0], 3.0 * ref)
        for _ in range(int(rng.integers(3, 6))):
            rr = rng.uniform(0.17, 0.26) * min(a, b)
            px, py = at(rng.uniform(-0.55, 0.55), rng.uniform(-0.5, 0.5))
            c.paint(c.mask_ellipse(px, py, rr, rr) & inside, echo=0.0, atten=FLUID_ATTEN)
    if "complex cystic solid" in tags:  # clear fluid with clumps of echogenic debris (~40 %)
        ins = inside > 0
        n = smooth_noise(c.shape, rng, _lesion_grain(c, a, b))
        cut = float(np.quantile(n[ins], 0.6)) if ins.any() else 0.0
        c.echo[ins] = np.where(n[ins] > cut, 0.7 * ref, 0.03 * ref)
        c.atten[ins] = FLUID_ATTEN
    if "cystic components" in tags and not fluid_base and spec.diagnosis != "fluid collection":
        for _ in range(int(rng.integers(1, 4))):
            rr = rng.uniform(0.15, 0.3) * b
            px, py = at(rng.uniform(-0.5, 0.5), rng.uniform(-0.4, 0.4))
            c.paint(c.mask_ellipse(px, py, rr * 1.3, rr, ang) & inside, echo=0.0, atten=FLUID_ATTEN)
    if "solid components" in tags and (fluid_base or spec.diagnosis in ("cyst", "fluid collection")) \
            or "complex cystic solid" in tags:
        side = rng.uniform(0, 2 * np.pi)  # a solid nodule on the wall
        px, py = at(0.6 * np.cos(side), 0.6 * np.sin(side))
        # +2.3 dB (the mixed mosaic's median would be its bright level: a wall nodule as bright as
        # a mixed solid mass would make a complex collection read as one)
        wall = 1.3 * ref if "complex cystic solid" in tags else max(solid, 1.3 * ref)
        c.paint(c.mask_ellipse(px, py, 0.4 * min(a, b), 0.33 * min(a, b)) & inside, echo=wall)
    if "septations" in tags or "complex cystic solid" in tags:
        complex_ = "complex cystic solid" in tags
        thick = max(1.4, 2.5 * ipx) if complex_ else max(0.8, 1.6 * ipx)
        t1 = rng.uniform(0, np.pi)
        thin = b < 0.5 * a  # a flat or tubular collection: septa cross it, loculating it
        for k in range(int(rng.integers(1, 3) if complex_ else rng.integers(1, 4))):  # full-width chords
            th = np.pi / 2 + rng.uniform(-0.3, 0.3) if thin else t1 + k * np.pi / 3 + rng.uniform(-0.25, 0.25)
            off = rng.uniform(-0.6, 0.6) if thin else rng.uniform(-0.25, 0.25)
            p = np.array([at(1.2 * np.cos(th) - off * np.sin(th), 1.2 * np.sin(th) + off * np.cos(th)),
                          at(-1.2 * np.cos(th) - off * np.sin(th), -1.2 * np.sin(th) + off * np.cos(th))])
            line = c.mask_poly(p, max(1, int(round(thick / c.mm_per_px))), False) & inside
            c.paint(line, echo=3.0 * max(ref, 0.8))
    n_calc = 0
    if "calcifications" in tags:
        n_calc = int(rng.integers(3, 10))
        for _ in range(n_calc):
            rr = max(rng.uniform(0.35, 1.1), rng.uniform(0.8, 1.2) * ipx)
            px, py = at(rng.uniform(-0.65, 0.65), rng.uniform(-0.55, 0.55))
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
    rot = _rotation(ang)
    width = max(1.5 * input_pixel_mm(c.geom), 0.08 * min(a, b), 0.6)

    def vessel(local: np.ndarray, v: float, w: float = width) -> None:
        pts = local @ rot.T + np.array(ctr)
        c.flow_line(pts, v * (1 if rng.random() < 0.5 else -1), int(round(w / c.mm_per_px)))

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
        for k in range(8):  # a rim of vessels all round
            vessel(arc(2 * np.pi * k / 8, 2 * np.pi / 8 * 0.7, 0.88), rng.uniform(0.75, 1.0))
        for _ in range(int(rng.integers(5, 8))):  # and thin branches crossing the centre (thin:
            p0 = rng.uniform(-0.7, 0.7, 2) * (a, b)  # the lesion's grey still shows between them)
            walk = p0 + np.cumsum(rng.normal(0, 0.22, (5, 2)) * (a, b), 0)
            vessel(walk, rng.uniform(0.7, 1.0), width)
    else:  # indeterminate/inhomogeneous: a dense patch on one side of the lesion only
        side = rng.uniform(0, 2 * np.pi)
        hub = 0.45 * np.array([a * np.cos(side), b * np.sin(side)])
        for _ in range(int(rng.integers(5, 8))):
            p0 = hub + rng.normal(0, 0.16, 2) * (a, b)
            walk = p0 + np.cumsum(rng.normal(0, 0.12, (4, 2)) * (a, b), 0)
            vessel(walk, rng.uniform(0.4, 1.0), width * rng.uniform(0.8, 1.2))


def _lesion_grain(c: Canvas, a: float, b: float, cells: float = 5.0) -> int:
    """smooth_noise grain that puts about ``cells`` noise cells across the lesion, whatever its
    size: patches scale with the lesion, so a small one is not one uniform blob."""
    canvas_mm = max(c.shape) * c.mm_per_px
    return int(np.clip(cells * canvas_mm / (2.0 * max(a, b)), 6, 96))


def _paint_ill_defined(c: Canvas, mask: np.ndarray, echo: np.ndarray, atten: float, soft_mm: float,
                       grain: int, rng: np.random.Generator) -> None:
    """An indistinct margin: the lesion fades into the tissue over ``soft_mm`` (Gaussian sigma)
    with a patchy, interdigitating transition. The fade lies mostly outside the outline, so
    the lesion keeps its full contrast inside (a thin part such as one nodule of a cluster
    would otherwise fade away). The blend is geometric (in dB): a linear blend of amplitudes
    would look sharp again after log compression, since a tenth of the tissue's amplitude
    already shows as two thirds of its grey."""
    w = np.clip(1.6 * cv2.GaussianBlur(mask.astype(np.float32), (0, 0), soft_mm / c.mm_per_px), 0.0, 1.0)
    w = np.clip(w + 1.2 * smooth_noise(c.shape, rng, 3 * grain) * w * (1 - w), 0.0, 1.0)
    zone = w > 0.01
    floor = np.float32(3e-3)  # -50 dB: black on any dynamic range used here
    lt, le = np.log(np.maximum(c.echo[zone], floor)), np.log(np.maximum(echo[zone], floor))
    c.echo[zone] = np.exp(lt + w[zone] * (le - lt))
    c.atten[zone] += w[zone] * (np.float32(atten) - c.atten[zone])


def draw_lesion(c: Canvas, spec: LesionSpec, f0_mhz: float, view_rng: np.random.Generator,
                with_flow: bool = True) -> LesionRender:
    """Paint ``spec`` at the canvas site; the view rng varies pose slightly between views.

    with_flow=False leaves the flow map alone (a frame without a colour box never shows it;
    the flow is the last thing drawn, so nothing else changes).
    """
    if c.site is None:
        raise ValueError("canvas: the anatomy set no lesion site")
    rng = np.random.default_rng(spec.seed)  # the same lesion in every view
    site = c.site
    xmin, xmax, _, D = c.geom.bbox()
    cy = site.cy + (spec.center[1] - 0.5) * 2 * site.half_h
    if spec.extent > 0:  # zoomed to the lesion: its size follows the field of view
        # ... as wide as the field is at the lesion's depth (a fan is narrow near its apex):
        # a lesion wider than the fan would read as a band, its shape and margins cut off.
        usable = min(2.0 * _half_width(c.geom, float(np.clip(cy, 0.3 * D, 0.7 * D))), D)
        scale = spec.extent * usable / spec.size_mm[0]
        scale = min(scale, 0.42 * D / spec.size_mm[1])  # leave tissue above and below it
    else:
        scale = min(1.0, 0.55 * (xmax - xmin) / spec.size_mm[0], 0.4 * D / spec.size_mm[1])
    scale *= view_rng.uniform(0.9, 1.05)  # out-of-plane cut differs between views
    a, b = spec.size_mm[0] / 2 * scale, spec.size_mm[1] / 2 * scale
    ang = spec.angle_deg + view_rng.normal(0.0, 6.0)
    cx = site.cx + spec.center[0] * 2 * site.half_w + view_rng.normal(0, 1.5)
    cy = float(np.clip(cy, b + 3.0, max(b + 3.0, 0.8 * D - b)))  # room below for posterior acoustics
    fit = 0.85 * _half_width(c.geom, cy - b)
    if a > fit:  # still wider than the fan at its top: shrink it to fit (keeps the aspect)
        a, b = fit, b * fit / a
    lim = fit - a  # inside the fan at the lesion's top
    cx = float(np.clip(cx, -max(lim, 0.0), max(lim, 0.0)))
    polys = _place(_outline(spec.shape, a, b, rng), cx, cy, ang)
    mask = np.zeros(c.shape, np.uint8)
    for p in polys:
        mask |= c.mask_poly(p)
    # A lesion grows in tissue: where the anatomy put fluid around it (a lumen, a chamber, the
    # vitreous), a bed of the organ's parenchyma holds it, or an anechoic lesion would have
    # no outline at all.
    k = max(3, int(round(max(0.3 * min(a, b), 3.0 * input_pixel_mm(c.geom)) / c.mm_per_px)) * 2 + 1)
    bed = (cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0) & (c.echo < 0.15)
    if bed.any():
        c.paint(bed.astype(np.uint8), echo=site.ref_echo, atten=TISSUE_ATTEN, flow=0.0)
        c.texture(bed.astype(np.uint8), np.random.default_rng(spec.seed + 1), 0.15, grain=16)  # own stream
    ring = _ring_values(c, mask)
    ref = site.ref_echo if ring is None else float(np.quantile(ring, 0.5))
    # Hyper- and hypoechoic against (nearly) all the surrounding tissue (a layered one too),
    # not its median only.
    q = {"hyperechoic": 0.85, "hypoechoic": 0.15}.get(spec.echogenicity)
    level = ref if q is None or ring is None else float(np.quantile(ring, q))
    ill = spec.margins.startswith("ill")
    ipx = input_pixel_mm(c.geom)
    grain = _lesion_grain(c, a, b)
    if spec.echogenicity == "mixed echogenicity":  # bright and dark patches, about half each
        # Seven patches across (v4: five), clearly brighter (+9.5 dB) and darker (-12 dB) than the
        # tissue: with five +7 dB / -10 dB patches the bright half merged with the tissue, so the
        # outline (and with it Shape and Margins) was lost and a mixed mass read as dark spots.
        mix = smooth_noise(c.shape, rng, _lesion_grain(c, a, b, cells=7.0))
        cut = float(np.median(mix[mask > 0])) if mask.any() else 0.0
        solid = np.where(mix > cut, 3.0 * ref, 0.25 * ref).astype(np.float32)
    else:
        solid = np.full(c.shape, ECHO_FACTOR[spec.echogenicity] * level, np.float32)
    # 2.5 input pixels: a thinner rim is lost in the speckle and the lateral blur of a deep
    # convex field (a 1.5 px halo round an isoechoic uterine nodule did not show at all).
    halo = not ill and spec.echogenicity in ("isoechoic", "hyperechoic") and spec.diagnosis != "cyst"
    capsule = not ill and not halo and spec.echogenicity in ("hypoechoic", "mixed echogenicity")
    if halo or capsule:
        # A crisp dark halo round an iso/hyperechoic solid nodule (the sign that shows an
        # isoechoic one at all) or a bright capsule round a well-circumscribed hypo/mixed one.
        rim = max(1, int(round(max(0.8, 2.5 * ipx) / c.mm_per_px)))
        outside = (cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=rim) > 0) & (mask == 0)
        c.paint(outside.astype(np.uint8), echo=(0.15 if halo else 2.8) * ref)
    atten = _posterior_atten(spec, f0_mhz, 2 * b)
    if ill:
        _paint_ill_defined(c, mask, solid, atten, max(2.0 * ipx, 0.2 * min(a, b)), grain, rng)
    else:
        c.paint(mask, echo=solid, atten=atten)
    if spec.echogenicity == "isoechoic":
        c.texture(mask, rng, 0.25, grain=2 * grain)  # a slightly coarser texture than the tissue
    if spec.shape == "nodular":  # each confluent nodule keeps a thin dark rim: the clefts
        for p in polys[1:]:
            line = c.mask_poly(p, max(1, int(round(ipx / c.mm_per_px))), True) & mask
            c.echo[line > 0] *= 0.35
    n_calc = _internal(c, spec, mask, float(np.median(solid[mask > 0])) if mask.any() else ref,
                       ref, a, b, (cx, cy), ang, rng)
    if spec.posterior is None:
        c.atten[mask > 0] = TISSUE_ATTEN  # no posterior feature: tissue-like path, whatever inside
    # The colour box shows this lesion's flow only: a sonographer studying a lesion's
    # vascularity frames it and sets the colour gain for it; the organ's vessels next to it
    # would read as the lesion's flow (a "no flow" cyst beside a portal vein).
    if with_flow:
        c.flow[:] = 0.0
        _flow(c, spec, (cx, cy), a, b, ang, mask, rng)
        near = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(0.1 * min(a, b) / c.mm_per_px)))
        c.flow[near == 0] = 0.0  # rim vessels hug the lesion
    ys, xs = np.nonzero(mask)
    bb = (c.x0 + (xs.min() + 0.5) * c.mm_per_px, c.x0 + (xs.max() + 0.5) * c.mm_per_px,
          c.y0 + (ys.min() + 0.5) * c.mm_per_px, c.y0 + (ys.max() + 0.5) * c.mm_per_px) if xs.size \
        else (cx - a, cx + a, cy - b, cy + b)
    return LesionRender((cx, cy), (a, b), ang, tuple(float(v) for v in bb), ref, atten, n_calc, mask)
