"""The TensorRT backend's logic without TensorRT or a GPU.

A fake ``tensorrt`` module whose engine runs the bundle's ONNX image encoder, and a fake native
CUDA runtime over host memory (device pointers are host addresses), drive the real backend and
the Classifier's device path: binding allocation, the batch profile, CUDA-graph capture and
replay, the output copy, locking, and that results equal the onnxruntime backend's. What this
cannot show - real TensorRT, real CUDA - is stated in docs/deployment.md.
"""
from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

pytest.importorskip("onnx")

from sdk_bundle import make_tiny_bundle  # noqa: E402
from test_classifier import screen  # noqa: E402

from usclip_sdk import ops  # noqa: E402
from usclip_sdk.backends import open_backend, tensorrt as trt_backend  # noqa: E402
from usclip_sdk.bundle import Bundle  # noqa: E402
from usclip_sdk.classifier import Classifier  # noqa: E402
from usclip_sdk.errors import BackendUnavailableError  # noqa: E402


class FakeNative:
    """Host memory standing in for device memory; records graph use."""

    def __init__(self):
        self.buffers, self.graph_launches, self.captures = {}, 0, 0
        self.capturing = False

    def device_malloc(self, n):
        buf = ctypes.create_string_buffer(n)
        self.buffers[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def device_free(self, p):
        self.buffers.pop(p, None)

    rt_host_alloc_pinned = device_malloc
    rt_host_free_pinned = device_free

    def rt_stream_create(self):
        return 7

    def rt_stream_destroy(self, s):
        pass

    def rt_stream_sync(self, s):
        pass

    def rt_memcpy_async(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)

    def rt_graph_begin_capture(self, s):
        self.capturing = True

    def rt_graph_end_capture(self, s):
        self.capturing, self.captures = False, self.captures + 1
        return 1000 + self.captures

    def rt_graph_destroy(self, g):
        pass

    def rt_graph_launch(self, g, s):
        self.graph_launches += 1
        self.replay()


def fake_trt(bundle: Bundle, native: FakeNative, max_batch: int):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(bundle.encoder_path("image")), providers=["CPUExecutionProvider"])
    h, w = bundle.preprocess.image_size
    d = bundle.manifest.model.embed_dim
    mod = types.SimpleNamespace(__version__="10.3.0")
    mod.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    mod.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, lvl=0: None})
    mod.nptype = lambda dt: dt

    class Context:
        def __init__(self):
            self.shape, self.addr = None, {}

        def set_input_shape(self, name, shape):
            self.shape = tuple(shape)
            return 1 <= shape[0] <= max_batch

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr

        def execute_async_v3(self, stream):
            def run(shape=self.shape, addr=dict(self.addr)):
                n = shape[0]
                x = np.ctypeslib.as_array((ctypes.c_float * (n * 3 * h * w)).from_address(addr["image"]))
                y = sess.run(None, {"image": x.reshape(n, 3, h, w)})[0].astype(np.float32)
                ctypes.memmove(addr["emb"], y.ctypes.data, y.nbytes)
            if native.capturing:  # a captured graph replays this exact work later
                native.replay = run
            else:
                run()
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ("image", "emb")[i]

        def get_tensor_mode(self, name):
            return "in" if name == "image" else "out"

        def get_tensor_dtype(self, name):
            return np.float32

        def get_tensor_profile_shape(self, name, i):
            return (1, 3, h, w), (1, 3, h, w), (max_batch, 3, h, w)

        def get_tensor_shape(self, name):
            return (-1, d)

        def create_execution_context(self):
            return Context()

    mod.Runtime = lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda blob: Engine())
    return mod


@pytest.fixture()
def tiny(tmp_path):
    return make_tiny_bundle(tmp_path / "tiny")


def test_unavailable_here_and_auto_falls_back(tiny):
    assert trt_backend.unavailable_reason() is not None  # no tensorrt package / no GPU here
    with Bundle.open(tiny) as b:
        with pytest.raises(BackendUnavailableError, match="tensorrt"):
            open_backend(b, "tensorrt", "cuda")
        assert open_backend(b, "auto").name.startswith("onnxruntime")


@pytest.fixture()
def fake(tiny, tmp_path, monkeypatch):
    """(bundle, fake native, TensorRTBackend) over a fake tensorrt module and host memory."""
    native = FakeNative()
    engine = tmp_path / "image.engine"
    engine.write_bytes(b"fake plan")
    bundle = Bundle.open(tiny)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt(bundle, native, max_batch=4))
    monkeypatch.setattr(trt_backend, "unavailable_reason", lambda: None)
    monkeypatch.setattr(ops._native, "native", lambda: native)
    return bundle, native, trt_backend.TensorRTBackend(bundle, precision="fp32", engine=str(engine))


