"""usclip_sdk.ops.gate_figures (CPU) against its numpy reference, quality.assess on top of it,
and bad inputs.

Tolerances: the counts and what they decide (pixels, area, p99, dark, colour, grey levels, flat)
and the speckle ratio are identical (the kernel reproduces the reference's float32 grey values
and patch arithmetic). Contrast, mean, correlation and texture are accumulated in double where
the reference accumulates in float32: MOMENT_RTOL relative (plus a 1e-6 floor). Through
quality.assess: the same ok, the same failed checks, and every rounded figure within one step
of its rounding.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from usclip_data.synth import render_view, sample_case
from usclip_sdk.errors import DeviceError
from usclip_sdk.ops import gate_figures
from usclip_sdk.ops._native import native
from usclip_sdk.ops.gate_reference import gate_figures_reference
from usclip_sdk.quality import assess, verdict
from usclip_sdk.region import Region, detect_region, full_region, region_from_mask

from gate_frames import NOT_IMAGES, scan

EXACT = ("pixels", "area_fraction", "whole_frame", "echo_p99", "dark_fraction", "colour_fraction",
         "grey_levels", "flat_fraction", "speckle_snr")
MOMENTS = ("contrast", "mean", "correlation", "texture")
MOMENT_RTOL = 2e-5


def check_figures(pixels, mask, bbox, **kw):
    got, want = gate_figures(pixels, mask, bbox, **kw), gate_figures_reference(pixels, mask, bbox)
    for name in EXACT:
        assert getattr(got, name) == getattr(want, name), (name, got, want)
    for name in MOMENTS:
        g, w = getattr(got, name), getattr(want, name)
        assert abs(g - w) <= MOMENT_RTOL * abs(w) + 1e-6, (name, g, w)
    return got


def check_quality(pixels, region: Region):
    got, want = assess(pixels, region), verdict(gate_figures_reference(pixels, region.mask, region.bbox), region.kind)
    assert got.ok == want.ok and [m.split(":")[0] for m in got.failed] == [m.split(":")[0] for m in want.failed]
    assert got.figures.keys() == want.figures.keys()
    for k, w in want.figures.items():
        g = got.figures[k]
        if isinstance(w, float):  # rounded to 3 or 4 places: at most one step apart
            assert abs(g - w) <= 1.01e-3, (k, g, w)
        else:
            assert g == w, (k, g, w)
    return got


def check(pixels, region: Region):
    check_figures(pixels, region.mask, region.bbox)
    return check_quality(pixels, region)


# ------------------------------------------------------------------ synthetic scans
SIZES = {"480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920)}


def _scans(h: int, w: int, n: int = 3):
    rng = np.random.default_rng(h)
    out = []
    for i in range(n):
        f = render_view(sample_case(rng, f"g{i}"), 0, i, size=(h, w))
        out.append((f.image, f.region_mask))
    return out


def _respeckle(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.copy()
    m = mask > 0
    g = rng.uniform(0.6, 1.4) * rng.rayleigh(0.8, int(m.sum()))
    out[m] = np.clip(img[m] * g[:, None], 0, 255).astype(np.uint8)
    return out


@pytest.mark.parametrize("size", list(SIZES))
def test_synthetic_scans_rgb_and_grey_match_the_reference(size):
    h, w = SIZES[size]
    rng = np.random.default_rng(1)
    for img, true_mask in _scans(h, w):
        # Re-speckled with iid noise (bench/bench_region.py's respeckle): uncorrelated on purpose.
        for frame in (img, _respeckle(img, true_mask, rng)):
            for region in (detect_region(frame), region_from_mask(true_mask), full_region(h, w)):
                check(frame, region)
                check(np.ascontiguousarray(frame[..., 1]), region)
        assert check(img, region_from_mask(true_mask)).ok


def test_scanner_like_frames_from_the_triage_tests():
    for seed in range(6):
        im = scan(seed, gain=40.0 + 20 * seed)
        r = detect_region(im)
        assert check(im, r).ok
        x0, y0, x1, y1 = r.bbox
        crop = np.ascontiguousarray(im[y0:y1, x0:x1])
        assert check(crop, full_region(*crop.shape[:2])).ok


# ------------------------------------------------------------------ what is not a scan
@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_non_images_fail_the_same_checks(name):
    frame, failing = NOT_IMAGES[name]
    for region in (full_region(*frame.shape[:2]), detect_region(frame)):
        q = check(frame, region)
        assert not q.ok and any(m.startswith(failing + ":") for m in q.failed), q.failed
    check(np.ascontiguousarray(frame[..., 0]), full_region(*frame.shape[:2]))


# ------------------------------------------------------------------ geometry
def _region(h, w, bbox, kind="linear"):
    x0, y0, x1, y1 = bbox
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return Region(bbox, mask, kind, (h, w))


def test_a_sliver_region_is_measured_on_the_whole_frame():
    im = scan(0)
    mask = np.zeros(im.shape[:2], np.uint8)
    mask[215:222, 60:260] = 1  # 1.9 % of the frame (tests/sdk/test_triage.py)
    q = check(im, Region((60, 215, 260, 222), mask, "linear", im.shape[:2]))
    assert q.ok and q.figures["measured_on"] == "frame"
    empty = Region((5, 5, 5, 5), np.zeros(im.shape[:2], np.uint8), "linear", im.shape[:2])
    assert check(im, empty).figures["measured_on"] == "frame"


@pytest.mark.parametrize("w", [320, 321, 322, 333, 400])
def test_regions_at_the_right_edge(w):
    # The right-neighbour slice x0+1:x1+1 is one column shorter when the last sampled column is
    # the frame's last: every stride offset of x0 is covered.
    frame = cv2.resize(scan(2), (w, 240), interpolation=cv2.INTER_NEAREST)
    for x0 in range(0, 12):
        check(frame, _region(240, w, (x0, 20, w, 230)))
    check(frame, full_region(240, w))


def test_sector_masks_and_partial_patches():
    frame = scan(4, h=301, w=397)
    mask = np.zeros((301, 397), np.uint8)
    cv2.ellipse(mask, (198, 0), (290, 290), 0, 45, 135, 1, -1)
    check(frame, region_from_mask(mask, "sector"))
    for bbox in [(0, 0, 397, 301), (3, 7, 397, 300), (50, 40, 300, 291), (100, 100, 109, 300)]:
        check(frame, _region(301, 397, bbox))


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (2, 3), (4, 4), (4, 5, 3), (1, 500), (500, 1, 3),
                                   (7, 300), (8, 8), (9, 17, 3), (16, 16), (97, 200, 3)])
def test_tiny_and_degenerate_frames(shape):
    frame = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    check(frame, full_region(*shape[:2]))
    if shape[0] > 2 and shape[1] > 2:
        check(frame, _region(shape[0], shape[1], (1, 1, shape[1] - 1, shape[0] - 1)))


def test_random_frames_masks_and_boxes():
    rng = np.random.default_rng(7)
    for _ in range(60):
        h, w = (int(x) for x in rng.integers(8, 400, 2))
        blur = rng.uniform(0, 2)
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if blur > 0.5:
            frame = cv2.GaussianBlur(frame, (0, 0), blur)
        mask = (rng.random((h, w)) < rng.uniform(0.3, 1.0)).astype(np.uint8)
        x0, x1 = sorted(int(x) for x in rng.integers(0, w + 1, 2))
        y0, y1 = sorted(int(y) for y in rng.integers(0, h + 1, 2))
        check_figures(frame, mask, (x0, y0, x1, y1))
        check_figures(frame[..., 0], mask.astype(bool), (x0, y0, x1, y1))


# ------------------------------------------------------------------ layouts
def test_strided_views_are_read_in_place():
    frame, r = scan(1), None
    r = detect_region(frame)
    want = gate_figures(frame, r.mask, r.bbox)
    big = np.zeros((300, 400, 4), np.uint8)
    big[10:250, 20:340, :3] = frame
    views = {
        "crop of a larger frame, RGBA": big[10:250, 20:340],
        "Fortran order": np.asfortranarray(frame),
        "channel-reversed twice": frame[..., ::-1][..., ::-1],
        "upside down twice": frame[::-1][::-1],
        "every other column of a doubled frame": np.repeat(frame, 2, axis=1)[:, ::2],
    }
    for name, v in views.items():
        assert gate_figures(v, r.mask, r.bbox) == want, name
    assert gate_figures(frame, np.asfortranarray(r.mask), r.bbox) == want
    assert gate_figures(frame, r.mask.astype(bool), r.bbox) == want
    assert gate_figures(frame[..., 1:2], r.mask, r.bbox) == gate_figures(frame[..., 1], r.mask, r.bbox)
    # Flipped frames are different frames: compared with the reference instead.
    for v in (frame[::-1], frame[:, ::-1], frame[..., ::-1]):
        check_figures(v, r.mask, r.bbox)


# ------------------------------------------------------------------ bad input
GOOD = np.zeros((32, 32, 3), np.uint8)
MASK = np.ones((32, 32), np.uint8)
BOX = (0, 0, 32, 32)


@pytest.mark.parametrize("args,error,match", [
    ((GOOD.astype(np.float32), MASK, BOX), TypeError, "pixels"),
    ((GOOD.tolist(), MASK, BOX), TypeError, "pixels"),
    ((np.zeros(32, np.uint8), MASK, BOX), ValueError, "pixels"),
    ((np.zeros((2, 32, 32, 3), np.uint8), MASK, BOX), ValueError, "pixels"),
    ((np.zeros((32, 32, 2), np.uint8), MASK, BOX), ValueError, "pixels"),
    ((np.zeros((0, 32), np.uint8), MASK[:0], (0, 0, 32, 0)), ValueError, "pixels"),
    ((GOOD, MASK.astype(np.int32), BOX), TypeError, "mask"),
    ((GOOD, MASK[:31], BOX), ValueError, "mask"),
    ((GOOD, MASK, (0, 0, 33, 32)), ValueError, "bbox"),
    ((GOOD, MASK, (5, 0, 4, 32)), ValueError, "bbox"),
    ((GOOD, MASK, (-1, 0, 4, 32)), ValueError, "bbox"),
    ((GOOD, MASK, (0, 0, 32)), TypeError, "bbox"),
    ((GOOD, MASK, (0.0, 0, 32, 32)), TypeError, "bbox"),
])
def test_bad_inputs_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        gate_figures(*args)


@pytest.mark.parametrize("args,error,match", [
    ((GOOD.astype(np.float32), MASK, BOX), TypeError, "pixels"),
    ((np.zeros(32, np.uint8), MASK, BOX), ValueError, "pixels"),
    ((np.zeros((32, 32, 2), np.uint8), MASK, BOX), ValueError, "pixels"),
    ((np.zeros((0, 32), np.uint8), MASK[:0], (0, 0, 32, 0)), ValueError, "pixels"),
    ((GOOD, MASK.astype(np.int32), BOX), TypeError, "mask"),
    ((GOOD, MASK[:, :31], BOX), ValueError, "mask"),
    ((GOOD, MASK, (0, 0, 33, 32)), ValueError, "bbox"),
    ((GOOD, MASK, (0, -5, 32, 32)), ValueError, "bbox"),
])
def test_the_native_entry_cannot_be_crashed(args, error, match):
    with pytest.raises(error, match=match):
        native().gate_cpu(*args)


def test_devices():
    with pytest.raises(ValueError, match="device"):
        gate_figures(GOOD, MASK, BOX, device="gpu")
    from usclip_sdk.ops import cuda_available
    if not cuda_available():
        with pytest.raises(DeviceError):
            gate_figures(GOOD, MASK, BOX, device="cuda")


def test_concurrent_calls_equal_serial():
    # The kernel releases the GIL and keeps no state: .ci/tsan.sh runs this under TSan.
    cases = []
    for seed in range(4):
        im = scan(seed)
        r = detect_region(im)
        cases.append((im, r.mask, r.bbox))
    want = [gate_figures(*c) for c in cases]
    errors = []

    def body(t):
        try:
            for i in range(20):
                k = (t + i) % len(cases)
                assert gate_figures(*cases[k]) == want[k]
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[0]


def test_the_portable_kernel_matches_too():
    # x86 machines run the AVX2 copy; aarch64 builds (Jetson) only have the portable one.
    code = (
        "import numpy as np, cv2\n"
        "from usclip_sdk.ops import gate_figures\n"
        "from usclip_sdk.ops._native import native\n"
        "from usclip_sdk.ops.gate_reference import gate_figures_reference as ref\n"
        "assert native().gate_cpu_variant() == 'generic', native().gate_cpu_variant()\n"
        "rng = np.random.default_rng(3)\n"
        "for i in range(40):\n"
        "    h, w = (int(x) for x in rng.integers(8, 300, 2))\n"
        "    f = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3) if i % 2 else (h, w), dtype=np.uint8), (0, 0), 1.5)\n"
        "    m = (rng.random((h, w)) < 0.9).astype(np.uint8)\n"
        "    x0, x1 = sorted(int(x) for x in rng.integers(0, w + 1, 2))\n"
        "    y0, y1 = sorted(int(y) for y in rng.integers(0, h + 1, 2))\n"
        "    a, b = gate_figures(f, m, (x0, y0, x1, y1)), ref(f, m, (x0, y0, x1, y1))\n"
        f"    for k in {EXACT!r}:\n"
        "        assert getattr(a, k) == getattr(b, k), (k, a, b)\n"
        f"    for k in {MOMENTS!r}:\n"
        f"        assert abs(getattr(a, k) - getattr(b, k)) <= {MOMENT_RTOL} * abs(getattr(b, k)) + 1e-6, (k, a, b)\n"
    )
    env = dict(os.environ, USCLIP_CPU_KERNEL="generic")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_cuda_staging_view_of_host_arrays():
    """The CUDA path's host staging (ops/gate._view; the CUDA call itself needs a GPU): frames and
    masks whose rows are not contiguous are copied once, contiguous ones are read in place, and
    anything else is a TypeError naming the argument."""
    from usclip_sdk.ops.gate import _view

    frame = np.zeros((20, 30, 4), np.uint8)
    meta, ptr, strides, on_device, keep = _view(frame, "pixels", 0)
    assert meta is frame and ptr == frame.ctypes.data and not on_device
    meta, ptr, strides, _, keep = _view(frame[:, ::2], "pixels", 0)  # every other column
    assert meta.flags.c_contiguous and strides == (15 * 4, 4, 1) and keep is meta
    mask = np.ones((20, 60), np.uint8)[:, ::2]
    meta, _, strides, _, _ = _view(mask, "mask", 0)
    assert strides == (30, 1) and np.array_equal(meta, mask)
    with pytest.raises(TypeError, match="mask: expected a numpy or CUDA array"):
        _view([[1, 2]], "mask", 0)
