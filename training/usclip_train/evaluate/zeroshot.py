"""Zero-shot class weights from the taxonomy's prompt ensembles.

Weights of a class = mean of its L2-normalised prompt embeddings, renormalised (the CLIP /
CLIP_benchmark / UniMed-CLIP convention). Text is encoded by any ``encode_text(list[str]) ->
array N x D`` - a torch model through ``encoders.from_open_clip``, an ONNX text tower of a
bundle, or a test's lookup table - in one batched call over every prompt of every class.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from usclip_sdk import taxonomy

from .metrics import l2_normalize

__all__ = ["EncodeText", "class_prompts", "class_weights", "flat_class_embeddings", "split_flat"]

EncodeText = Callable[[Sequence[str]], np.ndarray]


def class_prompts(fields: Sequence[str] | None = None,
                  templates: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[list[str]]]:
    """Prompts per class, per dimension: ``{field: [[prompt, ...] for each value]}``.

    ``templates`` optionally replaces a dimension's templates (``{}`` receives the phrase).
    """
    fields = list(taxonomy.FIELDS if fields is None else fields)
    templates = templates or {}
    out: dict[str, list[list[str]]] = {}
    for field in fields:
        dim = taxonomy.dimension(field)
        out[dim.field] = [taxonomy.prompts(dim.field, v, templates.get(dim.field)) for v in dim.values]
    return out


def class_weights(encode_text: EncodeText, fields: Sequence[str] | None = None,
                  templates: Mapping[str, Sequence[str]] | None = None) -> dict[str, np.ndarray]:
    """Zero-shot weights ``{field: C x D float32}`` (unit rows, taxonomy value order)."""
    prompts = class_prompts(fields, templates)
    flat = [p for per_class in prompts.values() for ps in per_class for p in ps]
    emb = np.asarray(encode_text(flat), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(flat):
        raise ValueError(f"encode_text: expected {len(flat)} x D embeddings, found shape {emb.shape}")
    emb = l2_normalize(emb)
    out: dict[str, np.ndarray] = {}
    pos = 0
    for field, per_class in prompts.items():
        rows = []
        for ps in per_class:
            rows.append(emb[pos:pos + len(ps)].mean(axis=0))
            pos += len(ps)
        out[field] = l2_normalize(np.stack(rows))
    return out


def flat_class_embeddings(weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """All nine dimensions' weights stacked in ``taxonomy.class_names()`` order (93 x D).

    This is the layout of a bundle's ``class_embeddings.npy``.
    """
    missing = [f for f in taxonomy.FIELDS if f not in weights]
    if missing:
        raise ValueError(f"weights: expected all nine dimensions, missing {missing}")
    mats = [np.asarray(weights[f], dtype=np.float32) for f in taxonomy.FIELDS]
    for f, m in zip(taxonomy.FIELDS, mats):
        if m.shape[0] != len(taxonomy.dimension(f)):
            raise ValueError(f"weights[{f!r}]: expected {len(taxonomy.dimension(f))} rows, found {m.shape[0]}")
    return np.concatenate(mats, axis=0)


def split_flat(flat: np.ndarray, class_names: Sequence[tuple[str, str]] | None = None) -> dict[str, np.ndarray]:
    """Inverse of ``flat_class_embeddings``: a 93 x D matrix (e.g. a bundle's
    ``class_embeddings.npy``) -> ``{field: C x D}``; ``class_names`` (default the taxonomy's)
    must list the rows in taxonomy order."""
    flat = np.asarray(flat, dtype=np.float32)
    names = tuple(tuple(n) for n in (class_names or taxonomy.class_names()))
    if names != taxonomy.class_names():
        raise ValueError("class_names: expected the taxonomy's class_names() order "
                         f"({len(taxonomy.class_names())} classes), found {len(names)} different entries")
    if flat.ndim != 2 or flat.shape[0] != len(names):
        raise ValueError(f"flat: expected {len(names)} x D, found shape {flat.shape}")
    return {f: l2_normalize(flat[o:o + n]) for f, o, n in
            zip(taxonomy.FIELDS, taxonomy.group_offsets(), taxonomy.group_sizes())}
