"""TensorRT engine building without TensorRT: cache keys, profile arguments, the trtexec line,
the 10.x (flags) and 11.x (strongly typed) build paths through a fake ``tensorrt`` module,
cache hits/misses/rebuilds, and the CLI's fallback when ``import tensorrt`` fails.

TensorRT itself is not installable on this machine; nothing here runs a real builder."""
from __future__ import annotations

import json
import shlex
import sys
import types
from pathlib import Path

import pytest
from _export_helpers import fake_bundle

from usclip_sdk.bundle import Bundle
from usclip_sdk.cli import main as cli_main
from usclip_sdk.engine_build import (JETSON_TRTEXEC, adopt_engine, api_flavour, build_engine, ensure_engine,
                                     flavour_of, import_tensorrt, plan_build, trtexec_command)
from usclip_sdk.engine_cache import EngineKey, GpuInfo, Profile, cache_dir_for, lookup, parse_batch
from usclip_sdk.errors import BackendUnavailableError, BundleError, DeviceError, EngineError

GPU = GpuInfo("Orin", "8.7")
PINS = ("/visual/ln_pre/LayerNormalization", "/visual/transformer/resblocks.0/attn/Softmax")


def fake_trt(version: str = "10.3.0", flags: bool = True, builder: bool = True):
    """A stand-in for the tensorrt module with the API surface engine_build uses; records calls."""
    ns = types.SimpleNamespace
    log = {"builds": 0, "flags": [], "network_flags": [], "pinned": [], "shapes": {}, "workspace": None,
           "parsed": []}
    flag_names = ["OBEY_PRECISION_CONSTRAINTS", "REFIT"] + (["FP16", "INT8", "BF16"] if flags else [])
    layer_types = ns(NORMALIZATION="NORM", SOFTMAX="SOFTMAX", REDUCE="REDUCE", CONVOLUTION="CONV",
                     MATRIX_MULTIPLY="MM")

    class Layer:
        def __init__(self, name, type_):
            self.name, self.type, self.num_outputs, self.precision = name, type_, 1, None

        def set_output_type(self, i, t):
            log["pinned"].append((self.name, t))

    class Network:
        def __init__(self):
            self.layers = [Layer("/visual/conv1/Conv", "CONV"), Layer(PINS[0], "NORM"), Layer("/x/MatMul", "MM"),
                           Layer(PINS[1], "SOFTMAX"), Layer("/ReduceL2", "REDUCE")]
            self.num_layers = len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class Parser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            log["parsed"].append(path)
            return True

    class Profile_:
        def set_shape(self, name, lo, opt, hi):
            log["shapes"][name] = (tuple(lo), tuple(opt), tuple(hi))

    class Cache:
        def serialize(self):
            return b"timing-cache-bytes"

    class Config:
        def set_memory_pool_limit(self, pool, n):
            log["workspace"] = (pool, n)

        def set_flag(self, f):
            log["flags"].append(f)

        def add_optimization_profile(self, p):
            pass

        def create_timing_cache(self, blob):
            log["timing_in"] = blob
            return Cache()

        def set_timing_cache(self, cache, ignore_mismatch):
            pass

        def get_timing_cache(self):
            return Cache()

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, f):
            log["network_flags"].append(f)
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile_()

        def build_serialized_network(self, network, config):
            log["builds"] += 1
            return b"ENGINE" + str(log["builds"]).encode()

    mod = ns(__version__=version, BuilderFlag=ns(**{f: f for f in flag_names}), LayerType=layer_types,
             NetworkDefinitionCreationFlag=ns(STRONGLY_TYPED=5), MemoryPoolType=ns(WORKSPACE="WS"),
             float32="fp32", Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, lvl: None}),
             OnnxParser=Parser, log=log)
    if builder:
        mod.Builder = Builder
    return mod


@pytest.fixture()
def bundle(tmp_path):
    with Bundle.open(fake_bundle(tmp_path, image_precisions=("fp32", "fp16", "int8"),
                                 text_precisions=("fp32", "fp16"))) as b:
        yield b


# ---- keys, profiles ----------------------------------------------------------------------------
def test_parse_batch():
    assert parse_batch("1,4,8") == Profile(1, 4, 8) and parse_batch(" 2 ") == Profile(2, 2, 2)
    for bad in ("8,4,1", "0,1,2", "a,b,c", "1,2", "1,2,3,4"):
        with pytest.raises(ValueError, match="batch"):
            parse_batch(bad)


