"""Imaging-region detection on frames with known masks (fans, rectangles, overlays), on the
synthetic engine's scanner screens, and on real scanner frames (pydicom's test files)."""
import time

import cv2
import numpy as np
import pytest

from usclip_sdk.errors import InvalidInputError
from usclip_sdk.region import (RegionTracker, detect_region, full_region, iou,
                               region_from_dicom)


def scanner_frame(linear: bool, seed: int = 0, h: int = 600, w: int = 800):
    """A scanner-like screen: speckle inside a fan or rectangle, text, ticks and a colour bar."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if linear:
        mask[80:520, 200:600] = 1
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        r, th = np.hypot(xx - w // 2, yy - 40), np.degrees(np.arctan2(xx - w // 2, yy - 40))
        mask[(r > 60) & (r < 540) & (np.abs(th) < 35)] = 1
    speckle = rng.rayleigh(60, (h, w)).clip(0, 255).astype(np.uint8)
    cv2.circle(speckle, (w // 2, 300), 60, 0, -1)  # an anechoic cyst inside the scan
    img[mask > 0] = speckle[mask > 0][:, None]
    cv2.putText(img, "ABD C1-5 12cm  Gn 50", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255,) * 3, 2)
    cv2.putText(img, "DR 60 FR 25", (10, 590), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (200,) * 3, 1)
    for i in range(10):
        cv2.line(img, (w - 30, 60 + i * 45), (w - 20, 60 + i * 45), (255,) * 3, 1)
    img[100:300, 20:40] = np.linspace([255, 0, 0], [0, 0, 255], 200)[:, None, :].astype(np.uint8)
    return img, mask


@pytest.mark.parametrize("linear", [False, True])
def test_detects_fan_and_rectangle(linear):
    img, truth = scanner_frame(linear)
    r = detect_region(img)
    assert r.kind == ("linear" if linear else "sector")
    assert iou(r.mask, truth) > 0.95
    x0, y0, x1, y1 = r.bbox
    assert r.mask[:y0].sum() == 0 and r.mask[y1:].sum() == 0  # bbox encloses the mask
    assert r.mask[:, 20:40].sum() == 0  # colour bar excluded


def test_gray_input_and_blank_frame():
    img, truth = scanner_frame(False)
    assert iou(detect_region(img[..., 0]).mask, truth) > 0.95
    blank = detect_region(np.zeros((100, 120), np.uint8))
    assert blank.kind == "full" and blank.bbox == (0, 0, 120, 100)


def test_bad_input_types():
    with pytest.raises(InvalidInputError, match="uint8"):
        detect_region(np.zeros((64, 64), np.float32))
    with pytest.raises(InvalidInputError, match="shape"):
        detect_region(np.zeros((4, 64, 64, 3), np.uint8))


def test_dicom_region_validated_against_frame():
    img, truth = scanner_frame(True)
    good = {"RegionLocationMinX0": 200, "RegionLocationMinY0": 80,
            "RegionLocationMaxX1": 599, "RegionLocationMaxY1": 519}
    stale = {"RegionLocationMinX0": 100, "RegionLocationMinY0": 60,
             "RegionLocationMaxX1": 1599, "RegionLocationMaxY1": 1039}  # from a larger frame
    empty = {"RegionLocationMinX0": 610, "RegionLocationMinY0": 100,
             "RegionLocationMaxX1": 790, "RegionLocationMaxY1": 590}  # covers background only
    r = region_from_dicom([stale, empty, good], img)
    assert r is not None and r.kind == "dicom" and r.bbox == (200, 80, 600, 520)
    assert iou(r.mask, truth) > 0.99
    assert region_from_dicom([stale, empty], img) is None
    assert region_from_dicom([{"RegionLocationMinX0": "x"}], img) is None


def test_tracker_caches_and_redetects_only_on_layout_change():
    img, _ = scanner_frame(False)
    tr = RegionTracker(refresh_every=5)
    first = tr(img)
    for seed in range(1, 12):  # new speckle every frame, same layout: no new detection
        assert tr(scanner_frame(False, seed=seed)[0]) is first
    assert tr.detections == 1
    lin, truth = scanner_frame(True)  # same frame size, other probe: found at the next check
    regions = [tr(lin) for _ in range(5)]
    assert tr.detections == 2 and regions[-1].kind == "linear" and iou(regions[-1].mask, truth) > 0.9
    small = cv2.resize(lin, (400, 300))
    assert tr(small).frame_shape == (300, 400)  # new frame size -> immediate re-detection
    assert tr.detections == 3
    with pytest.raises(ValueError, match="refresh_every"):
        RegionTracker(refresh_every=0)
    with pytest.raises(ValueError, match="tolerance"):
        RegionTracker(tolerance=1.0)


def test_iou_and_full_region():
    a = np.zeros((4, 4), np.uint8)
    a[:2] = 1
    assert iou(a, a) == 1.0 and iou(a, 1 - a) == 0.0
    assert full_region(3, 5).mask.sum() == 15
    with pytest.raises(InvalidInputError):
        iou(a, np.zeros((2, 2)))


def linear_screen(bg: int = 0, seed: int = 1, h: int = 600, w: int = 800):
    """A linear-probe screen whose scan has the hard parts: a flat background colour ``bg``, a
    pure-black band across the lower scan (shadow below bone) with only a noise rim at the
    bottom, an anechoic vessel touching the right side, depth ticks right next to the scan,
    a top banner and a soft-key strip under the scan."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), bg, np.uint8)
    truth = np.zeros((h, w), np.uint8)
    y0, y1, x0, x1 = 70, 500, 180, 620
    truth[y0:y1, x0:x1] = 1
    scan = rng.rayleigh(55, (y1 - y0, x1 - x0)).clip(1, 255).astype(np.uint8)
    scan[300 - y0:492 - y0] = 0  # shadow: exactly black, the colour of a black screen
    scan[492 - y0:] = rng.integers(0, 30, (8, x1 - x0))  # the far-field noise rim
    cv2.circle(scan, (x1 - x0, 150), 110, 0, -1)  # a vessel cut by the right side
    img[y0:y1, x0:x1] = scan[..., None]
    img[:40] = (40, 70, 110)  # banner
    cv2.putText(img, "VASC L12-5  7.5MHz", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255,) * 3, 2)
    for k in range(9):
        cv2.line(img, (x1 + 4, y0 + 50 * k), (x1 + 14, y0 + 50 * k), (220,) * 3, 2)
    for k in range(5):  # soft keys: flat blocks spanning past both sides of the scan
        cv2.rectangle(img, (120 + 120 * k, 540), (220 + 120 * k, 580), (70, 80, 95), -1)
    return img, truth


