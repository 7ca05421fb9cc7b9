"""CUDA preprocess against the numpy reference (run by bench/gpu_check.sh on a GPU machine).

Output buffers are poisoned (NaN) first so a pixel the kernel forgets cannot pass. Inputs are
fresh random draws each run (seed printed on failure). Same tolerances as the CPU tests.
"""
from __future__ import annotations

import numpy as np
import pytest

from usclip_sdk.ops import DeviceArray, cuda_available
from usclip_sdk.ops.preprocess import preprocess
from usclip_sdk.ops.preprocess_reference import preprocess_reference

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs a usable CUDA device")]

SEED = int(np.random.SeedSequence().entropy % (2**32))


def close(got, want, fp16=False):
    got = np.asarray(got, np.float64)
    assert np.all(np.isfinite(got)), f"unwritten (NaN) outputs, seed {SEED}"
    tol = dict(atol=2e-3, rtol=1e-3) if fp16 else dict(atol=1e-4, rtol=0)
    np.testing.assert_allclose(got, want.astype(np.float64), err_msg=f"seed {SEED}", **tol)


def poisoned(shape, dtype):
    return DeviceArray.from_numpy(np.full(shape, np.nan, dtype))


class StridedCAI:
    """A CUDA view with arbitrary byte strides over a DeviceArray (negative allowed)."""

    def __init__(self, base: DeviceArray, offset: int, shape, strides):
        self.base = base
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": "|u1", "data": (base.ptr + offset, False),
            "strides": tuple(strides), "version": 3, "stream": None}


class DLPackOnly:
    """Exposes only __dlpack__ (like a JAX array), to exercise the DLPack input path."""

    def __init__(self, arr):
        self.arr = arr

    def __dlpack__(self, stream=None):
        return self.arr.__dlpack__(stream=stream)

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


def test_random_cases_host_and_device_inputs():
    rng = np.random.default_rng(SEED)
    for _ in range(40):
        n = int(rng.integers(1, 4))
        c = int(rng.choice([1, 3, 4]))
        h, w = (int(v) for v in rng.integers(1, 300, 2))
        frames = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        roi = (x0, y0, int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1)))
        mask = (rng.random((h, w)) < rng.choice([0.0, 0.6, 1.0])).astype(np.uint8)
        kw = dict(size=(int(rng.integers(1, 260)), int(rng.integers(1, 260))), roi=roi,
                  mask=mask if rng.random() < 0.7 else None,
                  resize=str(rng.choice(["stretch", "letterbox"])),
                  color=str(rng.choice(["rgb", "bgr"])), fill=float(rng.random()),
                  dtype=str(rng.choice(["float32", "float16"])))
        want = preprocess_reference(frames, **kw)
        fp16 = kw["dtype"] == "float16"
        out = poisoned(want.shape, want.dtype)
        got = preprocess(frames, device="cuda", out=out, **kw)
        assert got is out
        close(out.numpy(), want, fp16)
        dev = DeviceArray.from_numpy(frames)
        dmask = None if kw["mask"] is None else DeviceArray.from_numpy(kw["mask"])
        close(preprocess(dev, device="cuda", **{**kw, "mask": dmask}).numpy(), want, fp16)


def test_negative_strides_dlpack_and_pointer_out():
    rng = np.random.default_rng(SEED + 1)
    f = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    want = preprocess_reference(f[:, ::-1, :, ::-1], size=(33, 21), color="bgr")
    d = DeviceArray.from_numpy(f)
    row, frame = 70 * 3, 50 * 70 * 3
    flipped = StridedCAI(d, (50 - 1) * row + 2, (2, 50, 70, 3), (frame, -row, 3, -1))
    close(preprocess(flipped, size=(33, 21), color="bgr", device="cuda").numpy(), want)
    close(preprocess(f[:, ::-1, :, ::-1], size=(33, 21), color="bgr", device="cuda").numpy(),
          want)
    plain = preprocess_reference(f, size=(33, 21))
    close(preprocess(DLPackOnly(d), size=(33, 21), device="cuda").numpy(), plain)
    out = poisoned((2, 3, 33, 21), np.float32)
    assert preprocess(d, size=(33, 21), device="cuda", out=out.ptr) == out.ptr
    close(out.numpy(), plain)
    out2 = poisoned((2, 3, 33, 21), np.float32)
    preprocess(d, size=(33, 21), device="cuda", out=(out2.ptr, (2, 3, 33, 21)))
    close(out2.numpy(), plain)
    with pytest.raises(ValueError, match="out"):
        preprocess(d, size=(33, 21), device="cuda", out=(out2.ptr, (1, 3, 33, 21)))
    bad = StridedCAI(d, 0, (2, 50, 35, 3), (frame, row, 6, 1))  # every other pixel
    with pytest.raises(ValueError, match="frames"):
        preprocess(bad, device="cuda")


def test_big_batch_matches_cpu_and_torch_interop():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(SEED + 2)
    f = rng.integers(0, 256, (8, 1080, 1920, 3), dtype=np.uint8)
    mask = np.zeros((1080, 1920), np.uint8)
    mask[100:1000, 300:1600] = 1
    kw = dict(roi=(250, 60, 1650, 1040), mask=mask, size=(224, 224))
    cpu = preprocess(f, **kw)
    t = torch.from_numpy(f).cuda()
    tm = torch.from_numpy(mask).cuda()
    out = torch.full((8, 3, 224, 224), float("nan"), device="cuda")
    torch.cuda.synchronize()  # uploads above ran on the default stream
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        res = preprocess(t, device="cuda", out=out, stream=s, **{**kw, "mask": tm})
    s.synchronize()
    assert res is out
    close(out.cpu().numpy(), cpu)
    d = preprocess(t, device="cuda", **{**kw, "mask": tm})
    close(torch.from_dlpack(d).cpu().numpy(), cpu)
    close(torch.as_tensor(d, device="cuda").cpu().numpy(), cpu)


def test_device_array_roundtrip_and_errors():
    a = np.arange(24, dtype=np.float16).reshape(2, 3, 4)
    d = DeviceArray.from_numpy(a)
    assert d.shape == (2, 3, 4) and d.dtype == np.float16 and d.nbytes == 48
    np.testing.assert_array_equal(d.numpy(), a)
    cai = d.__cuda_array_interface__
    assert cai["data"][0] == d.ptr and cai["typestr"] == "<f2" and cai["version"] == 3
    with pytest.raises(TypeError, match="out"):
        preprocess(np.zeros((4, 4, 3), np.uint8), device="cuda", out=np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="out"):
        preprocess(np.zeros((4, 4, 3), np.uint8), size=2, device="cuda",
                   out=DeviceArray((1, 3, 2, 2), np.float16))
