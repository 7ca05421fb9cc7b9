"""usclip_sdk: run Ultrasound-CLIP models for real-time bedside ultrasound triage.

The runtime needs numpy, OpenCV and onnxruntime (TensorRT optionally); it never imports torch.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("usclip-sdk")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["__version__", "Classifier", "Prediction"]


def __getattr__(name: str):
    # Lazy: `import usclip_sdk` stays light (no onnxruntime, no native module) until used.
    if name == "Classifier":
        from .classifier import Classifier

        return Classifier
    if name == "Prediction":
        from .prediction import Prediction

        return Prediction
    raise AttributeError(f"module 'usclip_sdk' has no attribute {name!r}")
