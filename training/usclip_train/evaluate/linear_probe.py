"""Linear probe: multinomial logistic regression on frozen image features, per dimension.

Protocol (CLIP / CLIP_benchmark style, made deterministic):
- features are standardised with the training split's mean and std;
- per dimension, samples without a tag are dropped; a multi-tag sample's target is the
  uniform distribution over its tags (soft cross-entropy), so it is neither duplicated nor
  forced to one tag;
- the L2 penalty is chosen from a small sweep by acc1 on a held-out part of the training
  split (a seeded ``val_fraction`` of it, or an explicit validation split), ties going to
  the stronger penalty; the probe is then refitted on all training samples with that penalty;
- fitting is full-batch L-BFGS (strong Wolfe line search), which converges to the unique
  optimum of this convex problem without learning-rate tuning;
- the test split is scored with ``metrics.classification_metrics`` (same definitions as
  zero-shot).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from .metrics import classification_metrics

__all__ = ["ProbeConfig", "fit_logistic", "linear_probe"]


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of the probe; defaults are what ``usclip eval --linear-probe`` runs."""

    l2_sweep: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)  # penalty on mean loss; ~1/(C*N) in sklearn terms
    max_iter: int = 200           # L-BFGS iterations per fit
    val_fraction: float = 0.2     # share of train held out for the sweep when no val split is given
    seed: int = 0                 # the held-out split's permutation
    device: str = "cpu"


def _soft_targets(t: np.ndarray) -> np.ndarray:
    t = t.astype(np.float32)
    return t / np.maximum(t.sum(axis=1, keepdims=True), 1.0)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float, max_iter: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (D x C) and bias (C) minimising soft cross-entropy + l2 * ||W||^2 / 2."""
    d, c = x.shape[1], y.shape[1]
    w = torch.zeros(d, c, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(c, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logp = torch.log_softmax(x @ w + b, dim=1)
        loss = -(y * logp).sum(dim=1).mean() + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _scores(x: torch.Tensor, wb: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    return (x @ wb[0] + wb[1]).cpu().numpy()


def _probe_one(xtr: torch.Tensor, ttr: np.ndarray, xte: torch.Tensor, tte: np.ndarray,
               val: tuple[torch.Tensor, np.ndarray] | None, cfg: ProbeConfig) -> dict:
    keep = ttr.any(axis=1)
    xtr, ttr = xtr[torch.from_numpy(keep).to(xtr.device)], ttr[keep]
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
        val_x, val_t = val[0][torch.from_numpy(vk).to(xtr.device)], val[1][vk]
        fit_x, fit_t = xtr, ttr
    sweep = {}
    for l2 in cfg.l2_sweep:
        wb = fit_logistic(fit_x, torch.from_numpy(_soft_targets(fit_t)).to(xtr), l2, cfg.max_iter)
        acc = classification_metrics(_scores(val_x, wb), val_t, topk=(1,))["acc1"]
        sweep[l2] = -1.0 if acc is None else acc
    best = max(sweep, key=lambda k: (sweep[k], k))  # ties: stronger penalty
    wb = fit_logistic(xtr, torch.from_numpy(_soft_targets(ttr)).to(xtr), best, cfg.max_iter)
    out = classification_metrics(_scores(xte, wb), tte)
    out["l2"] = best
    out["val_acc1"] = {str(k): v for k, v in sweep.items()}
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
        raise ValueError(f"train_x/test_x: expected 2-D arrays of equal width, found {train_x.shape} and {test_x.shape}")
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    dev = torch.device(config.device)

    def prep(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((a - mean) / std).to(dev, torch.float64)

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
