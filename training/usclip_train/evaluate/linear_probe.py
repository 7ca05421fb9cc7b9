"""Linear probe: multinomial logistic regression on frozen image features, per dimension.

Protocol (CLIP / CLIP_benchmark style, made deterministic):
- features are standardised with the training split's mean and std;
- per dimension, samples without a tag are dropped; a multi-tag sample's target is the
  uniform distribution over its tags (soft cross-entropy), so it is neither duplicated nor
  forced to one tag;
- the objective is scikit-learn's: ``C * sum_i CE_i + ||W||^2 / 2`` (bias not penalised);
  C is chosen from a small sweep by acc1 on a held-out part of the training split (a seeded
  ``val_fraction`` of it, or an explicit validation split), ties going to the smaller C
  (stronger penalty); the probe is then refitted on all training samples with that C;
- fitting is full-batch L-BFGS (scipy's L-BFGS-B, as sklearn's ``lbfgs`` solver) on numpy
  float64: it converges to the unique optimum of this convex problem with no learning rate to
  tune, and numpy BLAS stays fast on a loaded CPU where torch's thread pool of tiny ops does not;
- the test split is scored with ``metrics.classification_metrics`` (same definitions as
  zero-shot).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .metrics import classification_metrics

__all__ = ["ProbeConfig", "fit_logistic", "linear_probe"]


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of the probe; defaults are what ``usclip eval --linear-probe`` runs."""

    c_sweep: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strength, sklearn's C
    max_iter: int = 500           # L-BFGS iterations per fit
    val_fraction: float = 0.2     # share of train held out for the sweep when no val split is given
    seed: int = 0                 # the held-out split's permutation

    def __post_init__(self) -> None:
        if not self.c_sweep or min(self.c_sweep) <= 0:
            raise ValueError(f"c_sweep: expected one or more positive values, found {self.c_sweep}")


# Below this many multiply-adds per objective evaluation, multi-threaded BLAS costs more in
# thread wake-ups than it saves (measured 40x slower on a loaded 2-core machine).
_SMALL_PROBLEM = 1 << 24


def _blas_threads(work: int):
    """One BLAS thread for small fits (threadpoolctl, when installed); no change otherwise."""
    if work < _SMALL_PROBLEM:
        try:
            from threadpoolctl import threadpool_limits

            return threadpool_limits(limits=1, user_api="blas")
        except ImportError:
            pass
    return contextlib.nullcontext()


def _soft_targets(t: np.ndarray) -> np.ndarray:
    t = t.astype(np.float64)
    return t / np.maximum(t.sum(axis=1, keepdims=True), 1.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Weights (D x K) and bias (K) minimising ``c * sum_i CE(y_i, softmax(x_i W + b)) + ||W||^2 / 2``.

    ``y`` is N x K soft targets (rows sum to 1).
    """
    from scipy.optimize import minimize

    if c <= 0:
        raise ValueError(f"c: expected > 0, found {c}")
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    d, k = x.shape[1], y.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d * k].reshape(d, k), theta[d * k:]
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -c * float((y * logp).sum()) + 0.5 * float((w * w).sum())
        g = c * (np.exp(logp) - y)          # dLoss/dz
        grad = np.concatenate([(x.T @ g + w).ravel(), g.sum(axis=0)])
        return loss, grad

    with _blas_threads(x.shape[0] * d * k):
        res = minimize(objective, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "gtol": 1e-6, "ftol": 64 * np.finfo(float).eps})  # sklearn
    return res.x[:d * k].reshape(d, k), res.x[d * k:]


def _scores(x: np.ndarray, wb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return x @ wb[0] + wb[1]


def _probe_one(xtr: np.ndarray, ttr: np.ndarray, xte: np.ndarray, tte: np.ndarray,
               val: tuple[np.ndarray, np.ndarray] | None, cfg: ProbeConfig) -> dict:
    keep = ttr.any(axis=1)
    xtr, ttr = xtr[keep], ttr[keep]
    present = int(ttr.any(axis=0).sum())
    if present < 2:
        return {"skipped": f"{present} class(es) with training samples; a probe needs 2"}
    if val is None:
        perm = np.random.default_rng(cfg.seed).permutation(len(ttr))
        n_val = max(1, int(round(cfg.val_fraction * len(ttr))))
        vi, fi = perm[:n_val], perm[n_val:]
        val_x, val_t, fit_x, fit_t = xtr[vi], ttr[vi], xtr[fi], ttr[fi]
    else:
        vk = val[1].any(axis=1)
        val_x, val_t, fit_x, fit_t = val[0][vk], val[1][vk], xtr, ttr
    sweep: dict[float, float] = {}
    for c in (cfg.c_sweep if len(cfg.c_sweep) > 1 else ()):  # one C: nothing to choose
        wb = fit_logistic(fit_x, _soft_targets(fit_t), c, cfg.max_iter)
        acc = classification_metrics(_scores(val_x, wb), val_t, topk=(1,))["acc1"]
        sweep[c] = -1.0 if acc is None else acc
    best = max(sweep, key=lambda c: (sweep[c], -c)) if sweep else cfg.c_sweep[0]  # ties: stronger penalty
    wb = fit_logistic(xtr, _soft_targets(ttr), best, cfg.max_iter)
    out = classification_metrics(_scores(xte, wb), tte)
    out["C"] = best
    out["val_acc1"] = {str(c): v for c, v in sweep.items()}
    out["n_train"] = int(len(ttr))
    return out


def linear_probe(train_x: np.ndarray, train_targets: Mapping[str, np.ndarray],
                 test_x: np.ndarray, test_targets: Mapping[str, np.ndarray],
                 config: ProbeConfig = ProbeConfig(),
                 val: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None) -> dict:
    """Per-dimension probe metrics plus their averages (AvgAcc, AvgRecall).

    ``*_targets[field]`` is N x C multi-hot; ``val`` optionally gives (features, targets) of
    a validation split for the sweep instead of holding out part of train.
    """
    train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x/test_x: expected 2-D arrays of equal width, found {train_x.shape} "
                         f"and {test_x.shape}")
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6

    def prep(a: np.ndarray) -> np.ndarray:
        return (np.asarray(a, np.float64) - mean) / std

    xtr, xte = prep(train_x), prep(test_x)
    xval = prep(np.asarray(val[0], np.float32)) if val is not None else None
    per_dim = {}
    for field, ttr in train_targets.items():
        if field not in test_targets:
            raise ValueError(f"test_targets: missing dimension {field!r}")
        v = (xval, np.asarray(val[1][field], bool)) if val is not None else None
        per_dim[field] = _probe_one(xtr, np.asarray(ttr, bool), xte, np.asarray(test_targets[field], bool), v, config)
    used = [f for f, m in per_dim.items() if "skipped" not in m and m["n_samples"] > 0]
    return {
        "AvgAcc": float(np.mean([per_dim[f]["acc1"] for f in used])) if used else None,
        "AvgRecall": float(np.mean([per_dim[f]["mean_per_class_recall"] for f in used])) if used else None,
        "dimensions_averaged": used,
        "per_dimension": per_dim,
    }
