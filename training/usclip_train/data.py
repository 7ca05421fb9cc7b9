"""A torch Dataset over the US-365K layout: frame -> tensor, caption -> tokens, labels -> 93-hot.

Pixels follow the project's one preprocessing contract (docs/architecture.md): crop to the
imaging region, fill outside the region mask with black, stretch-resize with pixel-centre
bilinear (antialiased when downscaling, PIL's filter), normalise with mean/std, NCHW. The
region comes from ``root/masks/<media_name>`` when the data set has it (the synthetic writer
stores the true mask) and from ``usclip_sdk.region.detect_region`` otherwise; burned-in text
around the scan (a preset label such as "THY") would otherwise leak the answer.

The resize is ``torch.nn.functional.interpolate(mode="bilinear", antialias=True,
align_corners=False)``, which computes the same triangle-filter weights as the SDK's
``ops.preprocess`` and its numpy reference (tests/test_train_data.py checks it against
``preprocess_reference``).

Augmentation (training only, mild so the runtime's pixels stay in distribution): a random
crop of 80-100% of the region's area (aspect 0.9-1.1) resized back, and gain/gamma jitter of
+-10%. Its randomness comes from ``(seed, epoch, index)`` alone, never from global RNG state,
so a resumed run sees exactly the samples and crops an uninterrupted run would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from usclip_sdk import taxonomy

__all__ = ["labels_to_multihot", "region_crop", "resize_normalize", "FrameTransform", "UltrasoundDataset",
           "Batch", "collate"]

N_CLASSES = len(taxonomy.class_names())


def labels_to_multihot(labels) -> np.ndarray:
    """Labels dict (field -> canonical values) -> float32 vector of 93 (zeros where untagged)."""
    out = np.zeros(N_CLASSES, dtype=np.float32)
    for field, values in labels.items():
        for v in values:
            out[taxonomy.class_index(field, v)] = 1.0
    return out


def region_crop(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Crop to the mask's bounding box with black outside the mask (whole frame when None)."""
    if mask is None:
        return rgb
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask: expected shape {rgb.shape[:2]}, found {mask.shape}")
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return rgb
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = rgb[y0:y1, x0:x1]
    return np.where(mask[y0:y1, x0:x1, None] != 0, crop, 0).astype(np.uint8)


def resize_normalize(img: torch.Tensor, size: Sequence[int], mean: Sequence[float],
                     std: Sequence[float]) -> torch.Tensor:
    """uint8/float 0..255 H x W x 3 -> 3 x h x w float32 (resize, /255, mean/std)."""
    x = img.permute(2, 0, 1).unsqueeze(0).float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x / 255.0 - m) / s)[0]


class FrameTransform:
    """Image path -> model input (3 x h x w float32) by the preprocessing contract.

    Usable on its own, e.g. as ``evaluate(..., image_transform=FrameTransform(pre, root/"masks"))``
    so evaluation sees exactly the training pixels. ``base(path)`` is the region-cropped frame
    resized to the model size, uint8 (what the dataset caches).
    """

    def __init__(self, preprocess, mask_dir: str | os.PathLike | None = None,
                 cache: dict | None = None):
        # cache: path -> base frame; may be shared by datasets and evaluation of one process
        self.cache = cache
        self.size = tuple(int(s) for s in preprocess.size)
        self.mean, self.std = tuple(preprocess.mean), tuple(preprocess.std)
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None

    def mask(self, path: str, rgb: np.ndarray) -> np.ndarray:
        """The stored region mask of this frame, else automatic detection."""
        if self.mask_dir is not None:
            import cv2

            mpath = self.mask_dir / Path(str(path).split("::")[-1]).name
            if mpath.is_file():
                m = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
                if m is not None and m.shape == rgb.shape[:2]:
                    return m
        from usclip_sdk.region import detect_region

        return detect_region(rgb).mask

    def base(self, path: str) -> np.ndarray:
        from usclip_data.sample import load_rgb

        if self.cache is not None and path in self.cache:
            return self.cache[path]
        rgb = load_rgb(path)
        crop = region_crop(rgb, self.mask(path, rgb))
        x = torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).float()
        x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        out = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        if self.cache is not None:
            self.cache[path] = out
        return out

    def __call__(self, path: str) -> torch.Tensor:
        return resize_normalize(torch.from_numpy(self.base(path)), self.size, self.mean, self.std)


@dataclass
class Batch:
    """A collated batch: images N x 3 x h x w, tokens N x L, labels N x 93, dataset indices N."""

    images: torch.Tensor
    tokens: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def to(self, device) -> "Batch":
        return Batch(self.images.to(device, non_blocking=True), self.tokens.to(device, non_blocking=True),
                     self.labels.to(device, non_blocking=True), self.index)


