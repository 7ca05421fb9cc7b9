"""usclip_classify's execute() without a server: a fake ``triton_python_backend_utils`` drives
the real TritonPythonModel over the tiny bundle. Covers what a real server cannot be made to do
on demand: a bad request merged by the dynamic batcher with good ones fails alone."""
from __future__ import annotations

import json
import shutil
import sys
import types

import numpy as np
import pytest

pytest.importorskip("onnx")

from sdk_bundle import make_tiny_bundle  # noqa: E402
from test_classifier import screen  # noqa: E402

from usclip_sdk.classifier import Classifier  # noqa: E402
from usclip_sdk.triton_backend import TritonPythonModel, output_names  # noqa: E402


def _fake_pb():
    pb = types.ModuleType("triton_python_backend_utils")

    class TritonError:
        def __init__(self, msg):
            self.msg = msg

    class TritonModelException(Exception):
        pass

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def as_numpy(self):
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.outputs = {t.name: t.array for t in output_tensors}
            self.error = error

    pb.TritonError, pb.TritonModelException, pb.Tensor, pb.InferenceResponse = (
        TritonError, TritonModelException, Tensor, InferenceResponse)
    pb.get_input_tensor_by_name = lambda req, name: req[name]
    return pb


@pytest.fixture()
def model(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb())
    src = make_tiny_bundle(tmp_path / "tiny")
    version = tmp_path / "repo" / "usclip_classify" / "1"
    shutil.copytree(src, version / "bundle")
    from usclip_sdk import taxonomy

    fields = [d.field for d in taxonomy.DIMENSIONS]
    config = {"output": [{"name": n} for n in output_names(fields)],
              "parameters": {"backend": {"string_value": "onnxruntime"}, "bundle": {"string_value": "bundle"}}}
    m = TritonPythonModel()
    m.initialize({"model_config": json.dumps(config), "model_repository": str(version.parent),
                  "model_version": "1", "model_instance_kind": "CPU", "model_instance_name": "t_0"})
    return m, Classifier.from_bundle(src, backend="onnxruntime", device="cpu")


def test_merged_requests_answer_per_request_and_a_bad_one_fails_alone(model):
    m, clf = model
    pb = sys.modules["triton_python_backend_utils"]
    good = [np.stack([screen(1), screen(2)]), screen(3)[None]]
    bad = np.zeros((1, 8, 8, 5), np.uint8)  # five channels
    responses = m.execute([{"frame": pb.Tensor("frame", good[0])}, {"frame": pb.Tensor("frame", bad)},
                           {"frame": pb.Tensor("frame", good[1])}])
    assert [r.error is None for r in responses] == [True, False, True]
    assert responses[1].error.msg.startswith("InvalidInputError:")
    for resp, batch in zip((responses[0], responses[2]), good):
        assert resp.outputs["scores"].shape == (len(batch), 9)
        for i, frame in enumerate(batch):
            want = clf.classify(frame)
            assert [resp.outputs[f][i, 0].decode() for f in clf.fields] == [want.attributes[f].value
                                                                           for f in clf.fields]


def test_outputs_declared_in_another_order_are_refused(tmp_path, monkeypatch):
    pb = _fake_pb()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb)
    version = tmp_path / "m" / "1"
    shutil.copytree(make_tiny_bundle(tmp_path / "tiny"), version / "bundle")
    config = {"output": [{"name": "scores"}], "parameters": {"backend": {"string_value": "onnxruntime"}}}
    with pytest.raises(pb.TritonModelException, match="re-run usclip export-triton"):
        TritonPythonModel().initialize({"model_config": json.dumps(config), "model_repository": str(version.parent),
                                        "model_version": "1", "model_instance_kind": "CPU"})
