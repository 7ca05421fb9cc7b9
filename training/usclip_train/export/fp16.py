"""fp16 ONNX variants with fp32 islands for the numerically fragile ops.

LayerNorm after attention overflows in fp16 (its variance sums squares of activations that
reach the hundreds), softmax needs an fp32 exp/sum, and the final L2 norm is a sum of D
squares. The conversion keeps those op types (``onnx_export.FP32_OP_TYPES``) in fp32 with Casts
around them and keeps fp32 graph inputs/outputs, so the runtime feeds the same tensors as the
fp32 model. TensorRT 11 builds a strongly typed network from this file: the islands are the
"LayerNorm kept fp32" of that path.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["convert_fp16"]


def _toposort(graph) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (Kahn)."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    users: dict[int, list[int]] = {}
    waiting = []
    for i, n in enumerate(graph.node):
        deps = {producer[x] for x in n.input if x in producer}
        waiting.append(len(deps))
        for d in deps:
            users.setdefault(d, []).append(i)
    order = [i for i, w in enumerate(waiting) if w == 0]
    for i in order:  # order grows while we walk it
        for u in users.get(i, []):
            waiting[u] -= 1
            if waiting[u] == 0:
                order.append(u)
    if len(order) != len(graph.node):
        raise ValueError(f"fp16 graph has a cycle: {len(graph.node) - len(order)} nodes cannot be ordered")
    nodes = [type(graph.node[i])() for i in order]
    for c, i in zip(nodes, order):
        c.CopyFrom(graph.node[i])
    del graph.node[:]
    graph.node.extend(nodes)


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write an fp16 copy of ``src`` to ``dst`` (fp32 I/O, FP32_OP_TYPES kept fp32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from .onnx_export import FP32_OP_TYPES

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FP32_OP_TYPES),
                                    disable_shape_infer=False)
    _toposort(half.graph)  # the converter appends the input Casts at the end of the node list
    try:  # full_check: strict type inference - a float16 Range (the zoom head's first trace)
        onnx.checker.check_model(half, full_check=True)  # passes the plain check, and onnxruntime refuses it
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ValueError(f"fp16 export of {Path(src).name}: the converted graph is not valid ONNX: {e}") from None
    dst = Path(dst)
    onnx.save(half, str(dst))
    return dst
