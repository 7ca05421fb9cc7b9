"""The paper's evaluation protocol: zero-shot classification per UDAF dimension (acc1,
mean per-class recall, AvgAcc/AvgRecall), image<->text retrieval R@k, a linear probe on
frozen image features, results.json + report.md. Definitions: docs/evaluation.md.

``metrics`` is numpy only; ``zeroshot`` builds class weights from any ``encode_text``;
``encoders`` wraps an open_clip-like model; ``runner.evaluate`` ties them together.
"""
from .encoders import Encoders, from_open_clip
from .linear_probe import ProbeConfig, linear_probe
from .metrics import classification_metrics, retrieval_metrics, zeroshot_metrics
from .runner import SplitEmbeddings, embed_split, evaluate, evaluate_embeddings, load_samples, write_results
from .zeroshot import class_weights, flat_class_embeddings

__all__ = [
    "Encoders",
    "from_open_clip",
    "ProbeConfig",
    "linear_probe",
    "classification_metrics",
    "retrieval_metrics",
    "zeroshot_metrics",
    "SplitEmbeddings",
    "embed_split",
    "evaluate",
    "evaluate_embeddings",
    "load_samples",
    "write_results",
    "class_weights",
    "flat_class_embeddings",
]
