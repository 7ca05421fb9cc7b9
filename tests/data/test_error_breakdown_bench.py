"""bench/error_breakdown.py: bins, the lesion's size in input pixels, per-bin accuracy beside the
training split's prior in the bin, and the factor-only accuracy those priors add up to."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench_helpers import bench_module


def _bench():
    return bench_module("error_breakdown")


def _params(dx: str, px_wide: float = 40.0) -> dict:
    # region 200 px wide and high at 0.5 mm/px: a lesion px_wide model pixels long is px_wide * 200 / 128 screen px
    w_mm = px_wide * 200 / 128 * 0.5
    return {"diagnosis": dx, "probe": "linear", "f0_mhz": 7.0, "region_box": [0, 0, 200, 200], "mm_per_px": 0.5,
            "settings": {"depth_mm": 100.0}, "doppler": None,
            "lesion": {"bbox_mm": [0.0, w_mm, 10.0, 12.0], "center_mm": [0.0, 30.0], "echogenicity": "hypoechoic"}}


def test_bins_and_lesion_size() -> None:
    b = _bench()
    assert b._bin(3.0, (4.0, 8.0), " MHz") == "<4 MHz"
    assert b._bin(5.0, (4.0, 8.0), " MHz") == "4-8 MHz"
    assert b._bin(8.0, (4.0, 8.0), " MHz") == ">=8 MHz"
    assert b.lesion_input_px(_params("mass", 40.0)) == pytest.approx(40.0)
    assert b.lesion_input_px({"lesion": None}) is None
    assert b.FACTORS["lesion depth"](_params("mass")) == "<0.4 of depth"


def test_breakdown_scores_each_bin_against_its_own_prior() -> None:
    b = _bench()
    well, ill = "well-defined", "ill-defined/indistinct"
    s = lambda name, v: SimpleNamespace(image_path=f"/x/{name}.png", labels={"Margins": (v,)})  # noqa: E731
    train = [s(f"t{i}", ill if i < 7 else well) for i in range(10)] + [s(f"c{i}", well) for i in range(4)]
    test = [s("m0", ill), s("m1", well), s("c0x", well), s("c1x", well)]
    params = {**{f"t{i}.png": _params("mass") for i in range(10)}, **{f"c{i}.png": _params("cyst") for i in range(4)},
              "m0.png": _params("mass"), "m1.png": _params("mass"), "c0x.png": _params("cyst"),
              "c1x.png": _params("cyst")}
    answers = [ill, ill, well, ill]  # right, wrong, right, wrong
    out = b.breakdown("Margins", test, answers, train, params)["diagnosis"]
    assert out["bins"]["mass"] == {"n": 2, "acc": 0.5, "prior_value": ill, "prior": 0.5}
    assert out["bins"]["cyst"] == {"n": 2, "acc": 0.5, "prior_value": well, "prior": 1.0}
    assert out["factor_only"] == pytest.approx(0.75)  # (2 x 0.5 + 2 x 1.0) / 4
    assert b.confusion("Margins", test, answers) == {ill: {ill: 1}, well: {ill: 2, well: 1}}
