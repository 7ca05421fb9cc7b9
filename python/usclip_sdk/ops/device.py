"""CUDA device memory for the ops: ``DeviceArray`` plus readers of foreign device arrays.

``DeviceArray`` owns one compact (C-order) allocation and exposes it to other libraries
without copies: ``__cuda_array_interface__`` (CuPy, numba, torch.as_tensor) and
``__dlpack__`` / ``__dlpack_device__`` (torch.from_dlpack, cupy.from_dlpack, jax).
``device_view`` reads the same two protocols from other libraries' arrays.

The convention every op follows (``preprocess``, ``similarity``):
- ``device`` is ``"cpu"``, ``"cuda"`` (the current CUDA device) or ``"cuda:N"``
  (``parse_device``); anything else is a ValueError naming the argument;
- ``stream`` is None (the legacy default stream), an int ``cudaStream_t`` or a CuPy/torch
  stream (``stream_handle``);
- results that live on the device are queued on ``stream`` and not waited for (read them
  through ``DeviceArray.numpy()`` or the array protocols, which synchronise); results that
  come back as host numpy arrays are complete when the call returns;
- bad arguments raise ValueError / TypeError naming the argument; anything CUDA refuses
  (no CUDA build, no driver, a failed launch or copy) raises ``usclip_sdk.errors.DeviceError``,
  mapped in one place, the native module's error translator (csrc/common/errors.h).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import DeviceError
from ._native import native

__all__ = ["DeviceArray", "DeviceView", "device_view", "require_cuda", "stream_handle",
           "is_device_array", "parse_device", "device_scope"]

_KDLCUDA = 2  # DLPack device type of CUDA memory
_DL_CODES = {"u": 1, "i": 0, "f": 2, "b": 6}  # DLPack dtype codes (uint, int, float, bool)


_cuda_ok = False  # set once CUDA was found usable: device queries cost up to milliseconds


def require_cuda() -> None:
    """Raise DeviceError saying why when CUDA kernels cannot run here."""
    global _cuda_ok
    if _cuda_ok:
        return
    mod = native()
    if not mod.build_info()["cuda_kernels"]:
        raise DeviceError("device='cuda': this build of usclip_sdk has no CUDA kernels "
                          "(built with USCLIP_CUDA=OFF or without nvcc)")
    status = mod.cuda_status()
    if not status["usable"]:
        raise DeviceError(f"device='cuda': CUDA is not usable here: {status['reason']}")
    _cuda_ok = True


def parse_device(device) -> int | None:
    """None for "cpu", the CUDA ordinal for "cuda:N", -1 for "cuda" (the current device)."""
    if device == "cpu":
        return None
    if device == "cuda":
        return -1
    if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', found {device!r}")


@contextlib.contextmanager
def device_scope(ordinal: int) -> Iterator[None]:
    """Make CUDA device ``ordinal`` current for a block (-1: leave the current one)."""
    if ordinal < 0:
        yield
        return
    n = native()
    prev = int(n.current_device())
    if prev != ordinal:
        n.rt_set_device(ordinal)
    try:
        yield
    finally:
        if prev != ordinal:
            n.rt_set_device(prev)


def stream_handle(stream) -> int:
    """cudaStream_t as an int from None (legacy default stream), an int, or a CuPy / torch
    stream object (``.cuda_stream``, else ``.ptr``)."""
    if stream is None:
        return 0
    if isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        if stream < 0:
            raise ValueError(f"stream: expected a non-negative handle, found {stream}")
        return int(stream)
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    raise TypeError(f"stream: expected None, an int cudaStream_t or a CUDA stream object, "
                    f"found {type(stream).__name__}")


def _cai_stream(stream: int) -> int:
    # __cuda_array_interface__ v3 / DLPack: 1 means the legacy default stream, 0 is invalid.
    return 1 if stream == 0 else stream


class DeviceArray:
    """A compact C-order array in CUDA device memory, freed when the object goes away.

    ``DeviceArray(shape, dtype, stream=None)`` allocates on the current device;
    ``DeviceArray.from_numpy(a)`` uploads; ``.numpy()`` downloads (after the work queued
    on the array's stream). ``ptr`` is the device address (an int), ``stream`` the stream
    the array's producer queued work on (other libraries synchronise with it through the
    protocols' ``stream`` fields).
    """

    def __init__(self, shape, dtype, stream=None):
        require_cuda()
        self.shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in self.shape):
            raise ValueError(f"shape: expected non-negative sizes, found {self.shape}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in _DL_CODES or self.dtype.byteorder == ">":
            raise TypeError(f"dtype: expected a native bool/int/uint/float dtype, found {dtype}")
        self.stream = stream_handle(stream)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.device_id = int(native().current_device())
        self.ptr = int(native().device_malloc(self.nbytes))  # DeviceError when CUDA refuses

    @classmethod
    def from_numpy(cls, array, stream=None) -> "DeviceArray":
        """Upload a host array (copied to C order first when needed)."""
        a = np.ascontiguousarray(array)
        d = cls(a.shape, a.dtype, stream)
        if a.nbytes:
            native().memcpy_htod(d.ptr, a.ctypes.data, a.nbytes, d.stream)
        return d

    def numpy(self) -> np.ndarray:
        """A host copy (waits for the work queued on ``stream``)."""
        a = np.empty(self.shape, self.dtype)
        if self.nbytes:
            native().memcpy_dtoh(a.ctypes.data, self.ptr, self.nbytes, self.stream)
        return a

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "strides": None, "version": 3, "stream": _cai_stream(self.stream)}

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        # Work was queued on self.stream; a consumer on another stream must wait for it.
        # Synchronising is the simple, always-correct choice (one call per hand-off).
        if stream != -1 and self.stream not in (0, stream):
            native().stream_synchronize(self.stream)
        dt = self.dtype
        return native().to_dlpack(self, self.ptr, list(self.shape), _DL_CODES[dt.kind],
                                  dt.itemsize * 8, _KDLCUDA, self.device_id)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (_KDLCUDA, self.device_id)

    def close(self) -> None:
        """Free the memory now (also done when the object is collected)."""
        ptr, self.ptr = getattr(self, "ptr", 0), 0
        if ptr:
            native().device_free(ptr)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the module may already be gone
            pass

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.device_id})"


@dataclass
class DeviceView:
    """A foreign device array seen as pointer + shape + byte strides (kept alive by `owner`)."""

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]   # bytes
    dtype: np.dtype
    owner: object              # the array or DLPack capsule that owns the memory


def is_device_array(obj) -> bool:
    """True for objects exposing CUDA memory through either protocol."""
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.ndarray):
        try:
            return int(obj.__dlpack_device__()[0]) == _KDLCUDA
        except Exception:
            return False
    return False


def _compact_strides(shape, itemsize) -> tuple[int, ...]:
    strides, acc = [], itemsize
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(int(s), 1)
    return tuple(reversed(strides))


def device_view(obj, name: str, stream: int) -> DeviceView:
    """Pointer, shape, byte strides and dtype of a CUDA array (CAI v2/v3 or DLPack).

    Work the producer queued on another stream is waited for (CAI ``stream`` field; DLPack
    producers do it themselves when given our stream)."""
    if hasattr(obj, "__cuda_array_interface__"):
        cai = obj.__cuda_array_interface__
        shape = tuple(int(s) for s in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        strides = cai.get("strides")
        strides = _compact_strides(shape, dtype.itemsize) if strides is None else tuple(strides)
        prod_stream = cai.get("stream")
        if prod_stream not in (None, _cai_stream(stream)):
            native().stream_synchronize(0 if prod_stream == 1 else int(prod_stream))
        return DeviceView(int(cai["data"][0]), shape, strides, dtype, obj)
    if hasattr(obj, "__dlpack__"):
        cap = obj.__dlpack__(stream=_cai_stream(stream))
        info = native().dlpack_view(cap)
        if info["device_type"] != _KDLCUDA:
            raise TypeError(f"{name}: expected CUDA memory, found DLPack device type "
                            f"{info['device_type']}")
        kind = {1: "u", 0: "i", 2: "f", 6: "b"}.get(info["code"])
        if kind is None or info["lanes"] != 1:
            raise TypeError(f"{name}: unsupported DLPack dtype code {info['code']}")
        dtype = np.dtype(f"{kind}{info['bits'] // 8}") if kind != "b" else np.dtype(bool)
        shape = tuple(info["shape"])
        strides = (_compact_strides(shape, dtype.itemsize) if info["strides"] is None
                   else tuple(s * dtype.itemsize for s in info["strides"]))
        return DeviceView(int(info["ptr"]), shape, strides, dtype, cap)
    raise TypeError(f"{name}: expected a CUDA array (__cuda_array_interface__ or __dlpack__), "
                    f"found {type(obj).__name__}")
