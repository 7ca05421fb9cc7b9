"""Export-time parity: the ONNX tower run by onnxruntime must match the torch tower.

``torch.onnx.export`` (TorchScript tracing) warns on every Python branch it freezes: HF's
masking code compares a padding length and a query length, and advanced indexing is lowered
to Gather/Reshape. Those warnings say "the trace might be incorrect" without knowing whether
it is. Instead of showing them to a user, the export records them and then measures: each
tower is run on inputs the trace did not see (another batch size, other paddings, another
sequence length) in torch and in onnxruntime, and the largest embedding difference must stay
under ``TOLERANCE``; otherwise the export fails with the numbers.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["TOLERANCE", "TraceWarnings", "recorded_trace_warnings", "check_image_parity",
           "check_text_parity", "ExportParityError"]

# L2-normalised fp32 embeddings: onnxruntime vs torch differ by ~1e-6 here; a frozen wrong
# branch (e.g. a padding length baked in) moves them by 1e-2 or more.
TOLERANCE = 1e-3


class ExportParityError(RuntimeError):
    """The exported graph does not reproduce the torch model on fresh inputs."""


@dataclass
class TraceWarnings:
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.messages)} tracing warnings" if self.messages else ""


@contextlib.contextmanager
def recorded_trace_warnings():
    """Collect the tracer's warnings instead of printing them (parity decides, not the warning)."""
    rec = TraceWarnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield rec
    for w in caught:
        if issubclass(w.category, DeprecationWarning):
            continue  # hidden by Python's default filters anyway; not about the trace
        rec.messages.append(f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}")


def _ort_run(onnx_path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _compare(name: str, got: np.ndarray, want: np.ndarray) -> float:
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    if not np.isfinite(diff) or diff > TOLERANCE:
        raise ExportParityError(f"{name}: onnxruntime differs from torch by {diff:.3g} "
                                f"(tolerance {TOLERANCE}) on inputs the trace did not see")
    return diff


@torch.no_grad()
def check_image_parity(tower: torch.nn.Module, onnx_path: Path, image_size: tuple[int, int]) -> float:
    """Batch 3 (the trace used 2) of random images; returns the largest difference."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, *image_size, generator=g)
    return _compare("image encoder", _ort_run(onnx_path, {"image": x.numpy()}), tower.eval()(x).numpy())


@torch.no_grad()
def check_text_parity(tower: torch.nn.Module, onnx_path: Path, context_length: int,
                      vocab: int = 1000) -> float:
    """Batch 3 at a shorter sequence length, each row padded differently (one row unpadded)."""
    g = torch.Generator().manual_seed(0)
    length = max(2, context_length - 3)
    ids = torch.randint(100, vocab, (3, length), generator=g)
    mask = torch.ones(3, length, dtype=torch.int64)
    mask[1, length // 3:] = 0
    mask[2, length - 1:] = 0
    want = tower.eval()(ids, mask).numpy()
    got = _ort_run(onnx_path, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    return _compare("text encoder", got, want)