def test_engine_key_changes_with_every_field():
    base = EngineKey("image", "a" * 64, "10.3.0", "Orin", "8.7", "fp16", (1, 4, 8))
    variants = [base.__class__(**{**base.__dict__, k: v}) for k, v in
                (("tower", "text"), ("onnx_sha256", "b" * 64), ("tensorrt_version", "10.7.0"),
                 ("gpu_name", "NVIDIA H100"), ("compute_capability", "9.0"), ("precision", "int8"),
                 ("profile", (1, 4, 16)))]
    digests = {base.digest()} | {v.digest() for v in variants}
    assert len(digests) == 8
    assert base.filename().startswith("image-fp16-b1_4_8-") and base.filename().endswith(".engine")


def test_cache_dir_is_outside_the_bundle_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("USCLIP_ENGINE_CACHE", str(tmp_path / "cache"))
    d = cache_dir_for(tmp_path / "m.zip")
    assert d.parent == tmp_path / "cache" and d.name.startswith("m.zip-")  # one folder per bundle path
    assert cache_dir_for(tmp_path / "other" / "m.zip") != d


# ---- plans and trtexec lines ---------------------------------------------------------------------
def test_plan_flags_fp16_uses_fp32_onnx_and_pins(bundle):
    plan = plan_build(bundle, "image", "fp16", Profile(1, 4, 8), "flags")
    assert plan.onnx_path.name == "image_encoder.onnx"
    assert plan.flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS") and plan.fp32_layers == PINS
    assert plan.shapes == {"image": ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}


def test_plan_strongly_typed_uses_typed_onnx(bundle):
    for prec, name in (("fp16", "image_encoder_fp16.onnx"), ("int8", "image_encoder_int8.onnx"),
                       ("fp32", "image_encoder.onnx")):
        plan = plan_build(bundle, "image", prec, Profile(1, 1, 4), "strongly_typed")
        assert plan.onnx_path.name == name and plan.flags == () and plan.fp32_layers == ()
    text = plan_build(bundle, "text", "fp16", Profile(1, 2, 4), "strongly_typed")
    assert text.shapes["input_ids"] == ((1, 16), (2, 16), (4, 16))
    assert set(text.shapes) == {"input_ids", "attention_mask"}


def test_plan_missing_variant_says_how_to_export(tmp_path):
    with Bundle.open(fake_bundle(tmp_path)) as b:
        with pytest.raises(BundleError, match="--int8-image"):
            plan_build(b, "image", "int8", Profile(1, 1, 1), "flags")
        with pytest.raises(BundleError, match="--fp16"):
            plan_build(b, "image", "fp16", Profile(1, 1, 1), "strongly_typed")
        plan_build(b, "image", "fp16", Profile(1, 1, 1), "flags")  # 10.x builds fp16 from fp32 ONNX
    with pytest.raises(ValueError, match="precision"):
        plan_build(b, "image", "bf16", Profile(1, 1, 1), "flags")


def test_trtexec_line_trt10_fp16_jetson(bundle, tmp_path):
    plan = plan_build(bundle, "image", "fp16", Profile(1, 4, 8), "flags")
    cmd = trtexec_command(plan, tmp_path / "e.engine", target="jetson", workspace_mb=1024,
                          timing_cache=tmp_path / "t.cache")
    assert cmd[0] == JETSON_TRTEXEC == "/usr/src/tensorrt/bin/trtexec"
    assert f"--onnx={plan.onnx_path}" in cmd and f"--saveEngine={tmp_path / 'e.engine'}" in cmd
    assert "--minShapes=image:1x3x32x32" in cmd and "--optShapes=image:4x3x32x32" in cmd
    assert "--maxShapes=image:8x3x32x32" in cmd and "--fp16" in cmd and "--int8" not in cmd
    assert "--precisionConstraints=obey" in cmd
    assert f"--layerPrecisions={PINS[0]}:fp32,{PINS[1]}:fp32" in cmd
    assert "--memPoolSize=workspace:1024M" in cmd and f"--timingCacheFile={tmp_path / 't.cache'}" in cmd
    assert shlex.split(shlex.join(cmd)) == cmd  # survives the shell


