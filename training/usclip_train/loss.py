"""Ultrasound-CLIP losses: symmetric InfoNCE + lambda * semantic soft-label loss.

    L = L_CLIP + lambda * L_SM
    L_SM = 0.6 * MSE(P, S) + 0.4 * KL(softmax(S / tau) || softmax(P / tau))

P is the image-text cosine-similarity matrix (no temperature), S the batch soft labels
(``usclip_train.semantic``), tau = 0.07, both logit matrices clamped to +-50, row-wise,
averaged over the batch rows.

Distributed training ("local loss"): each rank passes its own B normalised features and a
``gather`` that returns every rank's features concatenated in rank order (N = world * B
rows) *with gradient* (``all_gather_with_grad`` here). A rank then computes only its B
rows - its images against all N texts and its texts against all N images - with targets at
``rank * B + i``. Every row
loss is a mean over rows, so the mean of the ranks' losses is the full N x N loss, and since
the gather passes gradients back to their owners, DDP's gradient averaging yields exactly
the gradient of the full-batch loss. A gather *without* gradient would silently drop the
terms in which a rank's features serve as another rank's negatives; don't use one.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .semantic import SoftLabels, TagSimilarity

__all__ = [
    "GatherFn",
    "all_gather_with_grad",
    "gather_rows",
    "ClipLoss",
    "SemanticLoss",
    "UltrasoundClipLoss",
    "PromptAlignmentLoss",
]

GatherFn = Callable[[Tensor], Tensor]
LOGIT_CLAMP = 50.0


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums every rank's gradient and keeps this rank's rows.

    (torch.distributed.nn.functional.all_gather does the same but is deprecated in torch 2.14;
    an all_reduce instead of a reduce_scatter also works on gloo.) Equal B on every rank.
    """

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        ctx.rank, ctx.rows = dist.get_rank(), t.shape[0]
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(t: Tensor) -> Tensor:
    """Concatenate ``t`` from every rank in rank order, gradients flowing back to each owner."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    return _AllGatherWithGrad.apply(t)


def _check_features(image: Tensor, text: Tensor) -> None:
    if image.ndim != 2 or text.ndim != 2 or image.shape != text.shape:
        raise ValueError(f"image_features/text_features: expected two B x D matrices of one shape, "
                         f"found {tuple(image.shape)} and {tuple(text.shape)}")


def _gather(gather: GatherFn | None, t: Tensor, rank: int) -> tuple[Tensor, int]:
    """(all rows, offset of this rank's rows); offset from rank * local batch size."""
    if gather is None:
        return t, 0
    full = gather(t)
    if full.shape[0] % t.shape[0] or full.shape[1:] != t.shape[1:]:
        raise ValueError(f"gather: expected (world * {t.shape[0]}) x {tuple(t.shape[1:])} rows, "
                         f"found {tuple(full.shape)}")
    offset = rank * t.shape[0]
    if offset + t.shape[0] > full.shape[0]:
        raise ValueError(f"rank: {rank} is outside a gathered batch of {full.shape[0]} rows "
                         f"({t.shape[0]} per rank)")
    return full, offset


def gather_rows(image: Tensor, text: Tensor, gather: GatherFn | None = None,
                rank: int = 0) -> tuple[Tensor, Tensor, int]:
    """(all images N x D, all texts N x D, offset of this rank's rows), one gather each."""
    _check_features(image, text)
    all_image, offset = _gather(gather, image, rank)
    all_text, _ = _gather(gather, text, rank)
    return all_image, all_text, offset


def _infonce(image: Tensor, text: Tensor, all_image: Tensor, all_text: Tensor,
             logit_scale: Tensor | float, offset: int) -> tuple[Tensor, Tensor]:
    """(symmetric InfoNCE, P = image @ all_text.T without temperature) for this rank's rows."""
    p = image @ all_text.T
    per_text = logit_scale * (text @ all_image.T)
    targets = torch.arange(image.shape[0], device=image.device) + offset
    loss = (F.cross_entropy(logit_scale * p, targets) + F.cross_entropy(per_text, targets)) / 2
    return loss, p


class ClipLoss(nn.Module):
    """Symmetric InfoNCE: (CE(image -> text) + CE(text -> image)) / 2.

    forward(image_features B x D, text_features B x D, logit_scale) -> scalar. Features are
    expected L2-normalised; ``logit_scale`` is the *multiplier* (``model.logit_scale.exp()``,
    as open_clip returns it), so the learnable temperature lives in the model.
    """

    def __init__(self, gather: GatherFn | None = None, rank: int = 0) -> None:
        super().__init__()
        self.gather = gather
        self.rank = rank

    def forward(self, image_features: Tensor, text_features: Tensor,
                logit_scale: Tensor | float) -> Tensor:
        image, text = image_features.float(), text_features.float()
        all_image, all_text, offset = gather_rows(image, text, self.gather, self.rank)
        return _infonce(image, text, all_image, all_text, logit_scale, offset)[0]


class SemanticLoss(nn.Module):
    """L_SM = mse_weight * MSE(P, S) + kl_weight * KL(softmax(S/tau) || softmax(P/tau)).

    forward(similarity P: B x N, soft_labels S: B x N) -> scalar. Both are row-wise: the MSE
    is the mean over a row's N entries, the KL the sum over a row's N classes, and each is
    averaged over the B rows. S/tau and P/tau are clamped to +-``clamp`` before the softmax.
    """

    def __init__(self, tau: float = 0.07, mse_weight: float = 0.6, kl_weight: float = 0.4,
                 clamp: float = LOGIT_CLAMP) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau: expected a positive temperature, found {tau}")
        self.tau, self.mse_weight, self.kl_weight, self.clamp = tau, mse_weight, kl_weight, clamp

    def forward(self, similarity: Tensor, soft_labels: Tensor) -> Tensor:
        if similarity.shape != soft_labels.shape or similarity.ndim != 2:
            raise ValueError(f"similarity/soft_labels: expected two B x N matrices of one shape, "
                             f"found {tuple(similarity.shape)} and {tuple(soft_labels.shape)}")
        p, s = similarity.float(), soft_labels.float()
        mse = ((p - s) ** 2).mean(dim=1).mean()
        log_q = F.log_softmax((s / self.tau).clamp(-self.clamp, self.clamp), dim=1)
        log_p = F.log_softmax((p / self.tau).clamp(-self.clamp, self.clamp), dim=1)
        kl = (log_q.exp() * (log_q - log_p)).sum(dim=1).mean()
        return self.mse_weight * mse + self.kl_weight * kl


class UltrasoundClipLoss(nn.Module):
    """L = L_CLIP + lambda * L_SM, returning named terms.

    forward(image_features B x D, text_features B x D, logit_scale, labels B x 93 | None)
    -> {"loss", "clip", "semantic"} (scalars; "semantic" is detached when lambda is 0 and
    0 when lambda is 0 and no labels are given). Under DDP the same ``gather`` collects the
    labels, so S's rows are this rank's samples against all N.
    """

    def __init__(self, similarity: TagSimilarity | None = None, lambda_sm: float = 1.0,
                 tau: float = 0.07, gather: GatherFn | None = None, rank: int = 0) -> None:
        super().__init__()
        if lambda_sm < 0:
            raise ValueError(f"lambda_sm: expected >= 0, found {lambda_sm}")
        self.lambda_sm = float(lambda_sm)
        self.gather, self.rank = gather, rank
        self.soft_labels = SoftLabels(similarity)
        self.semantic = SemanticLoss(tau=tau)

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor | float,
                labels: Tensor | None = None) -> dict[str, Tensor]:
        image, text = image_features.float(), text_features.float()
        all_image, all_text, offset = gather_rows(image, text, self.gather, self.rank)
        clip, p = _infonce(image, text, all_image, all_text, logit_scale, offset)
        if labels is None:
            if self.lambda_sm > 0:
                raise ValueError("labels: expected a B x 93 multi-hot tensor when lambda_sm > 0, found None")
            return {"loss": clip, "clip": clip.detach(), "semantic": torch.zeros_like(clip)}
        all_labels, _ = _gather(self.gather, labels.to(image.dtype), self.rank)
        s = self.soft_labels(labels, all_labels, diagonal_offset=offset)
        if self.lambda_sm == 0:
            with torch.no_grad():
                sem = self.semantic(p, s)
            return {"loss": clip, "clip": clip.detach(), "semantic": sem}
        sem = self.semantic(p, s)
        return {"loss": clip + self.lambda_sm * sem, "clip": clip.detach(), "semantic": sem.detach()}


