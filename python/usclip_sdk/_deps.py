"""Runtime dependencies that the package does not force: OpenCV and onnxruntime.

Neither is a hard dependency (pyproject: the ``cpu``/``gpu`` extras bring them): on a Jetson,
JetPack's OpenCV (apt libopencv-python, NVIDIA's build with GStreamer) must not be shadowed by a
PyPI wheel, and onnxruntime-gpu (NVIDIA's Jetson build) must not meet PyPI's onnxruntime in one
environment. When one is missing, the import fails with a message naming what to install for
the platform, instead of a bare ModuleNotFoundError deep inside the SDK.
"""
from __future__ import annotations

import platform

__all__ = ["install_hint"]  # and cv2, through __getattr__ below


def install_hint(module: str) -> str:
    """What to install for ``module`` ("cv2" or "onnxruntime") on this machine."""
    jetson = platform.machine() == "aarch64"
    extra = ("install usclip-sdk with the [cpu] extra (or [gpu] for CUDA): from a checkout pip install '.[cpu]', "
             "from a wheel pip install 'usclip_sdk-<version>-<tag>.whl[cpu]'")
    if module == "cv2":
        return ("on Jetson use JetPack's OpenCV (apt: libopencv-python, part of nvidia-jetpack; a venv "
                "made with --system-site-packages sees it; docs/jetson.md)" if jetson else
                f"{extra}, which brings opencv-python-headless; or any OpenCV build whose cv2 imports")
    if module == "onnxruntime":
        return ("on Jetson install NVIDIA's onnxruntime-gpu wheel for your JetPack (docs/jetson.md), "
                "never PyPI's onnxruntime beside it" if jetson else
                f"{extra}; [cpu] brings onnxruntime, [gpu] onnxruntime-gpu (never both)")
    raise ValueError(f"module: expected 'cv2' or 'onnxruntime', found {module!r}")


def _import_cv2():
    try:
        import cv2 as mod
    except ImportError as e:
        raise ImportError(f"usclip_sdk needs OpenCV, and `import cv2` failed ({e}): {install_hint('cv2')}") from e
    return mod


def __getattr__(name: str):
    # `from ._deps import cv2` imports OpenCV then; install_hint alone never needs it
    if name == "cv2":
        return _import_cv2()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
