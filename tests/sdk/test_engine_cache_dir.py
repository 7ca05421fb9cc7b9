"""Engine cache location, key and logging, with the fake TensorRT modules of the other tests.

Where engines go (cache_dir= / USCLIP_ENGINE_CACHE / the user cache folder, never the bundle's
folder), that SM count and builder options are part of the key, that each rebuild logs why,
and that Classifier(cache_dir=...) reaches the engine lookup.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from test_backend_tensorrt import FakeNative, fake_trt as fake_runtime  # noqa: E402
from test_export_tensorrt import fake_trt as fake_builder  # noqa: E402

from usclip_sdk import engine_build, ops  # noqa: E402
from usclip_sdk.backends import tensorrt as trt_backend  # noqa: E402
from usclip_sdk.bundle import Bundle  # noqa: E402
from usclip_sdk.classifier import Classifier  # noqa: E402
from usclip_sdk.engine_build import ensure_engine  # noqa: E402
from usclip_sdk.engine_cache import GpuInfo, Profile  # noqa: E402
from usclip_sdk.errors import EngineError  # noqa: E402
from usclip_sdk.settings import engine_cache_root, user_cache_dir  # noqa: E402

ORIN_NANO = GpuInfo("Orin", "8.7", 8)
ORIN_NX = GpuInfo("Orin", "8.7", 16)  # same name and compute capability, other SM count
P = Profile(1, 4, 8)


@pytest.fixture()
def bundle(tmp_path):
    from _export_helpers import fake_bundle

    with Bundle.open(fake_bundle(tmp_path, image_precisions=("fp32", "fp16"))) as b:
        yield b


def test_default_location_is_the_user_cache_not_the_bundle(tmp_path, monkeypatch, bundle):
    monkeypatch.delenv("USCLIP_ENGINE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert engine_cache_root() == tmp_path / "xdg" / "usclip" / "engines"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: absolute paths only
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "usclip"
    monkeypatch.setenv("USCLIP_ENGINE_CACHE", str(tmp_path / "env"))
    path = ensure_engine(bundle, "image", "fp16", P, trt=fake_builder(), gpu=ORIN_NANO)
    assert path.parent.parent == tmp_path / "env"
    assert Path(bundle.source).resolve() not in path.resolve().parents  # nothing beside/inside the bundle
    explicit = ensure_engine(bundle, "image", "fp16", P, trt=fake_builder(), gpu=ORIN_NANO,
                             cache_dir=tmp_path / "mine")
    assert explicit.parent == tmp_path / "mine"


def test_sm_count_and_builder_options_are_in_the_key_and_rebuilds_say_why(bundle, tmp_path, caplog):
    trt = fake_builder()
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="usclip_sdk"):
        first = ensure_engine(bundle, "image", "fp16", P, trt=trt, gpu=ORIN_NANO, cache_dir=cache)
    assert trt.log["builds"] == 1
    assert any(r.levelno == logging.INFO and "no cached engine" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="usclip_sdk"):
        assert ensure_engine(bundle, "image", "fp16", P, trt=trt, gpu=ORIN_NANO, cache_dir=cache) == first
    assert trt.log["builds"] == 1 and not [r for r in caplog.records if r.levelno >= logging.INFO]
    with caplog.at_level(logging.INFO, logger="usclip_sdk"):
        other = ensure_engine(bundle, "image", "fp16", P, trt=trt, gpu=ORIN_NX, cache_dir=cache)
    assert other != first and trt.log["builds"] == 2  # another Orin module: rebuilt, not reused
    stale = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert stale and "sm_count: cached 8, needed 16" in stale[0] and "rebuilding" in stale[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="usclip_sdk"):
        ensure_engine(bundle, "image", "fp16", P, trt=trt, gpu=ORIN_NANO, cache_dir=cache, workspace_mb=256)
    assert trt.log["builds"] == 3  # other builder options: rebuilt
    assert any("builder:" in r.getMessage() and "workspace_mb" in r.getMessage() for r in caplog.records)


def test_classifier_cache_dir_reaches_the_engine_lookup_and_fallback_is_logged(tmp_path, monkeypatch, caplog):
    from sdk_bundle import make_tiny_bundle

    tiny = make_tiny_bundle(tmp_path / "tiny")
    seen = {}

    def no_engine(bundle, tower, precision, profile, *, cache_dir=None, **kw):
        seen["cache_dir"] = cache_dir
        raise EngineError("no engine (test)")

    with Bundle.open(tiny) as b:
        monkeypatch.setitem(sys.modules, "tensorrt", fake_runtime(b, FakeNative(), max_batch=4))
    monkeypatch.setattr(trt_backend, "unavailable_reason", lambda: None)
    monkeypatch.setattr(ops._native, "native", lambda: FakeNative())
    monkeypatch.setattr(engine_build, "ensure_engine", no_engine)
    with caplog.at_level(logging.WARNING, logger="usclip_sdk"):
        clf = Classifier(tiny, cache_dir=tmp_path / "engines")
    assert seen["cache_dir"] == tmp_path / "engines"
    assert clf.backend.name.startswith("onnxruntime") and "no engine (test)" in clf.backend.fallback
    assert any("falling back to onnxruntime" in r.getMessage() for r in caplog.records)


def test_sm_count_reads_the_driver_attribute(monkeypatch):
    """sm_count() asks libcuda for CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT (16); no driver -> 0."""
    import ctypes

    from usclip_sdk.engine_cache import sm_count

    class FakeCuda:
        def cuInit(self, flags):
            return 0

        def cuDeviceGet(self, dev, ordinal):
            dev._obj.value = ordinal
            return 0

        def cuDeviceGetAttribute(self, value, attr, dev):
            value._obj.value = 16 if attr == 16 else -1
            return 0

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeCuda())
    assert sm_count() == 16

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert sm_count() == 0
