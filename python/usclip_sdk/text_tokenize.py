"""Free-text tokenization for the exported text encoder, without transformers or torch.

Reproduces the tokenizer the model was trained with (``usclip_train.factory.TextTokenizer``,
``clean`` = "none": the raw text goes to tokenizer.json, whose normaliser lower-cases and cleans;
open_clip's ``HFTokenizer`` cleaning modes are supported for foreign bundles), encodes with
the bundle's tokenizer.json, truncates to ``context_length`` and pads to it with ``pad_id``.
The attention mask is 1 on real tokens (open_clip derives it as ids != pad_id).
"""
from __future__ import annotations

import html
import string
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .bundle_manifest import TextSpec

__all__ = ["tokenize", "clean_text"]


def _basic_clean(text: str) -> str:
    try:  # open_clip runs ftfy.fix_text; it only changes mis-decoded text, so it is optional here
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    return html.unescape(html.unescape(text)).strip()


def clean_text(text: str, mode: str) -> str:
    """"none" (what usclip_train's TextTokenizer does: tokenizer.json normalises) or one of
    open_clip's clean functions: "whitespace", "lower", "canonicalize"."""
    if mode == "none":
        return text
    if mode == "whitespace":
        return " ".join(_basic_clean(text).split()).strip()
    if mode == "lower":
        return " ".join(_basic_clean(text).split()).strip().lower()
    if mode == "canonicalize":
        t = _basic_clean(text).translate(str.maketrans("", "", string.punctuation))
        return " ".join(t.lower().split()).strip()
    raise ValueError(f"clean: expected 'none', 'whitespace', 'lower' or 'canonicalize', found {mode!r}")


@lru_cache(maxsize=8)
def _load(path: str, context_length: int, pad_id: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    pad_token = tok.id_to_token(pad_id)
    if pad_token is None:
        raise ValueError(f"tokenizer {path}: pad_id {pad_id} is not in its vocabulary")
    tok.enable_truncation(max_length=context_length)
    tok.enable_padding(length=context_length, pad_id=pad_id, pad_token=pad_token)
    return tok


def tokenize(tokenizer_json: str | Path, spec: TextSpec, texts: str | Sequence[str]) -> dict[str, np.ndarray]:
    """``{input_ids, attention_mask}`` (names from ``spec.inputs``), int64, B x context_length."""
    if isinstance(texts, str):
        texts = [texts]
    if not all(isinstance(t, str) for t in texts):
        raise TypeError(f"texts: expected str or a sequence of str, found {[type(t).__name__ for t in texts]}")
    tok = _load(str(tokenizer_json), spec.context_length, spec.pad_id)
    enc = tok.encode_batch([clean_text(t, spec.clean) for t in texts])
    ids = np.array([e.ids for e in enc], dtype=np.int64).reshape(len(texts), spec.context_length)
    mask = (ids != spec.pad_id).astype(np.int64)
    names = [t.name for t in spec.inputs]
    dtypes = [np.dtype(t.dtype) for t in spec.inputs]
    out = {names[0]: ids.astype(dtypes[0])}
    if len(names) > 1:
        out[names[1]] = mask.astype(dtypes[1])
    return out
