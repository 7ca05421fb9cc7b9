"""Organ coverage: every body system, >= 28 organs, each rendering valid frames and masks."""
from __future__ import annotations

import numpy as np
import pytest

from synth_helpers import make_case, to_px
from usclip_sdk import taxonomy
from usclip_data.synth import ORGAN_MODELS, render_view
from usclip_data.synth.anatomy import ANATOMY, draw_anatomy
from usclip_data.synth.anatomy_extended import EXTENDED_ANATOMY
from usclip_data.synth.canvas import new_canvas
from usclip_data.synth.geometry import make_geometry


def test_coverage_every_system_and_28_organs() -> None:
    organs = {m.organ for m in ORGAN_MODELS.values()}
    assert len(organs) == len(ORGAN_MODELS) >= 28  # one model per organ, no duplicates
    assert organs <= set(taxonomy.organs())
    assert {taxonomy.system_of(o) for o in organs} == {s for s, _ in taxonomy.BODY_SYSTEMS}
    assert set(ORGAN_MODELS) == set(ANATOMY)  # every model has its own drawer


def test_organ_backgrounds_differ() -> None:
    """No two organ models of one probe family paint (nearly) the same tissue map."""
    maps: dict[str, np.ndarray] = {}
    for key, m in ORGAN_MODELS.items():
        depth = float(np.mean(m.depth_mm))
        c = new_canvas(make_geometry(m.probe, depth, np.random.default_rng(0)), 96)
        draw_anatomy(key, c, np.random.default_rng(1), False)
        maps[key] = np.log1p(np.clip(c.echo, 0, 8)) + 0.3 * np.clip(c.atten, 0, 12)  # shadows count
    keys = list(maps)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if ORGAN_MODELS[a].probe == ORGAN_MODELS[b].probe and maps[a].shape == maps[b].shape:
                assert np.abs(maps[a] - maps[b]).mean() > 0.08, (a, b)


@pytest.mark.parametrize("organ", sorted(EXTENDED_ANATOMY))
def test_new_organ_renders_with_valid_masks(organ: str) -> None:
    m = ORGAN_MODELS[organ]
    lo, hi = m.f0_mhz or {"linear": (7, 15), "convex": (2, 5), "phased": (2, 4)}[m.probe]
    case = make_case(organ, doppler=True, f0=(lo + hi) / 2, depth=float(np.mean(m.depth_mm)),
                     vascularity="increased", extent=0.3)
    for lesion in (True, False):
        c = case if lesion else type(case)(**{**case.__dict__, "lesion": None, "doppler": False})
        f = render_view(c, 0, 3, size=(256, 256))
        reg = f.region_mask
        assert reg.shape == f.image.shape[:2] and set(np.unique(reg)) == {0, 1}
        x0, y0, x1, y1 = f.params["region_box"]
        ys, xs = np.nonzero(reg)
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        assert reg.sum() > 0.5 * (x1 - x0) * (y1 - y0)  # a rectangle or a fan, not a sliver
        grey = f.image[reg > 0].mean(axis=1)
        assert (grey > 8).mean() > 0.3 and grey.std() > 10  # tissue with structure, not blank
        assert f.params["organ"] == m.organ and f.labels["Organ_level"] == (m.organ,)
        if lesion:
            u, v = to_px(f.params, *f.params["lesion"]["center_mm"])
            assert reg[int(v), int(u)] == 1  # the lesion lies in the imaging region
            assert f.params["doppler"]["n_flow_pixels"] > 0
