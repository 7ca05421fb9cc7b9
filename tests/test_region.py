"""Imaging-region detection on frames with known masks (fans, rectangles, overlays)."""
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


def test_tracker_caches_and_refreshes():
    img, _ = scanner_frame(False)
    tr = RegionTracker(refresh_every=5)
    first = tr(img)
    for _ in range(4):
        assert tr(img) is first
    assert tr.detections == 1
    tr(img)  # 6th frame: refresh, same layout -> the cached region is kept
    assert tr.detections == 2 and tr(img) is first
    other, truth = scanner_frame(True)
    small = cv2.resize(other, (400, 300))
    assert tr(small).frame_shape == (300, 400)  # new frame size -> immediate re-detection
    with pytest.raises(ValueError, match="refresh_every"):
        RegionTracker(refresh_every=0)


def test_iou_and_full_region():
    a = np.zeros((4, 4), np.uint8)
    a[:2] = 1
    assert iou(a, a) == 1.0 and iou(a, 1 - a) == 0.0
    assert full_region(3, 5).mask.sum() == 15
    with pytest.raises(InvalidInputError):
        iou(a, np.zeros((2, 2)))
