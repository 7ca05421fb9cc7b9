"""Scanner screen realism: layout of the imaging region and burned-in annotations.

Everything here except calipers is composited strictly outside the imaging region (the region
mask is the ground truth the SDK's region detection is scored against). Calipers, like on a
real scanner, sit on the image; the Doppler box outline is drawn by ``doppler``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .canvas import paste
from .case import CaseSpec
from .geometry import ScanGeometry

__all__ = ["Layout", "make_layout", "draw_overlays", "STYLES"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Scanner styles: default screen size (h, w), background RGB, margins (top, bottom, left,
# right as fractions), text colour.
STYLES = (
    {"name": "classic", "size": (480, 640), "bg": (0, 0, 0), "m": (0.11, 0.07, 0.16, 0.12), "fg": (230, 230, 230)},
    {"name": "wide", "size": (600, 800), "bg": (12, 12, 16), "m": (0.09, 0.12, 0.22, 0.14), "fg": (200, 220, 255)},
    {"name": "console", "size": (768, 1024), "bg": (18, 22, 30), "m": (0.08, 0.16, 0.2, 0.2), "fg": (235, 235, 200)},
    {"name": "portable", "size": (720, 960), "bg": (0, 0, 0), "m": (0.13, 0.09, 0.12, 0.12), "fg": (180, 255, 180)},
)
_PROBES = {"linear": ("L12-5", "L15-7", "L11-3", "14L5"), "convex": ("C5-1", "C5-2", "C4-1", "6C1"),
           "phased": ("P4-2", "S5-1", "4V1", "P5-1")}
_PRESETS = {"liver": "Abd", "gallbladder": "Abd GB", "kidney": "Renal", "bladder": "Pelvis",
            "uterus": "GYN", "ovary": "GYN", "pleura": "Lung", "testis": "Scrotal", "thyroid": "Thyroid",
            "lymph_node": "Sm Parts", "breast": "Breast", "soft_tissue": "MSK", "artery": "Vasc Art",
            "heart": "Cardiac"}
_SITES = ("CITY GENERAL HOSP", "RADIOLOGY DEPT", "WOMENS IMAGING", "EMERGENCY US", "ST. MARY CLINIC")


@dataclass
class Layout:
    name: str
    height: int
    width: int
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 of the region bounding box
    mm_per_px: float
    background: tuple[int, int, int]
    fg: tuple[int, int, int]
    tint: tuple[float, float, float] | None
    grey_gamma_scale: float = 1.0


def make_layout(case: CaseSpec, geom: ScanGeometry, size: tuple[int, int] | None,
                rng: np.random.Generator) -> Layout:
    """Screen size, region placement and style for this case's scanner."""
    style = STYLES[case.layout % len(STYLES)]
    h, w = (int(size[0]), int(size[1])) if size is not None else style["size"]
    top, bot, left, right = style["m"]
    ax0, ay0, ax1, ay1 = left * w, top * h, w - right * w, h - bot * h
    xmin, xmax, ymin, ymax = geom.bbox()
    mm = max((xmax - xmin) / (ax1 - ax0), (ymax - ymin) / (ay1 - ay0))
    rw, rh = int(np.ceil((xmax - xmin) / mm)), int(np.ceil((ymax - ymin) / mm))
    x0 = int(round(ax0 + (ax1 - ax0 - rw) * (0.5 if case.layout % 2 == 0 else 0.3)))
    y0 = int(round(ay0))
    tint = None if case.layout != 2 else (1.0, 0.97, 0.9)  # a sepia-ish grey map on one scanner
    return Layout(style["name"], h, w, (x0, y0, x0 + rw, y0 + rh), mm, style["bg"], style["fg"], tint)


def _text(layer: np.ndarray, mask: np.ndarray, s: str, org: tuple[int, int], scale: float,
          colour: tuple[int, int, int]) -> None:
    th = 1
    cv2.putText(layer, s, org, _FONT, scale, colour, th, cv2.LINE_AA)
    cv2.putText(mask, s, org, _FONT, scale, 1, th + 1, cv2.LINE_8)