def test_backend_logic_with_fake_tensorrt(fake):
    bundle, native, be = fake
    ref = open_backend(bundle, "onnxruntime", "cpu")
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(be.encode_image(x), ref.encode_image(x), atol=1e-6)
    assert native.captures == 1 and native.graph_launches == 0  # first run captures
    y = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(be.encode_image(y), ref.encode_image(y), atol=1e-6)
    assert native.graph_launches == 1  # same batch size: graph replay
    be.encode_image(y[:1])
    assert native.captures == 2  # a new batch size gets its own graph
    with pytest.raises(ValueError, match="profile"):
        be.encode_image(np.zeros((5, 3, 32, 32), np.float32))
    assert be.info()["batch_profile"] == [1, 4] and be.name.startswith("tensorrt:")


def test_classifier_device_path_fills_the_input_binding(fake, monkeypatch):
    bundle, native, be = fake
    calls = []
    import usclip_sdk.pixels as cmod  # the one pixel path the Classifier calls

    real = cmod.preprocess

    def fake_cuda_preprocess(frame, *, out, device, stream, **kw):
        # The CUDA kernel is not runnable here: write the CPU kernel's result to the address.
        assert device == "cuda" and stream == be.stream
        ptr, shape = out
        res = real(frame, **kw)
        ctypes.memmove(ptr, res.ctypes.data, res.nbytes)
        calls.append(shape)

    clf = Classifier(bundle, backend="onnxruntime", device="cpu")
    frames = [screen(1), screen(2, 300, 400)]
    want = [p.to_dict()["attributes"] for p in clf.classify_batch(frames)]
    monkeypatch.setattr(cmod, "preprocess", fake_cuda_preprocess)
    clf.backend = be
    got = [p.to_dict()["attributes"] for p in clf.classify_batch(frames)]
    assert calls == [(1, 3, 32, 32)] * 2 and got == want


def test_classifier_splits_batches_to_the_backends_maximum(fake, monkeypatch):
    # The engine's profile takes at most 4 frames; onnxruntime any number. classify_batch of 9
    # must give the same answers on both (it was a ValueError on TensorRT before).
    import usclip_sdk.pixels as pix

    bundle, native, be = fake
    real = pix.preprocess

    def fake_cuda_preprocess(frame, *, out, device, stream, **kw):
        ptr, _shape = out
        res = real(frame, **kw)
        ctypes.memmove(ptr, res.ctypes.data, res.nbytes)

    clf = Classifier(bundle, backend="onnxruntime", device="cpu")
    frames = [screen(i) for i in range(9)]
    want = [p.to_dict()["attributes"] for p in clf.classify_batch(frames)]
    assert be.max_batch == 4 and clf.backend.max_batch is None
    monkeypatch.setattr(pix, "preprocess", fake_cuda_preprocess)
    clf.backend = be
    got = [p.to_dict()["attributes"] for p in clf.classify_batch(frames)]
    assert got == want


@pytest.mark.parametrize("error", ["engine", "unavailable", "device"])
def test_auto_falls_back_to_onnxruntime_on_any_tensorrt_failure_and_says_why(tiny, monkeypatch, error):
    from usclip_sdk import backends
    from usclip_sdk.errors import DeviceError, EngineError

    exc = {"engine": EngineError("engine build failed: out of memory"),
           "unavailable": BackendUnavailableError("no engine and no builder"),
           "device": DeviceError("cudaErrorLaunchFailure")}[error]

    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(trt_backend, "unavailable_reason", lambda: None)
    monkeypatch.setattr(backends, "_open_tensorrt", broken)
    clf = Classifier(tiny, backend="auto")
    assert clf.backend.name.startswith("onnxruntime")
    fallback = clf.info()["backend"]["fallback"]
    assert fallback.startswith("tensorrt not used") and str(exc) in fallback
    with pytest.raises(type(exc)):  # an explicit request never becomes another backend
        monkeypatch.setitem(backends.BACKENDS, "tensorrt", broken)
        Classifier(tiny, backend="tensorrt")


def test_every_backend_declares_the_whole_protocol(fake):
    from usclip_sdk.backends import base

    _bundle, _native, trt = fake
    ort = open_backend(_bundle, "onnxruntime", "cpu")
    members = [n for n in dir(base.Backend) if not n.startswith("_")] + list(base.Backend.__annotations__)
    for be in (ort, trt):
        missing = [m for m in members if not hasattr(be, m)]
        assert not missing, f"{type(be).__name__} lacks {missing}"
    assert (ort.device_input, trt.device_input) == (False, True)
    for mod in ("onnxruntime", "tensorrt"):
        assert callable(__import__(f"usclip_sdk.backends.{mod}", fromlist=["x"]).unavailable_reason)
