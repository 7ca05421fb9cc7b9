"""Half-size ONNX files that still compute in fp32: weights stored as float16.

Every large float32 initializer becomes a float16 initializer followed by a Cast back to
float32 under the original name. onnxruntime (and TensorRT) fold the Cast once when the
session is created, so inference runs the fp32 graph on weights rounded to fp16 (relative
error <= 2**-11 per weight); the file is about half the size. This is how the shipped model
fits the 40 MB budget without fp16 arithmetic (which onnxruntime's CPU provider runs slowly
and which needs care around LayerNorm). Inputs, outputs and every activation stay float32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["store_weights_fp16"]


def store_weights_fp16(src: str | Path, dst: str | Path, min_elements: int = 1024) -> Path:
    """Rewrite ``src`` into ``dst`` with float32 initializers of >= ``min_elements`` stored as
    float16 (small ones - biases, norms, scales - stay float32: they cost nothing)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    keep, casts = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            keep.append(init)
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            keep.append(init)
            continue
        half = arr.astype(np.float16)
        if not np.all(np.isfinite(half)):
            raise ValueError(f"{src}: initializer {init.name!r} overflows float16 "
                             f"(max |w| = {float(np.abs(arr).max()):.3g})")
        stored = f"{init.name}__fp16"
        keep.append(numpy_helper.from_array(half, stored))
        casts.append(helper.make_node("Cast", [stored], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts first keeps the graph topologically sorted
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return Path(dst)
