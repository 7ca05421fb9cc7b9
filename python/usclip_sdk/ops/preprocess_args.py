"""Argument validation shared by ``preprocess`` and its numpy reference.

One place decides what a valid call is, so the fast path and the reference can never
disagree about shapes, regions, masks or defaults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CLIP_MEAN", "CLIP_STD", "Spec", "parse_args", "frame_layout",
           "letterbox_placement"]

# OpenAI CLIP's normalisation (open_clip's default for the towers we train).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Spec:
    """A validated call: everything the kernels need besides the pixel pointers."""

    batched: bool                      # input had a leading N axis
    n: int
    h: int
    w: int
    c: int                             # 1, 3 or 4 source channels
    roi: tuple[int, int, int, int]     # x0, y0, x1, y1 (half-open, inside the frame)
    size: tuple[int, int]              # output (h, w)
    placement: tuple[int, int, int, int]  # x, y, w, h of the resized content in the output
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fill: tuple[float, float, float]   # 0..1 value of masked / padded pixels (RGB)
    color: str                         # "rgb" or "bgr": order of the source channels
    resize: str                        # "stretch" or "letterbox"
    dtype: str                         # "float32" or "float16"


def frame_layout(shape: tuple[int, ...]) -> tuple[bool, int, int, int, int]:
    """(batched, n, h, w, c) for an input shape.

    H x W: one gray frame; H x W x C with C in {1, 3, 4}: one frame; any other 3-D shape:
    N gray frames; N x H x W x C: a batch. (A gray batch whose width is 1, 3 or 4 must be
    passed as N x H x W x 1.)
    """
    if len(shape) == 2:
        return False, 1, shape[0], shape[1], 1
    if len(shape) == 3 and shape[2] in (1, 3, 4):
        return False, 1, shape[0], shape[1], shape[2]
    if len(shape) == 3:
        return True, shape[0], shape[1], shape[2], 1
    if len(shape) == 4 and shape[3] in (1, 3, 4):
        return True, shape[0], shape[1], shape[2], shape[3]
    raise ValueError("frames: expected H x W, H x W x C or N x H x W x C with C in {1, 3, 4}, "
                     f"found shape {tuple(shape)}")


def letterbox_placement(in_w: int, in_h: int, out_w: int, out_h: int):
    """(x, y, w, h) of an aspect-preserving fit of in_w x in_h, centred in out_w x out_h."""
    s = min(out_w / in_w, out_h / in_h)
    w = min(out_w, max(1, int(math.floor(in_w * s + 0.5))))
    h = min(out_h, max(1, int(math.floor(in_h * s + 0.5))))
    return (out_w - w) // 2, (out_h - h) // 2, w, h


# Concrete types, not the numbers ABCs: isinstance against an ABC costs microseconds per call.
_INTS = (int, np.integer)
_REALS = (int, float, np.integer, np.floating)


def _int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _INTS):
        raise TypeError(f"{name}: expected an integer, found {value!r} ({type(value).__name__})")
    return int(value)


def _triple(value, name: str, positive: bool = False) -> tuple[float, float, float]:
    # Plain Python, not numpy: this runs three times per call and frames are small work.
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, _REALS) and not isinstance(value, bool):
        value = (value,)
    if (not isinstance(value, (tuple, list)) or len(value) not in (1, 3)
            or not all(isinstance(v, _REALS) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{name}: expected a number or 3 numbers (R, G, B), found {value!r}")
    vals = tuple(float(v) for v in value) * (3 if len(value) == 1 else 1)
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in vals):
        want = "finite positive" if positive else "finite"
        raise ValueError(f"{name}: expected {want} values, found {vals}")
    return vals


def _size(size) -> tuple[int, int]:
    if isinstance(size, _INTS) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size: expected (height, width) or an int, found {size!r}")
    h, w = _int(size[0], "size[0]"), _int(size[1], "size[1]")
    if h < 1 or w < 1:
        raise ValueError(f"size: expected positive (height, width), found {(h, w)}")
    return h, w


def _roi(roi, h: int, w: int) -> tuple[int, int, int, int]:
    if roi is None:
        return 0, 0, w, h
    if isinstance(roi, np.ndarray):
        roi = roi.tolist()
    if not isinstance(roi, (tuple, list)) or len(roi) != 4:
        raise ValueError(f"roi: expected (x0, y0, x1, y1), found {roi!r}")
    x0, y0, x1, y1 = (_int(v, f"roi[{i}]") for i, v in enumerate(roi))
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"roi: expected 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} "
                         f"(the frame is {w} x {h}), found {(x0, y0, x1, y1)}")
    return x0, y0, x1, y1


def check_mask(mask, n: int, h: int, w: int, batched: bool):
    """The mask's shape (validated); accepts uint8 or bool, H x W or N x H x W."""
    shape = tuple(mask.shape)
    dt = np.dtype(mask.dtype) if hasattr(mask, "dtype") else None
    if dt not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise TypeError(f"mask: expected uint8 (or bool), found dtype {dt}")
    if shape != (h, w) and not (batched and shape == (n, h, w)):
        want = f"({h}, {w})" + (f" or ({n}, {h}, {w})" if batched else "")
        raise ValueError(f"mask: expected shape {want} (the frame's size), found {shape}")
    return shape


def parse_args(frames, size, roi, mask, mean, std, color, resize, dtype, fill) -> Spec:
    """Validate a call; raises ValueError/TypeError naming the argument."""
    dt = getattr(frames, "dtype", None)
    if dt is None or np.dtype(dt) != np.uint8:
        raise TypeError(f"frames: expected uint8 pixels, found dtype {dt}")
    batched, n, h, w, c = frame_layout(tuple(frames.shape))
    if h < 1 or w < 1:
        raise ValueError(f"frames: expected non-empty frames, found shape {tuple(frames.shape)}")
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color: expected 'rgb' or 'bgr', found {color!r}")
    if resize not in ("stretch", "letterbox"):
        raise ValueError(f"resize: expected 'stretch' or 'letterbox', found {resize!r}")
    if isinstance(dtype, str) and dtype in ("float32", "float16"):
        dname = dtype
    else:
        try:
            dname = np.dtype(dtype).name
        except TypeError:
            dname = repr(dtype)
    if dname not in ("float32", "float16"):
        raise ValueError(f"dtype: expected 'float32' or 'float16', found {dtype!r}")
    out_h, out_w = _size(size)
    r = _roi(roi, h, w)
    if mask is not None:
        check_mask(mask, n, h, w, batched)
    placement = (letterbox_placement(r[2] - r[0], r[3] - r[1], out_w, out_h)
                 if resize == "letterbox" else (0, 0, out_w, out_h))
    return Spec(batched, n, h, w, c, r, (out_h, out_w), placement,
                _triple(mean, "mean"), _triple(std, "std", positive=True),
                _triple(fill, "fill"), color, resize, dname)
