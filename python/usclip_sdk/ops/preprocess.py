"""Fused ultrasound frame preprocessing: crop, mask, antialiased resize, normalise, NCHW.

``preprocess(frames, ...)`` is the SDK's only way from scanner pixels to model input. It
validates here, then runs one native pass per frame (CPU: csrc/ops/preprocess/
preprocess_cpu.cpp; CUDA: preprocess_cuda.cu, one launch per batch). The numpy reference
``preprocess_reference`` defines the exact result; the kernels match it to float32 rounding.
"""
from __future__ import annotations

import numpy as np

from ._native import native
from .device import (DeviceArray, device_scope, device_view, is_device_array, parse_device, require_cuda,
                     stream_handle)
from .preprocess_args import CLIP_MEAN, CLIP_STD, Spec, check_mask, parse_args

__all__ = ["preprocess", "CLIP_MEAN", "CLIP_STD"]


def preprocess(frames, size=(224, 224), roi=None, mask=None, mean=CLIP_MEAN, std=CLIP_STD,
               color="rgb", resize="stretch", dtype="float32", out=None, device="cpu",
               fill=0.0, stream=None):
    """Turn uint8 frames into normalised N x 3 x h x w model input.

    frames: uint8 H x W (gray), H x W x C (C = 1, 3 or 4), N x H x W (gray batch) or
        N x H x W x C. Any strides: negative row/frame strides and channel-reversed views
        are read in place; other layouts are copied once. With device="cuda" also a CUDA
        array (CuPy, torch, DeviceArray: ``__cuda_array_interface__`` or DLPack), read in place.
    size: output (height, width), or an int for a square.
    roi: (x0, y0, x1, y1) crop in pixels, half-open, inside the frame; the same for the batch.
    mask: uint8 (or bool) H x W, or N x H x W, of the *full* frame size. Where it is 0 the
        source pixel takes the value ``fill`` before filtering, so antialiasing never
        blends hidden text or off-fan pixels into the image.
    mean, std: per channel (R, G, B) on the 0..1 scale (or one number): out = (v - mean) / std.
    color: "rgb" or "bgr", the order of the source channels (a 4th channel is ignored).
    resize: "stretch" (fill h x w) or "letterbox" (keep the crop's aspect, centre it, pad with
        ``fill``).
    dtype: "float32" or "float16".
    fill: value on the 0..1 scale (one number or R, G, B) of masked pixels and letterbox
        padding; the default 0.0 is black, i.e. what a 0 pixel becomes after normalisation.
    out: where to write. CPU: a C-contiguous numpy array (N, 3, h, w) of ``dtype``. CUDA: a
        DeviceArray or any CUDA array of that shape and dtype (e.g. a TensorRT input
        binding), or a bare device address (int) of N*3*h*w elements, or (address, shape).
    device: "cpu", "cuda" (the current CUDA device) or "cuda:N" (ops/device.py: the
        convention both ops share, stream, synchronisation and errors included).
    stream: CUDA stream (int cudaStream_t, or a CuPy / torch stream); None = default stream.

    Returns ``out`` if given, else a new numpy array (CPU) or ``DeviceArray`` (CUDA), always
    with a leading N axis (1 for a single frame). CUDA work is queued on ``stream`` and not
    waited for; ``DeviceArray.numpy()`` and the array protocols synchronise.

    Resampling is PIL's antialiased bilinear: pixel-centre aligned, a triangle filter of
    support max(1, scale) in each direction, borders renormalised.
    """
    ordinal = parse_device(device)
    if ordinal is None:
        return _run_cpu(frames, size, roi, mask, mean, std, color, resize, dtype, out, fill)
    require_cuda()
    with device_scope(ordinal):
        return _run_cuda(frames, size, roi, mask, mean, std, color, resize, dtype, out, fill,
                         stream_handle(stream))


def _kernel_args(spec: Spec, channel_flip: bool) -> dict:
    if spec.c == 1:
        channel = (0, 0, 0)
    else:
        channel = (2, 1, 0) if spec.color == "bgr" else (0, 1, 2)
        if channel_flip:  # the view was flipped to a positive channel stride
            channel = tuple(spec.c - 1 - c for c in channel)
    return dict(roi=spec.roi, size=spec.size, placement=spec.placement, channel=channel,
                fill=tuple(f * 255.0 for f in spec.fill),
                scale=tuple(1.0 / (255.0 * s) for s in spec.std),
                bias=tuple(-m / s for m, s in zip(spec.mean, spec.std)),
                fp16=spec.dtype == "float16")


def _as_nhwc(shape, strides, spec: Spec):
    """Shape and byte strides as N x H x W x C (views only)."""
    shape, strides = list(shape), list(strides)
    if not spec.batched:
        shape, strides = [1] + shape, [0] + strides
    if len(shape) == 3:
        shape, strides = shape + [1], strides + [1]
    return shape, strides


def _layout(ptr: int, shape, strides):
    """(ptr, stride_n, stride_h, flipped) when pixels are contiguous in a row, else None.

    A channel-reversed view (``frame[..., ::-1]``) is read through its last channel's
    address with the channel order swapped."""
    c = shape[3]
    cs = 1 if c == 1 else strides[3]           # a size-1 axis may carry any stride
    ps = abs(cs) * c if shape[2] == 1 else strides[2]
    if ps != c or abs(cs) != 1:
        return None
    if cs == -1:
        return ptr - (c - 1), strides[0], strides[1], True
    return ptr, strides[0], strides[1], False


