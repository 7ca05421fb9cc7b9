"""Calibrated probabilities and the out-of-distribution score (numpy only).

Fitted once on a validation split (``usclip calibrate``, or ``usclip export`` given validation
data) and stored in the bundle's optional ``calibration`` section (bundle_manifest):

- per taxonomy dimension, a temperature T and per-class logit offsets b (bias-corrected
  temperature scaling): probabilities = softmax(logits / T + b) within the dimension. T and b
  are fitted together by minimising the validation negative log-likelihood of the tagged
  values (a multi-tag frame counts its tags' summed probability); T is then refined, b fixed,
  to the value that minimises the validation ECE (a 1-D search within e^+-1 of it), because
  the NLL optimum of a 2-parameter family is not the ECE optimum. The similarity step applies
  T by dividing each class row of the scoring matrix by its dimension's T (a shared logit
  bias cancels inside a softmax group), and b by reweighting each group's softmax by e^b,
  which is exactly softmax(z + b);
- an OOD score: the Mahalanobis distance of the image embedding to the validation embeddings
  (mean and a shrunk covariance: (1 - a) S + a tr(S)/D I, since a few hundred frames do not
  determine a 256 x 256 covariance). The threshold accepts ``accept`` (95 %) of validation
  frames on out-of-fold scores (5 folds), because in-sample distances are optimistically small;
- confidence thresholds: per dimension, the 10th percentile of the calibrated top-1
  probability on validation frames ("uncertain" = every dimension below its threshold);
- the normal operating point: one more offset on Diagnosis "normal appearance", chosen on the
  validation frames to maximise Youden's J (lesion sensitivity + specificity - 1) of the
  decision the SDK makes, lesion = top-1 Diagnosis is not "normal appearance". The likelihood
  fit does not aim at that decision: the shipped model called 11.4 % of normal test frames
  lesions after it (``fit_normal_offset``).

``ece`` and ``reliability`` are the measures the evaluation report and docs/triage.md use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from . import taxonomy
from .bundle_manifest import CalibrationSpec, OODSpec
from .errors import BundleError

__all__ = ["Calibration", "ece", "reliability", "confidence_figures", "fit_temperature", "fit_temperature_offsets",
           "reweight", "fit_ood", "ood_scores", "fit_normal_offset",
           "fit_calibration", "NORMAL_POINTS", "REFERENCE_NAME", "CONFIDENCE_QUANTILE"]

REFERENCE_NAME = "ood_reference.npy"
CONFIDENCE_QUANTILE = 0.10
_T_RANGE = (0.02, 50.0)
NORMAL_POINTS = ("youden", "sensitivity", "none")
_MAX_OFFSET = 8.0  # e^-8: a class never seen in validation keeps a trace of probability


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Equal-width confidence bins: [{"lo", "hi", "n", "confidence", "accuracy"}] (non-empty bins)."""
    conf, correct = np.asarray(conf, np.float64), np.asarray(correct, np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)  # (lo, hi] bins, 0 in the first
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": int(m.sum()),
                        "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean())})
    return out


