"""Organ backgrounds as echogenicity / attenuation / flow maps on the tissue canvas.

Each ``draw_<key>`` (here and in ``anatomy_extended``) paints one recognisable scan
(liver with vessels and diaphragm, kidney with bright sinus, thyroid with trachea shadow,
breast layers, ...) and sets ``canvas.site``, the place a lesion of that organ sits.
Relative echogenicity: 1 = reference parenchyma; fat and muscle darker, fibrous/fatty
structures (renal sinus, capsules, fascia) brighter, fluid ~0.
Strongly attenuating structures (bone, air, tracheal cartilage) shadow through the physics.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .canvas import FLUID_ATTEN, Canvas, Site

__all__ = ["draw_anatomy", "ANATOMY"]

BONE_ATTEN = 12.0  # dB/cm/MHz: bone and air pass almost nothing: a full shadow


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _wall(c: Canvas, rng: np.random.Generator, skin: float, fat: float, muscle: float) -> float:
    """Skin, subcutaneous fat with septa, muscle; returns the depth where organs start."""
    c.layer(0, skin, 2.2)
    c.layer(skin, skin + fat, 0.55)
    fat_mask = (c.face_depth >= skin) & (c.face_depth < skin + fat)
    c.texture(fat_mask.astype(np.uint8), rng, 0.5, grain=14)
    top = skin + fat
    c.layer(top, top + 0.8, 2.0)  # fascia
    if muscle > 0:
        m = c.layer(top + 0.8, top + muscle, 0.6)
        _striations(c, rng, m, top + 0.8, top + muscle)
        c.layer(top + muscle, top + muscle + 0.8, 1.8)
    return top + muscle + 0.8


def _striations(c: Canvas, rng: np.random.Generator, mask: np.ndarray, top: float, bot: float) -> None:
    """Thin echogenic perimysium lines in muscle, slightly oblique."""
    xmin, xmax, _, _ = c.geom.bbox()
    slope = _u(rng, -0.15, 0.15)
    for y in np.arange(top + 1.0, bot, max(0.9, (bot - top) / 6)):
        y1 = y + _u(rng, -0.4, 0.4)
        line = c.mask_poly(np.array([[xmin, y1 + slope * xmin], [xmax, y1 + slope * xmax]]), 1, False)
        c.echo[(line > 0) & (mask > 0)] = 1.5


def _vessel(c: Canvas, pts: np.ndarray, radius: float, wall: float, flow: float) -> None:
    """A tube: bright wall, anechoic lumen, flow inside."""
    px = max(1, int(round(2 * radius / c.mm_per_px)))
    outer = c.mask_poly(pts, px + max(2, int(round(1.0 / c.mm_per_px))), False)
    c.paint(outer, echo=wall)
    lumen = c.mask_poly(pts, px, False)
    c.paint(lumen, echo=0.02, atten=FLUID_ATTEN, flow=flow)


def _curve(rng: np.random.Generator, x0: float, y0: float, x1: float, y1: float,
           bend: float, n: int = 12) -> np.ndarray:
    t = np.linspace(0, 1, n)
    off = bend * np.sin(np.pi * t) * _u(rng, -1, 1)
    dx, dy = x1 - x0, y1 - y0
    norm = max(np.hypot(dx, dy), 1e-6)
    return np.stack([x0 + dx * t - dy / norm * off, y0 + dy * t + dx / norm * off], 1)


def draw_liver(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    top = _wall(c, rng, 2.0, _u(rng, 8, 18), _u(rng, 8, 14))
    xmin, xmax, _, D = c.geom.bbox()
    liver = c.face_depth >= top
    c.texture(liver.astype(np.uint8), rng, 0.12, grain=16)
    for _ in range(int(rng.integers(2, 5))):  # hepatic / portal veins
        x0, y0 = _u(rng, xmin, xmax), _u(rng, top + 20, D * 0.85)
        ang, ln = _u(rng, 0, np.pi), _u(rng, 25, 70)
        pts = _curve(rng, x0, y0, x0 + ln * np.cos(ang), y0 + ln * np.sin(ang), 8)
        portal = rng.random() < 0.5
        _vessel(c, pts, _u(rng, 2, 5), 3.0 if portal else 1.0, _u(rng, 0.3, 0.7) * rng.choice([-1, 1]))
    yd = D * _u(rng, 0.78, 0.92)  # diaphragm: bright curved interface, mirror-ish beyond it
    arc = _curve(rng, xmin * 1.2, yd + _u(rng, -15, 5), xmax * 1.2, yd + _u(rng, -15, 5), 12, 20)
    below = np.concatenate([arc, [[xmax * 1.2, D * 1.5], [xmin * 1.2, D * 1.5]]])
    c.paint(c.mask_poly(below), echo=0.8)
    c.paint(c.mask_poly(arc, max(2, int(3.5 / c.mm_per_px)), False), echo=5.0)
    c.site = Site(0.0, (top + yd) / 2, (xmax - xmin) * 0.3, (yd - top) * 0.3, 1.0)


def draw_gallbladder(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    draw_liver(c, rng, False)
    xmin, xmax, _, D = c.geom.bbox()
    # The view's depth can be as shallow as 0.88 x 100 mm, where D/2 < 50: clamp the low end
    # so the range never inverts (unchanged for every depth >= 100 mm).
    hi = min(80.0, D * 0.5)
    cx, cy = _u(rng, -10, 10), _u(rng, min(50.0, hi), hi)
    a, b, ang = _u(rng, 28, 42), _u(rng, 11, 17), _u(rng, -20, 20)
    c.paint(c.mask_ellipse(cx, cy, a + 2, b + 2, ang), echo=2.6)
    c.paint(c.mask_ellipse(cx, cy, a, b, ang), echo=0.0, atten=FLUID_ATTEN)
    # A lesion of the gallbladder (polyp, stone, sludge) hangs from the dependent wall.
    c.site = Site(cx, cy + b * 0.45, a * 0.4, b * 0.3, 1.0)


def draw_kidney(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    top = _wall(c, rng, 2.0, _u(rng, 8, 15), _u(rng, 8, 12))
    xmin, xmax, _, D = c.geom.bbox()
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.12, grain=14)
    cx, cy = _u(rng, -10, 10), top + _u(rng, 45, 65)
    a, b, ang = _u(rng, 45, 55), _u(rng, 22, 28), _u(rng, -25, 25)
    c.paint(c.mask_ellipse(cx, cy, a + 6, b + 6, ang), echo=1.6)  # perirenal fat
    c.paint(c.mask_ellipse(cx, cy, a + 1.2, b + 1.2, ang), echo=3.0)  # capsule
    c.paint(c.mask_ellipse(cx, cy, a, b, ang), echo=0.7)  # cortex
    t = np.radians(ang)
    for k in range(7):  # medullary pyramids: hypoechoic, between cortex and sinus
        phi = 2 * np.pi * k / 7 + _u(rng, -0.2, 0.2)
        px, py = 0.62 * a * np.cos(phi), 0.62 * b * np.sin(phi)
        c.paint(c.mask_ellipse(cx + px * np.cos(t) - py * np.sin(t), cy + px * np.sin(t) + py * np.cos(t),
                               _u(rng, 4, 6), _u(rng, 3, 4.5), float(np.degrees(phi + t))), echo=0.35)
    sinus = c.mask_ellipse(cx, cy, a * 0.5, b * 0.38, ang)
    c.paint(sinus, echo=2.6)
    c.texture(sinus, rng, 0.35, grain=20)
    c.site = Site(cx, cy, a * 0.55, b * 0.45, 0.8)


def draw_bladder(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    top = _wall(c, rng, 2.0, _u(rng, 8, 15), _u(rng, 6, 10))
    xmin, xmax, _, D = c.geom.bbox()
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.15, grain=12)
    cx, cy = _u(rng, -8, 8), top + _u(rng, 35, 45)
    a, b = _u(rng, 35, 48), _u(rng, 25, 33)
    wall = c.mask_ellipse(cx, cy, a + 4, b + 4)
    c.paint(wall, echo=1.8)
    c.paint(c.mask_ellipse(cx, cy, a, b), echo=0.0, atten=FLUID_ATTEN)
    c.site = Site(cx, cy + b * 0.75, a * 0.4, 4.0, 1.0)  # masses arise from the posterior wall


def draw_uterus(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    top = _wall(c, rng, 2.0, _u(rng, 6, 12), _u(rng, 6, 10))
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.25, grain=12)
    cx = _u(rng, -10, 10)
    by, bb = top + 22, _u(rng, 16, 22)
    c.paint(c.mask_ellipse(cx, by, _u(rng, 40, 50), bb), echo=0.0, atten=FLUID_ATTEN)  # bladder
    uy, ua, ub, ang = by + bb + 26, _u(rng, 38, 48), _u(rng, 20, 26), _u(rng, -20, 10)
    c.paint(c.mask_ellipse(cx, uy, ua + 1.5, ub + 1.5, ang), echo=1.6)
    myo = c.mask_ellipse(cx, uy, ua, ub, ang)
    c.paint(myo, echo=0.9)
    c.texture(myo, rng, 0.15, grain=14)
    c.paint(c.mask_ellipse(cx, uy, ua * 0.7, _u(rng, 2.5, 5), ang), echo=0.45)  # halo
    c.paint(c.mask_ellipse(cx, uy, ua * 0.65, _u(rng, 1.0, 2.5), ang), echo=2.6)  # endometrium
    c.site = Site(cx, uy, ua * 0.5, ub * 0.4, 0.9)


def draw_ovary(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    top = _wall(c, rng, 2.0, _u(rng, 6, 12), _u(rng, 6, 10))
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.35, grain=18)  # bowel / pelvis
    cx, cy = _u(rng, -15, 15), top + _u(rng, 40, 55)
    a, b = _u(rng, 16, 22), _u(rng, 11, 15)
    ov = c.mask_ellipse(cx, cy, a, b, _u(rng, -20, 20))
    c.paint(ov, echo=0.85)
    for _ in range(int(rng.integers(3, 9))):  # follicles
        r = _u(rng, 1.5, 4.5)
        c.paint(c.mask_ellipse(cx + _u(rng, -a + r, a - r) * 0.8, cy + _u(rng, -b + r, b - r) * 0.8, r, r),
                echo=0.0, atten=FLUID_ATTEN)
    c.site = Site(cx, cy, 6.0, 6.0, 0.85)


def draw_pleura(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    top = _wall(c, rng, 2.0, _u(rng, 5, 10), _u(rng, 8, 14))
    xmin, xmax, _, D = c.geom.bbox()
    for xr in (_u(rng, 0.45, 0.8) * xmin, _u(rng, 0.45, 0.8) * xmax):  # ribs: bright arc + shadow
        c.paint(c.mask_ellipse(xr, top + 3, _u(rng, 6, 9), 3.5), echo=4.5, atten=BONE_ATTEN)
    pl = top + 7
    c.layer(pl, pl + 1.5, 5.0)  # pleural line
    lung = c.layer(pl + 1.5, 1e9, 0.25, atten=1.5)
    for k in range(1, 5):  # A-lines: reverberations of the pleura at multiples of its depth
        c.echo[(lung > 0) & (np.abs(c.face_depth - pl * (k + 1)) < 1.2)] = 1.6 / k
    if has_lesion:  # fluid displaces the lung: it floats on compressed, airless (tissue-like) lung
        _consolidated_lung(c, rng, pl + 1.5, pl + 1.5 + 0.45 * (D - pl))
    c.site = Site(0.0, pl + 22, (xmax - xmin) * 0.2, 8.0, 1.0)


def _consolidated_lung(c: Canvas, rng: np.random.Generator, top: float, bottom: float) -> None:
    """Airless lung (hepatisation): liver-like tissue in place of the air artefacts."""
    m = c.layer(top, bottom, 0.9)
    c.texture(m, rng, 0.25, grain=14)


def draw_testis(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    c.layer(0, 1.5, 2.2)
    c.layer(1.5, 4.0, 1.2)
    xmin, xmax, _, D = c.geom.bbox()
    cy, a, b = _u(rng, 16, 20), _u(rng, 20, 26), _u(rng, 11, 14)
    c.paint(c.mask_ellipse(0, cy, a + 2.5, b + 2.5), echo=0.02, atten=FLUID_ATTEN)  # small hydrocele
    c.paint(c.mask_ellipse(0, cy, a + 0.7, b + 0.7), echo=2.8)  # tunica albuginea
    t = c.mask_ellipse(0, cy, a, b)
    c.paint(t, echo=1.0)
    c.texture(t, rng, 0.08, grain=12)
    c.paint(c.mask_ellipse(_u(rng, -4, 4), cy + b * 0.55, a * 0.35, 1.0, _u(rng, -10, 10)), echo=2.2)
    c.site = Site(0.0, cy - 1, a * 0.45, b * 0.35, 1.0)


def draw_thyroid(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Transverse neck: strap muscles over one lobe, trachea (air shadow) medially, carotid laterally."""
    c.layer(0, 1.5, 2.2)
    c.layer(1.5, 4.0, 0.6)
    c.layer(4.0, 4.6, 2.0)
    _striations(c, rng, c.layer(4.6, 8.5, 0.45), 4.6, 8.5)
    xmin, xmax, _, D = c.geom.bbox()
    W = xmax - xmin
    side = 1 if rng.random() < 0.5 else -1  # trachea at the medial edge of the field
    tx = side * (W / 2 - _u(rng, 3, 6))
    c.layer(8.5, 1e9, 0.65)  # deep neck tissue
    c.texture((c.face_depth >= 8.5).astype(np.uint8), rng, 0.3, grain=12)
    lobe = np.array([[tx - side * 3, 9.5], [tx - side * 3, 14], [tx - side * 0.35 * W, 25],
                     [tx - side * 0.62 * W, 24], [tx - side * 0.68 * W, 15], [tx - side * 0.6 * W, 9.5]])
    m = c.mask_poly(lobe)
    c.paint(m, echo=1.5, soft_mm=0.4)
    c.texture(m, rng, 0.1, grain=12)
    # Trachea: bright cartilage ring whose air column shadows everything beneath.
    c.paint(c.mask_ellipse(tx + side * 8, 21, 10, 9), echo=0.1, atten=BONE_ATTEN)
    c.paint(c.mask_ellipse(tx + side * 8, 21, 10, 9, 0, 1.5), echo=5.0)
    r = _u(rng, 3.2, 4)  # carotid artery, lateral to the lobe
    ca = (tx - side * (0.68 * W + r + 1), _u(rng, 19, 23))
    c.paint(c.mask_ellipse(ca[0], ca[1], r + 0.8, r + 0.8), echo=2.5)
    c.paint(c.mask_ellipse(ca[0], ca[1], r, r), echo=0.02, atten=FLUID_ATTEN, flow=0.8)
    c.paint(c.mask_ellipse(tx - side * 0.4 * W, 29, 8, 3), echo=0.4)  # longus colli
    c.site = Site(tx - side * 0.4 * W, 16.5, 0.1 * W, 2.0, 1.5)