def test_trtexec_line_trt11_strongly_typed_text(bundle, tmp_path):
    plan = plan_build(bundle, "text", "fp16", Profile(1, 2, 4), "strongly_typed")
    cmd = trtexec_command(plan, tmp_path / "t.engine", target="x86")
    assert cmd[0] == "trtexec" and "--stronglyTyped" in cmd and "--fp16" not in cmd
    assert plan.onnx_path.name == "text_encoder_fp16.onnx"
    assert "--minShapes=input_ids:1x16,attention_mask:1x16" in cmd
    assert "--maxShapes=input_ids:4x16,attention_mask:4x16" in cmd
    assert not any(c.startswith("--layerPrecisions") for c in cmd)


# ---- builds through fake TensorRT 10 and 11 ----------------------------------------------------
def test_build_trt10_fp16(bundle, tmp_path):
    trt = fake_trt("10.3.0", flags=True)
    assert api_flavour(trt) == "flags"
    path = build_engine(bundle, "image", "fp16", Profile(1, 4, 8), trt=trt, gpu=GPU, workspace_mb=512,
                        timing_cache=tmp_path / "timing.cache")
    log = trt.log
    assert log["flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"] and log["network_flags"] == [0]
    assert log["parsed"][0].endswith("image_encoder.onnx")
    assert {n for n, _ in log["pinned"]} == {PINS[0], PINS[1], "/ReduceL2"}  # by name and by layer type
    assert log["shapes"]["image"] == ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))
    assert log["workspace"] == ("WS", 512 << 20)
    assert (tmp_path / "timing.cache").read_bytes() == b"timing-cache-bytes"
    assert path.parent == cache_dir_for(bundle.source) and path.read_bytes() == b"ENGINE1"
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["key"]["tensorrt_version"] == "10.3.0" and side["key"]["gpu_name"] == "Orin"
    assert side["key"]["onnx_sha256"] == bundle.file_sha256("image_encoder.onnx")
    assert side["build"]["fp32_layers_pinned"] == 3


def test_build_trt11_strongly_typed_int8(bundle):
    trt = fake_trt("11.0.0", flags=False)
    assert api_flavour(trt) == "strongly_typed"
    build_engine(bundle, "image", "int8", Profile(1, 1, 4), trt=trt, gpu=GPU)
    assert trt.log["network_flags"] == [1 << 5] and trt.log["flags"] == [] and trt.log["pinned"] == []
    assert trt.log["parsed"][0].endswith("image_encoder_int8.onnx")


def test_ensure_engine_caches_and_rebuilds_on_mismatch(bundle):
    trt = fake_trt("10.3.0")
    p1 = ensure_engine(bundle, "image", "fp16", Profile(1, 4, 8), trt=trt, gpu=GPU)
    p2 = ensure_engine(bundle, "image", "fp16", Profile(1, 4, 8), trt=trt, gpu=GPU)
    assert p1 == p2 and trt.log["builds"] == 1  # cache hit
    newer = fake_trt("10.7.0")
    _, reasons = lookup(cache_dir_for(bundle.source),
                        EngineKey("image", bundle.file_sha256("image_encoder.onnx"), "10.7.0", "Orin", "8.7",
                                  "fp16", (1, 4, 8)))
    assert any("tensorrt_version: cached '10.3.0', needed '10.7.0'" in r for r in reasons)
    p3 = ensure_engine(bundle, "image", "fp16", Profile(1, 4, 8), trt=newer, gpu=GPU)
    assert p3 != p1 and newer.log["builds"] == 1  # TensorRT upgrade -> rebuilt under a new key
    ensure_engine(bundle, "image", "fp16", Profile(1, 4, 8), trt=trt, gpu=GpuInfo("NVIDIA H100", "9.0"))
    assert trt.log["builds"] == 2  # another GPU -> rebuilt
    p1.write_bytes(b"ENGINX")  # same size, other bytes
    ensure_engine(bundle, "image", "fp16", Profile(1, 4, 8), trt=trt, gpu=GPU)
    assert trt.log["builds"] == 3 and p1.read_bytes() == b"ENGINE3"


def test_ensure_engine_without_builder_raises_with_trtexec_line(bundle):
    lean = fake_trt("10.3.0", builder=False)
    del lean.BuilderFlag  # the lean runtime has no builder API at all
    assert flavour_of(lean) == "flags"
    with pytest.raises(EngineError, match=r"cannot rebuild.*trtexec.*--fp16"):
        ensure_engine(bundle, "image", "fp16", Profile(1, 1, 4), trt=lean, gpu=GPU)
    with pytest.raises(EngineError, match="rebuild=False"):
        ensure_engine(bundle, "image", "fp16", Profile(1, 1, 4), trt=fake_trt(), gpu=GPU, rebuild=False)


