"""The one small protocol every inference backend implements."""
from __future__ import annotations

from typing import Any, Mapping, Protocol

import numpy as np

__all__ = ["Backend"]


class Backend(Protocol):
    """Runs a bundle's encoders. Implementations: onnxruntime.py, tensorrt.py.

    ``name`` says exactly what runs (e.g. "onnxruntime:CUDAExecutionProvider"), and is what a
    Prediction reports. ``encode_image`` takes the preprocessed N x 3 x H x W batch (float32,
    or the engine's input dtype) and returns N x D float32 L2-normalised embeddings.
    ``encode_text`` takes the tokenizer's named int arrays. Both are thread-safe.
    """

    name: str
    input_dtype: np.dtype

    def encode_image(self, pixels: np.ndarray) -> np.ndarray: ...

    def encode_text(self, tokens: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...
