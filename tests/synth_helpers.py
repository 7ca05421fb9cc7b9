"""Helpers for the synthetic-engine tests: controlled cases and lesion masks in screen pixels."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from usclip_sdk import taxonomy
from usclip_data.synth.case import ORGAN_MODELS, CaseSpec, LesionSpec

BASE_LESION = LesionSpec(
    diagnosis="nodule", shape="round", margins="well-defined", echogenicity="hypoechoic",
    internal=("solid components",), posterior=None, vascularity="no", size_mm=(24.0, 24.0),
    center=(0.0, 0.5), angle_deg=0.0, seed=11)


def make_case(organ: str = "liver", doppler: bool = False, f0: float = 3.5, depth: float = 130.0,
              seed: int = 5, **lesion: object) -> CaseSpec:
    """A case with a fully controlled lesion (no sampling)."""
    les = replace(BASE_LESION, **lesion)
    m = ORGAN_MODELS[organ]
    labels = {f: () for f in taxonomy.FIELDS}
    labels.update({"Diagnosis": (les.diagnosis,), "Organ_level": (m.organ,),
                   "Body_system_level": (taxonomy.system_of(m.organ),)})
    return CaseSpec(case_id="t", organ_model=organ, organ=m.organ, system=taxonomy.system_of(m.organ),
                    probe=m.probe, f0_mhz=f0, depth_mm=depth, diagnosis=les.diagnosis, lesion=les,
                    doppler=doppler, labels=labels, seed=seed, layout=0)


def to_px(params: dict, x_mm: float, y_mm: float) -> tuple[float, float]:
    g = params["geometry"]
    import math
    if g["probe"] == "linear":
        xmin, ymin = -g["width_mm"] / 2, 0.0
    else:
        r1 = g["radius_mm"] + g["depth_mm"]
        h = math.radians(g["half_angle_deg"])
        xmin, ymin = -r1 * math.sin(h), g["radius_mm"] * math.cos(h) - g["radius_mm"]
    mm = params["mm_per_px"]
    x0, y0 = params["region_box"][:2]
    return x0 + (x_mm - xmin) / mm - 0.5, y0 + (y_mm - ymin) / mm - 0.5


def ellipse_mask(params: dict, shape: tuple[int, int], scale: float) -> np.ndarray:
    les = params["lesion"]
    u, v = to_px(params, *les["center_mm"])
    a, b = (s * scale / params["mm_per_px"] for s in les["axes_mm"])
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (int(round(u)), int(round(v))), (max(1, int(a)), max(1, int(b))),
                les["angle_deg"], 0, 360, 1, -1)
    return m > 0


def ring_mask(params: dict, shape: tuple[int, int], inner: float, outer: float) -> np.ndarray:
    return ellipse_mask(params, shape, outer) & ~ellipse_mask(params, shape, inner)


def below_box(params: dict, shape: tuple[int, int], depth_mm: tuple[float, float]) -> np.ndarray:
    """A box straight beneath the lesion (where posterior features show)."""
    les = params["lesion"]
    cx, cy = les["center_mm"]
    a, b = les["axes_mm"]
    u0, v0 = to_px(params, cx - 0.4 * a, cy + b + depth_mm[0])
    u1, v1 = to_px(params, cx + 0.4 * a, cy + b + depth_mm[1])
    m = np.zeros(shape, bool)
    m[int(v0):int(v1), int(u0):int(u1)] = True
    return m


def grey(frame) -> np.ndarray:
    return frame.image.astype(np.float32).mean(axis=2)


def coloured(frame) -> np.ndarray:
    img = frame.image.astype(np.int16)
    caliper = (img[..., 0] == 255) & (img[..., 1] == 255) & (img[..., 2] == 0)  # caliper '+' marks
    return ((np.abs(img[..., 0] - img[..., 1]) > 40) | (np.abs(img[..., 2] - img[..., 1]) > 40)) & ~caliper
