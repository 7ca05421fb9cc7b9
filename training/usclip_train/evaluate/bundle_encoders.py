"""Encoders over an exported bundle (ONNX towers through the SDK's onnxruntime backend).

Evaluating the bundle measures what ships: its image preprocessing (the manifest's
``preprocess`` with the region-crop contract), its ONNX towers at the chosen precision, its
tokenizer, and - for zero-shot - its own ``class_embeddings.npy`` (``bundle_class_weights``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .encoders import Encoders
from .images import image_loader
from .metrics import l2_normalize
from .zeroshot import split_flat

__all__ = ["is_bundle", "from_bundle", "bundle_class_weights"]


def is_bundle(path: str | Path) -> bool:
    """A .zip file or a folder holding manifest.json."""
    p = Path(path)
    return (p.is_file() and p.suffix == ".zip") or (p / "manifest.json").is_file()


def from_bundle(path: str | Path, device: str = "auto", precision: str = "fp32",
                batch_size: int = 32) -> tuple[Encoders, object]:
    """(Encoders, the open Bundle). Close the bundle when done (it may hold a temp folder)."""
    from usclip_sdk.backends.onnxruntime import OnnxRuntimeBackend
    from usclip_sdk.bundle import Bundle

    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, found {batch_size}")
    bundle = Bundle.open(path)
    backend = OnnxRuntimeBackend(bundle, device=device, precision=precision)
    load = image_loader(bundle.preprocess)  # the bundle's own spec, through the one pixel path

    def encode_image(paths: Sequence[str | Path]) -> np.ndarray:
        out = []
        for i in range(0, len(paths), batch_size):
            pixels = np.stack([load(str(p)).numpy() for p in paths[i:i + batch_size]])
            out.append(backend.encode_image(pixels))
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    def encode_text(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = [backend.encode_text(bundle.tokenize(texts[i:i + batch_size]))
               for i in range(0, len(texts), batch_size)]
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    name = f"bundle:{Path(path).name}"
    return Encoders(encode_image=encode_image, encode_text=encode_text, name=name), bundle


def bundle_class_weights(bundle) -> dict[str, np.ndarray]:
    """The bundle's shipped zero-shot weights, per dimension."""
    return split_flat(bundle.class_embeddings(), bundle.class_names)
