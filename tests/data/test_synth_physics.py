"""Physics chain of the synthetic B-mode engine: speckle statistics, PSF, attenuation, log."""
from __future__ import annotations

import numpy as np
import pytest

from usclip_data.synth import physics as ph
from usclip_data.synth.geometry import ScanGeometry
from usclip_data.synth.render import simulate_beams


def _homogeneous_envelope(seed: int, f0: float = 5.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    amp = np.ones((512, 128), np.float32)
    psf = ph.make_psf(f0, dz_mm=0.1, pitch_mm=0.3, f_number=2.5)
    rf = ph.convolve_psf(ph.scatterers(amp, rng), psf, focus_index=256)
    return ph.envelope(rf)[32:-32, 8:-8]  # away from the FFT / filter borders


@pytest.mark.parametrize("seed,f0", [(0, 3.5), (1, 5.0), (2, 10.0)])
def test_rayleigh_snr_of_homogeneous_speckle(seed: int, f0: float) -> None:
    env = _homogeneous_envelope(seed, f0)
    snr = env.mean() / env.std()
    assert abs(snr - 1.91) < 0.1, snr


def test_rayleigh_holds_through_the_full_chain_with_tgc() -> None:
    geom = ScanGeometry("linear", 40.0, width_mm=40.0)
    rng = np.random.default_rng(3)
    echo = np.ones((512, 128), np.float32)
    alpha = np.full_like(echo, ph.TISSUE_ATTEN)
    st = {"gain_db": 0.0, "dr_db": 60.0, "focus_mm": 20.0, "f_number": 2.5, "noise_db": -90.0}
    beams = simulate_beams(echo, alpha, geom, 7.5, st, rng)
    win = beams.envelope[200:280, 8:-8]  # a short depth window: TGC is ~constant over it
    assert abs(win.mean() / win.std() - 1.91) < 0.1


def test_low_scatterer_density_is_not_rayleigh() -> None:
    """The statistic can fail: sparse scatterers give a K-like, lower mean/std ratio."""
    rng = np.random.default_rng(4)
    amp = (rng.random((512, 128)) < 0.01).astype(np.float32)
    psf = ph.make_psf(5.0, 0.1, 0.3, 2.5)
    env = ph.envelope(ph.convolve_psf(ph.scatterers(amp, rng), psf, 256))[32:-32, 8:-8]
    assert env.mean() / env.std() < 1.7


def test_psf_axial_is_windowed_cosine_at_f0() -> None:
    psf = ph.make_psf(5.0, dz_mm=0.05, pitch_mm=0.3, f_number=2.0)
    lam = ph.C_MM_PER_US / 5.0 / 0.05
    assert psf.wavelength_samples == pytest.approx(lam)
    spec = np.abs(np.fft.rfft(psf.axial, 4096))
    f_peak = np.argmax(spec) / 4096
    assert f_peak == pytest.approx(1 / lam, rel=0.05)
    assert np.sum(psf.axial ** 2) == pytest.approx(1.0, rel=1e-4)


def test_lateral_fwhm_tracks_wavelength_times_f_number() -> None:
    a = ph.make_psf(5.0, 0.05, 0.2, f_number=2.0)
    b = ph.make_psf(5.0, 0.05, 0.2, f_number=3.0)
    assert b.lateral_sigma_lines / a.lateral_sigma_lines == pytest.approx(1.5, rel=0.02)
    lam = ph.C_MM_PER_US / 5.0
    assert a.lateral_sigma_lines * 2.355 * 0.2 == pytest.approx(lam * 2.0, rel=0.02)


def test_attenuation_is_round_trip_and_cumulative() -> None:
    alpha = np.full((101, 4), 0.5, np.float32)
    g = ph.attenuation_gain(alpha, f0_mhz=4.0, depth_mm=100.0)
    # 0.5 dB/cm/MHz x 4 MHz x 10 cm x 2 (round trip) = 40 dB at the bottom
    assert 20 * np.log10(g[-1, 0]) == pytest.approx(-40.0, abs=0.5)
    alpha[40:50, 1] = 10.0  # a dense layer shadows what is behind it, in that line only
    g2 = ph.attenuation_gain(alpha, 4.0, 100.0)
    assert g2[80, 1] < g2[80, 0] * 0.1 and g2[30, 1] == pytest.approx(g2[30, 0])


def test_tgc_compensates_nominal_attenuation() -> None:
    rng = np.random.default_rng(0)
    g = ph.attenuation_gain(np.full((256, 1), ph.TISSUE_ATTEN, np.float32), 3.5, 150.0)
    t = ph.tgc_curve(256, 3.5, 150.0, rng, wobble_db=0.0)
    net_db = 20 * np.log10(g[:, 0] * t[:, 0])
    assert np.abs(net_db).max() < 0.1 * 52.5 + 1.0  # within the 0.9-1.05 compensation factor


def test_envelope_of_a_tone_burst_is_its_gaussian_window() -> None:
    t = np.arange(512, dtype=np.float64)
    win = np.exp(-0.5 * ((t - 256) / 20) ** 2)
    rf = (win * np.cos(2 * np.pi * t / 8)).astype(np.float32)[:, None]
    env = ph.envelope(rf)[:, 0]
    assert np.max(np.abs(env - win)) < 0.01


def test_log_compression_maps_dynamic_range_to_grey() -> None:
    env = np.array([np.sqrt(2.0), np.sqrt(2.0) * 10 ** (-30 / 20), 1e-9], np.float32)
    g = ph.log_compress(env, dynamic_range_db=60.0, gain_db=0.0, tissue_level=0.5)
    assert g[0] == pytest.approx(127.5, abs=0.5)
    assert g[1] == pytest.approx(0.0, abs=0.5)
    assert g[2] == 0.0
    with pytest.raises(ValueError, match="dynamic_range_db"):
        ph.log_compress(env, 0.0, 0.0)
