"""Image file -> image-tower input, for the evaluation's encoders.

Two kinds of ``preprocess`` are accepted:
- a ``PreprocessConfig`` (what ``factory.create_model`` / ``checkpoint.load_model`` return):
  the project's one preprocessing contract (docs/architecture.md) - crop to the imaging
  region, fill outside its mask, stretch-resize, normalise. The region comes from the data
  set's stored mask (``<root>/masks/<name>``, written by the synthetic US-365K writer) when
  there is one, else from ``usclip_sdk.region.detect_region``. The resize/normalise is
  ``usclip_sdk.ops.preprocess`` (native); where that op is not built, its numpy reference
  (same numbers by contract, slower) is used with a warning;
- any other callable: an open_clip / torchvision transform, called with a PIL RGB image.

Paths may be ``archive.zip::member`` (see ``usclip_data.sample.load_rgb``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["ConfigTransform", "image_loader", "stored_mask_path"]


def stored_mask_path(image_path: str) -> Path | None:
    """``<root>/masks/<name>`` beside ``<root>/images/<name>``, if that file exists."""
    if "::" in image_path:
        return None
    p = Path(image_path)
    if p.parent.name != "images":
        return None
    cand = p.parent.parent / "masks" / p.name
    return cand if cand.is_file() else None


def _preprocess_op() -> Callable[..., np.ndarray]:
    try:
        from usclip_sdk.ops.preprocess import preprocess  # native fused kernel

        # the face imports without the extension; a 1-pixel call proves the kernel loads
        preprocess(np.zeros((2, 2, 3), np.uint8), size=(1, 1))
        return preprocess
    except ImportError as e:
        from usclip_sdk.ops.preprocess_reference import preprocess_reference

        warnings.warn(f"usclip_sdk.ops.preprocess is unavailable here ({e}): evaluation images are "
                      "preprocessed by its numpy reference (identical numbers, slower)", RuntimeWarning,
                      stacklevel=3)
        return preprocess_reference


class ConfigTransform:
    """Path -> float32 tensor 3 x H x W following a PreprocessConfig (picklable for workers)."""

    def __init__(self, cfg: Any, use_stored_masks: bool = True):
        for attr in ("size", "mean", "std"):
            if not hasattr(cfg, attr):
                raise TypeError(f"preprocess: expected a PreprocessConfig with {attr!r}, found {type(cfg).__name__}")
        self.cfg = cfg
        self.use_stored_masks = use_stored_masks
        self._op: Callable[..., np.ndarray] | None = None

    def region(self, rgb: np.ndarray, image_path: str) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """(bbox, mask) of the imaging region: the stored mask if any, else detection."""
        mpath = stored_mask_path(image_path) if self.use_stored_masks else None
        if mpath is not None:
            import cv2

            mask = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
            if mask is not None and mask.shape == rgb.shape[:2] and mask.any():
                mask = (mask > 0).astype(np.uint8)
                ys, xs = np.nonzero(mask)
                return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), mask
        from usclip_sdk.region import detect_region

        r = detect_region(rgb)
        return r.bbox, r.mask

    def __call__(self, image_path: str) -> torch.Tensor:
        from usclip_data.sample import load_rgb

        if self._op is None:
            self._op = _preprocess_op()
        rgb = load_rgb(image_path)
        bbox, mask = self.region(rgb, image_path)
        c = self.cfg
        x = self._op(rgb, size=tuple(c.size), roi=bbox, mask=mask, mean=tuple(c.mean), std=tuple(c.std),
                     resize=getattr(c, "resize_mode", "stretch"))
        x = np.asarray(x, dtype=np.float32)
        return torch.from_numpy(x[0] if x.ndim == 4 else x)


class _PilTransform:
    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, image_path: str) -> torch.Tensor:
        from PIL import Image
        from usclip_data.sample import load_rgb

        return self.fn(Image.fromarray(load_rgb(image_path)))


def image_loader(preprocess: Any) -> Callable[[str], torch.Tensor]:
    """The path -> tensor function for ``preprocess`` (a PreprocessConfig or a PIL transform)."""
    if hasattr(preprocess, "size") and hasattr(preprocess, "mean") and not callable(preprocess):
        return ConfigTransform(preprocess)
    if callable(preprocess):
        return _PilTransform(preprocess)
    raise TypeError(f"preprocess: expected a PreprocessConfig or a callable, found {type(preprocess).__name__}")
