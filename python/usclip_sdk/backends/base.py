"""The one protocol every inference backend implements: the whole contract, nothing sniffed.

The Classifier talks to a backend only through these members; a new backend that implements
them (and has ``unavailable_reason()`` in its module) needs no change anywhere else.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping, Protocol

import numpy as np

__all__ = ["Backend"]


class Backend(Protocol):
    """Runs a bundle's encoders. Implementations: onnxruntime.py, tensorrt.py.

    name: exactly what runs (e.g. "onnxruntime:CUDAExecutionProvider"); what a Prediction reports.
    input_dtype: the image encoder's input dtype (float32, or float16 for an fp16 engine).
    max_batch: the largest batch ``encode_image`` / ``run_bound`` take (None: any size); the
        Classifier splits larger batches into chunks of at most this many frames.
    device_input: True when the encoder's input lives on a CUDA device that the preprocess
        kernel may write into directly (``bind_input`` + ``run_bound``, under ``lock``, with the
        kernel queued on ``stream``); False for host backends, which take ``encode_image``.
    fallback: why this backend was chosen instead of the preferred one (set by
        ``open_backend(backend="auto")`` when TensorRT could not be used), else None.
    ``encode_image`` takes the preprocessed N x 3 x H x W batch and returns N x D float32
    L2-normalised embeddings; ``encode_text`` takes the tokenizer's named int arrays. Both are
    thread-safe. ``encode_image_pipelined`` is ``encode_image`` for a caller that prepares the
    next frame in another thread meanwhile (Classifier.stream's prefetch): a CPU backend runs it
    with one intra-op thread fewer, so the two do not take turns on the same cores; a device
    backend runs ``encode_image``.
    """

    name: str
    input_dtype: np.dtype
    max_batch: int | None
    device_input: bool
    fallback: str | None

    @property
    def stream(self) -> int: ...  # cudaStream_t of device work (0 for host backends)

    @property
    def lock(self) -> threading.RLock: ...  # held while a binding is filled and run

    def encode_image(self, pixels: np.ndarray) -> np.ndarray: ...

    def encode_image_pipelined(self, pixels: np.ndarray) -> np.ndarray: ...

    def bind_input(self, n: int) -> Any: ...  # device array N x 3 x H x W (device_input only)

    def run_bound(self, n: int) -> np.ndarray: ...  # encode what bind_input(n) holds

    def encode_text(self, tokens: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...
