"""usclip_sdk: run Ultrasound-CLIP models for real-time bedside ultrasound triage.

The runtime needs numpy, OpenCV and onnxruntime (TensorRT optionally; the [cpu]/[gpu] extras
bring the first two, Jetson has its own: usclip_sdk._deps); it never imports torch.
"""
from __future__ import annotations

import logging as _logging
from importlib.metadata import PackageNotFoundError, version as _version

# The library's log records go to "usclip_sdk" (and its children); silent unless the application
# configures logging. The SDK never configures the root logger (README: Environment variables).
_logging.getLogger("usclip_sdk").addHandler(_logging.NullHandler())

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
