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

__all__ = ["Encoders", "TorchEncoders", "from_open_clip"]


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


class TorchEncoders:
    """Batched, no-grad encoding with a torch model (what ``from_open_clip`` wraps)."""

    def __init__(self, model: torch.nn.Module, load: Callable[[str], torch.Tensor], tokenizer: Callable,
                 device: torch.device, batch_size: int, num_workers: int, amp: bool, trim_padding: bool):
        self.model, self.load, self.tokenizer = model, load, tokenizer
        self.device, self.batch_size, self.num_workers = device, batch_size, num_workers
        self.amp = amp
        self.amp_dtype = (torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported()
                          else torch.float16)
        self.param_dtype = next((p.dtype for p in model.parameters()), torch.float32)
        self.pad_id = getattr(tokenizer, "pad_id", None) if trim_padding else None

    def run(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> np.ndarray:
        """``fn(x)`` in eval mode under inference_mode (+ autocast); the mode is restored."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                # pixels follow the model's dtype (a checkpoint loaded in fp16); token ids stay int
                dtype = self.param_dtype if x.is_floating_point() else x.dtype
                y = fn(x.to(self.device, dtype=dtype, non_blocking=True))
        finally:
            self.model.train(was_training)
        return y.float().cpu().numpy()

    def encode_image(self, paths: Sequence[str | Path]) -> np.ndarray:
        loader = torch.utils.data.DataLoader(_ImageFiles(paths, self.load), batch_size=self.batch_size,
                                             num_workers=self.num_workers, shuffle=False,
                                             pin_memory=self.device.type == "cuda")
        out = [self.run(self.model.encode_image, x) for x in loader]
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        texts, bs = list(texts), self.batch_size
        if not texts:
            return np.zeros((0, 0), np.float32)
        if self.pad_id is None:
            out = [self.run(self.model.encode_text, self.tokenizer(texts[i:i + bs]))
                   for i in range(0, len(texts), bs)]
            return l2_normalize(np.concatenate(out))
        return l2_normalize(self._encode_trimmed(texts))

    def _encode_trimmed(self, texts: list[str]) -> np.ndarray:
        # Prompts are ~12 tokens but padded to the context length (77+): batches of similar
        # length, cut after their last real token, do several times less work. Exact for
        # towers that mask padding (HF BERT) or slice positions (open_clip's text transformer).
        ids = self.tokenizer(texts)
        real = (ids != self.pad_id).long()
        length = (real * torch.arange(1, ids.shape[1] + 1)).amax(dim=1).clamp(min=1)
        order = torch.argsort(length, descending=True, stable=True)
        out: np.ndarray | None = None
        for i in range(0, len(texts), self.batch_size):
            idx = order[i:i + self.batch_size]
            y = self.run(self.model.encode_text, ids[idx, :int(length[idx].max())])
            if out is None:
                out = np.empty((len(texts), y.shape[1]), np.float32)
            out[idx.numpy()] = y
        return out


def from_open_clip(model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, *,
                   device: str | torch.device | None = None, batch_size: int = 64,
                   num_workers: int = 0, amp: bool | None = None, name: str = "model",
                   image_transform: Callable[[str], torch.Tensor] | None = None,
                   trim_padding: bool = True) -> Encoders:
    """Encoders over an open_clip-like model.

    preprocess: a ``usclip_sdk.pixels.PreprocessSpec`` (the project's region-crop contract, see ``images``)
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
    use_amp = (dev.type == "cuda") if amp is None else bool(amp)
    t = TorchEncoders(model, load, tokenizer, dev, batch_size, num_workers, use_amp, trim_padding)
    return Encoders(encode_image=t.encode_image, encode_text=t.encode_text, name=name)
