"""Encoders: the two functions the evaluation needs, from a model in memory.

``Encoders.encode_image(paths) -> N x D`` and ``Encoders.encode_text(texts) -> N x D``
(float32 numpy, unit rows). ``from_open_clip`` wraps any open_clip-like model (methods
``encode_image(pixels)`` and ``encode_text(tokens)``) with its preprocess and tokenizer:
batched, ``torch.inference_mode``, eval mode restored afterwards, optional autocast on CUDA,
images decoded and preprocessed by a DataLoader (``num_workers`` processes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .images import image_loader
from .metrics import l2_normalize

__all__ = ["Encoders", "from_open_clip"]


@dataclass(frozen=True)
class Encoders:
    """A pair of encoding functions and a name for the results file."""

    encode_image: Callable[[Sequence[str | Path]], np.ndarray]
    encode_text: Callable[[Sequence[str]], np.ndarray]
    name: str = "model"


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str | Path], load: Callable[[str], torch.Tensor]):
        self.paths, self.load = [str(p) for p in paths], load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.load(self.paths[i])


def _resolve_device(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def from_open_clip(model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, *,
                   device: str | torch.device | None = None, batch_size: int = 64,
                   num_workers: int = 0, amp: bool | None = None, name: str = "model",
                   image_transform: Callable[[str], torch.Tensor] | None = None,
                   trim_padding: bool = True) -> Encoders:
    """Encoders over an open_clip-like model.

    preprocess: a ``PreprocessConfig`` (the project's region-crop contract, see ``images``)
    or a PIL transform (open_clip's). ``image_transform`` (path -> 3 x H x W tensor) overrides
    both, e.g. to evaluate with exactly the training data pipeline.
    device: the model is moved there once, here (default: it stays where it is).
    amp: autocast the towers (bf16, or fp16 where bf16 is unsupported); default on for CUDA.
    trim_padding: when the tokenizer has ``pad_id``, encode texts in length-sorted batches
    cut after their last real token (same embeddings, far less work for short prompts).
    Outputs are float32 unit rows either way.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, found {batch_size}")
    dev = _resolve_device(model, device)
    model.to(dev)
    load = image_transform or image_loader(preprocess)
    p_dtype = next((p.dtype for p in model.parameters()), torch.float32)
    use_amp = (dev.type == "cuda") if amp is None else bool(amp)
    amp_dtype = torch.bfloat16 if dev.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16

    def run(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> np.ndarray:
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp):
                # pixels follow the model's dtype (a checkpoint loaded in fp16); token ids stay int
                x = x.to(dev, dtype=p_dtype if x.is_floating_point() else x.dtype, non_blocking=True)
                y = fn(x)
        finally:
            model.train(was_training)
        return y.float().cpu().numpy()

    def encode_image(paths: Sequence[str | Path]) -> np.ndarray:
        loader = torch.utils.data.DataLoader(_ImageFiles(paths, load), batch_size=batch_size,
                                             num_workers=num_workers, shuffle=False,
                                             pin_memory=dev.type == "cuda")
        out = [run(model.encode_image, x) for x in loader]
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    pad_id = getattr(tokenizer, "pad_id", None) if trim_padding else None

    def encode_text(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), np.float32)
        if pad_id is None:
            out = [run(model.encode_text, tokenizer(texts[i:i + batch_size]))
                   for i in range(0, len(texts), batch_size)]
            return l2_normalize(np.concatenate(out))
        return l2_normalize(_encode_trimmed(texts))

    def _encode_trimmed(texts: list[str]) -> np.ndarray:
        # Prompts are ~12 tokens but padded to the context length (77+): batches of similar
        # length, cut after their last real token, do several times less work. Exact for
        # towers that mask padding (HF BERT) or slice positions (open_clip's text transformer).
        ids = tokenizer(texts)
        real = (ids != pad_id).long()
        length = (real * torch.arange(1, ids.shape[1] + 1)).amax(dim=1).clamp(min=1)
        order = torch.argsort(length, descending=True, stable=True)
        out: np.ndarray | None = None
        for i in range(0, len(texts), batch_size):
            idx = order[i:i + batch_size]
            y = run(model.encode_text, ids[idx, :int(length[idx].max())])
            if out is None:
                out = np.empty((len(texts), y.shape[1]), np.float32)
            out[idx.numpy()] = y
        return out

    return Encoders(encode_image=encode_image, encode_text=encode_text, name=name)
