"""The input-quality gate's figures (``usclip_sdk.quality``) in one native pass.

``gate_figures(pixels, mask, bbox)`` measures a strided sample of at most ~96 px a side of the
imaging region: grey-level histogram figures, moments, lag-1 neighbour correlation, Laplacian
texture, the whole frame's colour fraction and the median speckle ratio. CPU: csrc/ops/gate/
gate_cpu.cpp (reads the frame in place, any strides); CUDA: gate_cuda.cu. The numpy reference
``gate_reference.gate_figures_reference`` defines the result: counts and the speckle ratio are
identical, the moments agree to float32 rounding (the reference accumulates in float32, the
kernels in double).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._native import native
from .device import device_scope, device_view, is_device_array, parse_device, require_cuda, stream_handle

__all__ = ["GateFigures", "gate_figures", "grey", "MIN_PIXELS"]

MIN_PIXELS = 16  # fewer sampled pixels inside the region: no figures, the gate fails


class GateFigures(NamedTuple):
    """Unrounded gate figures. With ``pixels`` < 16 only the first three are measured."""

    pixels: int  # sampled pixels inside the region
    area_fraction: float  # the region's share of the frame, from its strided mask
    whole_frame: bool  # the region was under 4 % of the frame: the whole frame was measured
    contrast: float = 0.0  # std of the grey levels
    mean: float = 0.0
    echo_p99: float = 0.0  # 99th percentile grey level
    dark_fraction: float = 0.0  # grey level < 16
    colour_fraction: float = 0.0  # whole frame: max - min channel > 24
    grey_levels: int = 0  # distinct uint8 grey levels
    flat_fraction: float = 0.0  # most common non-dark level's share of the non-dark pixels
    correlation: float = 1.0  # lag-1 horizontal neighbours, at full resolution
    texture: float = 0.0  # mean |Laplacian| / std
    speckle_snr: float = 0.0  # median mean/std of 8 x 8 patches wholly inside, not dark


def grey(pixels: np.ndarray) -> np.ndarray:
    """float32 grey levels as the gate defines them: the gray channel, or (r + g + b) / 3 in
    float32 (also the frozen-feed check's thumbnail, usclip_sdk.quality.FrozenDetector)."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    # Channel maxima/means with numpy's axis=2 reductions cost ~1 ms a frame; elementwise is ~20x faster.
    r, g, b = (pixels[..., i].astype(np.float32) for i in range(3))
    return (r + g + b) * np.float32(1.0 / 3.0)


def gate_figures(pixels, mask, bbox, device: str = "cpu", stream=None) -> GateFigures:
    """Figures of one frame with its imaging region.

    pixels: uint8 H x W (gray) or H x W x C (C >= 3: R, G, B first), any strides; with
        device="cuda" also a CUDA array (``__cuda_array_interface__`` or DLPack), read in place.
    mask: uint8 or bool H x W, nonzero inside the region (a Region's ``mask``).
    bbox: (x0, y0, x1, y1), half-open, inside the frame (a Region's ``bbox``).
    device: "cpu", "cuda" or "cuda:N"; stream: a CUDA stream (see ops.device), waited for.
    """
    ordinal = parse_device(device)
    if ordinal is None:
        _check(pixels, mask, bbox)
        return GateFigures._make(native().gate_cpu(pixels, mask, bbox))
    require_cuda()
    with device_scope(ordinal):
        return _run_cuda(pixels, mask, bbox, stream_handle(stream))


def _check(pixels, mask, bbox, device: bool = False) -> None:
    """TypeError / ValueError naming the argument (the CPU path's cost: ~1 us)."""
    if not device and not isinstance(pixels, np.ndarray):
        raise TypeError(f"pixels: expected a numpy array, found {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels: expected uint8, found {pixels.dtype}")
    shape = pixels.shape
    if not (len(shape) == 2 or (len(shape) == 3 and (shape[2] == 1 or shape[2] >= 3))):
        raise ValueError(f"pixels: expected H x W or H x W x C with C = 1 or C >= 3, found shape {shape}")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"pixels: empty frame of shape {shape}")
    if not device and not isinstance(mask, np.ndarray):
        raise TypeError(f"mask: expected a numpy array, found {type(mask).__name__}")
    if mask.dtype != np.uint8 and mask.dtype != np.bool_:
        raise TypeError(f"mask: expected uint8 or bool, found {mask.dtype}")
    if mask.shape != shape[:2]:
        raise ValueError(f"mask: expected the frame's shape {shape[:2]}, found {mask.shape}")
    if not (isinstance(bbox, (tuple, list)) and len(bbox) == 4
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in bbox)):
        raise TypeError(f"bbox: expected (x0, y0, x1, y1) integers, found {bbox!r}")
    x0, y0, x1, y1 = bbox
    if not (0 <= x0 <= x1 <= shape[1] and 0 <= y0 <= y1 <= shape[0]):
        raise ValueError(f"bbox: {tuple(bbox)} is not inside the {shape[1]} x {shape[0]} frame")


class _Meta:
    """The shape and dtype of a device array, for _check."""

    def __init__(self, view):
        self.shape, self.dtype = tuple(view.shape), np.dtype(view.dtype)


def _view(arr, name: str, stream: int):
    """(meta for _check, ptr, strides, on_device, keep-alive) of a frame or mask: a CUDA array
    is read in place; a host array is staged with one 2-D copy, so its rows must be contiguous."""
    if is_device_array(arr):
        v = device_view(arr, name, stream)
        return _Meta(v), v.ptr, v.strides, True, (arr, v)
    if isinstance(arr, np.ndarray):
        if arr.ndim in (2, 3) and not _rows_contiguous(arr):
            arr = np.ascontiguousarray(arr)
        return arr, arr.ctypes.data, arr.strides, False, arr
    raise TypeError(f"{name}: expected a numpy or CUDA array, found {type(arr).__name__}")


def _rows_contiguous(a: np.ndarray) -> bool:
    c = a.shape[2] if a.ndim == 3 else 1
    return ((a.ndim == 2 or a.strides[2] == 1 or c == 1) and (a.strides[1] == c or a.shape[1] == 1)
            and a.strides[0] >= a.shape[1] * c)


def _run_cuda(pixels, mask, bbox, stream: int) -> GateFigures:
    pmeta, pptr, pstrides, p_dev, pkeep = _view(pixels, "pixels", stream)
    mmeta, mptr, mstrides, m_dev, mkeep = _view(mask, "mask", stream)
    _check(pmeta, mmeta, bbox, device=True)
    h, w = pmeta.shape[:2]
    c = pmeta.shape[2] if len(pmeta.shape) == 3 else 1
    # A single channel's stride is never used; 1 keeps the host staging's layout check simple.
    sc = pstrides[2] if c > 1 else 1
    sx = pstrides[1] if w > 1 else c
    msx = mstrides[1] if w > 1 else 1
    out = native().gate_cuda((pptr, h, w, c, pstrides[0], sx, sc), p_dev, (mptr, mstrides[0], msx), m_dev,
                             tuple(int(v) for v in bbox), stream)  # DeviceError on failure
    del pkeep, mkeep  # alive until the call returned (it waits for the stream)
    return GateFigures._make(out)
