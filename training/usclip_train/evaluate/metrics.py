"""Classification and retrieval metrics of the evaluation protocol, on plain numpy arrays.

Nothing here knows about models: inputs are embeddings, scores and multi-hot targets, so the
same numbers come out whether the embeddings came from a torch model, an ONNX bundle or a
test's hand-made vectors. Definitions (docs/evaluation.md states them for readers):

Classification (one UDAF dimension, C classes, targets N x C multi-hot):
- A sample with no tag in the dimension is excluded from that dimension.
- Each remaining sample is resolved to one *reference tag*: the top-1 prediction when it is
  one of the sample's tags, else the sample's tag the model scored highest. For single-tag
  data this is simply the label, so every metric below is the usual single-label one.
- acc1 = fraction of samples whose top-1 prediction is one of their tags (= trace of the
  confusion matrix / N). acc5 (top-k) = fraction with any tag among the k best classes;
  reported only when k < C (otherwise it is trivially 1).
- Confusion matrix rows = reference tag, columns = top-1 prediction. Per-class recall =
  diagonal / row sum over classes with support; mean per-class recall = their mean
  (balanced accuracy), classes absent from the evaluated samples are left out.
- Ties between class scores go to the lower class index (numpy argmax / stable sort).
- Binary dimensions also get ROC AUC of score[1] - score[0] over single-tag samples.
- ece: expected calibration error (15 equal-width bins) of the top-1 softmax probability at
  the evaluation's logit scale, with its reliability bins (usclip_sdk.calibration); a
  bundle's fitted calibration is measured by bench/triage_eval.py.

Retrieval (image i <-> text j, ``text_to_image[j]`` is the image text j was paired with):
- The match of a text is its own image; the matches of an image are the texts paired with
  it (several when the same image appears in several pairs). Identical caption strings on
  different images are still negatives: R@k is then a lower bound, and ``n_duplicate_texts``
  is reported.
- Rank of a query = 1 + number of non-matching candidates scoring >= the best match (ties
  count against the query, so a collapsed model cannot score well). R@k = fraction of
  queries with rank <= k.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from usclip_sdk.calibration import confidence_figures

__all__ = [
    "l2_normalize",
    "targets_for",
    "zeroshot_logits",
    "reference_tags",
    "confusion_matrix",
    "binary_auc",
    "classification_metrics",
    "zeroshot_metrics",
    "retrieval_ranks",
    "recall_at_k",
    "rank_metrics",
    "retrieval_metrics",
]

_EPS = 1e-12
# Half-width of the band around a text's estimated own score inside which the comparison is
# redone with the exact product value (float32 dot products by different paths differ ~1e-7).
_BAND = 1e-5


def _as_2d(name: str, x: object) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, found shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise TypeError(f"{name}: expected a numeric array, found dtype {a.dtype}")
    return a


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32; an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), _EPS)


def targets_for(labels: Sequence[Mapping[str, Iterable[str]]], field: str) -> np.ndarray:
    """Multi-hot targets N x C (bool) of one dimension from labels dicts (taxonomy order).

    ``labels[i][field]`` holds canonical or case-variant values (see taxonomy.parse_record);
    a missing field or an empty tuple gives an all-false row.
    """
    from usclip_sdk import taxonomy

    dim = taxonomy.dimension(field)
    out = np.zeros((len(labels), len(dim)), dtype=bool)
    for i, lab in enumerate(labels):
        for value in lab.get(field, ()) or ():
            out[i, dim.index(value)] = True
    return out


def zeroshot_logits(image_emb: np.ndarray, weights: np.ndarray, scale: float = 100.0,
                    normalize: bool = True) -> np.ndarray:
    """``scale * image @ W.T``; ``weights`` is C x D (one row per class)."""
    img = _as_2d("image_emb", image_emb)
    w = _as_2d("weights", weights)
    if img.shape[1] != w.shape[1]:
        raise ValueError(f"weights: expected width {img.shape[1]} (image_emb), found {w.shape[1]}")
    if normalize:
        img, w = l2_normalize(img), l2_normalize(w)
    return scale * (np.asarray(img, np.float32) @ np.asarray(w, np.float32).T)


def _check_scores_targets(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = _as_2d("scores", scores).astype(np.float64, copy=False)
    t = _as_2d("targets", targets).astype(bool, copy=False)
    if s.shape != t.shape:
        raise ValueError(f"targets: expected shape {s.shape} (same as scores), found {t.shape}")
    return s, t


def reference_tags(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference tag, top-1 prediction) per sample; reference is -1 where there is no tag."""
    s, t = _check_scores_targets(scores, targets)
    pred = s.argmax(axis=1) if s.shape[1] else np.zeros(len(s), dtype=np.int64)
    ref = np.where(t, s, -np.inf).argmax(axis=1) if s.shape[1] else pred.copy()
    hit = t[np.arange(len(t)), pred] if s.shape[1] else np.zeros(len(s), dtype=bool)
    ref = np.where(hit, pred, ref)
    ref[~t.any(axis=1)] = -1
    return ref.astype(np.int64), pred.astype(np.int64)