def draw_lymph_node(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    c.layer(0, 1.5, 2.2)
    fat = c.layer(1.5, 1e9, 0.75)
    c.texture(fat, rng, 0.35, grain=16)
    _, _, _, D = c.geom.bbox()
    cx, cy, a, b = _u(rng, -6, 6), _u(rng, 0.4, 0.55) * D, _u(rng, 8, 12), _u(rng, 3.5, 5)
    ang = _u(rng, -15, 15)
    if not has_lesion:  # a pathological node is drawn by the lesion itself (hilum effaced)
        c.paint(c.mask_ellipse(cx, cy, a, b, ang), echo=0.35)
        c.paint(c.mask_ellipse(cx + a * 0.15, cy, a * 0.6, b * 0.35, ang), echo=1.9)
    _vessel(c, _curve(rng, c.geom.bbox()[0], D * 0.85, c.geom.bbox()[1], D * 0.8, 2), 2.5, 2.0, 0.7)
    c.site = Site(cx, cy, 1.0, 1.0, 0.75)


def draw_breast(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    xmin, xmax, _, D = c.geom.bbox()
    f1, g1 = _u(rng, 5, 9), _u(rng, 17, 24)
    c.layer(0, 1.8, 2.2)
    fat = c.layer(1.8, f1, 0.5)
    c.texture(fat, rng, 0.4, grain=12)
    gland = c.layer(f1, g1, 1.3)
    c.texture(gland, rng, 0.45, grain=20)
    for _ in range(int(rng.integers(3, 7))):  # Cooper ligaments: thin bright arcs in the fat
        x0 = _u(rng, xmin, xmax)
        pts = _curve(rng, x0, 1.8, x0 + _u(rng, -10, 10), f1 + 1, 2.5, 8)
        c.paint(c.mask_poly(pts, 1, False), echo=2.2)
    c.layer(g1, g1 + 3, 0.5)
    _striations(c, rng, c.layer(g1 + 3, g1 + 11, 0.6), g1 + 3, g1 + 11)
    rib_y = g1 + 15
    if rib_y + 4 < D:
        c.layer(rib_y - 2.5, rib_y - 1.5, 3.0)  # pleura behind ribs
        c.paint(c.mask_ellipse(_u(rng, xmin, xmax) * 0.7, rib_y + 3, 8, 3.5), echo=0.3)  # rib cartilage
    c.site = Site(0.0, (f1 + g1) / 2 + 1, (xmax - xmin) * 0.2, 1.5, 1.0)


def draw_soft_tissue(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    xmin, xmax, _, D = c.geom.bbox()
    top = _wall(c, rng, 1.5, _u(rng, 5, 10), 0)
    bone = _u(rng, 0.72, 0.85) * D
    m = c.layer(top, bone, 0.6)
    _striations(c, rng, m, top, bone)
    arc = _curve(rng, xmin, bone + _u(rng, -2, 2), xmax, bone + _u(rng, -2, 2), 2, 16)
    c.paint(c.mask_poly(np.concatenate([arc, [[xmax, D * 2], [xmin, D * 2]]])), echo=0.05, atten=BONE_ATTEN)
    c.paint(c.mask_poly(arc, max(2, int(1.4 / c.mm_per_px)), False), echo=6.0)  # cortex
    c.site = Site(0.0, (top + bone) / 2, (xmax - xmin) * 0.25, (bone - top) * 0.15, 0.7)


def draw_artery(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    xmin, xmax, _, D = c.geom.bbox()
    top = _wall(c, rng, 1.5, _u(rng, 3, 6), _u(rng, 4, 7))
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.3, grain=14)
    cy, r = _u(rng, 0.45, 0.6) * D, _u(rng, 3, 4.2)
    pts = _curve(rng, xmin * 1.1, cy + _u(rng, -2, 2), xmax * 1.1, cy + _u(rng, -2, 2), 1.5, 16)
    _vessel(c, pts, r, 2.8, _u(rng, 0.6, 0.95) * rng.choice([-1, 1]))
    vein = pts + np.array([0.0, r * 2 + _u(rng, 3, 5)])
    _vessel(c, vein, r * 1.2, 1.2, -0.25)
    c.site = Site(0.0, cy + r - 0.5, (xmax - xmin) * 0.25, 0.3, 1.0)  # plaque on the far wall


def draw_heart(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Apical four-chamber view: ventricles above the valve plane, atria below, septum between."""
    _, _, _, D = c.geom.bbox()
    c.echo[:] = 0.35  # lung / chest wall around the heart
    c.texture(None, rng, 0.4, grain=10)
    cx, cy = _u(rng, -0.03, 0.03) * D, D * 0.5
    ang = _u(rng, -8, 8)
    c.paint(c.mask_ellipse(cx, cy, D * 0.3, D * 0.42, ang), echo=2.6, soft_mm=2.0)  # pericardium
    myo = c.mask_ellipse(cx, cy, D * 0.27, D * 0.39, ang)
    c.paint(myo, echo=1.0)
    c.texture(myo, rng, 0.25, grain=14)
    av = cy + D * _u(rng, 0.04, 0.08)  # atrioventricular valve plane
    sep = 0.018 * D
    chambers = ((1, cy - D * 0.12, 0.095, 0.2, 0.45), (-1, cy - D * 0.1, 0.075, 0.17, -0.4),
                (1, av + D * 0.14, 0.085, 0.11, -0.3), (-1, av + D * 0.13, 0.075, 0.1, 0.3))
    for sx, yy, a, b, v in chambers:
        m = c.mask_ellipse(cx + sx * (sep + a * D), yy, a * D, b * D, ang - sx * 6)
        c.paint(m, echo=0.03, atten=FLUID_ATTEN, soft_mm=1.5)
        c.flow[m > 0] = v
    for sx in (-1, 1):  # mitral / tricuspid leaflets
        p = np.array([[cx + sx * sep, av], [cx + sx * (sep + _u(rng, 0.08, 0.14) * D), av + _u(rng, -8, 6)]])
        c.paint(c.mask_poly(p, max(1, int(1.2 / c.mm_per_px)), False), echo=3.5)
    c.site = Site(cx + sep + 0.085 * D, av + D * 0.14, D * 0.03, D * 0.04, 1.0)


ANATOMY: dict[str, Callable[[Canvas, np.random.Generator, bool], None]] = {
    "liver": draw_liver, "gallbladder": draw_gallbladder, "kidney": draw_kidney,
    "bladder": draw_bladder, "uterus": draw_uterus, "ovary": draw_ovary, "pleura": draw_pleura,
    "testis": draw_testis, "thyroid": draw_thyroid, "lymph_node": draw_lymph_node,
    "breast": draw_breast, "soft_tissue": draw_soft_tissue, "artery": draw_artery,
    "heart": draw_heart,
}


# The organ models added for taxonomy coverage live in their own module (which imports the
# helpers above, hence the import here, after them).
from .anatomy_extended import EXTENDED_ANATOMY  # noqa: E402

ANATOMY.update(EXTENDED_ANATOMY)


def draw_anatomy(key: str, c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Paint organ ``key`` on the canvas and set ``c.site``."""
    try:
        fn = ANATOMY[key]
    except KeyError:
        raise ValueError(f"organ model: expected one of {sorted(ANATOMY)}, found {key!r}") from None
    fn(c, rng, has_lesion)
    np.maximum(c.echo, 0.0, out=c.echo)
