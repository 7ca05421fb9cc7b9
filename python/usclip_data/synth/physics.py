"""B-mode image formation on the beam grid (depth x line): the convolution model.

Chain (each step a function, so tests can check one link at a time):

1. scatterers: zero-mean Gaussian amplitudes on every beam sample, scaled by the local
   echogenicity. Many independent scatterers per resolution cell is what makes speckle
   fully developed (Rayleigh envelope); a dense Gaussian field is its limit.
2. depth attenuation (round trip, dB/cm/MHz, integrated along each beam so dense or fluid
   regions shadow or enhance what lies behind them), then time-gain compensation;
   electronic noise enters before TGC, so it grows with depth like on a scanner.
3. PSF convolution: axial Gaussian-windowed cosine at f0, lateral Gaussian whose width grows
   away from the transmit focus.
4. envelope: magnitude of the analytic signal (Hilbert transform along depth, numpy FFT).
5. log compression into a dynamic range, to 0..255.

The PSF is expressed in beam samples. Physical sizes are converted with the sample pitch and
bounded below so the RF stays sampled at >= 4 samples per wavelength: a display grid of a few
hundred samples cannot carry 0.1 mm structure anyway (see docs/data.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import fft as sp_fft

__all__ = [
    "C_MM_PER_US", "TISSUE_ATTEN", "Psf", "make_psf", "scatterers", "attenuation_gain",
    "tgc_curve", "convolve_psf", "envelope", "log_compress",
]

C_MM_PER_US = 1.54  # speed of sound, 1540 m/s
TISSUE_ATTEN = 0.5  # dB/cm/MHz, soft tissue (one way)


@dataclass(frozen=True)
class Psf:
    """Separable point-spread function on the beam grid."""

    axial: np.ndarray  # float32 taps along depth (windowed cosine)
    lateral_focus: np.ndarray  # float32 taps across lines at the focus
    lateral_far: np.ndarray  # float32 taps far from the focus
    wavelength_samples: float
    lateral_sigma_lines: float


def _gauss(sigma: float) -> np.ndarray:
    half = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return (g / np.sqrt((g * g).sum())).astype(np.float32)


def make_psf(f0_mhz: float, dz_mm: float, pitch_mm: float, f_number: float,
             cycles: float = 2.0) -> Psf:
    """PSF for centre frequency ``f0_mhz`` on a grid of ``dz_mm`` x ``pitch_mm``.

    Axial: cos(2 pi z / lambda) under a Gaussian whose FWHM spans ``cycles`` wavelengths.
    Lateral: Gaussian with FWHM = wavelength x F-number (at the focus). Both are normalised
    to unit energy so a unit-echogenicity region gives RF of unit variance.
    """
    if f0_mhz <= 0 or dz_mm <= 0 or pitch_mm <= 0:
        raise ValueError(f"make_psf: f0_mhz, dz_mm, pitch_mm must be > 0, found {f0_mhz}, {dz_mm}, {pitch_mm}")
    lam_mm = C_MM_PER_US / f0_mhz
    # >= 4 samples per wavelength keeps the pulse spectrum clear of DC and Nyquist, where the
    # FFT Hilbert transform would leak 1/t tails (streaks in anechoic regions after log).
    lam = max(lam_mm / dz_mm, 4.0)
    sigma_ax = cycles * lam / 2.355
    half = int(np.ceil(3 * sigma_ax))
    t = np.arange(-half, half + 1, dtype=np.float64)
    ax = np.exp(-0.5 * (t / sigma_ax) ** 2) * np.cos(2 * np.pi * t / lam)
    ax = (ax / np.sqrt((ax * ax).sum())).astype(np.float32)
    sigma_lat = float(np.clip(lam_mm * f_number / 2.355 / pitch_mm, 0.75, 3.0))
    return Psf(ax, _gauss(sigma_lat), _gauss(min(sigma_lat * 2.0, 5.0)), float(lam), sigma_lat)


def scatterers(amplitude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian scatterer field scaled by ``amplitude`` (same shape, float32)."""
    n = rng.standard_normal(amplitude.shape, dtype=np.float32)
    return n * amplitude.astype(np.float32, copy=False)