def _host_frames(frames, spec: Spec, positive_rows: bool = False):
    shape, strides = _as_nhwc(frames.shape, frames.strides, spec)
    lay = _layout(frames.ctypes.data, shape, strides)
    if lay is None or (positive_rows and lay[2] < shape[2] * shape[3]):
        frames = np.ascontiguousarray(frames)  # documented copy for other layouts
        shape, strides = _as_nhwc(frames.shape, frames.strides, spec)
        lay = _layout(frames.ctypes.data, shape, strides)
    return frames, (lay[0], *shape[:4], lay[1], lay[2]), lay[3]


def _host_mask(mask, spec: Spec, positive_rows: bool = False):
    if mask is None:
        return None, (0, 0, 0)
    mask = np.asarray(mask)
    check_mask(mask, spec.n, spec.h, spec.w, spec.batched)
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    if mask.strides[-1] != 1 or (positive_rows and mask.strides[-2] < mask.shape[-1]):
        mask = np.ascontiguousarray(mask)
    stride_n = mask.strides[0] if mask.ndim == 3 else 0
    return mask, (mask.ctypes.data, stride_n, mask.strides[-2])


def _run_cpu(frames, size, roi, mask, mean, std, color, resize, dtype, out, fill):
    if is_device_array(frames) or is_device_array(mask):
        raise TypeError("frames/mask: CUDA arrays need device='cuda'")
    frames = np.asarray(frames)
    mask = None if mask is None else np.asarray(mask)
    spec = parse_args(frames, size, roi, mask, mean, std, color, resize, dtype, fill)
    shape = (spec.n, 3) + spec.size
    if out is None:
        out = np.empty(shape, dtype=spec.dtype)
    elif not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy array for device='cpu', found {type(out).__name__}")
    elif out.shape != shape or out.dtype != np.dtype(spec.dtype):
        raise ValueError(f"out: expected shape {shape} and dtype {spec.dtype}, found "
                         f"{out.shape} and {out.dtype}")
    elif not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out: expected a C-contiguous, writeable array")
    if spec.n == 0:
        return out
    frames, fview, flipped = _host_frames(frames, spec)
    mask, mview = _host_mask(mask, spec)
    native().preprocess_cpu(fview, mview, out=out.ctypes.data, **_kernel_args(spec, flipped))
    return out


def _device_frames(frames, spec_args, stream):
    view = device_view(frames, "frames", stream)
    if view.dtype != np.uint8:
        raise TypeError(f"frames: expected uint8 pixels, found dtype {view.dtype}")
    # Validation needs only .shape and .dtype: a light stand-in for the device array.
    spec = parse_args(_Meta(view.shape, np.uint8), *spec_args)
    shape, strides = _as_nhwc(view.shape, view.strides, spec)
    lay = _layout(view.ptr, shape, strides)
    if lay is None:
        raise ValueError(f"frames: device arrays must have contiguous pixels within a row "
                         f"(byte strides {view.strides} for shape {view.shape})")
    return spec, view, (lay[0], *shape[:4], lay[1], lay[2]), lay[3]


class _Meta:
    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)


def _device_mask(mask, spec: Spec, stream):
    if mask is None or not is_device_array(mask):
        m, mv = _host_mask(mask, spec, positive_rows=True)
        return m, mv, False
    view = device_view(mask, "mask", stream)
    check_mask(_Meta(view.shape, view.dtype), spec.n, spec.h, spec.w, spec.batched)
    if view.strides[-1] != 1:
        raise ValueError(f"mask: device masks need contiguous rows, found strides {view.strides}")
    stride_n = view.strides[0] if len(view.shape) == 3 else 0
    return view, (view.ptr, stride_n, view.strides[-2]), True


def _device_out(out, spec: Spec, stream):
    shape = (spec.n, 3) + spec.size
    dt = np.dtype(spec.dtype)
    if out is None:
        arr = DeviceArray(shape, dt, stream)
        return arr, arr.ptr
    if isinstance(out, (int, np.integer)) and not isinstance(out, bool):
        return out, int(out)
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], (int, np.integer)):
        if tuple(int(s) for s in out[1]) != shape:
            raise ValueError(f"out: expected shape {shape}, found {tuple(out[1])}")
        return out, int(out[0])
    if isinstance(out, np.ndarray):
        raise TypeError("out: a numpy array is host memory; device='cuda' writes device memory")
    view = device_view(out, "out", stream)
    if view.shape != shape or view.dtype != dt:
        raise ValueError(f"out: expected shape {shape} and dtype {dt}, found {view.shape} "
                         f"and {view.dtype}")
    compact = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) * dt.itemsize for i in range(4))
    if any(a != b for a, b, s in zip(view.strides, compact, shape) if s > 1):
        raise ValueError(f"out: expected a contiguous array, found byte strides {view.strides}")
    return out, view.ptr


def _run_cuda(frames, size, roi, mask, mean, std, color, resize, dtype, out, fill, stream):
    spec_args = (size, roi, None, mean, std, color, resize, dtype, fill)
    if is_device_array(frames):
        spec, keep, fview, flipped = _device_frames(frames, spec_args, stream)
        on_device = True
    else:
        frames = np.asarray(frames)
        spec = parse_args(frames, *spec_args)
        on_device = False
    result, out_ptr = _device_out(out, spec, stream)
    if spec.n == 0:
        return result
    if not on_device:
        keep, fview, flipped = _host_frames(frames, spec, positive_rows=True)
    mask_keep, mview, mask_on_device = _device_mask(mask, spec, stream)
    native().preprocess_cuda(fview, on_device, mview, mask_on_device, out=out_ptr,
                             stream=stream, **_kernel_args(spec, flipped))  # DeviceError on failure
    del keep, mask_keep  # alive until the kernel is queued; host copies were staged
    return result
