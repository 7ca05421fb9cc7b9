"""Image file -> image-tower input, for the evaluation's encoders.

Two kinds of ``preprocess`` are accepted:
- a ``usclip_sdk.pixels.PreprocessSpec`` (what ``factory.create_model`` /
  ``checkpoint.load_model`` return and what a bundle's manifest holds): the project's one pixel
  path, ``usclip_train.data.FrameTransform`` - the function training and the SDK's Classifier
  use. The region is the data set's stored mask (``<root>/masks/<name>``, written by the
  synthetic US-365K writer) when there is one and ``use_stored_masks`` is set, else
  ``usclip_sdk.region.detect_region`` (what the SDK does at run time);
- any other callable: an open_clip / torchvision transform, called with a PIL RGB image.

Paths may be ``archive.zip::member`` (see ``usclip_data.sample.load_pixels``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from usclip_sdk.pixels import PreprocessSpec

from ..data import FrameTransform

__all__ = ["image_loader"]


class _PilTransform:
    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, image_path: str) -> torch.Tensor:
        from PIL import Image

        from usclip_data.sample import load_rgb

        return self.fn(Image.fromarray(load_rgb(image_path)))


def image_loader(preprocess: Any, use_stored_masks: bool = True) -> Callable[[str], torch.Tensor]:
    """The path -> tensor function for ``preprocess`` (a PreprocessSpec or a PIL transform)."""
    if isinstance(preprocess, PreprocessSpec):
        return FrameTransform(preprocess, use_stored_masks=use_stored_masks)
    if callable(preprocess):
        return _PilTransform(preprocess)
    raise TypeError(f"preprocess: expected a usclip_sdk.pixels.PreprocessSpec or a callable, found "
                    f"{type(preprocess).__name__}")
