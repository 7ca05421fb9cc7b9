"""Frames the input-quality gate is tested on (tests/sdk/test_triage.py through Classifier,
tests/native/test_ops_gate.py against the numpy reference): a scanner-like frame and the kinds
of non-image, each with the check it must fail."""
from __future__ import annotations

import cv2
import numpy as np


def scan(seed: int, h: int = 240, w: int = 320, gain: float = 90.0) -> np.ndarray:
    """A scanner-like frame: correlated speckle (blurred Rayleigh) in a rectangle, a bright
    blob and burned-in text on a black screen."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    speckle = cv2.GaussianBlur(rng.rayleigh(1.0, (h - 60, w - 120)).astype(np.float32), (0, 0), 1.2)
    img[30:h - 30, 60:w - 60] = np.clip(speckle * gain, 0, 255)
    img = img.astype(np.uint8)
    cv2.circle(img, (int(rng.integers(90, w - 90)), int(rng.integers(60, h - 60))), 20, 230, -1)
    cv2.putText(img, "L12 MSK", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
    return np.repeat(img[..., None], 3, axis=2)


def _document() -> np.ndarray:
    im = np.full((240, 320, 3), 245, np.uint8)
    for y in range(20, 230, 16):
        cv2.putText(im, "patient report lorem ipsum 0123", (6, y), 0, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return im


def _photo() -> np.ndarray:  # smooth colourful blobs: colour everywhere
    rng = np.random.default_rng(3)
    return cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_CUBIC)


NOT_IMAGES = {  # each kind of non-image and the check it fails
    "black": (np.zeros((240, 320, 3), np.uint8), "contrast"),
    "white": (np.full((240, 320, 3), 255, np.uint8), "contrast"),
    "constant colour": (np.full((240, 320, 3), (10, 20, 31), np.uint8), "contrast"),
    "dark noise": (np.random.default_rng(0).integers(0, 12, (240, 320, 3)).astype(np.uint8), "echo"),
    "grey noise": (np.repeat(np.random.default_rng(1).integers(0, 256, (240, 320, 1)), 3, 2).astype(np.uint8),
                   "correlation"),
    "colour noise": (np.random.default_rng(2).integers(0, 256, (240, 320, 3), dtype=np.uint8), "colour"),
    "gradient": (np.repeat(np.tile(np.linspace(0, 255, 320), (240, 1))[..., None], 3, 2).astype(np.uint8), "texture"),
    "checkerboard": (np.repeat(((np.indices((240, 320)).sum(0) // 16) % 2 * 255)[..., None], 3, 2).astype(np.uint8),
                     "grey_levels"),
    "document": (_document(), "flat"),
    "photo": (_photo(), "colour"),
}
