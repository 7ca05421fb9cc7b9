"""CUDA gate figures against the numpy reference (runs on a lent GPU via bench/gpu_check.sh).

Tolerances as in test_ops_gate.py: counts and the speckle ratio identical (the CUDA twin's
float steps use the _rn intrinsics, which --use_fast_math leaves exact), moments within
MOMENT_RTOL (double sums in another order than the CPU kernel's).
"""
from __future__ import annotations

import numpy as np
import pytest
from gate_frames import NOT_IMAGES, scan
from test_ops_gate import SIZES, _region, _scans, check_figures

from usclip_sdk.ops import DeviceArray, cuda_available, gate_figures
from usclip_sdk.region import detect_region, full_region, region_from_mask

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device")]


def cuda(pixels, mask, bbox):
    return check_figures(pixels, mask, bbox, device="cuda")


@pytest.mark.parametrize("size", list(SIZES))
def test_synthetic_scans(size):
    h, w = SIZES[size]
    for img, true_mask in _scans(h, w, n=2):
        for region in (detect_region(img), region_from_mask(true_mask), full_region(h, w)):
            cuda(img, region.mask, region.bbox)
            cuda(np.ascontiguousarray(img[..., 1]), region.mask, region.bbox)


@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_non_images(name):
    frame = NOT_IMAGES[name][0]
    r = full_region(*frame.shape[:2])
    cuda(frame, r.mask, r.bbox)


def test_geometry_edges_and_tiny_frames():
    im = scan(0)
    mask = np.zeros(im.shape[:2], np.uint8)
    mask[215:222, 60:260] = 1  # a sliver: the whole frame is measured
    assert cuda(im, mask, (60, 215, 260, 222)).whole_frame
    for x0 in range(0, 12):  # right edge: one pair column fewer for some offsets
        r = _region(240, 320, (x0, 20, 320, 230))
        cuda(im, r.mask, r.bbox)
    for shape in [(1, 1), (2, 3), (1, 500), (500, 1, 3), (8, 8), (9, 17, 3), (16, 16)]:
        frame = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
        r = full_region(*shape[:2])
        cuda(frame, r.mask, r.bbox)


def test_random_frames_masks_and_boxes():
    rng = np.random.default_rng(7)
    for _ in range(30):
        h, w = (int(x) for x in rng.integers(8, 400, 2))
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = (rng.random((h, w)) < rng.uniform(0.3, 1.0)).astype(np.uint8)
        x0, x1 = sorted(int(x) for x in rng.integers(0, w + 1, 2))
        y0, y1 = sorted(int(y) for y in rng.integers(0, h + 1, 2))
        cuda(frame, mask, (x0, y0, x1, y1))


def test_host_views_and_device_arrays():
    im = scan(3)
    r = detect_region(im)
    want = gate_figures(im, r.mask, r.bbox, device="cuda")
    for view in (np.asfortranarray(im), np.pad(im, ((0, 0), (0, 0), (0, 1)))):  # copied / read as RGBA
        assert gate_figures(view, r.mask, r.bbox, device="cuda") == want
    cuda(im[::-1], r.mask, r.bbox)
    d_im, d_mask = DeviceArray.from_numpy(im), DeviceArray.from_numpy(r.mask)
    assert gate_figures(d_im, d_mask, r.bbox, device="cuda") == want
    assert gate_figures(d_im, r.mask, r.bbox, device="cuda:0") == want
    assert gate_figures(im, d_mask.numpy().astype(bool), r.bbox, device="cuda") == want


def test_fuzz_cases():
    """tests/fuzz_cases.py's valid gate cases (bench/fuzz_ops.py's kind 4 seeds) on the device:
    host frames of every layout (staged whole, or copied first when their rows are not
    contiguous), checked as the CPU fuzz checks them (120 cases: cheap under compute-sanitizer)."""
    from fuzz_cases import NumpyDraw, check_gate, gate_case

    for seed in range(4, 6 * 120, 6):
        kw = gate_case(NumpyDraw(seed))
        kw["device"] = "cuda"
        check_gate(kw)