class PromptAlignmentLoss(nn.Module):
    """Each image picks its own value among its dimension's value prompts (our addition).

    forward(image_features B x D, prompt_features V x D, logit_scale, labels B x 93,
    columns: per dimension the flat label indices of its rows of ``prompt_features``, in order)
    -> scalar: the mean over dimensions of the cross-entropy of ``logit_scale * image @ prompts_d.T``
    against the image's values in d (a uniform target over them when it has several). Images
    without a value in d do not take part in d; dimensions no image of the batch is tagged in
    are skipped (0 when none is). This is the decision the zero-shot classifier makes, trained
    on the training templates while evaluation uses held-out ones (``usclip_train.prompt_bank``).
    """

    def forward(self, image_features: Tensor, prompt_features: Tensor, logit_scale: Tensor | float,
                labels: Tensor, columns: list[Tensor], weights: list[Tensor] | None = None) -> Tensor:
        """``weights``: per dimension a B-vector of sample weights (``balance.DiagnosisBalance``);
        each dimension's cross-entropy is then their weighted mean over its tagged images."""
        if sum(len(c) for c in columns) != prompt_features.shape[0]:
            raise ValueError(f"columns: expected {prompt_features.shape[0]} indices in all (one per prompt "
                             f"row), found {sum(len(c) for c in columns)}")
        logits = logit_scale * (image_features.float() @ prompt_features.float().T)
        total, n, start = logits.new_zeros(()), 0, 0
        if weights is not None and len(weights) != len(columns):
            raise ValueError(f"weights: expected one vector per dimension ({len(columns)}), found {len(weights)}")
        for d, cols in enumerate(columns):
            stop = start + len(cols)
            target = labels[:, cols.to(labels.device)].float()
            rows = target.sum(1) > 0
            if bool(rows.any()):
                t = target[rows] / target[rows].sum(1, keepdim=True)
                ce = -(t * F.log_softmax(logits[rows, start:stop], dim=1)).sum(1)
                if weights is None:
                    total = total + ce.mean()
                else:
                    w = weights[d][rows].to(ce)
                    total = total + (w * ce).sum() / w.sum().clamp(min=1e-8)
                n += 1
            start = stop
        return total / max(n, 1)
