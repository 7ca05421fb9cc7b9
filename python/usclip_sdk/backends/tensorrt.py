"""TensorRT backend (TensorRT 10.x and 11.x): the fast path on Jetson and x86 GPUs.

- Engines come from ``usclip build-engine`` and live in the engine cache (``cache_dir``, else
  ``USCLIP_ENGINE_CACHE``, else the user cache folder), keyed by ONNX sha256, TensorRT version,
  GPU (name, compute capability, SM count), precision, batch profile and builder options; a stale or foreign
  engine is never used: it is rebuilt where TensorRT's builder is present, else refused with
  the trtexec line that builds it (usclip_sdk.engine_build.ensure_engine).
- Execution uses the name-based API common to 10 and 11: ``set_input_shape``,
  ``set_tensor_address``, ``execute_async_v3`` on a private stream.
- Device buffers are allocated once for the profile's maximum batch; the output is copied into
  a pinned host buffer. For each batch size seen, the enqueue is captured once into a CUDA
  graph and replayed afterwards (TensorRT's own launch overhead disappears).
- ``bind_input(n)`` exposes the input binding as a device array so the CUDA preprocessing
  kernel writes straight into it (no host round trip for the pixels).

Not run in this project's CI or sessions: no TensorRT install is possible here (see
docs/deployment.md). What can be tested without TensorRT (the selection logic, the
unavailable paths) is tested with a fake module.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping

import numpy as np

from ..bundle import Bundle
from ..errors import BackendUnavailableError, EngineError, InvalidInputError

__all__ = ["TensorRTBackend", "unavailable_reason", "tensorrt_version"]

_D2H, _H2D = 2, 1  # cudaMemcpyKind


def tensorrt_version() -> str | None:
    try:
        import tensorrt as trt
    except Exception:
        return None
    return str(getattr(trt, "__version__", "unknown"))


def unavailable_reason() -> str | None:
    """None when TensorRT can run here, else why not (no package, no CUDA build, no GPU)."""
    if tensorrt_version() is None:
        return "the tensorrt Python package is not installed (JetPack ships it; on x86: pip install tensorrt)"
    from .. import ops

    try:
        if not ops.build_info()["cuda_kernels"]:
            return "usclip was built without CUDA kernels"
        if not ops.cuda_available():
            return f"CUDA is not usable: {ops.cuda_unavailable_reason()}"
    except ImportError as e:
        return str(e)
    return None


class _DeviceBinding:
    """A device buffer with __cuda_array_interface__, so ops.preprocess(out=...) can fill it."""

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype):
        self.ptr, self.shape, self.dtype = ptr, shape, np.dtype(dtype)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "version": 3, "strides": None}


class TensorRTBackend:
    """The image encoder as a TensorRT engine (text encoding stays on onnxruntime)."""

    def __init__(self, bundle: Bundle, precision: str = "auto", engine: str | None = None,
                 batch: str = "1,1,8", build: bool = True, use_cuda_graphs: bool = True,
                 cache_dir: str | None = None, **_: Any):
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailableError(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt

        from ..engine_build import ensure_engine
        from ..engine_cache import parse_batch, read_engine
        from ..ops._native import native

        self._trt, self._n = trt, native()
        self.bundle = bundle
        precision = "fp16" if precision == "auto" else precision
        # ensure_engine checks the cache key (sidecar) and rebuilds or refuses a stale engine.
        path = engine or ensure_engine(bundle, "image", precision, parse_batch(batch),
                                       trt=trt, rebuild=build, cache_dir=cache_dir)
        self.engine_path = str(path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        # hashed in memory against the sidecar: no swap between the cache lookup and this read
        blob = read_engine(path, require_sidecar=engine is None)
        self._engine = trt.Runtime(self._logger).deserialize_cuda_engine(blob)
        if self._engine is None:
            raise EngineError(f"TensorRT could not deserialize {path}; rebuild it with usclip build-engine")
        self._ctx = self._engine.create_execution_context()
        self._in, self._out = self._io_names()
        self.input_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._in)))
        lo, _, hi = self._engine.get_tensor_profile_shape(self._in, 0)
        self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        self.image_shape = tuple(int(v) for v in hi[1:])
        out_shape = tuple(self._engine.get_tensor_shape(self._out))
        self.embed_dim = int(out_shape[-1])
        self._stream = self._n.rt_stream_create()
        in_bytes = self.max_batch * int(np.prod(self.image_shape)) * self.input_dtype.itemsize
        self._d_in = self._n.device_malloc(in_bytes)
        self._d_out = self._n.device_malloc(self.max_batch * self.embed_dim * 4)
        self._h_out = self._n.rt_host_alloc_pinned(self.max_batch * self.embed_dim * 4)
        self._graphs: dict[int, int] = {}
        self._use_graphs = use_cuda_graphs
        self._lock = threading.RLock()  # one execution context and one input binding: serialised
        self.name = f"tensorrt:{tensorrt_version()}"
        self.precision = precision
        self.device_input = True
        self.fallback: str | None = None

    def _io_names(self) -> tuple[str, str]:
        trt = self._trt
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        ins = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise EngineError(f"expected an image engine with 1 input and 1 output, found {ins} -> {outs}")
        return ins[0], outs[0]

    def _check_batch(self, n: int) -> None:
        if not self.min_batch <= n <= self.max_batch:
            raise InvalidInputError(f"batch {n} is outside the engine's profile [{self.min_batch}, "
                                    f"{self.max_batch}]; rebuild with --batch MIN,OPT,MAX")

    @property
    def stream(self) -> int:
        """The cudaStream_t everything of this backend is queued on."""
        return self._stream

    @property
    def lock(self) -> threading.RLock:
        """Hold this while filling ``device_input`` and calling ``run_bound``."""
        return self._lock

    def bind_input(self, n: int) -> _DeviceBinding:
        """The input binding for a batch of ``n`` as a device array (fill it, then run_bound,
        both under ``lock``)."""
        self._check_batch(n)
        return _DeviceBinding(self._d_in, (n, *self.image_shape), self.input_dtype)

    def _enqueue(self, n: int) -> None:
        ctx = self._ctx
        if not ctx.set_input_shape(self._in, (n, *self.image_shape)):
            raise EngineError(f"set_input_shape({self._in}, batch {n}) was refused")
        ctx.set_tensor_address(self._in, self._d_in)
        ctx.set_tensor_address(self._out, self._d_out)
        if not ctx.execute_async_v3(self._stream):
            raise EngineError("execute_async_v3 failed (see the TensorRT log above)")

    def run_bound(self, n: int) -> np.ndarray:
        """Run on the ``n`` images already in the input binding; N x D float32."""
        self._check_batch(n)
        with self._lock:
            graph = self._graphs.get(n)
            if graph is not None:
                self._n.rt_graph_launch(graph, self._stream)
            else:
                self._enqueue(n)  # the first run at a shape also initialises TensorRT's state
                if self._use_graphs:
                    try:
                        self._n.rt_graph_begin_capture(self._stream)
                        self._enqueue(n)
                        self._graphs[n] = self._n.rt_graph_end_capture(self._stream)
                    except Exception:  # some engines cannot be captured: run without graphs
                        self._use_graphs = False
            nbytes = n * self.embed_dim * 4
            self._n.rt_memcpy_async(self._h_out, self._d_out, nbytes, _D2H, self._stream)
            self._n.rt_stream_sync(self._stream)
            out = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * (n * self.embed_dim))
                                        .from_address(self._h_out)).reshape(n, self.embed_dim)
            return out.copy()

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        n = int(pixels.shape[0])
        self._check_batch(n)
        x = np.ascontiguousarray(pixels, dtype=self.input_dtype)
        with self._lock:  # held across copy and run: another thread must not refill the binding
            self._n.rt_memcpy_async(self._d_in, x.ctypes.data, x.nbytes, _H2D, self._stream)
            return self.run_bound(n)

    def encode_image_pipelined(self, pixels: np.ndarray) -> np.ndarray:
        return self.encode_image(pixels)  # the engine runs on the GPU: no cores to share

    def encode_text(self, tokens: Mapping[str, np.ndarray]) -> np.ndarray:
        # The text tower runs rarely (custom labels, cached); onnxruntime serves it.
        if not hasattr(self, "_text"):
            from .onnxruntime import OnnxRuntimeBackend

            self._text = OnnxRuntimeBackend(self.bundle, device="cpu")
        return self._text.encode_text(tokens)

    def info(self) -> dict[str, Any]:
        return {"backend": "tensorrt", "version": tensorrt_version(), "engine": self.engine_path,
                "batch_profile": [self.min_batch, self.max_batch],
                "input_dtype": str(self.input_dtype), "cuda_graphs": self._use_graphs}

    def __del__(self) -> None:
        n = getattr(self, "_n", None)
        if n is None:
            return
        for g in getattr(self, "_graphs", {}).values():
            n.rt_graph_destroy(g)
        for attr, free in (("_d_in", "device_free"), ("_d_out", "device_free"),
                           ("_h_out", "rt_host_free_pinned")):
            ptr = getattr(self, attr, None)
            if ptr and hasattr(n, free):
                getattr(n, free)(ptr)
        if getattr(self, "_stream", None):
            n.rt_stream_destroy(self._stream)
