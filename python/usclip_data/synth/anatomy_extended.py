"""Organ backgrounds added for taxonomy coverage (every body system, 32 organs in all).

Same conventions as ``anatomy.py``: echogenicity 1 = reference parenchyma, fluid ~0, fibrous
and fatty interfaces brighter, bone/air/gas strongly attenuating (shadows come from the
physics); each ``draw_<key>`` ends by setting ``canvas.site`` where that organ's lesion sits.
Each scan has the landmarks a sonographer names it by (the splenic vein behind the pancreas,
the aorta on the vertebral body, the anechoic globe and lens, the cartilaginous infant femoral
head under the ilium, a nerve's fascicles, ...).
"""
from __future__ import annotations

import numpy as np

from .anatomy import BONE_ATTEN, _consolidated_lung, _curve, _striations, _u, _vessel, _wall
from .canvas import FLUID_ATTEN, Canvas, Site

__all__ = ["EXTENDED_ANATOMY"]


def _bone(c: Canvas, y: float, bend: float, rng: np.random.Generator, cortex: float = 6.0) -> None:
    """A bright cortical line at depth ``y`` with a full acoustic shadow beneath it."""
    xmin, xmax, _, D = c.geom.bbox()
    arc = _curve(rng, xmin * 1.2, y + _u(rng, -2, 2), xmax * 1.2, y + _u(rng, -2, 2), bend, 16)
    c.paint(c.mask_poly(np.concatenate([arc, [[xmax * 1.2, D * 2], [xmin * 1.2, D * 2]]])), echo=0.05,
            atten=BONE_ATTEN)
    c.paint(c.mask_poly(arc, max(2, int(1.4 / c.mm_per_px)), False), echo=cortex)


def _gas(c: Canvas, x: float, y: float, w: float) -> None:
    """Bowel gas: a bright echo whose 'dirty' shadow blocks what lies below."""
    c.paint(c.mask_ellipse(x, y, w, w * 0.35), echo=5.0, atten=BONE_ATTEN * 0.6)


