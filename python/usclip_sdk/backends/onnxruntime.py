"""onnxruntime backend: the default on CPU; the CUDA execution provider where present.

Providers are chosen explicitly and validated against what this onnxruntime build has; the
error lists what is available. Nothing silently falls back to another device.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Mapping

import numpy as np

from ..bundle import Bundle
from ..errors import BackendUnavailableError, BundleError

__all__ = ["OnnxRuntimeBackend", "unavailable_reason", "providers_for", "cpu_int8_fast", "int8_guard"]


def unavailable_reason() -> str | None:
    """None when onnxruntime can run here, else why not."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        from .._deps import install_hint

        return f"onnxruntime is not installed ({e}): {install_hint('onnxruntime')}"
    return None


def providers_for(device: str) -> list[str]:
    """Execution providers for ``device`` ("cpu", "cuda", "auto"), validated."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device in ("cuda", "gpu"):
        if "CUDAExecutionProvider" not in have:
            raise BackendUnavailableError(
                f"onnxruntime has no CUDAExecutionProvider here (available: {have}); install "
                "onnxruntime-gpu, or run on the CPU (--device cpu; in Python device='cpu')")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto":
        return (["CUDAExecutionProvider", "CPUExecutionProvider"]
                if "CUDAExecutionProvider" in have else ["CPUExecutionProvider"])
    raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', found {device!r}")


# x86 instructions onnxruntime's uint8 x int8 kernels use: AMX tiles, VNNI dot products, or
# AVX2's pairwise multiply-add (the int8_cpu file's 7-bit weights keep its int16 sums from
# saturating). Measured: the conv edge tower 1.6x faster than fp32 on an AVX2-only AMD EPYC,
# about 3x on an AVX512-VNNI/AMX Xeon. Older x86 CPUs keep fp32.
_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx2")


def cpu_int8_fast(cpuinfo: str = "/proc/cpuinfo") -> tuple[bool, str]:
    """(True, which flag) when this x86 CPU has the int8 instructions int8_cpu runs on, else (False, why).

    Linux only (reads ``cpuinfo``); elsewhere, and on ARM (not measured here), False: the fp32
    encoder is the safe default and ``precision="int8_cpu"`` still forces the int8 one."""
    import platform

    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return False, f"int8 speed on {machine or 'this CPU'} not measured, fp32 kept"
    from ..cpuinfo import cpu_flags

    flags = cpu_flags(cpuinfo)
    if flags is None:
        return False, f"{cpuinfo} unreadable, CPU features unknown"
    found = [f for f in _INT8_FLAGS if f in flags]
    if found:
        return True, f"CPU has {found[0]}"
    return False, f"CPU has none of {list(_INT8_FLAGS)}"


# The accuracy guard a faster encoder must meet to be chosen without being asked for.
GUARD_TOP1 = 0.97
GUARD_AVGACC_POINTS = -0.5


def int8_guard(agreement: Mapping[str, float] | None) -> tuple[bool, str]:
    """(ok, why) for an encoder's export-time agreement with fp32 (EncoderSpec.agreement)."""
    if not agreement or "top1_agreement" not in agreement or "avgacc_delta_points" not in agreement:
        return False, "its agreement with fp32 was not measured at export (re-export with --int8-image)"
    top1, delta = agreement["top1_agreement"], agreement["avgacc_delta_points"]
    figures = f"top-1 agreement {top1:.3f}, AvgAcc {delta:+.2f} points vs fp32"
    if top1 < GUARD_TOP1 or delta < GUARD_AVGACC_POINTS:
        return False, f"{figures}: below the guard (>= {GUARD_TOP1}, >= {GUARD_AVGACC_POINTS})"
    return True, figures


