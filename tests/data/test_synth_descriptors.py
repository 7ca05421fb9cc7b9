"""Each descriptor value renders distinctly at the sizes the sampler now draws (extent > 0).

These are the cues the learnability ceiling (bench/ceiling.py) relies on, checked on the
screen pixels of single frames, on several organs and probe families.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from synth_helpers import below_box, coloured, ellipse_mask, grey, make_case, ring_mask, to_px
from usclip_data.synth import render_view

SIZE = (256, 256)
ORGANS = {"liver": (3.5, 140.0), "thyroid": (10.0, 38.0), "spleen": (3.5, 120.0), "breast": (10.0, 40.0)}


def _frame(organ: str, **lesion):
    f0, depth = ORGANS[organ]
    doppler = "vascularity" in lesion
    case = make_case(organ, doppler=doppler, f0=f0, depth=depth, **{"extent": 0.32, **lesion})
    return render_view(case, 0, 5, size=SIZE)


@pytest.mark.parametrize("organ", sorted(ORGANS))
def test_echogenicity_orders_against_surrounding_tissue(organ: str) -> None:
    contrast = {}
    for echo in ("anechoic", "hypoechoic", "isoechoic", "hyperechoic"):
        f = _frame(organ, echogenicity=echo)
        g = grey(f)
        inside = float(np.median(g[ellipse_mask(f.params, g.shape, 0.6)]))
        ring = float(np.median(g[ring_mask(f.params, g.shape, 1.15, 1.45) & (f.region_mask > 0)]))
        contrast[echo] = (inside, inside - ring)
    d = {k: v[1] for k, v in contrast.items()}
    assert d["anechoic"] < d["hypoechoic"] < d["isoechoic"] < d["hyperechoic"], d
    assert contrast["anechoic"][0] < 25 and d["hypoechoic"] < -10 < 10 < d["hyperechoic"], d
    assert abs(d["isoechoic"]) < min(-d["hypoechoic"], d["hyperechoic"]), d  # closest to its surroundings


@pytest.mark.parametrize("organ", ["liver", "breast"])
def test_posterior_enhancement_is_brighter_than_shadowing(organ: str) -> None:
    below = {}
    for post, echo in ((None, "hypoechoic"), ("enhancement", "anechoic"), ("shadowing", "hypoechoic")):
        f = _frame(organ, posterior=post, echogenicity=echo)
        g = grey(f)
        b = f.params["lesion"]["axes_mm"][1]
        box = below_box(f.params, g.shape, (0.15 * b, 0.9 * b)) & (f.region_mask > 0)
        below[post] = float(g[box].mean())
    assert below["enhancement"] > below[None] + 8 and below["shadowing"] < below[None] - 15, below


def _flow_share(f) -> tuple[float, float]:
    """Coloured fraction of the lesion (and just around it), and the largest share of those
    coloured pixels that lies in one half of the lesion (split through its centre)."""
    g = grey(f)
    lesion = ellipse_mask(f.params, g.shape, 1.15)
    col = coloured(f) & lesion
    frac = float(col.sum()) / float(lesion.sum())
    if not col.any():
        return frac, 0.0
    u, v = to_px(f.params, *f.params["lesion"]["center_mm"])
    ys, xs = np.nonzero(col)
    share = 0.0
    for t in np.linspace(0, np.pi, 8, endpoint=False):  # the half-plane holding the most flow
        side = (xs - u) * np.cos(t) + (ys - v) * np.sin(t) > 0
        share = max(share, float(side.mean()), float((~side).mean()))
    return frac, share


@pytest.mark.parametrize("organ", ["liver", "thyroid"])
def test_vascularity_classes_ordered_by_coloured_fraction(organ: str) -> None:
    st = {v: _flow_share(_frame(organ, vascularity=v))
          for v in ("no", "reduced/diminished", "normal/regular", "increased",
                    "indeterminate/inhomogeneous vascularity")}
    frac = {k: v[0] for k, v in st.items()}
    assert frac["no"] == 0.0 < frac["reduced/diminished"] < frac["normal/regular"] < frac["increased"], frac
    assert frac["increased"] > 2 * frac["normal/regular"], frac
    inhom, regular = st["indeterminate/inhomogeneous vascularity"][1], st["normal/regular"][1]
    assert inhom > 0.8 and regular < 0.7, st  # crowded on one side vs all round the rim


def test_lesion_fills_a_readable_part_of_the_model_input() -> None:
    """At extent 0.27 (the smallest nodule) the lesion spans >= ~25 of the 128 input pixels."""
    for organ in ORGANS:
        f = _frame(organ, extent=0.27)
        x0, y0, x1, y1 = f.params["region_box"]
        bx0, bx1, by0, by1 = f.params["lesion"]["bbox_mm"]
        mm = f.params["mm_per_px"]
        assert (bx1 - bx0) / mm / (x1 - x0) * 128 > 25 and (by1 - by0) / mm / (y1 - y0) * 128 > 25, organ


def test_descriptor_sheet_has_one_row_per_value() -> None:
    from usclip_data.contact_sheet import descriptor_sheet

    sheet = descriptor_sheet("PosteriorAcoustics", per_value=2, input_size=64)
    cell_h = 64 + 2 * 13 + 6  # tile + two caption lines (contact_sheet.grid)
    assert sheet.shape == (2 * cell_h, 2 * 64, 3)  # enhancement, shadowing: two rows of two
    with pytest.raises(ValueError, match="Organ_level"):
        descriptor_sheet("Organ_level")


def _inside_and_ring(f, inner: float = 0.75):
    g = grey(f)
    return g[ellipse_mask(f.params, g.shape, inner)], float(np.median(g[ring_mask(f.params, g.shape, 1.2, 1.5)
                                                                       & (f.region_mask > 0)]))


@pytest.mark.parametrize("organ", ["liver", "thyroid"])
def test_septations_show_as_bright_lines_across_a_clear_cyst(organ: str) -> None:
    bright = {}
    for internal in (("cystic components",), ("cystic components", "septations")):
        f = _frame(organ, diagnosis="cyst", echogenicity="anechoic", posterior="enhancement", internal=internal)
        inside, ring = _inside_and_ring(f)
        bright[len(internal)] = float((inside > 0.8 * ring).mean())
    assert bright[1] < 0.03 and bright[2] > 0.08, bright


@pytest.mark.parametrize("organ", ["liver", "breast"])
def test_mixed_cystic_solid_and_complex_cystic_differ(organ: str) -> None:
    """Mixed: a solid body (brighter than the tissue) with round clear spaces; complex: mostly
    fluid with low-level echoes, darker than the tissue and than the mixed lesion. Averaged over
    four lesions: where one lesion's debris clumps and wall nodule fall moves its median by
    +-15 grey levels (a single lesion passed or failed the bound by its random layout)."""
    st = {}
    for internal in ("mixed cystic and solid mass", "complex cystic solid", "solid components"):
        fr, med = [], []
        for seed in (11, 12, 13, 14):
            f = _frame(organ, echogenicity="mixed echogenicity" if internal != "solid components" else "hypoechoic",
                       internal=(internal,), diagnosis="mass", seed=seed)
            inside, ring = _inside_and_ring(f, 0.8)
            fr.append(float((inside < 0.35 * ring).mean()))
            med.append(float(np.median(inside)) - ring)
        st[internal] = (float(np.mean(fr)), float(np.mean(med)))
    mixed, complex_, solid = st["mixed cystic and solid mass"], st["complex cystic solid"], st["solid components"]
    assert 0.08 < mixed[0] < 0.5, st  # round clear spaces in a solid body
    assert mixed[1] > max(solid[1] + 30, 5), st  # the solid body is brighter than the tissue
    assert complex_[1] < min(mixed[1] - 25, -12), st  # complex: mostly fluid


@pytest.mark.parametrize("organ", ["liver", "thyroid"])
def test_well_defined_edge_is_sharper_than_ill_defined(organ: str) -> None:
    """The largest radial step of the grey profile across the edge of a hypoechoic nodule."""
    step = {}
    for m in ("well-defined", "ill-defined/indistinct"):
        f = _frame(organ, margins=m, echogenicity="hypoechoic")
        g = cv2.GaussianBlur(grey(f), (0, 0), 1.0)
        prof = [float(np.median(g[ring_mask(f.params, g.shape, r, r + 0.08)])) for r in np.arange(0.5, 1.6, 0.08)]
        step[m] = float(np.max(np.abs(np.diff(prof))))
    assert step["well-defined"] > 1.5 * step["ill-defined/indistinct"], step
