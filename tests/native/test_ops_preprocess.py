"""usclip_sdk.ops.preprocess (CPU) against its numpy reference, PIL and OpenCV, and bad inputs.

Tolerances: float32 output within 1e-4 of the float64 reference (after normalisation, values
span about -2..2.2); float16 within one float16 ulp (2e-3 absolute near 2, 1e-3 relative).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usclip_sdk.errors import DeviceError
from usclip_sdk.ops.preprocess_reference import preprocess_reference
from usclip_sdk.ops.preprocess import preprocess
from usclip_sdk.ops import cuda_available

ATOL32 = 1e-4


def close(got, want, fp16=False):
    if fp16:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   atol=2e-3, rtol=1e-3)
    else:
        np.testing.assert_allclose(got, want, atol=ATOL32, rtol=0)


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.sampled_from([None, 1, 3]))
    c = draw(st.sampled_from([None, 1, 3, 4]))
    h, w = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    shape = ((n,) if n else ()) + (h, w) + ((c,) if c else ())
    if n and c is None and w in (1, 3, 4):
        shape = shape + (1,)  # a gray batch with such a width must carry its channel axis
    frames = rng.integers(0, 256, shape, dtype=np.uint8)
    # Strided / negative-stride views of a bigger array.
    view = draw(st.sampled_from(["plain", "flip_rows", "flip_channels", "step_cols", "flip_cols"]))
    hax = 1 if n else 0
    if view == "flip_rows":
        frames = np.flip(np.ascontiguousarray(np.flip(frames, hax)), hax)
    elif view == "flip_channels" and frames.shape[-1] in (3, 4) and (c or 0) > 1:
        frames = np.ascontiguousarray(frames[..., ::-1])[..., ::-1]
    elif view == "step_cols":
        big = np.repeat(frames, 2, axis=hax + 1)
        frames = big[(slice(None),) * (hax + 1) + (slice(None, None, 2),)]
    elif view == "flip_cols":
        frames = np.flip(frames, hax + 1)
    x0 = draw(st.integers(0, w - 1))
    y0 = draw(st.integers(0, h - 1))
    roi = draw(st.sampled_from([None, (x0, y0, draw(st.integers(x0 + 1, w)),
                                       draw(st.integers(y0 + 1, h))), (0, 0, w, h)]))
    mask = None
    if draw(st.booleans()):
        mshape = (n, h, w) if (n and draw(st.booleans())) else (h, w)
        mask = (rng.random(mshape) < draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))).astype(np.uint8)
    kw = dict(size=(draw(st.integers(1, 40)), draw(st.integers(1, 40))), roi=roi, mask=mask,
              color=draw(st.sampled_from(["rgb", "bgr"])),
              resize=draw(st.sampled_from(["stretch", "letterbox"])),
              dtype=draw(st.sampled_from(["float32", "float16"])),
              fill=draw(st.sampled_from([0.0, 0.5, (0.1, 0.2, 0.9)])),
              mean=draw(st.sampled_from([(0.48145466, 0.4578275, 0.40821073), 0.5])),
              std=draw(st.sampled_from([(0.26862954, 0.26130258, 0.27577711), 0.25])))
    return frames, kw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_matches_reference(case):
    frames, kw = case
    got = preprocess(frames, **kw)
    want = preprocess_reference(frames, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    close(got, want, fp16=kw["dtype"] == "float16")


def _frame(h=97, w=131, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_one_pixel_and_odd_frames():
    one = np.array([[[10, 200, 30]]], np.uint8)
    got = preprocess(one, size=(3, 5), mean=0, std=1)
    assert np.allclose(got[0, :, 0, 0], [10 / 255, 200 / 255, 30 / 255], atol=1e-6)
    assert np.allclose(got, got[..., :1, :1])  # constant everywhere
    for shape in [(1, 7, 3), (7, 1, 3), (3, 3), (5, 2, 4)]:
        f = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
        close(preprocess(f, size=(9, 4)), preprocess_reference(f, size=(9, 4)))


def test_constant_frame_stays_constant_under_any_resize():
    f = np.full((123, 77, 3), 128, np.uint8)
    for size in [(224, 224), (5, 300), (61, 61)]:
        got = preprocess(f, size=size, mean=0, std=1)
        np.testing.assert_allclose(got, 128 / 255, atol=1e-6)


def test_roi_touching_borders_and_crop_equivalence():
    f = _frame()
    for roi in [(0, 0, 131, 97), (0, 0, 1, 1), (130, 96, 131, 97), (0, 50, 131, 97),
                (60, 0, 131, 10)]:
        x0, y0, x1, y1 = roi
        close(preprocess(f, roi=roi, size=(16, 24)),
              preprocess(np.ascontiguousarray(f[y0:y1, x0:x1]), size=(16, 24)))


def test_all_zero_mask_gives_fill_everywhere():
    f = _frame()
    got = preprocess(f, mask=np.zeros(f.shape[:2], np.uint8), fill=0.25, mean=0.5, std=0.5)
    np.testing.assert_allclose(got, (0.25 - 0.5) / 0.5, atol=1e-6)
    black = preprocess(f, mask=np.zeros(f.shape[:2], bool))
    zero = preprocess(np.zeros_like(f))
    close(black, zero)  # default fill: what a black pixel becomes


def test_mask_applied_before_filtering():
    # A white frame whose left half is masked: the boundary column of the output must mix
    # white with the fill (black), not with white pixels hidden under the mask.
    f = np.full((64, 64, 3), 255, np.uint8)
    m = np.ones((64, 64), np.uint8)
    m[:, :32] = 0
    got = preprocess(f, mask=m, size=(8, 8), mean=0, std=1)[0, 0, 0]
    assert got[0] == pytest.approx(0, abs=1e-6) and got[-1] == pytest.approx(1, abs=1e-6)
    assert 0 < got[3] < 1 and 0 < got[4] < 1
    close(preprocess(f, mask=m, size=(8, 8)), preprocess_reference(f, mask=m, size=(8, 8)))


def test_letterbox_pads_with_fill():
    f = _frame(50, 100)
    got = preprocess(f, size=(100, 100), resize="letterbox", fill=0.0, mean=0, std=1)
    assert np.all(got[0, :, :25] == 0) and np.all(got[0, :, 75:] == 0)
    close(got, preprocess_reference(f, size=(100, 100), resize="letterbox", mean=0, std=1))


def test_fp16_and_out_buffer():
    f = _frame()
    out = np.full((1, 3, 32, 32), np.nan, np.float16)
    res = preprocess(f, size=32, dtype="float16", out=out)
    assert res is out and np.all(np.isfinite(out))
    close(out, preprocess_reference(f, size=32, dtype="float16"), fp16=True)


def test_bgr_rgba_gray():
    f = _frame()
    rgb = preprocess(f)
    close(preprocess(np.ascontiguousarray(f[..., ::-1]), color="bgr"), rgb)
    close(preprocess(f[..., ::-1], color="bgr"), rgb)  # channel-reversed view, read in place
    rgba = np.concatenate([f, np.full(f.shape[:2] + (1,), 7, np.uint8)], axis=2)
    close(preprocess(rgba), rgb)
    g = f[..., 0]
    gray = preprocess(g, mean=0.5, std=0.5)
    assert np.array_equal(gray[:, 0], gray[:, 1]) and np.array_equal(gray[:, 1], gray[:, 2])
    close(gray, preprocess(np.repeat(g[..., None], 3, axis=2), mean=0.5, std=0.5))


def test_batch_consistency():
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (4, 60, 80, 3), dtype=np.uint8)
    masks = (rng.random((4, 60, 80)) < 0.7).astype(np.uint8)
    got = preprocess(batch, roi=(5, 6, 70, 55), mask=masks, size=(20, 30))
    for i in range(4):
        one = preprocess(batch[i], roi=(5, 6, 70, 55), mask=masks[i], size=(20, 30))
        np.testing.assert_array_equal(got[i], one[0])
    assert preprocess(np.zeros((0, 10, 10, 3), np.uint8), size=4).shape == (0, 3, 4, 4)


def test_close_to_pil_and_opencv():
    """Sanity: PIL's bilinear (antialiased) resize rounds to uint8 after each pass, so it
    differs by at most ~1 grey level; cv2 INTER_AREA is a box filter: same local mean,
    a different kernel (mean difference a few grey levels on noise-free content)."""
    pil = pytest.importorskip("PIL.Image")
    cv2 = pytest.importorskip("cv2")
    yy, xx = np.mgrid[0:480, 0:640]
    f = np.stack([(xx * 0.4) % 256, (yy * 0.5) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    ours = preprocess(f, size=(120, 160), mean=0, std=1)[0].transpose(1, 2, 0) * 255
    p = np.asarray(pil.fromarray(f).resize((160, 120), pil.BILINEAR), np.float64)
    assert np.abs(ours - p).max() <= 1.5
    c = cv2.resize(f, (160, 120), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert np.abs(ours - c).mean() < 3.0


@pytest.mark.parametrize("kw, exc, words", [
    (dict(frames=np.zeros((10, 10, 3), np.float32)), TypeError, "frames"),
    (dict(frames=np.zeros((2, 3, 4, 5, 6), np.uint8)), ValueError, "frames"),
    (dict(roi=(0, 0, 11, 5)), ValueError, "roi"),
    (dict(roi=(5, 5, 5, 6)), ValueError, "roi"),
    (dict(roi=(0, 0, 1.5, 4)), TypeError, "roi"),
    (dict(roi=(0, 0, 4)), ValueError, "roi"),
    (dict(mask=np.ones((9, 10), np.uint8)), ValueError, "mask"),
    (dict(mask=np.ones((10, 10), np.float32)), TypeError, "mask"),
    (dict(size=(0, 4)), ValueError, "size"),
    (dict(size="big"), ValueError, "size"),
    (dict(std=(1, 0, 1)), ValueError, "std"),
    (dict(mean=(1, 2)), ValueError, "mean"),
    (dict(mean=float("nan")), ValueError, "mean"),
    (dict(color="hsv"), ValueError, "color"),
    (dict(resize="crop"), ValueError, "resize"),
    (dict(dtype="int8"), ValueError, "dtype"),
    (dict(device="tpu"), ValueError, "device"),
    (dict(out=np.zeros((1, 3, 8, 8), np.float16)), ValueError, "out"),
    (dict(out=np.zeros((1, 3, 8, 9), np.float32)), ValueError, "out"),
    (dict(out=np.zeros((1, 3, 8, 16), np.float32)[..., ::2]), ValueError, "out"),
])
def test_bad_inputs(kw, exc, words):
    args = dict(frames=np.zeros((10, 10, 3), np.uint8), size=(8, 8))
    args.update(kw)
    with pytest.raises(exc, match=words):
        preprocess(args.pop("frames"), **args)


def test_portable_kernel_clone_matches_reference():
    """The non-AVX2 build of the kernel (what ARM and old x86 run), forced by env var."""
    code = (
        "import numpy as np\n"
        "from usclip_sdk.ops.preprocess import preprocess\n"
        "from usclip_sdk.ops.preprocess_reference import preprocess_reference as ref\n"
        "rng = np.random.default_rng(5)\n"
        "for shape in [(90, 130, 3), (41, 77), (2, 33, 65, 4)]:\n"
        "    f = rng.integers(0, 256, shape, dtype=np.uint8)\n"
        "    m = (rng.random(f.shape[-3:-1] if f.ndim == 4 else f.shape[:2]) < .7)\n"
        "    for kw in [dict(size=(37, 29)), dict(size=(200, 150), mask=m.astype(np.uint8))]:\n"
        "        d = np.abs(preprocess(f, **kw) - ref(f, **kw)).max()\n"
        "        assert d < 1e-4, d\n"
        "print('ok')\n")
    env = dict(os.environ, USCLIP_PREPROCESS_GENERIC="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


@pytest.mark.skipif(cuda_available(), reason="checks the no-GPU error path")
def test_cuda_without_gpu_raises_device_error():
    with pytest.raises(DeviceError, match="cuda"):
        preprocess(np.zeros((4, 4, 3), np.uint8), device="cuda")
