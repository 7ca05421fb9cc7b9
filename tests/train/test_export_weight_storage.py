"""fp16 weight storage: half the bytes, fp32 compute, outputs within fp16 rounding."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sdk_bundle import _image_onnx  # noqa: E402

from usclip_train.export.weight_storage import store_weights_fp16  # noqa: E402


def test_half_size_same_outputs(tmp_path):
    src = tmp_path / "img.onnx"
    src.write_bytes(_image_onnx(seed=3))
    dst = store_weights_fp16(src, tmp_path / "img16.onnx", min_elements=64)
    m = onnx.load(str(dst))
    halves = [i for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert halves and all(i.name.endswith("__fp16") for i in halves)
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    a = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    s = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert s.get_inputs()[0].type == "tensor(float)" and s.get_outputs()[0].type == "tensor(float)"
    b = s.run(None, {"image": x})[0]
    assert b.dtype == np.float32 and np.abs(a - b).max() < 2e-3


def test_small_initializers_untouched_and_overflow_refused(tmp_path):
    src = tmp_path / "img.onnx"
    src.write_bytes(_image_onnx(seed=1))
    same = store_weights_fp16(src, tmp_path / "same.onnx", min_elements=10**6)
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in onnx.load(str(same)).graph.initializer)
    m = onnx.load(str(src))
    w = next(i for i in m.graph.initializer if i.name == "W")
    w.CopyFrom(onnx.numpy_helper.from_array(np.full((48, 16), 1e6, np.float32), "W"))
    onnx.save(m, str(tmp_path / "big.onnx"))
    with pytest.raises(ValueError, match="overflows float16"):
        store_weights_fp16(tmp_path / "big.onnx", tmp_path / "x.onnx", min_elements=64)