def draw_pancreas(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Transverse epigastrium: a bright pancreas band over the splenic vein, SMA, aorta, spine."""
    top = _wall(c, rng, 2.0, _u(rng, 8, 16), _u(rng, 8, 12))
    xmin, xmax, _, D = c.geom.bbox()
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.12, grain=16)  # left liver lobe
    py = top + _u(rng, 30, 42)
    band = _curve(rng, xmin * 0.8, py + 6, xmax * 0.8, py - 4, 6, 16)
    gland = c.mask_poly(band, max(3, int(_u(rng, 14, 20) / c.mm_per_px)), False)
    c.paint(gland, echo=1.5, soft_mm=0.8)  # pancreas: brighter than liver, fatty
    c.texture(gland, rng, 0.25, grain=24)
    _vessel(c, band + np.array([0.0, _u(rng, 9, 12)]), 2.5, 1.5, 0.5)  # splenic vein behind it
    ay = py + _u(rng, 26, 34)
    c.paint(c.mask_ellipse(0.0, ay, 9.5, 9.5), echo=2.6)  # aorta: bright wall, lumen
    c.paint(c.mask_ellipse(0.0, ay, 8.0, 8.0), echo=0.02, atten=FLUID_ATTEN, flow=0.8)
    c.paint(c.mask_ellipse(0.0, ay - 14, 3.0, 3.0), echo=0.02, atten=FLUID_ATTEN, flow=0.7)  # SMA
    if ay + 25 < D:
        _bone(c, ay + 18, 8, rng)  # vertebral body
    c.site = Site(_u(rng, -10, 10), py, 12.0, 3.0, 1.5)


def draw_spleen(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Left flank: a homogeneous crescent spleen with a concave hilum, under the diaphragm."""
    top = _wall(c, rng, 2.0, _u(rng, 4, 8), _u(rng, 8, 12))
    xmin, xmax, _, D = c.geom.bbox()
    c.layer(top, 1e9, 0.3)  # fat and bowel around the spleen
    cx, cy = _u(rng, -8, 8), top + _u(rng, 38, 48)
    a, b = _u(rng, 48, 60), _u(rng, 24, 30)
    sp = c.mask_ellipse(cx, cy, a, b, _u(rng, -25, -10))
    notch = c.mask_ellipse(cx + _u(rng, 5, 15), cy + b * 0.9, a * 0.45, b * 0.45)  # concave hilum
    sp[notch > 0] = 0
    c.paint(sp, echo=1.15, atten=0.5)
    c.texture(sp, rng, 0.06, grain=10)  # very homogeneous parenchyma
    c.paint(c.mask_ellipse(cx, cy, a + 1.2, b + 1.2, _u(rng, -25, -10), 1.2) & (sp == 0), echo=2.5)
    _vessel(c, _curve(rng, cx + 2, cy + b * 0.65, cx + 18, cy + b + 8, 3), 2.5, 1.5, -0.5)  # hilar vein
    yd = min(cy + b + 12, D * 0.9)
    c.paint(c.mask_poly(_curve(rng, xmin * 1.2, yd, xmax * 1.2, yd - 8, 12, 16),
                        max(2, int(3 / c.mm_per_px)), False), echo=5.0)  # diaphragm
    c.site = Site(cx, cy, a * 0.35, b * 0.35, 1.15)


def draw_great_vessels(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Transverse retroperitoneum: round aorta, flat IVC, psoas muscles on a vertebral body."""
    top = _wall(c, rng, 2.0, _u(rng, 8, 18), _u(rng, 8, 12))
    xmin, xmax, _, D = c.geom.bbox()
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.3, grain=14)  # mesentery
    _gas(c, _u(rng, 0.4, 0.7) * xmax, top + 6, _u(rng, 8, 12))
    vy = top + _u(rng, 45, 60)
    ax = _u(rng, -15, -8)
    r = _u(rng, 8, 11)
    c.paint(c.mask_ellipse(ax, vy, r + 1.5, r + 1.5), echo=3.0)  # aorta
    c.paint(c.mask_ellipse(ax, vy, r, r), echo=0.02, atten=FLUID_ATTEN, flow=0.85)
    c.paint(c.mask_ellipse(ax + r + 16, vy + 2, 13, 6.5), echo=0.03, atten=FLUID_ATTEN, flow=-0.3)  # IVC
    for s in (-1, 1):  # psoas muscles beside the spine
        c.paint(c.mask_ellipse(s * 28 + ax * 0.3, vy + 18, 14, 10), echo=0.55)
    _bone(c, vy + r + 12, 10, rng)  # vertebral body
    c.site = Site(ax + 2, vy - r - 4, 10.0, 3.0, 1.0)  # para-aortic


def draw_appendix(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Right iliac fossa: a blind-ending tube with gut-signature wall in echogenic fat, psoas."""
    top = _wall(c, rng, 1.5, _u(rng, 4, 8), _u(rng, 4, 7))
    xmin, xmax, _, D = c.geom.bbox()
    c.layer(top, 1e9, 1.4)  # echogenic mesenteric fat
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.35, grain=14)
    ay = top + _u(rng, 0.25, 0.4) * (D - top)
    tube = _curve(rng, xmin * 0.9, ay, _u(rng, 0.2, 0.5) * xmax, ay + _u(rng, -4, 4), 3, 12)
    px = max(2, int(round(_u(rng, 6, 8) / c.mm_per_px)))
    c.paint(c.mask_poly(tube, px, False), echo=0.35)  # muscular wall: the gut signature
    c.paint(c.mask_poly(tube, max(1, px // 3), False), echo=2.8)  # bright mucosa / lumen
    tip = tube[-1]
    c.paint(c.mask_ellipse(tip[0], tip[1], px * c.mm_per_px / 2, px * c.mm_per_px / 2), echo=0.35)  # blind end
    c.paint(c.mask_ellipse(_u(rng, -5, 5), D * 0.82, 16, 7), echo=0.55)  # psoas
    c.paint(c.mask_ellipse(_u(rng, 8, 14), D * 0.72, 3.5, 3.5), echo=0.02, atten=FLUID_ATTEN, flow=0.7)  # iliac artery
    c.site = Site(float(tip[0]) * 0.7, float(tip[1]), 3.0, 2.0, 1.4)


def draw_abdominal_wall(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Rectus bellies either side of the linea alba, peritoneal line, bowel gas beneath."""
    xmin, xmax, _, D = c.geom.bbox()
    top = _wall(c, rng, 1.5, _u(rng, 6, 12), 0)
    mb = top + _u(rng, 8, 12)
    m = c.layer(top, mb, 0.55)
    _striations(c, rng, m, top, mb)
    la = _u(rng, -0.3, 0.3) * xmax  # linea alba between the two rectus bellies
    c.paint(c.mask_poly(np.array([[la, top], [la, mb]]), max(2, int(1.5 / c.mm_per_px)), False), echo=2.5)
    c.layer(mb, mb + 2.5, 1.6)  # preperitoneal fat
    c.layer(mb + 2.5, mb + 3.5, 3.5)  # peritoneum
    gut = c.layer(mb + 3.5, 1e9, 0.8)
    c.texture(gut, rng, 0.4, grain=10)
    for k in range(1, 4):  # gas in the bowel behind the peritoneum: reverberation lines
        c.echo[(gut > 0) & (np.abs(c.face_depth - (mb + 3.5) * (1 + 0.5 * k)) < 0.8)] = 2.0 / k
    c.site = Site(0.0, (top + mb) / 2, (xmax - xmin) * 0.2, 2.0, 0.6)


def draw_penis(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Transverse shaft: two corpora cavernosa, the corpus spongiosum below, dorsal vessels."""
    c.layer(0, 1.5, 2.2)
    c.layer(1.5, 1e9, 0.5)
    xmin, xmax, _, D = c.geom.bbox()
    cy, r = _u(rng, 0.4, 0.5) * D, _u(rng, 6.5, 8.5)
    for s in (-1, 1):
        x = s * (r + 0.8)
        c.paint(c.mask_ellipse(x, cy, r + 1.0, r + 1.0), echo=2.6)  # tunica albuginea
        cc = c.mask_ellipse(x, cy, r, r)
        c.paint(cc, echo=0.75)
        c.texture(cc, rng, 0.15, grain=12)
        c.paint(c.mask_ellipse(x * 0.7, cy, 0.9, 0.9), echo=2.5, flow=0.6)  # cavernosal artery
    sy = cy + r + _u(rng, 4.5, 6)
    c.paint(c.mask_ellipse(0, sy, 5.0, 4.2), echo=2.2)
    c.paint(c.mask_ellipse(0, sy, 4.0, 3.3), echo=1.0)  # corpus spongiosum
    c.paint(c.mask_ellipse(0, cy - r - 1.8, 1.6, 1.1), echo=0.02, atten=FLUID_ATTEN, flow=-0.3)  # dorsal vein
    c.site = Site(-(r + 0.8), cy, r * 0.35, r * 0.35, 0.75)


def draw_salivary(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Parotid: a bright, fine-textured gland over the masseter, mandible shadow at the side."""
    c.layer(0, 1.5, 2.2)
    c.layer(1.5, _u(rng, 3, 5), 0.6)
    xmin, xmax, _, D = c.geom.bbox()
    gb = _u(rng, 0.6, 0.75) * D
    gland = np.array([[xmin * 1.1, 4.0], [xmax * 1.1, 4.0], [xmax * 0.6, gb], [xmin * 0.5, gb * 0.9]])
    g = c.mask_poly(gland)
    c.paint(g, echo=1.8)
    c.texture(g, rng, 0.12, grain=18)
    c.paint(c.mask_ellipse(_u(rng, 0.2, 0.4) * xmax, gb * 0.55, 2.2, 2.2), echo=0.02, atten=FLUID_ATTEN,
            flow=-0.4)  # retromandibular vein
    side = xmin * 0.85
    c.paint(c.mask_poly(np.array([[side, gb * 0.5], [side + 5, D * 2], [xmin * 2, D * 2], [xmin * 2, gb * 0.5]])),
            echo=0.05, atten=BONE_ATTEN)
    c.paint(c.mask_poly(np.array([[xmin * 2, gb * 0.5], [side, gb * 0.5], [side + 5, D * 2]]),
                        max(2, int(1.3 / c.mm_per_px)), False), echo=6.0)  # mandibular ramus
    c.site = Site(_u(rng, 0.0, 0.2) * xmax, gb * 0.45, 3.0, 2.0, 1.8)


def draw_ocular(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Through the closed lid: anechoic globe, lens, bright sclera, optic nerve in orbital fat."""
    c.layer(0, 2.0, 2.0)  # eyelid
    xmin, xmax, _, D = c.geom.bbox()
    c.layer(2.0, 1e9, 2.0)  # retrobulbar fat
    c.texture((c.face_depth >= 2.0).astype(np.uint8), rng, 0.3, grain=14)
    R = _u(rng, 11.0, 12.0)
    cy = 3.0 + R
    nx = _u(rng, -3, 3)
    c.paint(c.mask_poly(np.array([[nx - 2, cy + R - 1], [nx + 2, cy + R - 1], [nx + 2.5, D * 2],
                                  [nx - 2.5, D * 2]])), echo=0.35)  # optic nerve
    c.paint(c.mask_ellipse(0, cy, R + 1.0, R + 1.0), echo=3.0)  # sclera
    c.paint(c.mask_ellipse(0, cy, R, R), echo=0.0, atten=FLUID_ATTEN)  # vitreous
    c.paint(c.mask_ellipse(0, 4.5 + 2.0, 4.5, 2.0, 0, 0.6), echo=3.0)  # lens capsule
    c.paint(c.mask_ellipse(0, 4.5 + 2.0, 4.2, 1.7), echo=0.0, atten=FLUID_ATTEN)
    c.site = Site(0.0, cy + R * 0.5, R * 0.3, 1.0, 1.0)  # on the posterior wall


def draw_axilla(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Axillary fat with a fatty-hilum node, axillary artery and vein over the chest-wall muscle."""
    xmin, xmax, _, D = c.geom.bbox()
    c.layer(0, 1.5, 2.2)
    fat = c.layer(1.5, 1e9, 0.7)
    c.texture(fat, rng, 0.45, grain=16)
    my = _u(rng, 0.6, 0.7) * D
    m = c.layer(my, my + 8, 0.55)  # pectoralis minor / chest wall muscle
    _striations(c, rng, m, my, my + 8)
    vy = my - _u(rng, 5, 8)
    vx = _u(rng, -0.4, 0.4) * xmax
    c.paint(c.mask_ellipse(vx, vy, 3.5, 3.5), echo=2.6)
    c.paint(c.mask_ellipse(vx, vy, 2.8, 2.8), echo=0.02, atten=FLUID_ATTEN, flow=0.8)  # axillary artery
    c.paint(c.mask_ellipse(vx + 9, vy + 1, 5.0, 3.2), echo=0.03, atten=FLUID_ATTEN, flow=-0.3)  # vein
    if not has_lesion:  # a normal node: thin hypoechoic cortex round a fatty hilum
        nx, ny = -vx * 0.6, _u(rng, 0.25, 0.35) * D
        c.paint(c.mask_ellipse(nx, ny, 7, 3.2, _u(rng, -15, 15)), echo=0.35)
        c.paint(c.mask_ellipse(nx, ny, 5, 2.0, _u(rng, -15, 15)), echo=1.9)
    c.site = Site(-vx * 0.5, 0.3 * D, 3.0, 2.0, 0.7)


def draw_shoulder(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Supraspinatus, long axis: deltoid over a bursa, the fibrillar tendon, the humeral head."""
    xmin, xmax, _, D = c.geom.bbox()
    c.layer(0, 1.5, 2.2)
    c.layer(1.5, 3.5, 0.6)
    dt = 3.5 + _u(rng, 8, 12)
    _striations(c, rng, c.layer(3.5, dt, 0.55), 3.5, dt)  # deltoid
    c.layer(dt, dt + 0.8, 2.4)  # peribursal fat
    c.layer(dt + 0.8, dt + 1.4, 0.15)  # subdeltoid bursa: a thin dark line
    hy = dt + 1.4 + _u(rng, 6, 8)
    ten = c.layer(dt + 1.4, hy, 1.6)  # tendon: bright with parallel fibres
    for y in np.arange(dt + 2.0, hy, 0.9):
        c.echo[(ten > 0) & (np.abs(c.face_depth - y) < 0.25)] = 2.6
    c.layer(hy, hy + 1.0, 0.3)  # hyaline cartilage
    _bone(c, hy + 1.0, 4, rng)  # humeral head
    c.site = Site(0.0, dt + 1.0, (xmax - xmin) * 0.2, 0.5, 0.6)


def draw_knee(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Suprapatellar, long axis: quadriceps tendon, fat pads, the recess, the femoral cortex."""
    xmin, xmax, _, D = c.geom.bbox()
    top = _wall(c, rng, 1.5, _u(rng, 3, 6), 0)
    tb = top + _u(rng, 5, 7)
    ten = c.layer(top, tb, 1.6)
    for y in np.arange(top + 0.6, tb, 0.8):
        c.echo[(ten > 0) & (np.abs(c.face_depth - y) < 0.25)] = 2.6
    fat = c.layer(tb, 1e9, 1.8)  # suprapatellar and prefemoral fat pads
    c.texture(fat, rng, 0.3, grain=12)
    ry = tb + _u(rng, 4, 6)
    c.layer(ry, ry + 1.0, 0.1)  # collapsed suprapatellar recess
    fy = ry + _u(rng, 7, 10)
    if fy + 3 < D:
        _bone(c, fy, 3, rng)  # femur
    c.site = Site(0.0, ry + 0.5, (xmax - xmin) * 0.2, 0.5, 1.8)


def draw_nerve(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Transverse peripheral nerve: a honeycomb of dark fascicles in a bright epineurium."""
    xmin, xmax, _, D = c.geom.bbox()
    top = _wall(c, rng, 1.5, _u(rng, 3, 6), _u(rng, 6, 10))
    m = c.layer(top, 1e9, 0.6)
    _striations(c, rng, m, top, D)
    nx, ny = _u(rng, -0.3, 0.3) * xmax, top + _u(rng, 0.3, 0.45) * (D - top)
    a, b = _u(rng, 4.5, 6.5), _u(rng, 3.0, 4.0)
    c.paint(c.mask_ellipse(nx, ny, a + 0.8, b + 0.8), echo=2.2)
    for _ in range(int(rng.integers(8, 14))):
        fx, fy = nx + _u(rng, -0.75, 0.75) * a, ny + _u(rng, -0.7, 0.7) * b
        c.paint(c.mask_ellipse(fx, fy, 0.9, 0.8), echo=0.3)
    ax = nx + (a + _u(rng, 4, 7)) * (1 if rng.random() < 0.5 else -1)
    c.paint(c.mask_ellipse(ax, ny, 2.4, 2.4), echo=2.5)
    c.paint(c.mask_ellipse(ax, ny, 1.8, 1.8), echo=0.02, atten=FLUID_ATTEN, flow=0.8)  # companion artery
    c.site = Site(nx, ny, 1.0, 1.0, 0.6)


def draw_pulmonary(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Lung: ribs with shadows, an irregular pleural line and vertical B-lines (comet tails)."""
    top = _wall(c, rng, 2.0, _u(rng, 5, 10), _u(rng, 8, 12))
    xmin, xmax, _, D = c.geom.bbox()
    for xr in (_u(rng, 0.5, 0.8) * xmin, _u(rng, 0.5, 0.8) * xmax):
        c.paint(c.mask_ellipse(xr, top + 3, _u(rng, 6, 9), 3.5), echo=4.5, atten=BONE_ATTEN)
    pl = top + 7
    line = _curve(rng, xmin * 1.2, pl, xmax * 1.2, pl, 1.5, 30)
    line[:, 1] += rng.uniform(-0.8, 0.8, len(line))  # thickened, irregular pleura
    lung = c.layer(pl + 1.5, 1e9, 0.25, atten=1.5)
    c.paint(c.mask_poly(line, max(2, int(2.0 / c.mm_per_px)), False), echo=4.5)
    for _ in range(int(rng.integers(3, 6))):  # B-lines: from the pleura to the bottom, no fading
        bx = _u(rng, 0.6, 0.9) * _u(rng, xmin, xmax)
        beam = c.mask_poly(np.array([[bx, pl], [bx * (1 + D / 200), D * 1.2]]), max(2, int(2.2 / c.mm_per_px)), False)
        c.paint(beam & lung, echo=2.2, atten=0.2)
    if has_lesion:  # a lesion is seen where the lung is airless (consolidated) around it
        _consolidated_lung(c, rng, pl + 1.5, pl + 1.5 + 0.45 * (D - pl))
    c.site = Site(0.0, pl + 20, (xmax - xmin) * 0.15, 6.0, 0.8)


def draw_neonatal_brain(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Coronal through the anterior fontanelle: falx, slit ventricles, choroid, sylvian fissures."""
    xmin, xmax, _, D = c.geom.bbox()
    brain = c.layer(0, 1e9, 0.6)
    c.texture(brain, rng, 0.2, grain=14)
    fx = _u(rng, -2, 2)
    c.paint(c.mask_poly(np.array([[fx, 2], [fx, D * 0.35]]), max(2, int(1.2 / c.mm_per_px)), False), echo=3.0)  # falx
    vy = D * _u(rng, 0.38, 0.45)
    for s in (-1, 1):
        c.paint(c.mask_ellipse(fx + s * 7, vy, 2.0, 6.0, s * 25), echo=0.02, atten=FLUID_ATTEN)  # ventricles
        c.paint(c.mask_ellipse(fx + s * 8, vy + 6, 2.5, 1.8), echo=3.2)  # choroid plexus
        sy = _curve(rng, fx + s * D * 0.42, vy + 4, fx + s * D * 0.2, vy + 10, 2, 8)
        c.paint(c.mask_poly(sy, max(2, int(1.4 / c.mm_per_px)), False), echo=3.5)  # sylvian fissure
    for _ in range(6):  # sulci: bright curvilinear lines near the convexity
        x0 = _u(rng, 0.3, 0.9) * (xmax if rng.random() < 0.5 else xmin)
        c.paint(c.mask_poly(_curve(rng, x0, D * _u(rng, 0.1, 0.3), x0 * 0.8, D * _u(rng, 0.3, 0.5), 3, 8),
                            1, False), echo=2.0)
    c.paint(c.mask_ellipse(fx, D * 0.62, 10, 7), echo=1.0)  # thalami / brainstem
    if D * 0.88 < D:
        c.paint(c.mask_poly(_curve(rng, xmin * 1.2, D * 0.9, xmax * 1.2, D * 0.9, 8, 16),
                            max(2, int(2.0 / c.mm_per_px)), False), echo=5.0, atten=BONE_ATTEN)  # skull base
    c.site = Site(fx + (8 if rng.random() < 0.5 else -8), vy - 4, 6.0, 3.0, 0.6)


def draw_infant_hip(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Graf coronal view: gluteal muscles, the straight ilium, the cartilaginous femoral head."""
    xmin, xmax, _, D = c.geom.bbox()
    c.layer(0, 1.2, 2.2)
    c.layer(1.2, 3.0, 0.6)
    m = c.layer(3.0, 1e9, 0.55)
    _striations(c, rng, m, 3.0, D)
    R = _u(rng, 8, 10)
    hx, hy = _u(rng, -3, 3), _u(rng, 0.45, 0.55) * D
    iy = hy - R - 1.5
    c.paint(c.mask_poly(np.array([[xmin * 1.2, iy], [hx - R * 0.2, iy]]), max(2, int(1.6 / c.mm_per_px)), False),
            echo=6.0)  # ilium: a straight bright line
    c.paint(c.mask_poly(np.array([[xmin * 1.2, iy + 0.8], [hx - R * 0.2, iy + 0.8], [hx - R * 0.2, D * 2],
                                  [xmin * 1.2, D * 2]])), echo=0.05, atten=BONE_ATTEN)
    head = c.mask_ellipse(hx, hy, R, R)
    c.paint(head, echo=0.1)  # hyaline cartilage: nearly anechoic with speckled dots
    ys, xs = np.nonzero(head)
    pick = rng.choice(len(ys), size=min(len(ys), 25), replace=False) if len(ys) else []
    c.echo[ys[pick], xs[pick]] = 1.5
    c.paint(c.mask_poly(np.array([[hx - R * 0.3, iy + 0.5], [hx + R * 0.5, iy - 1.0], [hx + R * 0.1, iy + 2.5]])),
            echo=2.5)  # labrum
    c.site = Site(hx + R * 1.1, hy - R * 0.3, 1.5, 1.5, 0.55)  # lateral to the head, clear of the ilium


def draw_pediatric_kidney(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Infant kidney: bright cortex, large dark pyramids, little sinus fat, thin body wall."""
    top = _wall(c, rng, 1.2, _u(rng, 2, 4), _u(rng, 3, 5))
    xmin, xmax, _, D = c.geom.bbox()
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.12, grain=14)
    cx, cy = _u(rng, -5, 5), top + _u(rng, 0.35, 0.45) * (D - top)
    a, b, ang = _u(rng, 0.3, 0.36) * D, _u(rng, 0.15, 0.19) * D, _u(rng, -15, 15)
    c.paint(c.mask_ellipse(cx, cy, a + 1.0, b + 1.0, ang), echo=2.6)
    c.paint(c.mask_ellipse(cx, cy, a, b, ang), echo=1.1)  # cortex as bright as liver
    t = np.radians(ang)
    for k in range(7):  # pyramids: big and nearly anechoic in an infant
        phi = 2 * np.pi * k / 7
        px, py = 0.55 * a * np.cos(phi), 0.55 * b * np.sin(phi)
        c.paint(c.mask_ellipse(cx + px * np.cos(t) - py * np.sin(t), cy + px * np.sin(t) + py * np.cos(t),
                               0.16 * a, 0.22 * b, float(np.degrees(phi + t))), echo=0.12)
    c.paint(c.mask_ellipse(cx, cy, a * 0.35, b * 0.2, ang), echo=2.0)  # thin sinus
    c.site = Site(cx, cy, a * 0.4, b * 0.3, 1.1)


def draw_vein(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Transverse femoral vein beside its artery: a big thin-walled oval with slow flow, valve."""
    xmin, xmax, _, D = c.geom.bbox()
    top = _wall(c, rng, 1.5, _u(rng, 3, 6), _u(rng, 4, 7))
    c.texture((c.face_depth >= top).astype(np.uint8), rng, 0.3, grain=14)
    vy = _u(rng, 0.45, 0.55) * D
    vx = _u(rng, -3, 3)
    a, b = _u(rng, 5.5, 7.5), _u(rng, 4.0, 5.5)
    c.paint(c.mask_ellipse(vx, vy, a + 0.6, b + 0.6), echo=1.8)
    c.paint(c.mask_ellipse(vx, vy, a, b), echo=0.03, atten=FLUID_ATTEN, flow=-0.25)
    c.paint(c.mask_poly(np.array([[vx - a * 0.8, vy - b * 0.5], [vx, vy + b * 0.1], [vx + a * 0.8, vy - b * 0.5]]),
                        1, False), echo=2.5)  # valve leaflets
    ax = vx + (a + _u(rng, 4, 6)) * (1 if rng.random() < 0.5 else -1)
    r = _u(rng, 3.0, 4.0)
    c.paint(c.mask_ellipse(ax, vy - 2, r + 1.0, r + 1.0), echo=2.8)
    c.paint(c.mask_ellipse(ax, vy - 2, r, r), echo=0.02, atten=FLUID_ATTEN, flow=0.9)
    c.site = Site(vx, vy, a * 0.3, b * 0.3, 1.0)


def draw_fistula(c: Canvas, rng: np.random.Generator, has_lesion: bool) -> None:
    """Forearm dialysis fistula: a tortuous, dilated superficial vein with fast flow."""
    xmin, xmax, _, D = c.geom.bbox()
    top = _wall(c, rng, 1.5, _u(rng, 2, 4), 0)
    m = c.layer(top, 1e9, 0.6)
    _striations(c, rng, m, top, D)
    t = np.linspace(0, 1, 24)
    y0 = top + _u(rng, 6, 9)
    pts = np.stack([xmin * 1.1 + (xmax - xmin) * 1.1 * t,
                    y0 + _u(rng, 2.5, 4) * np.sin(2 * np.pi * t * _u(rng, 1.2, 2.0) + _u(rng, 0, 6))], 1)
    _vessel(c, pts, _u(rng, 3.0, 4.0), 1.8, 0.9)
    bulge = pts[int(rng.integers(6, 18))]
    c.paint(c.mask_ellipse(bulge[0], bulge[1], 9, 6), echo=0.02, atten=FLUID_ATTEN, flow=0.6)  # aneurysmal segment
    if D * 0.8 + 3 < D:
        _bone(c, D * 0.8, 2, rng)  # radius
    c.site = Site(float(bulge[0]), float(bulge[1]) + 7, 3.0, 1.5, 0.6)


EXTENDED_ANATOMY = {
    "pancreas": draw_pancreas, "spleen": draw_spleen, "great_vessels": draw_great_vessels,
    "appendix": draw_appendix, "abdominal_wall": draw_abdominal_wall, "penis": draw_penis,
    "salivary": draw_salivary, "ocular": draw_ocular, "axilla": draw_axilla, "shoulder": draw_shoulder,
    "knee": draw_knee, "nerve": draw_nerve, "pulmonary": draw_pulmonary,
    "neonatal_brain": draw_neonatal_brain, "infant_hip": draw_infant_hip,
    "pediatric_kidney": draw_pediatric_kidney, "vein": draw_vein, "fistula": draw_fistula,
}
