"""Lesion drawing on the tissue canvas: shapes, internal characteristics, attenuation."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from synth_helpers import BASE_LESION
from usclip_data.synth.canvas import Site, new_canvas
from usclip_data.synth.geometry import ScanGeometry
from usclip_data.synth.lesion import draw_lesion
from usclip_data.synth.physics import TISSUE_ATTEN


def _draw(**kw):
    c = new_canvas(ScanGeometry("linear", 60.0, width_mm=60.0), 300)
    c.site = Site(0.0, 30.0, 5.0, 5.0, 1.0)
    spec = replace(BASE_LESION, **{"size_mm": (24.0, 24.0), **kw})
    r = draw_lesion(c, spec, 7.5, np.random.default_rng(0))
    return c, r


def _shape_stats(mask: np.ndarray) -> tuple[float, float]:
    cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cnt = max(cnts, key=cv2.contourArea)
    (_, _), (w, h), _ = cv2.minAreaRect(cnt)
    solidity = float(mask.sum()) / max(cv2.contourArea(cv2.convexHull(cnt)), 1.0)
    return max(w, h) / max(min(w, h), 1e-6), solidity


def test_shapes_are_distinct() -> None:
    ratios = {"round": 1.0, "oval": 0.6, "lobulated": 0.8, "nodular": 0.8, "irregular": 0.8,
              "tubular/linear": 0.25, "flattened": 0.3}
    st, masks = {}, {}
    for shape, ratio in ratios.items():
        c, r = _draw(shape=shape, size_mm=(24.0, 24.0 * ratio), seed=3)
        st[shape], masks[shape] = _shape_stats(r.mask), r.mask
    assert st["round"][0] < 1.15 and st["round"][1] > 0.95
    assert 1.4 < st["oval"][0] < 2.2 and st["oval"][1] > 0.95
    assert st["tubular/linear"][0] > 3.0
    assert st["flattened"][0] > 2.5 and st["flattened"][1] > 0.9
    for s in ("lobulated", "irregular", "nodular"):
        assert st[s][1] < st["round"][1] - 0.03, (s, st[s])
    names = list(masks)
    for i, a in enumerate(names):  # every pair of shapes differs in a sizeable part of the area
        for b in names[i + 1:]:
            diff = np.logical_xor(masks[a], masks[b]).sum() / max(masks[a].sum(), masks[b].sum())
            assert diff > 0.1, (a, b)


@pytest.mark.parametrize("echo,lo,hi", [("anechoic", 0.0, 0.05), ("hypoechoic", 0.15, 0.35),
                                        ("isoechoic", 0.75, 1.25), ("hyperechoic", 3.0, 5.0)])
def test_echogenicity_factor_relative_to_ring(echo: str, lo: float, hi: float) -> None:
    c, r = _draw(echogenicity=echo)
    inner = cv2.erode(r.mask, np.ones((5, 5), np.uint8)) > 0
    assert lo <= float(np.median(c.echo[inner])) / r.ref_echo <= hi


def _inside(c, r):
    return c.echo[cv2.erode(r.mask, np.ones((5, 5), np.uint8)) > 0] / r.ref_echo


def test_internal_characteristics_change_the_inside() -> None:
    cyst = dict(diagnosis="cyst", echogenicity="anechoic", posterior="enhancement")
    plain = _inside(*_draw(internal=("cystic components",), **cyst))
    sept = _inside(*_draw(internal=("cystic components", "septations"), **cyst))
    assert (plain > 1.5).mean() == 0 and (sept > 1.5).mean() > 0.01  # bright septa lines
    mural = _inside(*_draw(internal=("cystic components", "solid components"), **cyst))
    assert (mural > 0.5).mean() > 0.03  # a solid mural nodule in the fluid
    solid = _inside(*_draw(internal=("solid components",)))
    pockets = _inside(*_draw(internal=("solid components", "cystic components")))
    assert (solid < 0.05).mean() == 0 and (pockets < 0.05).mean() > 0.03
    mixed = _inside(*_draw(internal=("mixed cystic and solid mass",)))
    assert 0.15 < (mixed < 0.05).mean() < 0.85
    cx = _inside(*_draw(internal=("complex cystic solid",)))
    debris = ((cx > 0.5) & (cx < 1.0)).mean()
    assert 0.15 < debris < 0.6 and (cx < 0.05).mean() > 0.3, (debris, (cx < 0.05).mean())  # clumps in fluid
    assert (cx > 1.5).mean() > 0.005  # + thick septa
    calc = _inside(*_draw(internal=("solid components", "calcifications"), posterior="shadowing"))
    assert (calc > 10).mean() > 0.002 and (solid > 10).mean() == 0


def test_posterior_feature_sets_lesion_attenuation() -> None:
    atten, thick_cm = {}, 0.0
    for post in (None, "enhancement", "shadowing"):
        c, r = _draw(posterior=post, echogenicity="anechoic" if post == "enhancement" else "hypoechoic")
        atten[post] = float(np.median(c.atten[r.mask > 0]))
        thick_cm = 2 * r.axes_mm[1] / 10
    assert atten[None] == pytest.approx(TISSUE_ATTEN)
    assert atten["enhancement"] < 0.2 * TISSUE_ATTEN
    # round trip through the lesion at 7.5 MHz loses >= ~20 dB: a clear shadow
    assert atten["shadowing"] * 2 * 7.5 * thick_cm > 18 and atten["shadowing"] > TISSUE_ATTEN


def test_same_lesion_in_every_view_but_pose_varies() -> None:
    _, r1 = _draw()
    c = new_canvas(ScanGeometry("linear", 60.0, width_mm=60.0), 300)
    c.site = Site(0.0, 30.0, 5.0, 5.0, 1.0)
    r2 = draw_lesion(c, replace(BASE_LESION, size_mm=(24.0, 24.0)), 7.5, np.random.default_rng(9))
    assert r1.axes_mm != r2.axes_mm  # another cut through the same lesion
    assert abs(r1.axes_mm[0] - r2.axes_mm[0]) < 0.2 * r1.axes_mm[0]
