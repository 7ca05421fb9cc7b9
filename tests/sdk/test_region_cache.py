"""The fast region detector against what it replaced, and layout prints: RegionCache (eight
layouts in turn, a changed layout re-detected, LRU), RegionTracker, Classifier.classify."""
import cv2
import numpy as np
import pytest

from test_region import linear_screen, scanner_frame

from usclip_sdk.errors import InvalidInputError
from usclip_sdk.layout import FramePrint, LayoutPrint, RegionCache, background, foreground
from usclip_sdk.region import RegionTracker, detect_region, iou


def _noisy_bg(seed: int = 4) -> np.ndarray:
    img = scanner_frame(False, seed=seed)[0].copy()
    bg = img.max(axis=2) == 0
    img[bg] = (20 + np.random.default_rng(7).integers(-3, 4, (int(bg.sum()), 3))).astype(np.uint8)
    return img


# Regions the detector found before it was made fast (bbox, kind, mask pixel count): the fast
# one must find exactly these (it is meant to be the same computation, not an approximation).
PINNED = {
    "fan": (lambda: scanner_frame(False)[0], (91, 40, 710, 581), "sector", 178526),
    "linear": (lambda: scanner_frame(True)[0], (199, 79, 599, 521), "linear", 176800),
    "fan_gray": (lambda: scanner_frame(False)[0][..., 0].copy(), (91, 40, 710, 581), "sector", 178526),
    "linear_bg16": (lambda: linear_screen(16)[0], (181, 70, 620, 500), "linear", 188770),
    "linear_bg30": (lambda: linear_screen(30)[0], (181, 70, 620, 500), "linear", 188770),
    "fan_odd_size": (lambda: cv2.resize(scanner_frame(False)[0], (803, 601)), (88, 39, 716, 584), "sector", 182244),
    "fan_noisy_bg": (_noisy_bg, (91, 40, 710, 581), "sector", 178597),  # background tolerance 4
}


@pytest.mark.parametrize("name", list(PINNED))
def test_fast_detector_finds_the_regions_it_found_before(name):
    make, bbox, kind, area = PINNED[name]
    r = detect_region(make())
    assert (r.bbox, r.kind, int(r.mask.sum())) == (bbox, kind, area)


def _reference_background(frame):
    """The obvious formulation the fast one replaced: mode bin by weighted bincount, np.median."""
    c = 1 if frame.ndim == 2 else frame.shape[2]
    f = frame.reshape(frame.shape[0], frame.shape[1], c)
    sides = [f[:2].reshape(-1, c), f[-2:].reshape(-1, c), f[:, :2].reshape(-1, c), f[:, -2:].reshape(-1, c)]
    weights = np.concatenate([np.full(len(x), 1.0 / len(x)) for x in sides])
    ring = np.concatenate(sides).astype(np.int32)
    packed = (ring >> 3) @ np.array([1, 32, 1024][:c], np.int32)
    sel = packed == int(np.argmax(np.bincount(packed, weights=weights)))
    bg = np.median(ring[sel], axis=0).astype(np.int32)
    dev = np.abs(ring[sel] - bg).max(axis=1)
    return tuple(int(v) for v in bg), min(int(np.percentile(dev, 95)) + 1 if dev.any() else 0, 12)


def _reference_foreground(frame, s):
    """inRange against the background, then min-pooling by erosion (anchor at the block's corner)."""
    bg, tol = _reference_background(frame)
    lo = np.array([max(0, v - tol) for v in bg], np.uint8)
    hi = np.array([min(255, v + tol) for v in bg], np.uint8)
    back = cv2.inRange(frame, lo, hi)
    if s > 1:
        back = cv2.erode(back, np.ones((s, s), np.uint8), anchor=(0, 0))[::s, ::s]
    return (back == 0).astype(np.uint8)


@pytest.mark.parametrize("shape,s", [((97, 131, 3), 3), ((120, 160), 2), ((61, 203, 3), 4), ((50, 50, 3), 1),
                                     ((33, 47), 5)])
@pytest.mark.parametrize("bg", [0, 17])
def test_background_and_foreground_match_the_obvious_reference(shape, s, bg):
    rng = np.random.default_rng(sum(shape) + s + bg)
    frame = np.full(shape, bg, np.uint8)
    frame[rng.random(shape[:2]) < 0.02] = 200  # sparse specks: max-pooling must keep each one
    frame[10:30, 12:40] = rng.integers(0, 255, frame[10:30, 12:40].shape, dtype=np.uint8)
    if bg:  # a noisy border, so the tolerance is not 0
        frame[:2] = (bg + rng.integers(-2, 3, frame[:2].shape)).astype(np.uint8)
    assert background(frame) == _reference_background(frame)
    np.testing.assert_array_equal(foreground(frame, s), _reference_foreground(frame, s))
    # non-contiguous input (a strided view) gives the same map as its copy
    view = np.pad(frame, [(0, 0), (0, 3)] + [(0, 0)] * (frame.ndim - 2))[:, :shape[1]]
    np.testing.assert_array_equal(foreground(view, s), foreground(frame, s))


# ---------------------------------------------------------------- layouts