def confidence_figures(logits: np.ndarray, tags: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """ECE and reliability bins of softmax(logits) (N x C) against multi-hot ``tags`` (a frame
    is right when its top-1 value is one of its tags; untagged frames are left out)."""
    keep = np.asarray(tags).any(axis=1)
    if not keep.any():
        return {"ece": None, "reliability": []}
    p = _softmax(np.asarray(logits, np.float64)[keep])
    hit = np.asarray(tags)[keep][np.arange(int(keep.sum())), p.argmax(axis=1)]
    return {"ece": ece(p.max(axis=1), hit, bins), "reliability": reliability(p.max(axis=1), hit, bins)}


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error (fraction, not points): sum_b n_b/N |conf_b - acc_b|."""
    n = max(len(conf), 1)
    return float(sum(r["n"] / n * abs(r["confidence"] - r["accuracy"]) for r in reliability(conf, correct, bins)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(logits: np.ndarray, tags: np.ndarray, t: float) -> float:
    p = _softmax(logits / t)
    return float(-np.mean(np.log(np.maximum((p * tags).sum(axis=1), 1e-12))))


def fit_temperature(logits: np.ndarray, tags: np.ndarray, iters: int = 60) -> float:
    """The T minimising the tagged-set NLL of softmax(logits / T): golden-section search on
    log T (the NLL is unimodal in T)."""
    if len(logits) == 0:
        return 1.0
    lo, hi = np.log(_T_RANGE[0]), np.log(_T_RANGE[1])
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(logits, tags, np.exp(a)), _nll(logits, tags, np.exp(b))
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(logits, tags, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(logits, tags, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def fit_temperature_offsets(logits: np.ndarray, tags: np.ndarray, steps: int = 1500,
                            lr: float = 0.05) -> tuple[float, np.ndarray]:
    """T and per-class logit offsets b minimising the tagged-set NLL of softmax(logits / T + b)
    (bias-corrected temperature scaling): Adam on (1/T, b) from the temperature-only fit.

    The offsets correct the class priors the zero-shot text prompts imply: probability leaks
    onto classes the model was never trained on (most organs) and Diagnosis over-calls some
    values. A value never tagged in the split is pushed down to the bound (-_MAX_OFFSET)."""
    k = logits.shape[1]
    if len(logits) == 0:
        return 1.0, np.zeros(k)
    x = np.concatenate([[1.0 / fit_temperature(logits, tags)], np.zeros(k)])
    m1, m2 = np.zeros_like(x), np.zeros_like(x)
    for i in range(1, steps + 1):
        p = _softmax(x[0] * logits + x[1:])
        q = p * tags
        q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-12)
        g = p - q  # d NLL / d logit, per frame
        grad = np.concatenate([[np.mean((g * logits).sum(axis=1))], g.mean(axis=0)])
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad ** 2
        x -= lr * (m1 / (1 - 0.9 ** i)) / (np.sqrt(m2 / (1 - 0.999 ** i)) + 1e-8)
        x[0] = np.clip(x[0], 1.0 / _T_RANGE[1], 1.0 / _T_RANGE[0])
        x[1:] = np.clip(x[1:] - x[1:].mean(), -_MAX_OFFSET, _MAX_OFFSET)  # softmax ignores a shift
    return float(1.0 / x[0]), x[1:].copy()


def offsets_help(logits: np.ndarray, tags: np.ndarray, folds: int = 5, seed: int = 0,
                 min_frames: int = 40) -> tuple[bool, float | None, float | None]:
    """Do the fitted class offsets raise top-1 accuracy on frames they were not fitted on?

    Out-of-fold: for each of ``folds`` folds, fit (T, b) on the other frames and compare the
    held-out frames' top-1 hits of ``logits / T + b`` with those of ``logits`` (a temperature
    alone never changes the answer). Returns (keep, accuracy with, accuracy without); the
    offsets are kept on a tie and, unjudged, when there are fewer than ``min_frames`` frames.
    Offsets fitted for the likelihood can lower accuracy: on the shipped model's Margins they
    cost 14 points on held-out frames (68.9 -> 54.8)."""
    n = len(logits)
    if n < max(min_frames, 2 * folds):
        return True, None, None
    fold = np.random.default_rng(seed).permutation(n) % folds
    with_b = without = 0
    for k in range(folds):
        tr, te = fold != k, fold == k
        t, b = fit_temperature_offsets(logits[tr], tags[tr], steps=600)
        rows = np.flatnonzero(te)
        with_b += int(tags[rows, (logits[te] / t + b).argmax(axis=1)].sum())
        without += int(tags[rows, logits[te].argmax(axis=1)].sum())
    return with_b >= without, with_b / n, without / n


def fit_normal_offset(z: np.ndarray, normal: np.ndarray, col: int, min_sensitivity: float | None = None,
                      min_frames: int = 10) -> tuple[float, dict[str, Any]]:
    """The offset d on column ``col`` (the normal class) of calibrated Diagnosis logits ``z``
    (N x C) that maximises Youden's J of "lesion = argmax is not ``col``" against ``normal``
    (N booleans: the frame is tagged normal); ties go to the d nearest 0. With
    ``min_sensitivity`` instead: the largest d (fewest false alarms) that still calls at least
    that fraction of the lesion frames lesions (the smallest candidate when none does).

    The normal class wins exactly when z_col + d > max of the others, so the decision is a
    threshold on the margin m = z_col - max(others) and only the midpoints between sorted -m
    (and 0) need trying. With fewer than ``min_frames`` normal or lesion frames d = 0.
    Returns (d, figures: the rates on these frames before and after)."""
    z, normal = np.asarray(z, np.float64), np.asarray(normal, bool)
    n_norm, n_les = int(normal.sum()), int((~normal).sum())
    margin = z[:, col] - np.delete(z, col, axis=1).max(axis=1)

    def rates(d: float) -> tuple[float, float]:  # (normal called lesion, lesion called normal)
        called_normal = margin + d > 0
        return float(np.mean(~called_normal[normal])), float(np.mean(called_normal[~normal]))
    fig: dict[str, Any] = {"n_normal": n_norm, "n_lesion": n_les}
    if min(n_norm, n_les) < min_frames:
        return 0.0, {**fig, "offset": 0.0, "fitted": False}
    cuts = np.unique(-margin)
    cand = np.concatenate([[0.0], (cuts[1:] + cuts[:-1]) / 2, [cuts[0] - 1e-3, cuts[-1] + 1e-3]])
    cand = cand[np.abs(cand) <= _MAX_OFFSET]
    r = np.array([rates(d) for d in cand])
    if min_sensitivity is None:
        j = 1 - r.sum(axis=1)
        best = cand[j >= j.max() - 1e-12]
        d = float(best[np.argmin(np.abs(best))])
    else:
        ok = 1 - r[:, 1] >= min_sensitivity
        d = float(cand[ok].max() if ok.any() else cand.min())
    (fa0, miss0), (fa1, miss1) = rates(0.0), rates(d)
    fig["rule"] = "youden" if min_sensitivity is None else f"lesion sensitivity >= {min_sensitivity}"
    return d, {**fig, "offset": round(d, 5), "fitted": True,
               "normal_called_lesion_before": round(fa0, 4), "normal_called_lesion_after": round(fa1, 4),
               "lesion_called_normal_before": round(miss0, 4), "lesion_called_normal_after": round(miss1, 4)}


def _refine_temperature(logits: np.ndarray, tags: np.ndarray, offsets: np.ndarray, t: float) -> float:
    """The T within e^+-1 of ``t`` (81 steps) with the lowest ECE of softmax(logits / T + b)."""
    if len(logits) == 0:
        return t

    def err(x: float) -> float:
        p = _softmax(logits / x + offsets)
        return ece(p.max(axis=1), tags[np.arange(len(tags)), p.argmax(axis=1)])
    grid = np.clip(t * np.exp(np.linspace(-1.0, 1.0, 81)), *_T_RANGE)
    return float(grid[int(np.argmin([err(x) for x in grid]))])


def _ood_stats(emb: np.ndarray, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    mean = emb.mean(axis=0)
    cov = np.cov(emb, rowvar=False)
    d = cov.shape[0]
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / d * np.eye(d)
    return mean, np.linalg.inv(cov)


def ood_scores(emb: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Mahalanobis distance (squared) of each row of ``emb`` (N x D) to the reference."""
    x = np.asarray(emb, np.float32) - mean
    return np.einsum("ij,ij->i", x @ precision, x)


