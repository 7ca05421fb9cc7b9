"""Render one view of a case: anatomy + lesion -> beam grid -> B-mode physics -> scanner screen.

``render_view(case, view, seed, size=None)`` is deterministic in (case, view, seed). The case
fixes the patient (anatomy details, the lesion, the scanner and its screen layout); the view
and seed vary what a sonographer varies between frames: probe pose, depth, gain, dynamic
range, focus, and the speckle realisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from . import physics as ph
from .anatomy import draw_anatomy
from .canvas import Canvas, new_canvas, paste
from .case import CaseSpec, LesionSpec
from .doppler import DopplerBox, doppler_overlay
from .geometry import ScanGeometry, make_geometry
from .lesion import LesionRender, draw_lesion
from .overlay import Layout, draw_overlays, make_layout

__all__ = ["SynthFrame", "render_view", "BeamData", "simulate_beams"]


@dataclass
class SynthFrame:
    """One rendered scanner frame.

    image: H x W x 3 uint8 RGB, the whole screen with burned-in overlays.
    region_mask: H x W uint8, 1 inside the true imaging region (rectangle or fan).
    labels: dict field -> tuple of canonical taxonomy values (what the report says).
    params: JSON-able rendering parameters (truth for every rendered attribute).
    overlay_mask: H x W uint8, 1 where text/graphics were burned in (calipers and the Doppler
    box outline, the only graphics allowed inside the region, are not included).
    """

    image: np.ndarray
    region_mask: np.ndarray
    labels: dict[str, tuple[str, ...]]
    params: dict[str, Any]
    overlay_mask: np.ndarray = field(default=None)  # type: ignore[assignment]


@dataclass
class BeamData:
    """Intermediate results on the beam grid (exposed for tests and debugging)."""

    amplitude: np.ndarray  # echogenicity x attenuation x TGC (n_depth, n_lines)
    rf: np.ndarray
    envelope: np.ndarray
    grey: np.ndarray  # float32 0..255 after log compression
    psf: ph.Psf


def simulate_beams(echo: np.ndarray, alpha: np.ndarray, geom: ScanGeometry, f0_mhz: float,
                   settings: dict[str, float], rng: np.random.Generator) -> BeamData:
    """The physics chain on the beam grid; ``settings`` holds gain_db, dr_db, focus_mm, f_number, noise_db."""
    n_depth, n_lines = echo.shape
    dz = geom.depth_mm / (n_depth - 1)
    pitch = geom.line_pitch_mm(settings["focus_mm"], n_lines)
    psf = ph.make_psf(f0_mhz, dz, pitch, settings["f_number"])
    tgc = ph.tgc_curve(n_depth, f0_mhz, geom.depth_mm, rng)
    amp = echo * ph.attenuation_gain(alpha, f0_mhz, geom.depth_mm) * tgc
    noise = np.float32(10.0 ** (settings["noise_db"] / 20.0)) * tgc  # electronic noise, amplified by TGC
    field_ = ph.scatterers(np.sqrt(amp * amp + noise * noise), rng)
    rf = ph.convolve_psf(field_, psf, settings["focus_mm"] / dz)
    env = ph.envelope(rf)
    grey = ph.log_compress(env, settings["dr_db"], settings["gain_db"])
    return BeamData(amp, rf, env, grey, psf)


def _grid(region_hw: tuple[int, int]) -> tuple[int, int]:
    """Beam grid: ~2.5 depth samples per displayed row (RF needs them), ~0.6 lines per column."""
    rh, rw = region_hw
    n_depth = int(np.clip(int(np.ceil(2.5 * rh / 32.0)) * 32, 256, 1024))
    n_lines = int(np.clip(int(rw * 0.6), 64, 256))
    return n_depth, n_lines


def _view_settings(case: CaseSpec, rng: np.random.Generator) -> dict[str, float]:
    depth = case.depth_mm * float(rng.uniform(0.88, 1.12))
    return {"depth_mm": round(depth, 1), "gain_db": round(float(rng.uniform(-6, 6)), 2),
            "dr_db": round(float(rng.uniform(48, 72)), 1),
            "focus_mm": round(depth * float(rng.uniform(0.35, 0.7)), 1),
            "f_number": round(float(rng.uniform(1.8, 3.2)), 2),
            "noise_db": round(float(rng.uniform(-62, -50) - 20 * np.log10(case.f0_mhz)), 1)}


def _to_canvas_maps(c: Canvas, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ((x - c.x0) / c.mm_per_px - 0.5).astype(np.float32), ((y - c.y0) / c.mm_per_px - 0.5).astype(np.float32)


def _scan_convert(grey: np.ndarray, geom: ScanGeometry, layout: Layout
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Beam grid -> region pixels. Returns image, inside mask, and physical x, y of each pixel."""
    x0, y0, x1, y1 = layout.region
    xmin, _, ymin, _ = geom.bbox()
    mm = layout.mm_per_px
    xs = (xmin + (np.arange(x1 - x0, dtype=np.float32) + 0.5) * mm)[None, :]
    ys = (ymin + (np.arange(y1 - y0, dtype=np.float32) + 0.5) * mm)[:, None]
    xx, yy = np.broadcast_to(xs, (y1 - y0, x1 - x0)), np.broadcast_to(ys, (y1 - y0, x1 - x0))
    i, j, inside = geom.to_beam(xx, yy, *grey.shape)
    img = cv2.remap(grey, j, i, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    img[~inside] = 0
    return img, inside, xx, yy, np.stack([i, j])


def render_view(case: CaseSpec, view: int, seed: int, size: tuple[int, int] | None = None) -> SynthFrame:
    """Render view ``view`` of ``case`` as a full scanner screen.

    size: (height, width) of the screen; None picks the case's scanner layout size.
    """
    if not isinstance(case, CaseSpec):
        raise TypeError(f"case: expected CaseSpec, found {type(case).__name__}")
    if size is not None and (len(size) != 2 or min(size) < 32):
        raise ValueError(f"size: expected (height, width) >= 32, found {size!r}")
    vrng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(view), 0x5EED])
    crng = np.random.default_rng(case.seed)
    st = _view_settings(case, vrng)
    geom = make_geometry(case.probe, st["depth_mm"], crng)
    layout = make_layout(case, geom, size, vrng)
    rh, rw = layout.region[3] - layout.region[1], layout.region[2] - layout.region[0]
    n_depth, n_lines = _grid((rh, rw))
    c = new_canvas(geom, int(np.clip(max(rh, rw), 128, 384)))
    draw_anatomy(case.organ_model, c, np.random.default_rng(case.seed + 1), case.lesion is not None)
    les: LesionRender | None = None
    if case.lesion is not None:
        les = draw_lesion(c, case.lesion, case.f0_mhz, vrng, with_flow=case.doppler)
    bx, by = geom.sample_xy(n_depth, n_lines)
    mx, my = _to_canvas_maps(c, bx, by)
    ea = cv2.remap(np.dstack([c.echo, c.atten]), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    beams = simulate_beams(ea[..., 0], ea[..., 1], geom, case.f0_mhz, st, vrng)
    img, inside, xx, yy, ij = _scan_convert(beams.grey, geom, layout)
    screen = np.empty((layout.height, layout.width, 3), np.uint8)
    # Fill from one row: numpy broadcasts a 3-vector over H x W with a 3-element inner loop.
    screen[:] = np.tile(np.asarray(layout.background, np.uint8), (layout.width, 1))
    x0, y0, x1, y1 = layout.region
    grey8 = np.clip(img * layout.grey_gamma_scale, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(grey8, cv2.COLOR_GRAY2RGB)
    if layout.tint is not None:
        rgb = np.clip(rgb.astype(np.float32) * np.array(layout.tint, np.float32), 0, 255).astype(np.uint8)
    box: DopplerBox | None = None
    if case.doppler and les is not None:
        fx, fy = _to_canvas_maps(c, xx, yy)
        flow = cv2.remap(c.flow, fx, fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        box = doppler_overlay(rgb, flow, inside, ij, les, geom, (n_depth, n_lines), layout, vrng)
    region_rgb = screen[y0:y1, x0:x1]
    paste(region_rgb, rgb, inside)
    region_mask = np.zeros((layout.height, layout.width), np.uint8)
    region_mask[y0:y1, x0:x1] = inside
    overlay_mask, ann = draw_overlays(screen, case, geom, st, layout, les, box, vrng)
    params = {
        "case_id": case.case_id, "view": int(view), "seed": int(seed), "organ_model": case.organ_model,
        "organ": case.organ, "probe": case.probe, "f0_mhz": case.f0_mhz, "geometry": geom.to_dict(),
        "settings": st, "beam_grid": [n_depth, n_lines],
        "psf": {"wavelength_samples": round(beams.psf.wavelength_samples, 3),
                "lateral_sigma_lines": round(beams.psf.lateral_sigma_lines, 3)},
        "screen": [layout.height, layout.width], "region_box": list(layout.region),
        "mm_per_px": round(layout.mm_per_px, 5), "layout": layout.name,
        "diagnosis": case.diagnosis,
        "lesion": None if case.lesion is None else {**_lesion_truth(case.lesion), **les.to_dict()},  # type: ignore[union-attr]
        "doppler": None if box is None else box.to_dict(), "annotations": ann,
    }
    return SynthFrame(screen, region_mask, {k: tuple(v) for k, v in case.labels.items()}, params, overlay_mask)


def _lesion_truth(les: LesionSpec) -> dict[str, Any]:
    return {"shape": les.shape, "margins": les.margins, "echogenicity": les.echogenicity,
            "internal": list(les.internal), "posterior": les.posterior, "vascularity": les.vascularity,
            "size_mm": list(les.size_mm)}
