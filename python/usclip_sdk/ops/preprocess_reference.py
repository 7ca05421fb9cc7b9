"""Slow, obvious numpy reference of ``usclip_sdk.ops.preprocess`` (what the tests compare to).

Every step is done separately and in float64: select channels, crop, mask, build the two
dense resampling matrices (PIL's antialiased bilinear: a triangle filter widened by the
scale factor when downscaling, pixel-centre aligned), apply them, normalise, place the
result (stretch or letterbox), transpose to NCHW. Never used as a fallback.
"""
from __future__ import annotations

import numpy as np

from .preprocess_args import CLIP_MEAN, CLIP_STD, Spec, parse_args

__all__ = ["preprocess_reference", "resample_matrix"]


def resample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Dense out_size x in_size matrix of PIL's antialiased bilinear resampling weights.

    Output pixel i has its centre at (i + 0.5) * scale in input pixel units; input pixel x
    (centre x + 0.5) gets weight max(0, 1 - |x + 0.5 - centre| / max(scale, 1)), over the
    window PIL uses, then the row is normalised to sum 1 (so borders clamp).
    """
    scale = in_size / out_size
    fscale = max(scale, 1.0)
    support = fscale  # the triangle filter's support is 1, widened by the scale factor
    m = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo = max(int(np.floor(centre - support + 0.5)), 0)
        hi = min(int(np.floor(centre + support + 0.5)), in_size)
        for x in range(lo, hi):
            m[i, x] = max(0.0, 1.0 - abs((x - centre + 0.5) / fscale))
        total = m[i].sum()
        if total > 0:
            m[i] /= total
    return m


def _rgb_float(frame: np.ndarray, spec: Spec) -> np.ndarray:
    """H x W x 3 float64 in RGB order, 0..255."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] == 1:
        rgb = np.repeat(frame, 3, axis=2)
    else:
        rgb = frame[:, :, :3]
        if spec.color == "bgr":
            rgb = rgb[:, :, ::-1]
    return rgb.astype(np.float64)


def _one_frame(frame: np.ndarray, mask: np.ndarray | None, spec: Spec) -> np.ndarray:
    x0, y0, x1, y1 = spec.roi
    img = _rgb_float(frame, spec)[y0:y1, x0:x1]
    fill = np.asarray(spec.fill, dtype=np.float64) * 255.0
    if mask is not None:
        img = np.where(mask[y0:y1, x0:x1, None] != 0, img, fill[None, None, :])
    out_h, out_w = spec.size
    px, py, pw, ph = spec.placement
    wy = resample_matrix(y1 - y0, ph)
    wx = resample_matrix(x1 - x0, pw)
    canvas = np.empty((out_h, out_w, 3), dtype=np.float64)
    canvas[:] = fill
    for c in range(3):
        canvas[py:py + ph, px:px + pw, c] = wy @ img[:, :, c] @ wx.T
    mean = np.asarray(spec.mean, dtype=np.float64)
    std = np.asarray(spec.std, dtype=np.float64)
    norm = (canvas / 255.0 - mean) / std
    return norm.transpose(2, 0, 1)


def preprocess_reference(frames, size=(224, 224), roi=None, mask=None, mean=CLIP_MEAN,
                         std=CLIP_STD, color="rgb", resize="stretch", dtype="float32",
                         out=None, device="cpu", fill=0.0) -> np.ndarray:
    """Same contract as ``usclip_sdk.ops.preprocess`` (CPU, no ``out``), computed slowly."""
    if out is not None or device != "cpu":
        raise ValueError("preprocess_reference: out and device are not supported (numpy only)")
    frames = np.asarray(frames)
    spec = parse_args(frames, size, roi, mask, mean, std, color, resize, dtype, fill)
    batch = frames if spec.batched else frames[None]
    masks = None
    if mask is not None:
        mask = np.asarray(mask)
        masks = mask if mask.ndim == 3 else np.broadcast_to(mask, (batch.shape[0],) + mask.shape)
    result = np.stack([_one_frame(batch[n], None if masks is None else masks[n], spec)
                       for n in range(batch.shape[0])]) if batch.shape[0] else \
        np.zeros((0, 3) + tuple(spec.size))
    return result.astype(np.dtype(spec.dtype))
