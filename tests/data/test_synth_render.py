"""Cases and frames: plausibility, labels vs rendering truth, determinism, region mask, overlays."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from usclip_sdk import taxonomy
from usclip_data.synth import ORGAN_MODELS, CaseSpec, render_view, sample_case

LESION_FIELDS = ("Shape", "Margins", "Echogenicity", "InternalCharacteristics", "PosteriorAcoustics", "Vascularity")


@pytest.fixture(scope="module")
def cases() -> list[CaseSpec]:
    rng = np.random.default_rng(123)
    return [sample_case(rng, f"c{i}") for i in range(3000)]


def test_plausibility_rules_hold(cases: list[CaseSpec]) -> None:
    for c in cases:
        taxonomy.parse_record({k: list(v) for k, v in c.labels.items()})  # strict: exact values
        assert c.labels["Organ_level"] == (c.organ,)
        assert c.labels["Body_system_level"] == (taxonomy.system_of(c.organ),)
        assert c.labels["Diagnosis"] == (c.diagnosis,)
        assert c.probe == ORGAN_MODELS[c.organ_model].probe
        lo, hi = ORGAN_MODELS[c.organ_model].f0_mhz or {"linear": (7, 15), "convex": (2, 5), "phased": (2, 4)}[c.probe]
        assert lo <= c.f0_mhz <= hi
        les = c.lesion
        if c.diagnosis == "normal appearance":
            assert les is None and not c.doppler
            assert all(c.labels[f] == () for f in LESION_FIELDS)
            continue
        if les.diagnosis == "cyst":
            assert (les.echogenicity, les.posterior, les.margins, les.vascularity) == \
                ("anechoic", "enhancement", "well-defined", "no")
            assert set(les.internal) <= {"cystic components", "septations"}
        if "calcifications" in les.internal:
            assert les.posterior == "shadowing"
        if les.echogenicity == "anechoic":
            assert les.posterior == "enhancement" and "calcifications" not in les.internal
        if les.echogenicity in ("isoechoic", "hyperechoic"):
            # a shadowing (strongly attenuating) lesion darkens with depth: it would read hypoechoic
            assert les.posterior != "shadowing" and "calcifications" not in les.internal
        if les.echogenicity == "isoechoic":
            assert les.margins == "well-defined"  # seen by its halo only


def test_distribution_covers_the_taxonomy(cases: list[CaseSpec]) -> None:
    organs = {c.organ for c in cases}
    assert len(organs) >= 10 and len({taxonomy.system_of(o) for o in organs}) >= 6
    seen = {f: set() for f in LESION_FIELDS}
    for c in cases:
        for f in LESION_FIELDS:
            seen[f] |= set(c.labels[f])
    for f in LESION_FIELDS:
        assert seen[f] == set(taxonomy.dimension(f).values), f
    assert {c.diagnosis for c in cases} == set(taxonomy.dimension("Diagnosis").values)
    with_lesion = [c for c in cases if c.lesion is not None]
    missing = np.mean([c.labels["Shape"] == () for c in with_lesion])
    multi = np.mean([len(c.labels["InternalCharacteristics"]) > 1 for c in with_lesion])
    assert 0.1 < missing < 0.35 and multi > 0.05  # some unlabelled, some multi-tag


def _truth(params: dict, field: str) -> set[str]:
    les = params["lesion"]
    return {"Shape": {les["shape"]}, "Margins": {les["margins"]}, "Echogenicity": {les["echogenicity"]},
            "InternalCharacteristics": set(les["internal"]),
            "PosteriorAcoustics": {les["posterior"]} - {None},
            "Vascularity": {les["vascularity"]}}[field]


def test_labels_match_rendering_params(cases: list[CaseSpec]) -> None:
    for i, c in enumerate(cases[:24]):
        f = render_view(c, i % 3, i, size=(192, 256))
        json.dumps(f.params)  # JSON-able
        assert f.labels == c.labels
        assert f.params["organ"] == c.organ and f.params["diagnosis"] == c.diagnosis
        if c.lesion is None:
            assert f.params["lesion"] is None and f.params["doppler"] is None
            continue
        for field in LESION_FIELDS:
            assert set(f.labels[field]) <= _truth(f.params, field), field
        assert (f.params["doppler"] is not None) == bool(f.labels["Vascularity"])


def test_render_is_deterministic_from_seed(cases: list[CaseSpec]) -> None:
    c = next(c for c in cases if c.lesion is not None)
    a, b = render_view(c, 1, 42, size=(200, 240)), render_view(c, 1, 42, size=(200, 240))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.region_mask, b.region_mask)
    assert a.params == b.params
    other = render_view(c, 2, 42, size=(200, 240))
    assert not np.array_equal(a.image, other.image)
    assert other.params["lesion"]["shape"] == a.params["lesion"]["shape"]  # same lesion, another view


def _fan_area_px(params: dict) -> float:
    g, mm = params["geometry"], params["mm_per_px"]
    if g["probe"] == "linear":
        return g["width_mm"] * g["depth_mm"] / mm ** 2
    h = math.radians(g["half_angle_deg"])
    r0, r1 = g["radius_mm"], g["radius_mm"] + g["depth_mm"]
    return h * (r1 ** 2 - r0 ** 2) / mm ** 2


@pytest.mark.parametrize("organ", ["thyroid", "liver", "heart"])
def test_region_mask_is_the_true_fan(cases: list[CaseSpec], organ: str) -> None:
    c = next(c for c in cases if c.organ_model == organ)
    f = render_view(c, 0, 7)
    assert f.image.shape[:2] == f.region_mask.shape and f.image.dtype == np.uint8
    area = float(f.region_mask.sum())
    assert area == pytest.approx(_fan_area_px(f.params), rel=0.03)
    x0, y0, x1, y1 = f.params["region_box"]
    ys, xs = np.nonzero(f.region_mask)
    assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
    inside = f.image[f.region_mask > 0].mean(axis=1)
    assert (inside > 8).mean() > 0.6  # tissue fills the region
    if c.probe == "linear":
        assert area == pytest.approx((x1 - x0) * (y1 - y0), rel=0.03)
    else:  # fan: the top corners of the bounding box are outside
        assert f.region_mask[y0, x0] == 0 and f.region_mask[y0, x1 - 1] == 0


def test_overlays_lie_outside_the_region(cases: list[CaseSpec]) -> None:
    n_text = 0
    for i, c in enumerate(cases[:12]):
        f = render_view(c, 0, i, size=(240, 320) if i % 2 else None)
        ov, reg = f.overlay_mask > 0, f.region_mask > 0
        assert not (ov & reg).any()
        bg = np.array(_background(f), np.uint8)
        changed = np.any(f.image != bg, axis=2)
        assert not (changed & ~reg & ~ov).any()  # nothing else leaks out of the region
        n_text += int(ov.sum() > 50)
        cal = f.params["annotations"]["calipers"]
        for cp in cal:  # calipers are the overlay allowed inside the image
            for u, v in cp["points_px"]:
                assert f.image[v, u].tolist() == [255, 255, 0]
    assert n_text == 12


def _background(f) -> list[int]:
    from usclip_data.synth.overlay import STYLES
    return list(next(s["bg"] for s in STYLES if s["name"] == f.params["layout"]))


def test_screen_sizes_vary_and_size_is_honoured(cases: list[CaseSpec]) -> None:
    sizes = {tuple(render_view(c, 0, 0).image.shape[:2]) for c in cases[:10]}
    assert len(sizes) >= 2
    assert render_view(cases[0], 0, 0, size=(256, 256)).image.shape == (256, 256, 3)
    with pytest.raises(ValueError, match="size"):
        render_view(cases[0], 0, 0, size=(10, 10))
    with pytest.raises(TypeError, match="case"):
        render_view("not a case", 0, 0)  # type: ignore[arg-type]
