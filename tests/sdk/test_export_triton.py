"""Triton repository: every config.pbtxt parses as protobuf text format with Triton's ModelConfig
schema (tritonclient's model_config_pb2), dynamic batching and max batch are set, model files are
the bundle's bytes, and a cached engine becomes a tensorrt_plan model."""
from __future__ import annotations

import json

import numpy as np
import pytest
from _export_helpers import fake_bundle

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")
from google.protobuf import text_format  # noqa: E402

from usclip_sdk.bundle import Bundle  # noqa: E402
from usclip_sdk.cli import main as cli_main  # noqa: E402
from usclip_sdk.engine_cache import EngineKey, cache_dir_for, write_sidecar  # noqa: E402
from usclip_sdk.triton_repo import TritonModel, model_config_text  # noqa: E402


def _parse(path):
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def test_onnx_repository(tmp_path, capsys):
    path = fake_bundle(tmp_path, image_size=48, context=20)
    out = tmp_path / "export"
    assert cli_main(["export-triton", str(path), "--out", str(out), "--max-batch", "16", "--instances", "2"]) == 0
    repo = out / "model_repository"
    # a real tritonserver polls every folder in the repository as a model: nothing else may be there
    assert sorted(p.name for p in repo.iterdir()) == ["usclip_classify", "usclip_image", "usclip_text"]
    assert all((p / "config.pbtxt").is_file() and (p / "1").is_dir() for p in repo.iterdir())
    img, txt = _parse(repo / "usclip_image" / "config.pbtxt"), _parse(repo / "usclip_text" / "config.pbtxt")
    assert img.platform == "onnxruntime_onnx" and img.max_batch_size == 16
    assert list(img.input[0].dims) == [3, 48, 48] and img.input[0].data_type == pb.TYPE_FP32
    assert img.output[0].name == "image_embedding" and list(img.output[0].dims) == [8]
    assert list(img.dynamic_batching.preferred_batch_size) == [8, 16]
    assert img.instance_group[0].count == 2 and img.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert [i.name for i in txt.input] == ["input_ids", "attention_mask"]
    assert all(i.data_type == pb.TYPE_INT64 and list(i.dims) == [20] for i in txt.input)
    with Bundle.open(path) as b:
        assert (repo / "usclip_image" / "1" / "model.onnx").read_bytes() == b.encoder_path("image").read_bytes()
        np.testing.assert_array_equal(np.load(out / "client" / "class_embeddings.npy"), b.class_embeddings())
    assert json.loads((out / "client" / "manifest.json").read_text())["model"]["name"] == "fake"
    readme = (out / "README.md").read_text()
    assert "tritonserver --model-repository" in readme and "No TensorRT plan" in readme
    assert not (repo / "usclip_image_trt").exists()
    assert cli_main(["export-triton", str(path), "--out", str(out)]) == 1  # not empty, no --overwrite


def test_cached_engine_becomes_tensorrt_plan(tmp_path):
    path = fake_bundle(tmp_path, image_precisions=("fp32", "fp16"))
    with Bundle.open(path) as b:
        key = EngineKey("image", b.file_sha256("image_encoder.onnx"), "10.3.0", "Orin", "8.7", "fp16", (1, 4, 8))
    cache = cache_dir_for(path)
    cache.mkdir()
    engine = cache / key.filename()
    engine.write_bytes(b"PLAN")
    write_sidecar(engine, key)
    stale = EngineKey("image", "f" * 64, "10.3.0", "Orin", "8.7", "fp16", (1, 4, 32))  # another bundle's
    (cache / stale.filename()).write_bytes(b"OTHER")
    write_sidecar(cache / stale.filename(), stale)
    out = tmp_path / "export"
    assert cli_main(["export-triton", str(path), "--out", str(out), "--kind", "cpu"]) == 0
    repo = out / "model_repository"
    plan = _parse(repo / "usclip_image_trt" / "config.pbtxt")
    assert plan.platform == "tensorrt_plan" and plan.max_batch_size == 8  # the profile MAX, not more
    assert (repo / "usclip_image_trt" / "1" / "model.plan").read_bytes() == b"PLAN"
    assert _parse(repo / "usclip_image" / "config.pbtxt").instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    assert "TensorRT 10.3.0 on Orin" in (out / "README.md").read_text()


def test_pipeline_model_config(tmp_path):
    path = fake_bundle(tmp_path)
    out = tmp_path / "export"
    assert cli_main(["export-triton", str(path), "--out", str(out), "--kind", "cpu", "--max-batch", "4"]) == 0
    model = out / "model_repository" / "usclip_classify"
    cfg = _parse(model / "config.pbtxt")
    assert cfg.backend == "python" and cfg.max_batch_size == 4
    frame = cfg.input[0]
    assert frame.name == "frame" and frame.data_type == pb.TYPE_UINT8 and list(frame.dims) == [-1] * 3
    from usclip_sdk import taxonomy
    fields = [d.field for d in taxonomy.DIMENSIONS]
    assert [o.name for o in cfg.output] == [*fields, "scores"] and len(fields) == 9
    assert all(o.data_type == pb.TYPE_STRING for o in cfg.output[:9]) and list(cfg.output[9].dims) == [9]
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    bundle_name = cfg.parameters["bundle"].string_value
    assert (model / "1" / bundle_name).exists()
    assert "usclip_sdk.triton_backend" in (model / "1" / "model.py").read_text()


def test_config_validation():
    m = TritonModel("x", "onnxruntime_onnx", (("image", "float32", (3, 8, 8)),), ("e", 4), 0)
    with pytest.raises(ValueError, match="max_batch_size"):
        model_config_text(m)
    m = TritonModel("x", "onnxruntime_onnx", (("image", "bool", (3, 8, 8)),), ("e", 4), 2)
    with pytest.raises(ValueError, match="dtype 'bool'"):
        model_config_text(m)