def collate(items: Sequence[tuple]) -> Batch:
    images, tokens, labels, index = zip(*items)
    return Batch(torch.stack(images), torch.stack(tokens), torch.stack(labels),
                 torch.tensor(index, dtype=torch.long))


class UltrasoundDataset(Dataset):
    """Samples (a ``US365K`` split or any sequence of ``Sample``) as training tensors.

    samples: sequence of ``usclip_data.sample.Sample``.
    preprocess: the model's PreprocessConfig (size, mean, std).
    tokenizer: ``factory.TextTokenizer``; captions are tokenised once, up front.
    mask_dir: folder of region masks named like the images (None: ``detect_region``).
    augment / seed: training augmentation; call ``set_epoch`` each epoch.
    template_captions: with augmentation, the probability that a sample's caption is replaced by
        a label-template prompt (``taxonomy.prompts``) for one of its tags, picked at random -
        the UniMed-CLIP way of turning labels into text; it teaches the text side the exact
        phrasing zero-shot classification uses. 0 keeps the report captions only.
    cache: keep each region-cropped frame, already resized to the model size, as uint8
    (True: a private dict; a dict: shared, keyed by image path).
    """

    def __init__(self, samples, preprocess, tokenizer, mask_dir: str | os.PathLike | None = None,
                 augment: bool = False, seed: int = 0, cache: bool | dict = True,
                 template_captions: float = 0.0):
        self.samples = list(samples)
        if not self.samples:
            raise ValueError("samples: expected at least one sample, found none")
        shared = cache if isinstance(cache, dict) else ({} if cache else None)
        self.frames = FrameTransform(preprocess, mask_dir, cache=shared)
        self.size, self.mean, self.std = self.frames.size, self.frames.mean, self.frames.std
        self.augment, self.seed, self.epoch = bool(augment), int(seed), 0
        self.tokens = tokenizer([s.caption for s in self.samples])
        self.labels = torch.from_numpy(np.stack([labels_to_multihot(s.labels) for s in self.samples]))
        if not 0.0 <= template_captions <= 1.0:
            raise ValueError(f"template_captions: expected a probability in [0, 1], found {template_captions}")
        self.template_captions = float(template_captions)
        self._prompts = self._prompt_tokens(tokenizer) if self.template_captions > 0 else None

    @classmethod
    def from_root(cls, root, split, preprocess, tokenizer, max_samples: int | None = None, **kw):
        """A split of a US-365K-layout folder; ``root/masks/`` is used when present."""
        from usclip_data.us365k import US365K

        samples = list(US365K(root, split))[:max_samples]
        masks = Path(root) / "masks"
        return cls(samples, preprocess, tokenizer, mask_dir=masks if masks.is_dir() else None, **kw)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def base_image(self, i: int) -> np.ndarray:
        """Frame i cropped to its imaging region and resized to the model size (uint8)."""
        return self.frames.base(self.samples[i].image_path)

    def _augment(self, img: np.ndarray, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        h, w = img.shape[:2]
        area = rng.uniform(0.8, 1.0) * h * w
        ratio = np.exp(rng.uniform(np.log(0.9), np.log(1.1)))
        ch = int(min(h, round(np.sqrt(area / ratio))))
        cw = int(min(w, round(np.sqrt(area * ratio))))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        x = torch.from_numpy(np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])).float()
        gain, gamma = rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)
        x = (255.0 * (x / 255.0) ** gamma * gain).clamp(0, 255)
        return resize_normalize(x, self.size, self.mean, self.std)

    @staticmethod
    def _prompt_tokens(tokenizer) -> dict:
        """Tokens of every template prompt of every taxonomy value, tokenised once."""
        keys, texts = [], []
        for field, value in taxonomy.class_names():
            for text in taxonomy.prompts(field, value):
                keys.append((field, value))
                texts.append(text)
        toks = tokenizer(texts)
        out: dict = {}
        for k, row in zip(keys, toks):
            out.setdefault(k, []).append(row)
        return out

    def _text(self, i: int) -> torch.Tensor:
        if not (self.augment and self._prompts is not None):
            return self.tokens[i]
        rng = np.random.default_rng([self.seed, self.epoch, i, 1])
        if rng.random() >= self.template_captions:
            return self.tokens[i]
        tags = [(f, v) for f, vs in self.samples[i].labels.items() for v in vs]
        if not tags:
            return self.tokens[i]
        rows = self._prompts[tags[int(rng.integers(len(tags)))]]
        return rows[int(rng.integers(len(rows)))]

    def __getitem__(self, i: int):
        base = self.base_image(i)
        if self.augment:
            image = self._augment(base, i)
        else:
            image = resize_normalize(torch.from_numpy(base), self.size, self.mean, self.std)
        return image, self._text(i), self.labels[i], i
