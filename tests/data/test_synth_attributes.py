"""Each lesion attribute value changes the rendered pixels in the expected direction."""
from __future__ import annotations

import numpy as np
import pytest

from synth_helpers import below_box, coloured, ellipse_mask, grey, make_case, ring_mask
from usclip_data.synth import render_view

SIZE = (480, 640)


def _render(**kw):
    case = make_case(**{k: v for k, v in kw.items() if k in ("organ", "doppler", "f0", "depth", "seed")},
                     **{k: v for k, v in kw.items() if k not in ("organ", "doppler", "f0", "depth", "seed")})
    return render_view(case, 0, 3, size=SIZE)


def _inside_and_ring(f):
    g = grey(f)
    return (float(np.median(g[ellipse_mask(f.params, g.shape, 0.6)])),
            float(np.median(g[ring_mask(f.params, g.shape, 1.4, 2.0) & (f.region_mask > 0)])))


@pytest.mark.parametrize("organ", ["liver", "breast"])
def test_echogenicity_relative_to_surroundings(organ: str) -> None:
    kw = {"organ": organ, "f0": 3.5 if organ == "liver" else 10.0, "depth": 130.0 if organ == "liver" else 40.0,
          "size_mm": (24.0, 24.0) if organ == "liver" else (10.0, 10.0)}
    res = {e: _inside_and_ring(_render(echogenicity=e, **kw))
           for e in ("anechoic", "hypoechoic", "isoechoic", "hyperechoic")}
    an, hypo, iso, hyper = (res[k][0] for k in ("anechoic", "hypoechoic", "isoechoic", "hyperechoic"))
    assert an < hypo < iso < hyper
    assert res["hypoechoic"][0] < res["hypoechoic"][1] - 10
    assert res["hyperechoic"][0] > res["hyperechoic"][1] + 10
    assert res["anechoic"][0] < 25  # fluid: (near) black
    assert abs(res["isoechoic"][0] - res["isoechoic"][1]) < 25


def test_mixed_echogenicity_is_heterogeneous() -> None:
    f_mix, f_hypo = _render(echogenicity="mixed echogenicity"), _render(echogenicity="hypoechoic")
    spread = []
    for f in (f_mix, f_hypo):
        g = grey(f)[ellipse_mask(f.params, SIZE, 0.8)]
        spread.append(np.percentile(g, 90) - np.percentile(g, 10))
    assert spread[0] > spread[1]


def test_posterior_shadowing_and_enhancement() -> None:
    means = {}
    for post in (None, "shadowing", "enhancement"):
        f = _render(posterior=post, echogenicity="hypoechoic")
        g = grey(f)
        means[post] = float(g[below_box(f.params, g.shape, (4.0, 25.0))].mean())
    assert means["shadowing"] < means[None] - 15
    assert means["enhancement"] > means[None] + 8


def test_calcifications_create_bright_foci() -> None:
    counts = []
    for internal in (("solid components",), ("solid components", "calcifications")):
        f = _render(internal=internal, posterior="shadowing")
        g = grey(f)[ellipse_mask(f.params, SIZE, 1.0)]
        counts.append(int((g > 220).sum()))
    assert counts[1] > counts[0] + 5


def test_doppler_vascularity_increases_coloured_pixels() -> None:
    n = {}
    for v in ("no", "reduced/diminished", "normal/regular", "increased",
              "indeterminate/inhomogeneous vascularity"):
        f = _render(doppler=True, vascularity=v, organ="breast", f0=10.0, depth=40.0, size_mm=(14.0, 10.0))
        x0, y0, x1, y1 = f.params["doppler"]["bbox_px"]
        rx, ry = f.params["region_box"][:2]
        n[v] = int(coloured(f)[ry + y0:ry + y1, rx + x0:rx + x1].sum())
        assert f.params["doppler"]["box_pixels"] > 0
    assert n["no"] <= 5
    assert n["increased"] > max(n["reduced/diminished"], n["normal/regular"])
    assert min(n["reduced/diminished"], n["normal/regular"], n["indeterminate/inhomogeneous vascularity"]) > n["no"]


def test_ill_defined_margins_have_a_softer_edge() -> None:
    slopes = []
    for m in ("well-defined", "ill-defined/indistinct"):
        f = _render(margins=m, echogenicity="anechoic", diagnosis="mass")
        g = grey(f)
        prof = [float(g[ring_mask(f.params, g.shape, r, r + 0.06)].mean()) for r in np.arange(0.6, 1.5, 0.06)]
        slopes.append(float(np.max(np.diff(prof))))
    assert slopes[0] > 1.3 * slopes[1]
