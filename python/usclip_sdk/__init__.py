"""usclip_sdk: run Ultrasound-CLIP models for real-time bedside ultrasound triage.

The runtime needs numpy, OpenCV and onnxruntime (TensorRT optionally); it never imports torch.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("usclip-sdk")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