def _depth_scale(layer, mask, lay: Layout, geom: ScanGeometry, st: dict, fs: float) -> None:
    x0, y0, x1, y1 = lay.region
    xs = x1 + max(3, lay.width // 100)
    ymin = geom.bbox()[2]
    step = 10.0 if geom.depth_mm > 60 else 5.0
    tick = max(2, lay.width // 160)
    for k, d in enumerate(np.arange(0.0, geom.depth_mm + 1e-6, step)):
        y = int(round(y0 + (d - ymin) / lay.mm_per_px))
        major = (d % 10.0) < 1e-6
        ln = tick * (2 if major else 1)
        cv2.line(layer, (xs, y), (xs + ln, y), lay.fg, 1)
        cv2.line(mask, (xs, y), (xs + ln, y), 1, 2)
        if major and d > 0 and k % (2 if geom.depth_mm > 120 else 1) == 0:
            _text(layer, mask, f"{int(d // 10)}", (xs + ln + 2, y + int(4 * fs * 2)), fs * 0.9, lay.fg)
    fy = int(round(y0 + (st["focus_mm"] - ymin) / lay.mm_per_px))  # focus marker: a small triangle
    tri = np.array([[xs - 1, fy], [xs - 1 - 2 * tick, fy - tick], [xs - 1 - 2 * tick, fy + tick]], np.int32)
    cv2.fillPoly(layer, [tri], (255, 200, 0))
    cv2.fillPoly(mask, [tri], 1)


def _body_mark(layer, mask, lay: Layout, rng: np.random.Generator) -> None:
    s = max(12, lay.height // 14)
    cx, cy = int(lay.width * 0.06) + s // 2, lay.height - s - 4
    cv2.ellipse(layer, (cx, cy), (s // 2, int(s * 0.7) // 2), 0, 0, 360, lay.fg, 1)
    cv2.ellipse(mask, (cx, cy), (s // 2, int(s * 0.7) // 2), 0, 0, 360, 1, 2)
    a = rng.uniform(0, np.pi)
    p1 = (int(cx + s * 0.3 * np.cos(a)), int(cy + s * 0.3 * np.sin(a)))
    p2 = (int(cx - s * 0.3 * np.cos(a)), int(cy - s * 0.3 * np.sin(a)))
    cv2.line(layer, p1, p2, (255, 255, 120), 2)
    cv2.line(mask, p1, p2, 1, 3)


def _colour_bar(layer, mask, lay: Layout, box, fs: float) -> None:
    from .doppler import flow_colours
    x0, y0 = lay.region[0], lay.region[1]
    bw, bh = max(4, lay.width // 80), max(16, lay.height // 6)
    bx, by = max(2, x0 - bw - max(4, lay.width // 40)), y0 + max(12, lay.height // 20)
    v = np.linspace(1, -1, bh, dtype=np.float32)
    col = flow_colours(v if box.mode == "color" else np.abs(v[::-1] * 0 + np.linspace(1, 0, bh)), box.mode)
    layer[by:by + bh, bx:bx + bw] = col[:, None, :]
    mask[by:by + bh, bx:bx + bw] = 1
    _text(layer, mask, f"{box.scale_cm_s:.0f}", (bx, by - 3), fs * 0.8, lay.fg)
    if box.mode == "color":
        _text(layer, mask, f"-{box.scale_cm_s:.0f}", (bx, by + bh + int(12 * fs * 2)), fs * 0.8, lay.fg)


def _calipers(screen: np.ndarray, cmask: np.ndarray, lay: Layout, geom: ScanGeometry, les,
              rng: np.random.Generator) -> list:
    """'+' markers at the ends of the lesion's long axis (and sometimes the short axis)."""
    xmin, _, ymin, _ = geom.bbox()
    (cx, cy), (a, b), ang = les.center_mm, les.axes_mm, np.radians(les.angle_deg)
    pairs = [((a * np.cos(ang), a * np.sin(ang)), "D1", 2 * a)]
    if rng.random() < 0.6:
        pairs.append(((-b * np.sin(ang), b * np.cos(ang)), "D2", 2 * b))
    s = max(3, lay.height // 120)
    out = []
    for (dx, dy), name, length in pairs:
        pts = []
        for sign in (1, -1):
            u = int(round(lay.region[0] + (cx + sign * dx - xmin) / lay.mm_per_px))
            v = int(round(lay.region[1] + (cy + sign * dy - ymin) / lay.mm_per_px))
            for img, col in ((screen, (255, 255, 0)), (cmask, 1)):
                cv2.line(img, (u - s, v), (u + s, v), col, 1)
                cv2.line(img, (u, v - s), (u, v + s), col, 1)
            pts.append([u, v])
        out.append({"name": name, "points_px": pts, "length_mm": round(float(length), 1)})
    return out


def draw_overlays(screen: np.ndarray, case: CaseSpec, geom: ScanGeometry, st: dict, lay: Layout,
                  les, box, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Burn annotations into ``screen`` (in place); returns the overlay mask and what was drawn."""
    h, w = lay.height, lay.width
    layer = np.zeros_like(screen)
    mask = np.zeros((h, w), np.uint8)
    fs = max(0.22, h / 1400.0)
    lh = int(np.ceil(30 * fs)) + 2
    crng = np.random.default_rng(case.seed + 7)  # patient / site text is the same in every view
    left = [_SITES[int(crng.integers(len(_SITES)))], f"ID {int(crng.integers(10**6, 10**7))}",
            f"2026/{int(crng.integers(1, 13)):02d}/{int(crng.integers(1, 29)):02d} "
            f"{int(rng.integers(7, 19)):02d}:{int(rng.integers(0, 60)):02d}"]
    probe = _PROBES[case.probe][case.layout % 4]
    right = [f"{probe} {_PRESETS.get(case.organ_model, 'Gen')}", f"F {case.f0_mhz:.1f}MHz",
             f"G {int(50 + 2 * st['gain_db'])}  DR {int(st['dr_db'])}",
             f"D {geom.depth_mm / 10:.1f}cm  FR {int(rng.integers(12, 60))}",
             f"MI {rng.uniform(0.2, 1.4):.1f} TIs {rng.uniform(0.1, 0.9):.1f}"]
    for k, s in enumerate(left):
        _text(layer, mask, s, (4, lh * (k + 1)), fs, lay.fg)
    rx = max(lay.region[2] + int(w * 0.05), w - int(w * 0.12)) if lay.name != "classic" else 4
    ry0 = lh * (len(left) + 1) if lay.name == "classic" else lh
    for k, s in enumerate(right):
        if lay.name == "classic":
            _text(layer, mask, s, (4, ry0 + lh * (k + 1)), fs * 0.9, lay.fg)
        else:
            _text(layer, mask, s, (min(rx, w - int(95 * fs * 2)), lh * (k + 1)), fs * 0.9, lay.fg)
    _depth_scale(layer, mask, lay, geom, st, fs)
    drawn = {"text_lines": len(left) + len(right), "body_mark": False, "colour_bar": box is not None,
             "calipers": []}
    if rng.random() < 0.4:
        _body_mark(layer, mask, lay, rng)
        drawn["body_mark"] = True
    if box is not None:
        _colour_bar(layer, mask, lay, box, fs)
    if lay.name == "console":  # a soft-key strip along the bottom
        for k, s in enumerate(("Freeze", "Gain", "Depth", "Focus", "Measure")):
            bx = int(w * (0.25 + 0.14 * k))
            by = h - int(h * 0.06)
            cv2.rectangle(layer, (bx, by), (bx + int(w * 0.12), by + int(h * 0.045)), (70, 80, 95), -1)
            cv2.rectangle(mask, (bx, by), (bx + int(w * 0.12), by + int(h * 0.045)), 1, -1)
            _text(layer, mask, s, (bx + 4, by + int(h * 0.032)), fs * 0.8, (220, 220, 220))
    region = np.zeros((h, w), bool)
    x0, y0, x1, y1 = lay.region
    region[y0:y1, x0:x1] = True  # the whole bounding box: text never crosses the fan's box
    cmask = np.zeros((h, w), np.uint8)
    if les is not None and rng.random() < 0.35:
        drawn["calipers"] = _calipers(layer, cmask, lay, geom, les, rng)
        txt = "  ".join(f"{c['name']} {c['length_mm'] / 10:.2f}cm" for c in drawn["calipers"])
        _text(layer, mask, txt, (4, h - max(6, int(h * 0.03))), fs, (255, 255, 0))
    mask[region] = 0
    sel = (mask > 0) | (cmask > 0)  # caliper marks: the one overlay allowed inside
    paste(screen, layer, sel)
    return mask, drawn
