"""ONNX export of the two towers, each ending in an L2 normalisation.

Image: ``image`` float32 B x 3 x H x W -> ``image_embedding`` float32 B x D.
Text:  ``input_ids`` int64 B x L, ``attention_mask`` int64 B x L -> ``text_embedding`` B x D.
Token ids are int64 because that is what the SDK's tokenizer (``usclip_sdk.text_tokenize``)
produces and what BERT's Gather takes without a Cast. The mask is an input (not derived from
``ids != pad`` inside the graph) so a runtime may pad to the longest prompt instead of the
full context length; for any padding the masked mean pooling gives the same embedding.

The text encoder is the HF tower alone (transformer, pooler, projection): the attribute-graph
module is a training-time fusion and never exported. Export is TorchScript-based
(``dynamo=False``), opset 17 (ONNX LayerNormalization, which TensorRT maps to its
normalisation layer), batch (and text length) dynamic, with the MHA fast path disabled (its
fused op has no ONNX symbolic).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OPSET", "ImageTower", "TextTower", "ExportedTower", "export_image_encoder",
           "export_text_encoder", "fp32_node_names"]

OPSET = 17
# Op types whose fp16 numerics are unsafe (large-sum reductions, exp): kept fp32 in the fp16
# ONNX and pinned to fp32 on TensorRT 10 builds. Anything that feeds a LayerNorm/softmax/
# L2 norm through a reduction belongs here.
FP32_OP_TYPES = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceL2", "Pow", "Sqrt")


class ImageTower(nn.Module):
    """model.visual followed by L2 normalisation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.visual = model.visual

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(image), dim=-1)


class TextTower(nn.Module):
    """open_clip's HF text tower (transformer -> pooler -> projection), mask as an input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        text = getattr(model, "text", None)
        if text is None or not all(hasattr(text, a) for a in ("transformer", "pooler", "proj")):
            raise TypeError(
                "export_text_encoder: expected an open_clip model with a HuggingFace text tower "
                f"(model.text with transformer/pooler/proj), found {type(text).__name__}")
        self.text = text

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text.transformer(input_ids=input_ids, attention_mask=attention_mask)
        pooled = self.text.pooler(out, attention_mask)
        return F.normalize(self.text.proj(pooled), dim=-1)


@dataclass(frozen=True)
class ExportedTower:
    path: Path
    inputs: tuple[tuple[str, str], ...]  # (name, numpy dtype)
    output: str
    fp32_nodes: tuple[str, ...]


@contextlib.contextmanager
def _export_mode():
    # The fused MHA fast path ('aten::_native_multi_head_attention') has no ONNX symbolic.
    prev = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)


def fp32_node_names(onnx_path: str | Path) -> tuple[str, ...]:
    """Names of the nodes whose op type is in FP32_OP_TYPES (TensorRT layer names follow them)."""
    import onnx

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    return tuple(n.name for n in g.node if n.op_type in FP32_OP_TYPES)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], output: str,
            dynamic: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _export_mode(), torch.no_grad():
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=[output], dynamic_axes=dynamic,
                          do_constant_folding=True)


def export_image_encoder(model: nn.Module, path: str | Path, image_size: tuple[int, int]) -> ExportedTower:
    """Write the image tower to ``path`` (fp32); batch is dynamic."""
    path = Path(path)
    tower = ImageTower(model).float().cpu().eval()
    dummy = torch.zeros(2, 3, *image_size)
    _export(tower, (dummy,), path, ["image"], "image_embedding",
            {"image": {0: "batch"}, "image_embedding": {0: "batch"}})
    return ExportedTower(path, (("image", "float32"),), "image_embedding", fp32_node_names(path))


def export_text_encoder(model: nn.Module, path: str | Path, context_length: int) -> ExportedTower:
    """Write the text tower to ``path`` (fp32); batch and sequence length are dynamic."""
    path = Path(path)
    tower = TextTower(model).float().cpu().eval()
    ids = torch.ones(2, context_length, dtype=torch.int64)
    mask = torch.ones(2, context_length, dtype=torch.int64)
    mask[1, context_length // 2:] = 0  # a padded row, so no mask branch is constant-folded away
    _export(tower, (ids, mask), path, ["input_ids", "attention_mask"], "text_embedding",
            {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
             "text_embedding": {0: "batch"}})
    return ExportedTower(path, (("input_ids", "int64"), ("attention_mask", "int64")), "text_embedding",
                         fp32_node_names(path))
