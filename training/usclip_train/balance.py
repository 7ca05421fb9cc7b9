"""Per-sample weights that take the diagnosis shortcut out of the prompt-alignment term.

Why: on the synthetic data a descriptor's value depends on the diagnosis (a cyst is always
well-defined, a mass ill-defined 7 times in 10), and the shipped model's Margins answers sit at
the diagnosis-conditional prior (bench/error_breakdown.py: 65.8 % against 68.5 % for answering
from the diagnosis alone): it reads the kind of lesion, not the edge. With
``RunConfig.prompt_balance="diagnosis"`` every value of a dimension carries the same total weight
*within each diagnosis*, so knowing the diagnosis no longer lowers the term; only the pixels that show the
value do. Each diagnosis keeps its total weight (the mix of lesion kinds is unchanged).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from usclip_sdk import taxonomy

__all__ = ["DiagnosisBalance"]

MAX_WEIGHT = 5.0  # a value seen once under a diagnosis must not dominate a batch


class DiagnosisBalance:
    """Weight tables from the training labels (N x 93 multi-hot), one per bank dimension.

    columns: per dimension the flat label indices of its values (``PromptBank.columns``).
    ``weights(labels)`` -> per dimension a B-vector: for a sample tagged with value v under
    diagnosis k, (n_k / K_k) / count(k, v), where n_k counts the samples of diagnosis k tagged
    in the dimension and K_k the values they carry (clipped at ``MAX_WEIGHT``; several tags
    average). Samples without a diagnosis tag, and the Diagnosis dimension itself, weigh 1.
    """

    def __init__(self, train_labels: Tensor, columns: Sequence[Tensor]):
        """Tables live on ``train_labels``' device; build on the training device so that
        ``weights`` moves nothing per step."""
        dx = taxonomy.dimension("Diagnosis")
        lab = train_labels.float()
        self.dx_cols = torch.tensor([taxonomy.class_index("Diagnosis", v) for v in dx.values], device=lab.device)
        self.columns = [c.to(lab.device) for c in columns]
        has_dx = lab[:, self.dx_cols]  # N x K
        self.tables: list[Tensor | None] = []
        for cols in self.columns:
            if set(cols.tolist()) <= set(self.dx_cols.tolist()):
                self.tables.append(None)  # the Diagnosis dimension is not balanced against itself
                continue
            counts = has_dx.T @ lab[:, cols]  # K x V: samples of diagnosis k tagged with value v
            n_k = (has_dx * (lab[:, cols].sum(1, keepdim=True) > 0)).sum(0)  # K
            k_k = (counts > 0).sum(1).clamp(min=1)  # K
            w = (n_k / k_k)[:, None] / counts.clamp(min=1)
            self.tables.append(torch.where(counts > 0, w.clamp(max=MAX_WEIGHT), torch.zeros_like(w)))

    def weights(self, labels: Tensor) -> list[Tensor]:
        lab = labels.float()
        has_dx = lab[:, self.dx_cols]
        n_dx = has_dx.sum(1)
        out = []
        for cols, table in zip(self.columns, self.tables):
            if table is None:
                out.append(torch.ones(len(lab), device=lab.device))
                continue
            vals = lab[:, cols]  # B x V
            # sum over (diagnosis tag, value tag) pairs of the table, averaged over the pairs
            pair = (has_dx @ table * vals).sum(1)
            n_pairs = n_dx * vals.sum(1)
            out.append(torch.where(n_pairs > 0, pair / n_pairs.clamp(min=1), torch.ones_like(pair)))
        return out