class OnnxRuntimeBackend:
    """Image (and, on first use, text) encoders of a bundle as onnxruntime sessions."""

    def __init__(self, bundle: Bundle, device: str = "auto", precision: str = "fp32",
                 threads: int | None = None):
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailableError(reason)
        self.bundle = bundle
        if precision == "int8_cpu":  # the x86 CPU file: never handed to the CUDA provider
            if device in ("cuda", "gpu"):
                raise ValueError("precision 'int8_cpu' is the CPU encoder; on the GPU use fp32 or fp16 "
                                 "(or TensorRT with int8)")
            device = "cpu"
        self.providers = providers_for(device)
        self.precision_reason = ""
        self.precision = self._pick_precision(bundle, precision)
        if threads is None:
            from ..settings import env_threads

            threads = env_threads()  # USCLIP_THREADS
        self.threads = threads
        self._image = self._session(bundle.encoder_path("image", self.precision), self.precision)
        spec = bundle.encoder("image", self.precision)
        self._image_input = spec.inputs[0].name
        self.input_dtype = np.dtype(spec.inputs[0].dtype)
        self._text = None
        self._lazy_lock = threading.Lock()
        self._pipelined = None  # the image session with one thread fewer, made on first use
        used = self._image.get_providers()[0]
        self.name = f"onnxruntime:{used}"
        # Host backend: any batch size, pixels fed as numpy (see backends/base.py).
        self.max_batch: int | None = None
        self.device_input = False
        self.fallback: str | None = None
        self._lock = threading.RLock()

    @property
    def stream(self) -> int:
        return 0

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def bind_input(self, n: int) -> Any:
        raise NotImplementedError("onnxruntime takes host pixels: use encode_image (device_input is False)")

    def run_bound(self, n: int) -> np.ndarray:
        raise NotImplementedError("onnxruntime takes host pixels: use encode_image (device_input is False)")

    def _pick_precision(self, bundle: Bundle, precision: str) -> str:
        have = bundle.precisions("image")
        if precision != "auto":
            if precision not in have:
                raise BundleError(f"precision: the bundle has image encoders {list(have)}, not {precision!r}")
            self.precision_reason = "asked for"
            return precision
        if "int8_cpu" in have and self._on_cpu:
            fast, why = cpu_int8_fast()
            ok, guard = int8_guard(bundle.encoder("image", "int8_cpu").agreement)
            if fast and ok:
                self.precision_reason = f"auto: CPU provider, {why}, {guard}"
                return "int8_cpu"
            self.precision_reason = f"auto: the bundle has int8_cpu but {why if not fast else guard}"
        else:
            self.precision_reason = ("auto: the bundle has no int8_cpu encoder" if "int8_cpu" not in have
                                     else "auto: int8_cpu is for the CPU provider only")
        return "fp32" if "fp32" in have else have[0]

    def _session(self, path: os.PathLike, precision: str = "fp32", threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # onnxruntime 1.32's full (layout) optimisation crashes on fp16 graphs on the CPU
        # provider; extended optimisation is safe for them and keeps the fusions that matter.
        level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if precision == "fp16"
                 else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        opts.graph_optimization_level = level
        threads = threads or self.threads
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        return ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        return self._run_image(self._image, pixels)

    def _run_image(self, session, pixels: np.ndarray) -> np.ndarray:
        if pixels.dtype != self.input_dtype:
            pixels = pixels.astype(self.input_dtype)
        out = session.run(None, {self._image_input: pixels})[0]
        return np.ascontiguousarray(out, dtype=np.float32)

    @property
    def _on_cpu(self) -> bool:
        return self.providers == ["CPUExecutionProvider"]

    def pipelined_threads(self) -> int:
        """Intra-op threads of encode_image_pipelined: one fewer than encode_image uses
        (``threads``, else onnxruntime's default of one per core), at least 1. On the CPU
        provider only; a GPU provider keeps its session."""
        from ..settings import usable_cores

        return max(1, (self.threads or usable_cores()) - 1)

    def encode_image_pipelined(self, pixels: np.ndarray) -> np.ndarray:
        # Measured on a 2-core EPYC (docs/performance.md, stream): a 2-thread encoder beside the
        # prefetch worker ran 175-187 frames/s, a 1-thread one 247-264, inline 2 threads 175.
        if not self._on_cpu:
            return self.encode_image(pixels)
        with self._lazy_lock:
            if self._pipelined is None:
                self._pipelined = self._session(self.bundle.encoder_path("image", self.precision),
                                                self.precision, threads=self.pipelined_threads())
        return self._run_image(self._pipelined, pixels)

    def _text_session(self):
        # Lazy: default use needs only the precomputed class embeddings, not the text tower.
        with self._lazy_lock:
            if self._text is None:
                have = self.bundle.precisions("text")
                prec = next((p for p in ("fp32", "int8", "fp16") if p in have), have[0])
                self._text = (self._session(self.bundle.encoder_path("text", prec), prec),
                              self.bundle.encoder("text", prec))
            return self._text

    def encode_text(self, tokens: Mapping[str, np.ndarray]) -> np.ndarray:
        sess, spec = self._text_session()
        feed = {t.name: np.asarray(tokens[t.name], dtype=t.dtype) for t in spec.inputs}
        return np.ascontiguousarray(sess.run(None, feed)[0], dtype=np.float32)

    def info(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"backend": "onnxruntime", "version": ort.__version__, "providers": self.providers,
                "precision": self.precision, "precision_reason": self.precision_reason,
                "input_dtype": str(self.input_dtype),
                "max_batch": self.max_batch, "fallback": self.fallback,
                "threads": self.threads,
                "pipelined_threads": self.pipelined_threads() if self._on_cpu else None}