def test_import_tensorrt_fallbacks(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    with pytest.raises(BackendUnavailableError, match="JetPack"):
        import_tensorrt()
    lean = fake_trt(builder=False)
    monkeypatch.setitem(sys.modules, "tensorrt", lean)
    with pytest.raises(BackendUnavailableError, match="no Builder"):
        import_tensorrt()


# ---- the CLI -----------------------------------------------------------------------------------
def _printed_trtexec(out: str) -> list[str]:
    """The trtexec argv inside the script whose `sh SCRIPT` line build-engine printed first."""
    run = shlex.split(out.strip().splitlines()[0])
    assert run[0] == "sh"
    exec_line = Path(run[1]).read_text().strip().splitlines()[-1]
    return shlex.split(exec_line)[1:]  # drop "exec"


def test_cli_without_tensorrt_prints_trtexec_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    path = fake_bundle(tmp_path, image_precisions=("fp32", "fp16"))
    rc = cli_main(["build-engine", str(path), "--precision", "fp16", "--batch", "1,2,8", "--workspace", "256",
                   "--timing-cache", "--tower", "image"])
    out, err = capsys.readouterr()
    assert rc == 3 and "TensorRT not installed" in err and "--adopt" in err
    cmd = _printed_trtexec(out)
    assert cmd[0] == JETSON_TRTEXEC and "--fp16" in cmd and "--maxShapes=image:8x3x32x32" in cmd
    assert "--memPoolSize=workspace:256M" in cmd and any(c.startswith("--timingCacheFile=") for c in cmd)
    rc = cli_main(["build-engine", str(path), "--precision", "fp16", "--trt-major", "11", "--target", "x86"])
    out, _ = capsys.readouterr()
    cmd = _printed_trtexec(out)
    assert rc == 3 and "--stronglyTyped" in cmd and any("image_encoder_fp16.onnx" in c for c in cmd)
    zpath = fake_bundle(tmp_path, name="z", image_precisions=("fp32", "fp16"), as_zip=True)
    assert cli_main(["build-engine", str(zpath), "--precision", "fp16"]) == 3
    onnx_arg = next(c for c in _printed_trtexec(capsys.readouterr().out) if c.startswith("--onnx="))[7:]
    with Bundle.open(zpath) as b:  # the zip's temp folder is gone; the printed file survives, same bytes
        assert open(onnx_arg, "rb").read() == b.encoder_path("image").read_bytes()


def test_cli_adopt_then_cache_hit(tmp_path, monkeypatch, capsys):
    path = fake_bundle(tmp_path, image_precisions=("fp32", "fp16"))
    built = tmp_path / "from-trtexec.engine"
    built.write_bytes(b"PLAN")
    rc = cli_main(["build-engine", str(path), "--precision", "fp16", "--batch", "1,4,8", "--adopt", str(built),
                   "--trt-version", "10.3.0", "--gpu", "Orin@8.7"])
    assert rc == 0
    adopted = capsys.readouterr().out.strip()
    trt = fake_trt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with Bundle.open(path) as b:
        assert str(ensure_engine(b, "image", "fp16", Profile(1, 4, 8), trt=trt, gpu=GPU)) == adopted
    assert trt.log["builds"] == 0

    def no_gpu():
        raise DeviceError("no CUDA GPU found")
    monkeypatch.setattr("usclip_sdk.engine_build.gpu_info", no_gpu)
    rc = cli_main(["build-engine", str(path), "--precision", "fp16", "--batch", "1,4,8"])  # uses fake trt
    assert rc == 1 and "no CUDA GPU" in capsys.readouterr().err
    monkeypatch.setattr("usclip_sdk.engine_build.gpu_info", lambda: GPU)
    rc = cli_main(["build-engine", str(path), "--precision", "fp16", "--batch", "1,4,8"])
    assert rc == 0 and trt.log["builds"] == 0
    assert json.loads(capsys.readouterr().out)[0]["engine"] == adopted
    with Bundle.open(path) as b:
        with pytest.raises(FileNotFoundError):
            adopt_engine(b, tmp_path / "nope.engine", "image", "fp16", Profile(1, 1, 1), tensorrt_version="10.3.0",
                         gpu=GPU, flavour="flags")
