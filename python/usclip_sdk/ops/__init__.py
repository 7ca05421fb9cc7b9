"""Native ultrasound kernels: fused frame preprocessing, batched image-text similarity and the
input-quality gate's figures.

Each op has a CPU and a CUDA implementation in csrc/ and a slow, obvious numpy reference in
``usclip_sdk.ops.reference`` that the tests compare against.
"""
from __future__ import annotations

from ._native import native
from .device import DeviceArray
from .gate import GateFigures, gate_figures
from .preprocess import preprocess
from .similarity import ClassEmbeddings, SimilarityResult, similarity

__all__ = ["preprocess", "similarity", "SimilarityResult", "ClassEmbeddings", "gate_figures", "GateFigures",
           "DeviceArray", "build_info", "cuda_available", "cuda_unavailable_reason"]


def build_info() -> dict:
    """Compile-time facts (kernels built, CUDA architectures) plus whether CUDA is usable here."""
    info = dict(native().build_info())
    status = dict(native().cuda_status())
    info["cuda_usable"] = bool(status["usable"])
    info["cuda_reason"] = status["reason"]
    info["cuda_devices"] = [dict(d) for d in status["devices"]]
    return info


def cuda_available() -> bool:
    """True when the CUDA kernels were compiled and a usable device and driver are present."""
    return bool(native().cuda_status()["usable"])


def cuda_unavailable_reason() -> str:
    """Why ``cuda_available()`` is False ("" when it is True)."""
    return str(native().cuda_status()["reason"])
