"""A torch Dataset over the US-365K layout: frame -> tensor, caption -> tokens, labels -> 93-hot.

Pixels come from the project's one pixel path, ``usclip_sdk.pixels.model_input`` - the function
the SDK's Classifier feeds its encoder with - so training and serving see the same pixels
(tests/train/test_pixel_path.py pins it). Frames are decoded by the runtime's decoder
(``usclip_data.sample.load_pixels``); the region comes from the data set's stored mask
(``usclip_data.sample.load_stored_mask``: ``root/masks/<media_name>``, the true mask the
synthetic writer stores) and from ``usclip_sdk.region.detect_region`` otherwise; burned-in text
around the scan (a preset label such as "THY") would otherwise leak the answer.

Augmentation (training only, mild so the runtime's pixels stay in distribution): a random
crop of 80-100% of the region's box (aspect 0.9-1.1) passed to the same pixel function, and
gain/gamma jitter of +-10% on the 0..1 intensities. Its randomness comes from
``(seed, epoch, index)`` alone, never from global RNG state, so a resumed run sees exactly the
samples and crops an uninterrupted run would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from usclip_sdk import taxonomy
from usclip_sdk.pixels import PreprocessSpec, model_input

__all__ = ["labels_to_multihot", "FrameTransform", "UltrasoundDataset", "Batch", "collate"]

N_CLASSES = len(taxonomy.class_names())


def labels_to_multihot(labels) -> np.ndarray:
    """Labels dict (field -> canonical values) -> float32 vector of 93 (zeros where untagged)."""
    out = np.zeros(N_CLASSES, dtype=np.float32)
    for field, values in labels.items():
        for v in values:
            out[taxonomy.class_index(field, v)] = 1.0
    return out


class FrameTransform:
    """Image path -> model input (3 x h x w float32 tensor), by the one pixel path.

    Usable on its own, e.g. as ``evaluate(..., image_transform=FrameTransform(spec, root/"masks"))``
    so evaluation sees exactly the training pixels. ``region_crop(path)`` is the frame cut to
    its region's box with the outside of the mask filled (uint8; what the dataset caches):
    ``model_input`` of it with no region gives the same numbers as of the whole frame with the
    region, because the kernel fills masked pixels before filtering.
    """

    def __init__(self, preprocess: PreprocessSpec, mask_dir: str | os.PathLike | None = None,
                 cache: dict | None = None, use_stored_masks: bool = True):
        if not isinstance(preprocess, PreprocessSpec):
            raise TypeError(f"preprocess: expected a usclip_sdk.pixels.PreprocessSpec, found "
                            f"{type(preprocess).__name__}")
        self.spec = preprocess
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        self.cache = cache  # path -> region crop; may be shared by datasets and evaluation
        self.use_stored_masks = use_stored_masks  # False: always detect, as the SDK does

    def region(self, path: str, pixels: np.ndarray):
        """The frame's imaging region: its stored mask, else automatic detection."""
        from usclip_data.sample import load_stored_mask
        from usclip_sdk.region import detect_region, full_region, region_from_mask

        if self.spec.region == "full":
            return full_region(*pixels.shape[:2])
        m = load_stored_mask(path, pixels.shape[:2], self.mask_dir) if self.use_stored_masks else None
        return region_from_mask(m) if m is not None else detect_region(pixels)

    def region_crop(self, path: str) -> np.ndarray:
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        from usclip_data.sample import load_pixels

        px = load_pixels(path)
        r = self.region(path, px)
        x0, y0, x1, y1 = r.bbox
        crop = px[y0:y1, x0:x1]
        inside = r.mask[y0:y1, x0:x1] != 0
        crop = np.where(inside if crop.ndim == 2 else inside[:, :, None], crop,
                        np.uint8(self.spec.fill_color))  # uint8 either way: no extra copy
        if self.cache is not None:
            self.cache[path] = crop
        return crop

    def tensor(self, crop: np.ndarray, bbox: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        return torch.from_numpy(model_input(crop, bbox, None, self.spec, dtype="float32")[0])

    def __call__(self, path: str) -> torch.Tensor:
        return self.tensor(self.region_crop(path))


@dataclass
class Batch:
    """A collated batch: images N x 3 x h x w, tokens N x L, labels N x 93, dataset indices N,
    lesion squares N x 4 (``UltrasoundDataset.lesion_box``: flag, centre x, centre y, half side)."""

    images: torch.Tensor
    tokens: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    boxes: torch.Tensor | None = None

    def to(self, device) -> "Batch":
        return Batch(self.images.to(device, non_blocking=True), self.tokens.to(device, non_blocking=True),
                     self.labels.to(device, non_blocking=True), self.index,
                     None if self.boxes is None else self.boxes.to(device, non_blocking=True))


def collate(items: Sequence[tuple]) -> Batch:
    images, tokens, labels, index, *rest = zip(*items)
    return Batch(torch.stack(images), torch.stack(tokens), torch.stack(labels),
                 torch.tensor(index, dtype=torch.long), torch.stack(rest[0]) if rest else None)


class UltrasoundDataset(Dataset):
    """Samples (a ``US365K`` split or any sequence of ``Sample``) as training tensors.

    samples: sequence of ``usclip_data.sample.Sample``.
    preprocess: the model's ``usclip_sdk.pixels.PreprocessSpec``.
    tokenizer: ``factory.TextTokenizer``; captions are tokenised once, up front.
    mask_dir: folder of region masks named like the images (None: ``detect_region``).
    augment / seed: training augmentation; call ``set_epoch`` each epoch.
    template_captions: with augmentation, the probability that a sample's caption is replaced by
        a label-template prompt (``taxonomy.prompts``) for one of its tags, picked at random -
        the UniMed-CLIP way of turning labels into text; it teaches the text side the exact
        phrasing zero-shot classification uses. 0 keeps the report captions only.
    cache: keep each frame's region crop (uint8, outside of the mask filled) in memory
    (True: a private dict; a dict: shared, keyed by image path).
    lesion_squares: image path -> ``usclip_data.synth.lesion_box.LesionSquare`` (synthetic
    frames' stored truth; ``from_root`` reads it from cases.jsonl when the folder has one).
    Items are (image, tokens, labels, index, lesion box): the box is where the square lies in
    this item's model input, after augmentation (``lesion_box``); all zeros without one.
    """

    def __init__(self, samples, preprocess, tokenizer, mask_dir: str | os.PathLike | None = None,
                 augment: bool = False, seed: int = 0, cache: bool | dict = True,
                 template_captions: float = 0.0, lesion_squares: dict | None = None):
        self.samples = list(samples)
        self.lesion_squares = dict(lesion_squares or {})
        if not self.samples:
            raise ValueError("samples: expected at least one sample, found none")
        shared = cache if isinstance(cache, dict) else ({} if cache else None)
        self.frames = FrameTransform(preprocess, mask_dir, cache=shared)
        self.spec = preprocess
        # mean/std as 3 x 1 x 1 tensors once, not per augmented sample
        self._mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(preprocess.std, dtype=torch.float32).view(3, 1, 1)
        self.augment, self.seed, self.epoch = bool(augment), int(seed), 0
        self.tokens = tokenizer([s.caption for s in self.samples])
        self.labels = torch.from_numpy(np.stack([labels_to_multihot(s.labels) for s in self.samples]))
        if not 0.0 <= template_captions <= 1.0:
            raise ValueError(f"template_captions: expected a probability in [0, 1], found {template_captions}")
        self.template_captions = float(template_captions)
        self._prompts = self._prompt_tokens(tokenizer) if self.template_captions > 0 else None

    @classmethod
    def from_root(cls, root, split, preprocess, tokenizer, max_samples: int | None = None,
                  on_bad_sample: str = "error", **kw):
        """A split of a US-365K-layout folder; ``root/masks/`` is used when present.
        on_bad_sample "skip": bad samples (images decoded once up front) are left out and
        counted in ``bad_samples`` (usclip_data.faults); "error" raises naming file and line."""
        from usclip_data.synth.lesion_box import read_lesion_squares
        from usclip_data.us365k import US365K

        reader = US365K(root, split, on_bad_sample=on_bad_sample, check_decode=on_bad_sample == "skip")
        samples = list(reader)[:max_samples]
        masks = Path(root) / "masks"
        if "lesion_squares" not in kw:
            by_name = read_lesion_squares(root)
            kw["lesion_squares"] = {s.image_path: by_name[Path(s.image_path).name] for s in samples
                                    if Path(s.image_path).name in by_name}
        ds = cls(samples, preprocess, tokenizer, mask_dir=masks if masks.is_dir() else None, **kw)
        ds.bad_samples = reader.bad_samples
        return ds

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def region_crop(self, i: int) -> np.ndarray:
        """Frame i cut to its imaging region, outside of the mask filled (uint8)."""
        return self.frames.region_crop(self.samples[i].image_path)

    def _augment(self, img: np.ndarray, i: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        """The jittered model input of region crop ``img`` and the window (x0, y0, x1, y1) of
        the crop it shows."""
        rng = np.random.default_rng([self.seed, self.epoch, i])
        h, w = img.shape[:2]
        area = rng.uniform(0.8, 1.0) * h * w
        ratio = np.exp(rng.uniform(np.log(0.9), np.log(1.1)))
        ch = max(1, int(min(h, round(np.sqrt(area / ratio)))))
        cw = max(1, int(min(w, round(np.sqrt(area * ratio)))))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        window = (x0, y0, x0 + cw, y0 + ch)
        x = self.frames.tensor(img, window)
        gain, gamma = rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)
        m, s = self._mean, self._std
        v = (x * s + m).clamp(0, 1)  # back to 0..1 intensities, jittered, normalised again
        return ((v ** gamma * gain).clamp(0, 1) - m) / s, window

    def lesion_box(self, i: int, crop_hw: tuple[int, int], window: tuple[int, int, int, int]) -> torch.Tensor:
        """(1, centre x, centre y, half side) of sample i's lesion square as fractions of a model
        input that stretches ``window`` of its region crop (of shape ``crop_hw``); zeros when
        the sample has no stored square. One half side for both axes (the mean of the two)."""
        sq = self.lesion_squares.get(self.samples[i].image_path)
        if sq is None:
            return torch.zeros(4)
        fx, fy, hx, hy = sq.in_region()
        h, w = crop_hw
        x0, y0, x1, y1 = window
        cw, ch = x1 - x0, y1 - y0
        return torch.tensor([1.0, (fx * w - x0) / cw, (fy * h - y0) / ch,
                             (hx * w / cw + hy * h / ch) / 2], dtype=torch.float32)

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
        crop = self.region_crop(i)
        h, w = crop.shape[:2]
        if self.augment:
            image, window = self._augment(crop, i)
        else:
            image, window = self.frames.tensor(crop), (0, 0, w, h)
        return image, self._text(i), self.labels[i], i, self.lesion_box(i, (h, w), window)