def attenuation_gain(alpha: np.ndarray, f0_mhz: float, depth_mm: float) -> np.ndarray:
    """Amplitude left after the round trip to each sample.

    alpha: (n_depth, n_lines) attenuation coefficient in dB/cm/MHz (one way). The loss at
    sample i is 2 * f0 * sum_{k<i} alpha_k * dz, so whatever lies above shapes what lies below.
    """
    dz_cm = depth_mm / 10.0 / max(alpha.shape[0] - 1, 1)
    # 10^(-loss_db / 20) as exp(): numpy's float32 exp is vectorised, power() is not (3x here).
    neper = np.float32(-2.0 * f0_mhz * dz_cm * np.log(10.0) / 20.0)
    return np.exp(np.cumsum(alpha, axis=0, dtype=np.float32) * neper)


def tgc_curve(n_depth: int, f0_mhz: float, depth_mm: float, rng: np.random.Generator,
              wobble_db: float = 2.0) -> np.ndarray:
    """Time-gain compensation (n_depth, 1): undoes nominal tissue loss, +- a user's sliders."""
    d_cm = np.linspace(0.0, depth_mm / 10.0, n_depth, dtype=np.float32)
    comp_db = 2.0 * TISSUE_ATTEN * f0_mhz * d_cm * rng.uniform(0.9, 1.05)
    knots = rng.uniform(-wobble_db, wobble_db, 6)  # six slider knobs, smooth in between
    slider_db = np.interp(np.linspace(0, 1, n_depth), np.linspace(0, 1, 6), knots)
    return np.power(10.0, (comp_db + slider_db) / 20.0).astype(np.float32)[:, None]


def convolve_psf(field: np.ndarray, psf: Psf, focus_index: float) -> np.ndarray:
    """RF = field convolved with the PSF; lateral width blends from focus to far field."""
    ax = cv2.filter2D(field, cv2.CV_32F, psf.axial[:, None], borderType=cv2.BORDER_REFLECT)
    near = cv2.filter2D(ax, cv2.CV_32F, psf.lateral_focus[None, :], borderType=cv2.BORDER_REFLECT)
    far = cv2.filter2D(ax, cv2.CV_32F, psf.lateral_far[None, :], borderType=cv2.BORDER_REFLECT)
    n = field.shape[0]
    w = np.clip(np.abs(np.arange(n, dtype=np.float32) - focus_index) / (0.6 * n), 0.0, 1.0)[:, None]
    # Blend amplitudes with a variance-preserving weight so speckle statistics stay Rayleigh.
    a, b = np.sqrt(1.0 - w), np.sqrt(w)
    return near * a + far * b


def envelope(rf: np.ndarray) -> np.ndarray:
    """|analytic signal| along axis 0 (depth), via the FFT Hilbert transform."""
    n = rf.shape[0]
    rf = rf.astype(np.float32, copy=False)
    # scipy's pocketfft runs single precision natively and ~4x faster than numpy.fft along a
    # strided axis; float32 (complex64) is ample for an envelope shown as 8-bit grey.
    spec = sp_fft.rfft(rf, axis=0)
    h = np.full(spec.shape[0], 2.0, np.float32)
    h[0] = 1.0
    if n % 2 == 0:
        h[-1] = 1.0
    full = np.zeros((n,) + rf.shape[1:], dtype=np.complex64)
    full[: spec.shape[0]] = spec * h[:, None]
    return np.abs(sp_fft.ifft(full, axis=0, overwrite_x=True))


def log_compress(env: np.ndarray, dynamic_range_db: float, gain_db: float,
                 reference: float = float(np.sqrt(2.0)), tissue_level: float = 0.47) -> np.ndarray:
    """20 log10(env / reference) + gain, clipped to the dynamic range, as float32 0..255.

    ``reference`` is the rms envelope of unit-echogenicity tissue, shown at ``tissue_level`` of
    the grey scale (a fixed reference, as on a scanner, rather than the frame maximum, so a
    bright calcification does not darken the whole image).
    """
    if dynamic_range_db <= 0:
        raise ValueError(f"dynamic_range_db: expected > 0, found {dynamic_range_db}")
    # 20 log10(x) = (20 / ln 10) ln(x), folded into one scale and offset: numpy's float32 log is
    # vectorised, log10 is not (this line was ~5 % of a 256 px frame).
    scale = 255.0 / dynamic_range_db
    k = np.float32(20.0 / np.log(10.0) * scale)
    b = np.float32((gain_db - 20.0 * np.log10(reference)) * scale + tissue_level * 255.0)
    g = np.log(np.maximum(env.astype(np.float32, copy=False), np.float32(1e-6))) * k + b
    return np.clip(g, 0.0, 255.0, out=g)