def fit_ood(emb: np.ndarray, accept: float = 0.95, shrinkage: float = 0.1, folds: int = 5,
            seed: int = 0) -> tuple[np.ndarray, float]:
    """Reference ((D + 1) x D float32: mean, precision) and the threshold accepting ``accept``
    of in-distribution frames, set on out-of-fold scores."""
    emb = np.asarray(emb, np.float64)
    if len(emb) < 2 * folds:
        raise ValueError(f"fit_ood: need at least {2 * folds} validation embeddings, found {len(emb)}")
    fold = np.random.default_rng(seed).permutation(len(emb)) % folds
    oof = np.empty(len(emb))
    for k in range(folds):
        oof[fold == k] = ood_scores(emb[fold == k], *_ood_stats(emb[fold != k], shrinkage))
    mean, precision = _ood_stats(emb, shrinkage)
    ref = np.concatenate([mean[None], precision]).astype(np.float32)
    return ref, float(np.quantile(oof, accept))


def _groups(class_names: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    out: dict[str, list[int]] = {}
    for i, (f, _) in enumerate(class_names):
        out.setdefault(f, []).append(i)
    return {f: np.asarray(ix) for f, ix in out.items()}


def _tag_matrix(tags: Sequence[Mapping[str, Sequence[str]]], field: str,
                values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of frames tagged in ``field`` and their boolean tag matrix."""
    pos = {v: j for j, v in enumerate(values)}
    rows = [i for i, t in enumerate(tags) if any(v in pos for v in t.get(field, ()))]
    m = np.zeros((len(rows), len(values)), bool)
    for r, i in enumerate(rows):
        for v in tags[i][field]:
            if v in pos:
                m[r, pos[v]] = True
    return np.asarray(rows, dtype=int), m


def fit_calibration(emb: np.ndarray, tags: Sequence[Mapping[str, Sequence[str]]],
                    class_embeddings: np.ndarray, class_names: Sequence[tuple[str, str]],
                    logit_scale: float, *, accept: float = 0.95, shrinkage: float = 0.1,
                    fitted_on: Mapping[str, Any] | None = None,
                    support: Mapping[str, Sequence[str]] | None = None,
                    normal_point: str = "youden",
                    lesion_sensitivity: float = 0.95) -> tuple[CalibrationSpec, np.ndarray, dict]:
    """Fit everything on validation embeddings (N x D, L2-normalised) and their tags.

    ``support``: the bundle's label support (values per dimension the model was trained on).
    The Classifier's default scope scores only those, so the fit does too: other values get no
    probability and frames tagged only with them are left out of that dimension.

    ``normal_point``: the normal operating point (``fit_normal_offset``): "youden" (the
    default), "sensitivity" (fewest false alarms that keep ``lesion_sensitivity`` of the
    validation lesions called lesions) or "none" (Diagnosis as the likelihood fit put it).

    Returns the manifest section, the OOD reference array (to store as ``REFERENCE_NAME``)
    and per-dimension figures on the fitting split (n, T, ECE before/after).
    """
    if normal_point not in NORMAL_POINTS:
        raise ValueError(f"normal_point: expected one of {NORMAL_POINTS}, found {normal_point!r}")
    if not 0 < lesion_sensitivity <= 1:
        raise ValueError(f"lesion_sensitivity: expected a fraction in (0, 1], found {lesion_sensitivity}")
    emb = np.asarray(emb, np.float32)
    logits = logit_scale * emb @ np.asarray(class_embeddings, np.float32).T
    temps, offsets, thresholds, figures = {}, {}, {}, {}
    for field, ix in _groups(class_names).items():
        values = [class_names[i][1] for i in ix]
        rows, m = _tag_matrix(tags, field, values)
        lg = logits[:, ix]
        if support and field in support:
            keep = np.array([v in support[field] for v in values])
            lg = np.where(keep, lg, -1e4)  # softmax weight e^-1e4 = 0, as the Classifier's scope
            m = m & keep
            rows, m = rows[m.any(axis=1)], m[m.any(axis=1)]
        offsets_kept, oof_with, oof_without = offsets_help(lg[rows], m)
        if offsets_kept:
            t, b = fit_temperature_offsets(lg[rows], m)
        else:  # they would cost accuracy on unseen frames: temperature only
            t, b = fit_temperature(lg[rows], m), np.zeros(lg.shape[1])
        t = _refine_temperature(lg[rows], m, b, t)
        point = None
        if field == "Diagnosis" and normal_point != "none" and taxonomy.NORMAL in values:
            col = values.index(taxonomy.NORMAL)
            d, point = fit_normal_offset(lg[rows] / t + b, m[:, col], col,
                                         lesion_sensitivity if normal_point == "sensitivity" else None)
            b = b.copy()
            b[col] += d
        temps[field], offsets[field] = t, [round(float(x), 5) for x in b]
        b = np.asarray(offsets[field])
        thresholds[field] = float(np.quantile(_softmax(lg / t + b).max(axis=1), CONFIDENCE_QUANTILE))
        if len(rows):
            before, after = _softmax(lg[rows]), _softmax(lg[rows] / t + b)
            hit0 = m[np.arange(len(rows)), before.argmax(axis=1)]
            hit1 = m[np.arange(len(rows)), after.argmax(axis=1)]  # the offsets can change the answer
            figures[field] = {"n": int(len(rows)), "temperature": round(t, 4),
                              "ece_before": round(ece(before.max(axis=1), hit0), 4),
                              "ece_after": round(ece(after.max(axis=1), hit1), 4),
                              "acc_before": round(float(hit0.mean()), 4),
                              "acc_after": round(float(hit1.mean()), 4),
                              "offsets": "kept" if offsets_kept else "dropped (out-of-fold accuracy)",
                              "oof_acc_with_offsets": None if oof_with is None else round(oof_with, 4),
                              "oof_acc_without_offsets": None if oof_without is None else round(oof_without, 4)}
            if point is not None:
                figures[field]["normal_operating_point"] = point
    ref, thr = fit_ood(emb, accept=accept, shrinkage=shrinkage)
    spec = CalibrationSpec(temps, thresholds, offsets, OODSpec("mahalanobis", REFERENCE_NAME, thr, accept, shrinkage),
                           dict(fitted_on or {}, n_frames=int(len(emb))))
    return spec, ref, figures


@dataclass(frozen=True)
class Calibration:
    """The runtime side of a bundle's calibration section."""

    spec: CalibrationSpec
    mean: np.ndarray | None  # OOD reference, or None without one
    precision: np.ndarray | None

    @classmethod
    def from_bundle(cls, bundle: Any) -> "Calibration | None":
        """The bundle's calibration, or None for a bundle without the section (older bundles)."""
        spec = bundle.manifest.calibration
        if spec is None:
            return None
        mean = precision = None
        if spec.ood is not None:
            ref = np.load(bundle.file(spec.ood.reference), allow_pickle=False)
            d = bundle.manifest.model.embed_dim
            if ref.shape != (d + 1, d) or ref.dtype != np.float32 or not np.all(np.isfinite(ref)):
                raise BundleError(f"bundle file {spec.ood.reference!r}: expected finite float32 "
                                  f"{(d + 1, d)}, found {ref.dtype} {ref.shape}")
            mean, precision = ref[0], np.ascontiguousarray(ref[1:])
        return cls(spec, mean, precision)

    def row_scale(self, class_names: Sequence[tuple[str, str]]) -> np.ndarray:
        """1 / T of each class row's dimension (1 where no temperature was fitted)."""
        t = self.spec.temperatures
        return np.asarray([1.0 / t.get(f, 1.0) for f, _ in class_names], np.float32)

    def row_weights(self, class_names: Sequence[tuple[str, str]]) -> np.ndarray:
        """e^b of each class row (1 where no offsets were fitted), in ``class_names`` order."""
        pos: dict[str, int] = {}
        out = np.ones(len(class_names), np.float32)
        offsets = self.spec.offsets or {}
        for i, (f, _) in enumerate(class_names):
            j = pos.get(f, 0)
            pos[f] = j + 1
            if f in offsets:
                out[i] = np.exp(offsets[f][j])
        return out


    def ood(self, emb: np.ndarray) -> float | None:
        """The OOD score of one embedding (None without reference statistics)."""
        if self.mean is None:
            return None
        x = np.asarray(emb, np.float32) - self.mean
        return float(x @ self.precision @ x)


def reweight(probs: np.ndarray, weights: np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """Per-group softmax probabilities (N x sum(groups)) times ``weights``, renormalised within
    each group: softmax(z) * e^b / sum = softmax(z + b)."""
    p = probs * weights
    sizes = np.asarray(groups, dtype=np.intp)
    starts = np.cumsum(sizes) - sizes
    # One reduceat and one divide for all groups (a loop costs ~10 us a group per frame);
    # reduceat cannot take an empty group, and an empty group has nothing to renormalise.
    full = sizes > 0
    sums = np.add.reduceat(p, starts[full], axis=1)
    p /= np.repeat(np.maximum(sums, 1e-30), sizes[full], axis=1)
    return p
