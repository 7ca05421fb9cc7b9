"""The renderer's fast paths against the plain-numpy formulations they replaced.

Each speed-up (bench/bench_synth.py) must draw the same pixels: cv2.copyTo for masked pastes,
polylines straight into the flow map, single-precision FFT envelope, exp/log in place of
power/log10, and skipping the flow map on frames without a colour box.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from synth_helpers import BASE_LESION
from usclip_data.synth import physics as ph
from usclip_data.synth.canvas import Site, new_canvas, paste
from usclip_data.synth.geometry import ScanGeometry
from usclip_data.synth.lesion import draw_lesion


def _disc(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 3) ** 2


@pytest.mark.parametrize("view", [False, True])
def test_paste_matches_boolean_assignment(view: bool) -> None:
    rng = np.random.default_rng(0)
    screen = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    src = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    where = _disc(120, 160)
    want = screen.copy()
    got = screen.copy()
    if view:  # the render pastes into a strided window of the screen
        want[10:90, 20:140][where[10:90, 20:140]] = src[10:90, 20:140][where[10:90, 20:140]]
        paste(got[10:90, 20:140], src[10:90, 20:140], where[10:90, 20:140])
    else:
        want[where] = src[where]
        paste(got, src, where)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, screen)  # something was pasted


def test_flow_line_draws_the_pixels_of_a_polyline_mask() -> None:
    c = new_canvas(ScanGeometry("linear", 60.0, width_mm=60.0), 300)
    pts = np.array([[-12.0, 10.0], [-3.3, 22.7], [8.1, 25.0], [15.0, 40.2]])
    for thickness in (1, 3, 6):
        want = c.flow.copy()
        want[c.mask_poly(pts, thickness, False) > 0] = -0.7
        c.flow_line(pts, -0.7, thickness)
        assert np.array_equal(c.flow, want)
        assert (c.flow == -0.7).sum() > 20 * thickness


def _lesion(with_flow: bool):
    c = new_canvas(ScanGeometry("linear", 60.0, width_mm=60.0), 300)
    c.site = Site(0.0, 30.0, 5.0, 5.0, 1.0)
    c.flow[:] = 0.25  # an organ vessel's flow, which the lesion's colour box clears
    r = draw_lesion(c, replace(BASE_LESION, size_mm=(24.0, 24.0), vascularity="increased"), 7.5,
                    np.random.default_rng(0), with_flow=with_flow)
    return c, r


def test_lesion_without_flow_is_the_same_lesion() -> None:
    c1, r1 = _lesion(True)
    c0, r0 = _lesion(False)
    assert np.array_equal(c1.echo, c0.echo) and np.array_equal(c1.atten, c0.atten)
    assert np.array_equal(r1.mask, r0.mask) and r1.to_dict() == r0.to_dict()
    assert (c0.flow == 0.25).all()  # untouched
    assert np.abs(c1.flow).max() > 0.5 and (c1.flow == 0.25).sum() == 0  # drawn, organ flow cleared


def test_envelope_matches_a_double_precision_hilbert_transform() -> None:
    rng = np.random.default_rng(3)
    rf = ph.convolve_psf(ph.scatterers(np.ones((448, 111), np.float32), rng),
                         ph.make_psf(5.0, 0.1, 0.3, 2.5), 200)
    spec = np.fft.fft(rf.astype(np.float64), axis=0)
    h = np.zeros(448)
    h[0] = h[224] = 1.0
    h[1:224] = 2.0
    want = np.abs(np.fft.ifft(spec * h[:, None], axis=0))
    got = ph.envelope(rf)
    assert got.dtype == np.float32 and got.shape == rf.shape
    assert np.abs(got - want).max() < 1e-4 * want.max()


def test_log_compress_and_attenuation_match_their_formulas() -> None:
    env = np.random.default_rng(1).rayleigh(1.0, (64, 32)).astype(np.float32)
    db = 20 * np.log10(np.maximum(env.astype(np.float64), 1e-6) / np.sqrt(2.0)) + 3.0
    want = np.clip((db / 55.0 + 0.47) * 255.0, 0, 255)
    got = ph.log_compress(env, 55.0, 3.0)
    assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-3
    alpha = np.random.default_rng(2).uniform(0.0, 2.0, (256, 8)).astype(np.float32)
    loss_db = np.cumsum(alpha.astype(np.float64), axis=0) * 2.0 * 4.0 * (100.0 / 10.0 / 255)
    want_g = 10.0 ** (-loss_db / 20.0)
    assert np.allclose(ph.attenuation_gain(alpha, 4.0, 100.0), want_g, rtol=1e-4, atol=1e-12)
