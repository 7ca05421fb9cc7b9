"""Non-ultrasound frames for measuring the triage layer (docs/triage.md), by kind.

photo: scikit-image's sample photos (the PNG/JPEG files shipped inside the scikit-image wheel;
pass their folder, e.g. one unpacked with `pip download --no-deps scikit-image`), resized to
256 x 256. document, ui: text pages and UI screens drawn with cv2.putText and rectangles.
pattern: gradients, uniform/grey/Gaussian noise, checkerboards. blank: constant frames.
Deterministic for a seed.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["photos", "documents", "ui_screens", "patterns", "blanks", "non_ultrasound"]

_SIZE = (256, 256)


def photos(folder: str | Path | None) -> list[tuple[str, np.ndarray]]:
    if folder is None:
        return []
    out = []
    for p in sorted(Path(folder).glob("*")):
        if p.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if im is not None:
            out.append((p.name, cv2.resize(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), _SIZE, interpolation=cv2.INTER_AREA)))
    return out


def documents(rng: np.random.Generator, n: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for i in range(n):
        im = np.full((*_SIZE, 3), int(rng.integers(225, 256)), np.uint8)
        y = 20
        while y < _SIZE[0] - 10:
            words = "".join(rng.choice(list("abcdefghij klmnopqrstuvwxyz0123456789"), int(rng.integers(10, 30))))
            cv2.putText(im, words, (8, y), int(rng.integers(0, 4)), float(rng.uniform(0.3, 0.6)),
                        (0, 0, 0), 1, cv2.LINE_AA)
            y += int(rng.integers(12, 22))
        out.append((f"document{i}", im))
    return out


def ui_screens(rng: np.random.Generator, n: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for i in range(n):
        im = np.empty((*_SIZE, 3), np.uint8)
        im[:] = rng.integers(30, 240, 3)
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = int(rng.integers(0, _SIZE[1] - 40)), int(rng.integers(0, _SIZE[0] - 20))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.rectangle(im, (x0, y0), (x0 + int(rng.integers(30, 120)), y0 + int(rng.integers(15, 40))), colour, -1)
            cv2.putText(im, "Button", (x0 + 3, y0 + 14), 0, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        out.append((f"ui{i}", im))
    return out


def patterns(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    h, w = _SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    grey = lambda a: np.repeat(np.asarray(a, np.uint8)[..., None], 3, axis=2)  # noqa: E731
    out = [("gradient_h", grey(xx * 255 // (w - 1))), ("gradient_v", grey(yy * 255 // (h - 1))),
           ("gradient_radial", grey(np.clip(np.hypot(yy - h / 2, xx - w / 2), 0, 255)))]
    for i in range(3):
        out.append((f"noise_uniform{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
        out.append((f"noise_grey{i}", grey(rng.integers(0, 256, (h, w)))))
        out.append((f"noise_gauss{i}", np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8)))
    for s in (8, 16, 32):
        out.append((f"checker{s}", grey(((yy // s) + (xx // s)) % 2 * 255)))
    return out


def blanks() -> list[tuple[str, np.ndarray]]:
    return [(f"blank{v}", np.full((*_SIZE, 3), v, np.uint8)) for v in (0, 3, 128, 250, 255)]


def non_ultrasound(photo_folder: str | Path | None, seed: int = 20261202) -> dict[str, list[tuple[str, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    return {"photo": photos(photo_folder), "document": documents(rng, 12), "ui": ui_screens(rng, 12),
            "pattern": patterns(rng), "blank": blanks()}
