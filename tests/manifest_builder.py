"""The one builder of bundle manifests for tests (sdk_bundle, _export_helpers, bundle safety).

Returns the dict ``usclip_sdk.bundle.write_bundle`` takes (it adds format_version, files and
class_embeddings). Encoders are given as ``{precision: path}``; the tensor names are the ones
the exporter writes (image -> image_embedding, input_ids/attention_mask -> text_embedding).
"""
from __future__ import annotations

from typing import Mapping

from usclip_sdk import taxonomy

TEXT_INPUTS = [{"name": "input_ids", "dtype": "int64"}, {"name": "attention_mask", "dtype": "int64"}]


def _encoder(path: str, inputs: list, output: str, fp32_nodes: list | None) -> dict:
    e = {"path": path, "inputs": inputs, "output": output}
    if fp32_nodes is not None:
        e["fp32_nodes"] = list(fp32_nodes)
    return e


def build_manifest(name: str = "tiny-test", embed_dim: int = 8, image_size: int = 32,
                   mean: float = 0.5, std: float = 0.25, logit_scale: float = 100.0,
                   context_length: int = 16, image: Mapping[str, str] | None = None,
                   text: Mapping[str, str] | None = None, templates: bool = True,
                   fp32_nodes: list | None = None, preprocess: Mapping | None = None) -> dict:
    """A complete, valid manifest; ``text={}`` leaves the text tower out."""
    image = {"fp32": "image_encoder.onnx"} if image is None else image
    text = {"fp32": "text_encoder.onnx"} if text is None else text
    enc = {"image": {p: _encoder(path, [{"name": "image", "dtype": "float32"}], "image_embedding", fp32_nodes)
                     for p, path in image.items()}}
    if text:
        enc["text"] = {p: _encoder(path, TEXT_INPUTS, "text_embedding", fp32_nodes) for p, path in text.items()}
    pre = {"image_size": [image_size, image_size], "mean": [mean] * 3, "std": [std] * 3}
    pre.update(preprocess or {})
    return {
        "model": {"name": name, "embed_dim": embed_dim, "logit_scale": logit_scale, "logit_bias": None,
                  "source": {}},
        "preprocess": pre,
        "text": {"tokenizer": "tokenizer.json", "context_length": context_length, "pad_id": 0,
                 "clean": "none", "padding": "max_length", "inputs": TEXT_INPUTS,
                 "output": "text_embedding"},
        "taxonomy": {"version": taxonomy.TAXONOMY_VERSION,
                     "class_names": [list(p) for p in taxonomy.class_names()],
                     "group_sizes": list(taxonomy.group_sizes()),
                     "prompt_templates": ({d.field: list(d.templates) for d in taxonomy.DIMENSIONS}
                                          if templates else {})},
        "encoders": enc,
    }