@pytest.mark.parametrize("bg", [0, 16, 30])
def test_linear_scan_with_dark_band_vessel_and_ui(bg):
    img, truth = linear_screen(bg)
    r = detect_region(img)
    assert r.kind == "linear"
    assert iou(r.mask, truth) > 0.97  # the shadow and the vessel stay inside, ticks/keys out
    assert r.mask[520:].sum() == 0 and r.mask[:60].sum() == 0


def test_fan_with_black_far_field():
    # A convex fan whose lower half is black (lung below the pleura) down to a thin noise rim.
    h, w = 600, 800
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:h, 0:w]
    rad, th = np.hypot(xx - 400, yy + 60), np.degrees(np.arctan2(xx - 400, yy + 60))
    truth = ((rad > 130) & (rad < 620) & (np.abs(th) < 33)).astype(np.uint8)
    img = np.zeros((h, w, 3), np.uint8)
    speckle = rng.rayleigh(60, (h, w)).clip(1, 255).astype(np.uint8)
    speckle[(rad > 330) & (rad < 612)] = 0
    img[truth > 0] = speckle[truth > 0][:, None]
    r = detect_region(img)
    assert r.kind == "sector" and iou(r.mask, truth) > 0.95


@pytest.mark.parametrize("size,n", [(None, 40), ((256, 256), 20)])
def test_synthetic_scanner_screens_meet_the_goal(size, n):
    # The goal, on frames the synthetic engine renders with their true region masks:
    # IoU >= 0.9 on >= 95 % of frames (bench/region_score.py measures it on 300 frames).
    # Native screens (640x480 .. 1024x768) and the cramped 256x256 ones the dataset writer
    # uses, where the colour bar and text sit a few pixels from the scan.
    from usclip_data.synth import render_view, sample_case

    rng = np.random.default_rng(2024 if size is None else 11)
    ious, kinds, ms = [], [], []
    for i in range(n):
        case = sample_case(rng, f"t{i}")
        frame = render_view(case, view=int(rng.integers(0, 4)), seed=int(rng.integers(1 << 30)), size=size)
        t = time.perf_counter()
        r = detect_region(frame.image)
        ms.append((time.perf_counter() - t) * 1e3)
        ious.append(iou(r.mask, frame.region_mask))
        kinds.append((case.probe == "linear") == (r.kind == "linear"))
    ious = np.array(ious)
    assert (ious >= 0.9).mean() >= 0.95, sorted(ious)[:5]
    assert ious.mean() >= 0.95 and all(kinds)
    assert np.median(ms) < 200  # generous on a loaded CI runner; ~10-20 ms typical


def _dicom_frame(name):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    from usclip_sdk.inputs import read_dicom
    return read_dicom(get_testdata_file(name))[0]


def test_real_linear_frames_exclude_text():
    # GE lymph-node Doppler frame (the same screen at 320 x 240 and 640 x 480): the image
    # spans the width between a text header and a "LYMPH NODE" caption.
    for name, k in (("examples_rgb_color.dcm", 1), ("examples_jpeg2k.dcm", 2)):
        r = detect_region(_dicom_frame(name).pixels)
        x0, y0, x1, y1 = r.bbox
        assert r.kind == "linear", name
        assert 45 * k <= y0 <= 60 * k and 160 * k <= y1 <= 175 * k, (name, r.bbox)
        assert x0 <= 10 * k and x1 >= 305 * k, (name, r.bbox)


def test_real_fan_frames_exclude_ui():
    pal = _dicom_frame("examples_palette.dcm").pixels  # Philips convex, mostly black fan
    r = detect_region(pal)
    assert r.kind == "sector"
    assert r.mask[:60].sum() == 0 and r.mask[:, :300].sum() == 0  # banner, left text column
    echo = _dicom_frame("examples_ybr_color.dcm").pixels  # phased cardiac, soft keys below
    r = detect_region(echo)
    x0, y0, x1, y1 = r.bbox
    assert y1 <= 215 and x1 <= 285 and x0 >= 60 and 0.15 < r.area_fraction < 0.6, r.bbox


def test_dicom_rectangle_keeps_the_detected_fan():
    img, truth = scanner_frame(False)
    ys, xs = np.nonzero(truth)
    box = {"RegionLocationMinX0": int(xs.min()), "RegionLocationMinY0": int(ys.min()),
           "RegionLocationMaxX1": int(xs.max()), "RegionLocationMaxY1": int(ys.max())}
    r = region_from_dicom([box], img)
    assert r is not None and r.kind == "dicom"
    assert iou(r.mask, truth) > 0.95  # the fan, not its bounding rectangle
