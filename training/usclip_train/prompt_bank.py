"""The value prompts the prompt-alignment loss (``RunConfig.prompt_loss``) trains against.

Why: the captions of two samples that differ in one descriptor (say the margins) differ in one
or two words, and the soft-label loss pulls such captions *together* (their labels are nearly
the same). Without the attribute graph the anchors of a dimension's values collapsed (cosine
0.957 between "well-defined" and "ill-defined", docs/results.md), and a zero-shot classifier
cannot separate values whose anchors coincide. The bank holds, for every taxonomy value the
training data carries, its *training* template prompts (``taxonomy.prompts(..., "train")``;
evaluation uses the disjoint held-out templates), so the loss can ask each image to pick its
own value among its dimension's values - the decision the SDK makes at inference.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from usclip_sdk import taxonomy

__all__ = ["PromptBank"]


class PromptBank:
    """Tokenised training-template prompts of the supported values, grouped by dimension.

    tokenizer: ``factory.TextTokenizer``; support: field -> values the data carries
    (``train.label_support``); dimensions with fewer than two supported values are left out
    (nothing to tell apart). ``columns[d]`` are the flat label indices (of the 93) of
    dimension d's rows, in bank order.
    """

    def __init__(self, tokenizer, support: Mapping[str, Sequence[str]]):
        rows: list[list[str]] = []
        self.columns: list[torch.Tensor] = []
        self.fields: list[str] = []
        for d in taxonomy.DIMENSIONS:
            carried = set(support.get(d.field, ()))
            values = [v for v in d.values if v in carried]
            if len(values) < 2:
                continue
            self.fields.append(d.field)
            self.columns.append(torch.tensor([taxonomy.class_index(d.field, v) for v in values]))
            rows.extend(taxonomy.prompts(d.field, v, prompt_set="train") for v in values)
        if not rows:
            raise ValueError("prompt bank: the training data carries no dimension with two or more values")
        n_templates = {len(r) for r in rows}
        if len(n_templates) != 1:
            raise ValueError(f"prompt bank: expected one template count per value, found {sorted(n_templates)}")
        flat = tokenizer([t for r in rows for t in r])
        tokens = flat.reshape(len(rows), n_templates.pop(), flat.shape[-1])
        # Trailing columns that are padding in every prompt are dropped: the text tower masks
        # padding out, so the embeddings are the same and the unlocked layers run shorter rows.
        used = int((tokens != tokenizer.pad_id).any(dim=(0, 1)).nonzero().max()) + 1
        self.tokens = tokens[..., :used].contiguous()

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def sizes(self) -> list[int]:
        return [len(c) for c in self.columns]

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One template per value (V x L), drawn with ``generator``: every step sees other
        phrasings, so the anchors learn the value, not one sentence."""
        pick = torch.randint(self.tokens.shape[1], (len(self),), generator=generator)
        return self.tokens[torch.arange(len(self)), pick]