def layout_frame(k: int, seed: int, grow: int = 0, h: int = 480, w: int = 640):
    """Scanner screen layout ``k`` (0..15: rectangles and fans at different places and sizes,
    its own caption) with content ``seed`` (speckle and a dark blob that moves); ``grow``
    widens the scan by that many pixels on the right (a small depth/width change)."""
    rng = np.random.default_rng(1000 * k + seed)
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if k % 2 == 0:
        x0, y0 = 90 + 12 * k, 50 + 4 * (k % 5)
        mask[y0:400 - 6 * (k % 4), x0:x0 + 300 - 10 * (k % 6) + grow] = 1
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        ax, ay = w // 2 + 8 * (k - 8), 10 + 3 * k
        r, th = np.hypot(xx - ax, yy - ay), np.degrees(np.arctan2(xx - ax, yy - ay))
        mask[(r > 40 + 4 * k) & (r < 420 - 9 * (k % 5) + grow) & (np.abs(th) < 28 + 2 * (k % 4))] = 1
    speckle = rng.rayleigh(60, (h, w)).clip(0, 255).astype(np.uint8)
    cv2.circle(speckle, (int(rng.integers(250, 390)), int(rng.integers(150, 300))), 30, 0, -1)
    img[mask > 0] = speckle[mask > 0][:, None]
    cv2.putText(img, f"PRESET {k}  D{10 + k}cm", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255,) * 3, 1)
    return img, mask


def _counting(calls):
    def detect(px):
        calls.append(1)
        return detect_region(px)
    return detect


def test_eight_layouts_in_turn_are_detected_once_each():
    calls = []
    cache = RegionCache(_counting(calls), size=16)
    first = {}
    for seed in range(3):  # three passes over the eight layouts, new content every frame
        for k in range(8):
            img, mask = layout_frame(k, seed)
            r = first.setdefault(k, cache(img)) if seed == 0 else cache(img)
            assert r is first[k], (k, seed)  # its own layout's region, not a neighbour's
            assert iou(r.mask, mask) > 0.95
    assert len(calls) == cache.detections == 8 and cache.hits == 16


def test_a_changed_layout_is_detected_again_even_within_one_cell():
    cache = RegionCache(detect_region)
    kept = LayoutPrint(FramePrint(layout_frame(0, 0)[0]), cache(layout_frame(0, 0)[0]))
    for n, grow in enumerate((8, -6)):  # the scan 8 px wider, then 6 px narrower, at 640 x 480
        img, mask = layout_frame(0, n + 1, grow=grow)
        # under a 20 px cell: the fingerprint alone matches, the edge bands do not
        assert np.mean(FramePrint(img).cells != kept.cells) <= cache.tolerance
        r = cache(img)
        assert cache.detections == n + 2 and iou(r.mask, mask) > iou(kept.region.mask, mask)
        assert abs(r.bbox[2] - kept.region.bbox[2] - grow) <= 2
    assert cache(layout_frame(0, 3)[0]) is kept.region  # the first layout is still kept


def test_least_recently_used_layout_is_dropped():
    calls = []
    cache = RegionCache(_counting(calls), size=4)
    for k in range(5):
        cache(layout_frame(k, 0)[0])
    cache(layout_frame(4, 1)[0])  # kept
    cache(layout_frame(1, 1)[0])  # kept (now the most recent)
    assert len(calls) == 5
    cache(layout_frame(0, 1)[0])  # dropped when the fifth layout came: detected again
    assert len(calls) == 6
    with pytest.raises(ValueError, match="size"):
        RegionCache(detect_region, size=0)


def test_other_frame_size_never_reuses_a_region():
    cache = RegionCache(detect_region)
    img = layout_frame(3, 0)[0]
    small = cv2.resize(img, (320, 240))
    assert cache(small).frame_shape == (240, 320) and cache(img).frame_shape == (480, 640)
    assert cache.detections == 2


def test_tracker_redetects_a_change_the_fingerprint_misses():
    tr = RegionTracker(refresh_every=2)
    first = tr(layout_frame(2, 0)[0])
    assert tr(layout_frame(2, 1)[0]) is first and tr(layout_frame(2, 2)[0]) is first
    img, mask = layout_frame(2, 3, grow=8)  # within the tracker's 6 % of cells
    assert np.mean(RegionTracker.fingerprint(img) != RegionTracker.fingerprint(layout_frame(2, 0)[0])) <= 0.06
    regions = [tr(img) for _ in range(2)]
    assert tr.detections == 2 and iou(regions[-1].mask, mask) > 0.95


def test_prints_refuse_bad_input():
    with pytest.raises(InvalidInputError, match="uint8"):
        RegionTracker.fingerprint(np.zeros((64, 64), np.float32))
    with pytest.raises(InvalidInputError, match="shape"):
        RegionTracker.fingerprint(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="uint8"):
        RegionCache(detect_region)(np.zeros((64, 64), np.float32))
    fp = RegionTracker.fingerprint(np.zeros((64, 80, 4), np.uint8))
    assert fp.shape == (24, 32) and not fp.any()


def test_classify_detects_each_of_eight_layouts_once(bundle_path, monkeypatch):
    pytest.importorskip("onnx")
    import usclip_sdk.classifier as cmod

    clf = cmod.Classifier(bundle_path, backend="onnxruntime", device="cpu")
    calls = []
    monkeypatch.setattr(cmod, "detect_region", _counting(calls))
    truth = [detect_region(layout_frame(k, 0)[0]).bbox for k in range(8)]
    for seed in range(2):
        preds = clf.classify_batch([layout_frame(k, seed)[0] for k in range(8)])
        assert [tuple(p.region["bbox"]) for p in preds] == truth
    assert len(calls) == 8
