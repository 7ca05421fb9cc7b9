"""Engine cache integrity: an engine swapped in the cache (other bytes, same name and size) is
refused or rebuilt before TensorRT deserialises it, through the real TensorRTBackend driven by the
fake tensorrt module of test_backend_tensorrt (TensorRT is not installable here)."""
from __future__ import annotations

import sys

import pytest

pytest.importorskip("onnx")

from sdk_bundle import make_tiny_bundle
from test_backend_tensorrt import FakeNative, fake_trt
from usclip_sdk import engine_build, ops
from usclip_sdk.backends import tensorrt as trt_backend
from usclip_sdk.bundle import Bundle
from usclip_sdk.classifier import Classifier
from usclip_sdk.engine_build import adopt_engine
from usclip_sdk.engine_cache import GpuInfo, Profile, read_engine
from usclip_sdk.errors import EngineError

GPU = GpuInfo("Orin", "8.7")
GOOD, SWAPPED = b"fake plan A" * 100, b"fake plan B" * 100  # same size, other bytes


@pytest.fixture()
def cached(tmp_path, monkeypatch):
    """(bundle, cached engine path, list of blobs the fake TensorRT deserialised)."""
    bundle = Bundle.open(make_tiny_bundle(tmp_path / "tiny"))
    mod = fake_trt(bundle, FakeNative(), max_batch=8)
    seen: list[bytes] = []
    runtime = mod.Runtime
    mod.Runtime = lambda logger: type("R", (), {"deserialize_cuda_engine": staticmethod(
        lambda blob: seen.append(bytes(blob)) or runtime(logger).deserialize_cuda_engine(blob))})()
    native = FakeNative()
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    monkeypatch.setattr(trt_backend, "unavailable_reason", lambda: None)
    monkeypatch.setattr(ops._native, "native", lambda: native)
    monkeypatch.setattr(engine_build, "gpu_info", lambda: GPU)
    monkeypatch.setenv("USCLIP_ENGINE_CACHE", str(tmp_path / "engines"))  # never the user's cache
    src = tmp_path / "built.engine"
    src.write_bytes(GOOD)
    path = adopt_engine(bundle, src, "image", "fp32", Profile(1, 1, 8), tensorrt_version="10.3.0",
                        gpu=GPU, flavour="flags")
    assert path.is_relative_to(tmp_path)
    return bundle, path, seen


def test_good_cached_engine_is_deserialised(cached):
    bundle, path, seen = cached
    be = trt_backend.TensorRTBackend(bundle, precision="fp32", build=False)
    assert be.engine_path == str(path) and seen == [GOOD]


def test_swapped_engine_refused_before_deserialising(cached):
    bundle, path, seen = cached
    path.write_bytes(SWAPPED)
    with pytest.raises(EngineError, match="does not match its sidecar"):
        trt_backend.TensorRTBackend(bundle, precision="fp32", build=False)
    assert seen == []  # TensorRT never saw the swapped bytes


def test_swap_after_the_lookup_refused(cached, monkeypatch):
    """The file changes between the cache lookup (which hashed it) and the read for TensorRT."""
    bundle, path, seen = cached
    real = engine_build.lookup

    def lookup_then_swap(cache, key):
        found = real(cache, key)
        path.write_bytes(SWAPPED)
        return found

    monkeypatch.setattr(engine_build, "lookup", lookup_then_swap)
    with pytest.raises(EngineError, match="replaced or modified"):
        trt_backend.TensorRTBackend(bundle, precision="fp32", build=False)
    assert seen == []


def test_sidecar_removed_after_the_lookup_refused(cached, monkeypatch):
    bundle, path, seen = cached
    real = engine_build.lookup

    def lookup_then_unlink(cache, key):
        found = real(cache, key)
        path.with_suffix(".json").unlink()
        return found

    monkeypatch.setattr(engine_build, "lookup", lookup_then_unlink)
    with pytest.raises(EngineError, match="sidecar"):
        trt_backend.TensorRTBackend(bundle, precision="fp32", build=False)
    assert seen == []
    assert read_engine(path, require_sidecar=False) == GOOD  # an explicit engine= file is the caller's


def test_auto_backend_falls_back_and_says_why(cached):
    bundle, path, seen = cached
    path.write_bytes(SWAPPED)
    clf = Classifier(bundle, backend="auto", device="auto", precision="fp32")
    assert clf.backend.name.startswith("onnxruntime") and seen == []
    assert "sidecar" in str(clf.backend.fallback)
