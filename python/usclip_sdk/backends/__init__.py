"""Inference backends, one module each, chosen through one table.

``open_backend(bundle, "auto")`` picks TensorRT when its runtime, a GPU and an engine (or the
means to build one) are present, else onnxruntime; any failure to load or build the TensorRT
engine also falls back to onnxruntime, and why is recorded in ``backend.fallback`` (shown by
``Classifier.info()``). The choice is reported in ``backend.name`` and in every Prediction. An
explicit request that cannot be met raises; it never silently becomes another backend.
Each backend module has ``unavailable_reason() -> str | None``.
"""
from __future__ import annotations

import logging
from typing import Any

from ..bundle import Bundle
from ..errors import BackendUnavailableError, DeviceError, EngineError
from .base import Backend

__all__ = ["Backend", "open_backend", "available_backends", "BACKENDS"]

log = logging.getLogger(__name__)


def _open_onnxruntime(bundle: Bundle, device: str, precision: str, threads: int | None = None,
                      **_: Any) -> Backend:
    from .onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(bundle, device=device, precision=precision, threads=threads)


def _open_tensorrt(bundle: Bundle, device: str, precision: str, engine_batch: str = "1,1,8",
                   cache_dir: Any = None, **_: Any) -> Backend:
    from .tensorrt import TensorRTBackend

    if device not in ("auto", "cuda", "gpu"):
        raise BackendUnavailableError(f"the tensorrt backend runs on a CUDA GPU, not device={device!r}")
    return TensorRTBackend(bundle, precision=precision, batch=engine_batch, cache_dir=cache_dir)


BACKENDS = {"onnxruntime": _open_onnxruntime, "tensorrt": _open_tensorrt}


def available_backends() -> dict[str, str]:
    """Each backend and whether it can run here ("ok" or the reason it cannot)."""
    from . import onnxruntime as ortb
    from . import tensorrt as trtb

    return {name: mod.unavailable_reason() or "ok"
            for name, mod in (("onnxruntime", ortb), ("tensorrt", trtb))}


def open_backend(bundle: Bundle, backend: str = "auto", device: str = "auto",
                 precision: str = "auto", threads: int | None = None,
                 engine_batch: str = "1,1,8", cache_dir: Any = None) -> Backend:
    """Open ``backend`` ("auto", "onnxruntime", "tensorrt") for a bundle.

    threads: onnxruntime intra-op threads (None = its default).
    engine_batch: the TensorRT engine's batch profile MIN,OPT,MAX (as given to build-engine).
    cache_dir: the TensorRT engine cache (None = USCLIP_ENGINE_CACHE or the user cache folder).
    """
    kw = {"threads": threads, "engine_batch": engine_batch, "cache_dir": cache_dir}
    if backend == "auto":
        from . import tensorrt as trtb

        # int8_cpu is an onnxruntime CPU encoder: asking for it asks for no TensorRT
        gpu = device in ("auto", "cuda", "gpu") and precision != "int8_cpu"
        why = trtb.unavailable_reason() if gpu else None
        if gpu and why is None:
            try:
                return _open_tensorrt(bundle, device, precision, **kw)
            except (BackendUnavailableError, EngineError, DeviceError, OSError) as e:
                # no engine and no builder, a failed build, a corrupt engine, a CUDA error:
                # onnxruntime is the documented next choice, and the reason is kept
                why = f"{type(e).__name__}: {e}"
                log.warning("tensorrt failed, falling back to onnxruntime: %s", why)
        elif gpu:
            log.info("tensorrt not available, onnxruntime instead: %s", why)
        ort = _open_onnxruntime(bundle, device, precision, **kw)
        # device="cpu" or precision="int8_cpu" asked for no GPU: nothing fell back
        ort.fallback = f"tensorrt not used: {why}" if gpu else None
        return ort
    try:
        opener = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"backend: expected 'auto' or one of {sorted(BACKENDS)}, found {backend!r}") from None
    return opener(bundle, device, precision, **kw)
