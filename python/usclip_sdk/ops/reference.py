"""Slow, obvious numpy references for every native op (what the tests compare against).

Never used as a silent fallback: the SDK calls the native kernels or raises.
"""
from __future__ import annotations

from .gate_reference import gate_figures_reference
from .preprocess_reference import preprocess_reference
from .similarity_reference import similarity_reference

__all__ = ["preprocess_reference", "similarity_reference", "gate_figures_reference"]