def confusion_matrix(reference: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts C x C, rows = reference class, columns = predicted class (reference -1 skipped)."""
    ref = np.asarray(reference, dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64)
    keep = ref >= 0
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (ref[keep], pred[keep]), 1)
    return cm


def binary_auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC (Mann-Whitney, ties count 1/2); None when a class is absent."""
    score = np.asarray(score, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # average ranks over ties, 1-based
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(scores: np.ndarray, targets: np.ndarray,
                           topk: Sequence[int] = (1, 5)) -> dict:
    """Metrics of one dimension (definitions in the module docstring).

    Returns a JSON-able dict: n_samples (with a tag), n_multi_tag, n_classes_present,
    acc1 and acc{k} (None when k >= C or no sample), mean_per_class_recall, per_class_recall
    (None for classes without support), support, confusion (list of lists), auc (binary only).
    """
    s, t = _check_scores_targets(scores, targets)
    n_classes = s.shape[1]
    keep = t.any(axis=1)
    s, t = s[keep], t[keep]
    ref, pred = reference_tags(s, t)
    cm = confusion_matrix(ref, pred, n_classes)
    support = cm.sum(axis=1)
    recall = [float(cm[c, c] / support[c]) if support[c] else None for c in range(n_classes)]
    present = [r for r in recall if r is not None]
    out: dict = {
        "n_samples": int(len(s)),
        "n_multi_tag": int((t.sum(axis=1) > 1).sum()),
        "n_classes": n_classes,
        "n_classes_present": len(present),
        "mean_per_class_recall": float(np.mean(present)) if present else None,
        "per_class_recall": recall,
        "support": support.tolist(),
        "confusion": cm.tolist(),
    }
    order = np.argsort(-s, axis=1, kind="stable")
    for k in topk:
        if k < 1:
            raise ValueError(f"topk: expected positive integers, found {k}")
        if len(s) == 0 or (k > 1 and k >= n_classes):
            out[f"acc{k}"] = None
            continue
        hits = np.take_along_axis(t, order[:, :k], axis=1).any(axis=1)
        out[f"acc{k}"] = float(hits.mean())
    if n_classes == 2:
        single = t.sum(axis=1) == 1
        out["auc"] = binary_auc(s[single, 1] - s[single, 0], t[single, 1])
    return out


def zeroshot_metrics(image_emb: np.ndarray, class_weights: Mapping[str, np.ndarray],
                     targets: Mapping[str, np.ndarray], topk: Sequence[int] = (1, 5),
                     scale: float = 100.0) -> dict:
    """Zero-shot classification for each dimension in ``class_weights`` plus the averages.

    ``targets[field]`` is N x C multi-hot. AvgAcc / AvgRecall average acc1 / mean per-class
    recall over the dimensions that have at least one tagged sample; ``dimensions_averaged``
    lists them.
    """
    per_dim: dict[str, dict] = {}
    for field, w in class_weights.items():
        if field not in targets:
            raise ValueError(f"targets: missing dimension {field!r}; found {sorted(targets)}")
        logits = zeroshot_logits(image_emb, w, scale=scale)
        per_dim[field] = classification_metrics(logits, targets[field], topk=topk)
        per_dim[field].update(confidence_figures(logits, targets[field]))  # ECE + reliability bins
    used = [f for f, m in per_dim.items() if m["n_samples"] > 0]
    return {
        "AvgAcc": float(np.mean([per_dim[f]["acc1"] for f in used])) if used else None,
        "AvgRecall": float(np.mean([per_dim[f]["mean_per_class_recall"] for f in used])) if used else None,
        "dimensions_averaged": used,
        "per_dimension": per_dim,
    }


def retrieval_ranks(image_emb: np.ndarray, text_emb: np.ndarray,
                    text_to_image: np.ndarray | None = None, chunk: int = 1024,
                    normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks (image->text per image, text->image per text); images with no text get 0.

    Similarities are computed ``chunk`` queries at a time, so memory stays chunk x N.
    """
    img = _as_2d("image_emb", image_emb)
    txt = _as_2d("text_emb", text_emb)
    if img.shape[1] != txt.shape[1]:
        raise ValueError(f"text_emb: expected width {img.shape[1]} (image_emb), found {txt.shape[1]}")
    if text_to_image is None:
        if len(img) != len(txt):
            raise ValueError(f"text_to_image: needed when counts differ ({len(img)} images, {len(txt)} texts)")
        text_to_image = np.arange(len(txt))
    t2i = np.asarray(text_to_image, dtype=np.int64)
    if t2i.shape != (len(txt),) or (len(t2i) and (t2i.min() < 0 or t2i.max() >= len(img))):
        raise ValueError(f"text_to_image: expected {len(txt)} indices in [0, {len(img)}), found shape {t2i.shape}")
    if chunk < 1:
        raise ValueError(f"chunk: expected >= 1, found {chunk}")
    if normalize:
        img, txt = l2_normalize(img), l2_normalize(txt)
    img, txt = np.asarray(img, np.float32), np.asarray(txt, np.float32)
    # One pass over the image x text similarities, ``chunk`` image rows at a time. Rows give
    # each image's rank directly. Columns (texts) are counted against the text's own score,
    # estimated up front (einsum); the few entries within BAND of that estimate are kept and
    # compared at the end with the own score exactly as the matrix product computed it, so
    # ties are decided on the same numbers as the rows (and the product is done once).
    est = np.einsum("ij,ij->i", img[t2i], txt)
    own = np.empty(len(txt), dtype=np.float32)
    i2t = np.zeros(len(img), dtype=np.int64)
    ahead_t = np.zeros(len(txt), dtype=np.int64)
    band_cols, band_vals = [], []
    for lo in range(0, len(img), chunk):
        sim = img[lo:lo + chunk] @ txt.T
        match = t2i[None, :] == np.arange(lo, lo + len(sim))[:, None]
        r, c = np.nonzero(match)
        own[c] = sim[r, c]
        best = np.where(match, sim, -np.inf).max(axis=1, initial=-np.inf)
        ahead = ((sim >= best[:, None]) & ~match).sum(axis=1)
        i2t[lo:lo + len(sim)] = np.where(match.any(axis=1), 1 + ahead, 0)
        ahead_t += ((sim > est[None, :] + _BAND) & ~match).sum(axis=0)
        br, bc = np.nonzero((np.abs(sim - est[None, :]) <= _BAND) & ~match)
        band_cols.append(bc)
        band_vals.append(sim[br, bc])
    if band_cols:
        bc, bv = np.concatenate(band_cols), np.concatenate(band_vals)
        np.add.at(ahead_t, bc, (bv >= own[bc]).astype(np.int64))
    return i2t, 1 + ahead_t


def recall_at_k(ranks: np.ndarray, ks: Iterable[int]) -> dict[int, float]:
    """Fraction of queries with 0 < rank <= k (rank 0 marks a query with no match: skipped)."""
    r = np.asarray(ranks, dtype=np.int64)
    r = r[r > 0]
    return {int(k): (float((r <= k).mean()) if len(r) else float("nan")) for k in ks}


def rank_metrics(i2t_ranks: np.ndarray, t2i_ranks: np.ndarray,
                 ks: Sequence[int] = (1, 5, 10, 50)) -> dict:
    """R@k both directions from ranks (``retrieval_ranks``), CLIP_benchmark names plus aliases.

    ``text_retrieval_recall@k`` = image->text (``i2t_R@k``); ``image_retrieval_recall@k`` =
    text->image (``t2i_R@k``), as in LAION CLIP_benchmark. Also median ranks and counts.
    """
    i2t, t2i = np.asarray(i2t_ranks, np.int64), np.asarray(t2i_ranks, np.int64)
    r_i2t, r_t2i = recall_at_k(i2t, ks), recall_at_k(t2i, ks)
    out: dict = {}
    for k in ks:
        out[f"text_retrieval_recall@{k}"] = r_i2t[k]
        out[f"image_retrieval_recall@{k}"] = r_t2i[k]
    for k in ks:
        out[f"i2t_R@{k}"] = r_i2t[k]
        out[f"t2i_R@{k}"] = r_t2i[k]
    valid = i2t[i2t > 0]
    out["i2t_median_rank"] = float(np.median(valid)) if len(valid) else None
    out["t2i_median_rank"] = float(np.median(t2i)) if len(t2i) else None
    out["n_images"], out["n_texts"] = int(len(i2t)), int(len(t2i))
    return out


def retrieval_metrics(image_emb: np.ndarray, text_emb: np.ndarray,
                      text_to_image: np.ndarray | None = None,
                      ks: Sequence[int] = (1, 5, 10, 50), chunk: int = 1024) -> dict:
    """``rank_metrics`` of ``retrieval_ranks(image_emb, text_emb, text_to_image)``."""
    i2t, t2i = retrieval_ranks(image_emb, text_emb, text_to_image, chunk=chunk)
    return rank_metrics(i2t, t2i, ks)
