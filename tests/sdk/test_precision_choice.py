"""Which image encoder the onnxruntime backend picks: int8_cpu on x86 CPUs with int8 dot-product
instructions when the bundle ships it, fp32 otherwise, and always what is asked for explicitly;
info() says why. The int8 file's agreement with fp32 is tested in tests/train/test_export_int8.py."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from usclip_sdk.backends import onnxruntime as ortb  # noqa: E402
from usclip_sdk.backends import open_backend  # noqa: E402
from usclip_sdk.bundle import Bundle, write_bundle  # noqa: E402
from usclip_sdk.errors import BundleError  # noqa: E402
from usclip_sdk.engine_build import plan_build  # noqa: E402


@pytest.fixture(scope="module")
def int8_cpu_bundle(bundle_path, tmp_path_factory):
    """The tiny bundle plus an "int8_cpu" image entry (the fp32 file's bytes: the choice is the
    subject here, not the file)."""
    src = Bundle.open(bundle_path)
    m = json.loads((bundle_path / "manifest.json").read_text())
    entry = dict(m["encoders"]["image"]["fp32"], path="image_encoder_int8_cpu.onnx",
                 agreement={"frames": 96, "cosine_min": 0.99, "top1_agreement": 0.985, "avgacc_delta_points": -0.1})
    m["encoders"]["image"]["int8_cpu"] = entry
    files = {name: src.file(name) for name in ("image_encoder.onnx", "text_encoder.onnx", "tokenizer.json")}
    files["image_encoder_int8_cpu.onnx"] = src.file("image_encoder.onnx")
    out = write_bundle(tmp_path_factory.mktemp("i8") / "b", m, files, src.class_embeddings())
    src.close()
    return Bundle.open(out)


def _cpuinfo(tmp_path, flags: str):
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu sse2 avx2 {flags}\n\n")
    return str(p)


@pytest.mark.parametrize("flags,fast,named", [("avx2 avx512f avx512_vnni", True, "avx512_vnni"),
                                              ("avx2 avx_vnni", True, "avx_vnni"),
                                              ("avx2 amx_int8 amx_tile", True, "amx_int8"),
                                              ("avx2 fma", True, "avx2"), ("sse4_2 avx", False, "none")])
def test_cpu_int8_fast_reads_the_int8_flags(tmp_path, monkeypatch, flags, fast, named):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\n")
    got, why = ortb.cpu_int8_fast(str(p))
    assert got is fast and named in why


def test_cpu_int8_fast_is_false_off_x86_and_when_cpuinfo_is_unreadable(tmp_path, monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert ortb.cpu_int8_fast(_cpuinfo(tmp_path, "avx512_vnni")) == (
        False, "int8 speed on aarch64 not measured, fp32 kept")
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    ok, why = ortb.cpu_int8_fast(str(tmp_path / "missing"))
    assert not ok and "unreadable" in why


def _int8_cpu(monkeypatch, fast: bool):
    monkeypatch.setattr(ortb, "cpu_int8_fast", lambda: (fast, "CPU has avx512_vnni" if fast else "CPU has none"))


def test_auto_picks_int8_cpu_on_a_vnni_cpu(int8_cpu_bundle, monkeypatch):
    _int8_cpu(monkeypatch, True)
    be = open_backend(int8_cpu_bundle, backend="onnxruntime", device="cpu")
    info = be.info()
    assert info["precision"] == "int8_cpu" and "avx512_vnni" in info["precision_reason"]
    assert "top-1 agreement 0.985" in info["precision_reason"]


def test_auto_through_the_auto_backend_picks_int8_cpu_too(int8_cpu_bundle, monkeypatch):
    _int8_cpu(monkeypatch, True)
    assert open_backend(int8_cpu_bundle, backend="auto", device="cpu").info()["precision"] == "int8_cpu"


def test_auto_keeps_fp32_without_the_instructions(int8_cpu_bundle, monkeypatch):
    _int8_cpu(monkeypatch, False)
    info = open_backend(int8_cpu_bundle, backend="onnxruntime", device="cpu").info()
    assert info["precision"] == "fp32" and "CPU has none" in info["precision_reason"]


def test_auto_keeps_fp32_when_the_bundle_has_no_int8_cpu(bundle_path, monkeypatch):
    _int8_cpu(monkeypatch, True)
    info = open_backend(Bundle.open(bundle_path), backend="onnxruntime", device="cpu").info()
    assert info["precision"] == "fp32" and "no int8_cpu" in info["precision_reason"]


@pytest.mark.parametrize("agreement,why", [
    (None, "not measured"),
    ({"frames": 96, "top1_agreement": 0.95, "avgacc_delta_points": 0.0}, "below the guard"),
    ({"frames": 96, "top1_agreement": 0.99, "avgacc_delta_points": -0.8}, "below the guard")])
def test_auto_keeps_fp32_when_the_int8_agreement_misses_the_guard(int8_cpu_bundle, tmp_path, monkeypatch,
                                                                  agreement, why):
    _int8_cpu(monkeypatch, True)
    root = int8_cpu_bundle.source
    m = json.loads((root / "manifest.json").read_text())
    if agreement is None:
        m["encoders"]["image"]["int8_cpu"].pop("agreement")
    else:
        m["encoders"]["image"]["int8_cpu"]["agreement"] = agreement
    files = {n: int8_cpu_bundle.file(n) for n in ("image_encoder.onnx", "image_encoder_int8_cpu.onnx",
                                                   "text_encoder.onnx", "tokenizer.json")}
    b = Bundle.open(write_bundle(tmp_path / "b", m, files, int8_cpu_bundle.class_embeddings()))
    info = open_backend(b, backend="onnxruntime", device="cpu").info()
    assert info["precision"] == "fp32" and why in info["precision_reason"]
    assert open_backend(b, backend="onnxruntime", device="cpu", precision="int8_cpu").info()["precision"] == "int8_cpu"


def test_agreement_round_trips_through_the_manifest(int8_cpu_bundle):
    from usclip_sdk.bundle_manifest import manifest_to_dict

    spec = int8_cpu_bundle.encoder("image", "int8_cpu")
    assert spec.agreement["top1_agreement"] == pytest.approx(0.985)
    assert int8_cpu_bundle.encoder("image", "fp32").agreement is None
    d = manifest_to_dict(int8_cpu_bundle.manifest)
    assert "agreement" not in d["encoders"]["image"]["fp32"]
    assert d["encoders"]["image"]["int8_cpu"]["agreement"]["top1_agreement"] == pytest.approx(0.985)


def test_an_explicit_precision_wins(int8_cpu_bundle, monkeypatch):
    _int8_cpu(monkeypatch, True)
    info = open_backend(int8_cpu_bundle, backend="onnxruntime", device="cpu", precision="fp32").info()
    assert info["precision"] == "fp32" and info["precision_reason"] == "asked for"
    _int8_cpu(monkeypatch, False)
    assert open_backend(int8_cpu_bundle, backend="onnxruntime", device="cpu",
                        precision="int8_cpu").info()["precision"] == "int8_cpu"


def test_a_precision_the_bundle_lacks_is_a_bundle_error(bundle_path):
    with pytest.raises(BundleError, match="int8_cpu"):
        open_backend(Bundle.open(bundle_path), backend="onnxruntime", device="cpu", precision="int8_cpu")


def test_int8_cpu_never_goes_to_the_cuda_provider(int8_cpu_bundle, monkeypatch):
    import onnxruntime as ort

    # even where onnxruntime-gpu offers CUDA, device="auto" with int8_cpu runs on the CPU
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    be = ortb.OnnxRuntimeBackend(int8_cpu_bundle, device="auto", precision="int8_cpu")
    assert be.providers == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="CPU encoder"):
        ortb.OnnxRuntimeBackend(int8_cpu_bundle, device="cuda", precision="int8_cpu")


def test_auto_backend_with_int8_cpu_skips_tensorrt(int8_cpu_bundle, monkeypatch):
    from usclip_sdk.backends import tensorrt as trtb

    monkeypatch.setattr(trtb, "unavailable_reason", lambda: None)  # as if TensorRT were installed
    monkeypatch.setattr("usclip_sdk.backends._open_tensorrt",
                        lambda *a, **k: pytest.fail("TensorRT opened for an int8_cpu request"))
    be = open_backend(int8_cpu_bundle, backend="auto", device="auto", precision="int8_cpu")
    assert be.info()["precision"] == "int8_cpu" and be.fallback is None


def test_tensorrt_refuses_the_cpu_encoder_by_name(int8_cpu_bundle):
    from usclip_sdk.engine_cache import Profile

    with pytest.raises(ValueError, match="onnxruntime CPU encoder"):
        plan_build(int8_cpu_bundle, "image", "int8_cpu", Profile(1, 1, 1), "flags")
