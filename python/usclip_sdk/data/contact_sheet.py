"""A contact sheet: a grid of samples, each tile captioned with its key attributes.

Works on any sequence of ``Sample`` (a written US-365K set, BUSI, a folder of classes), so
what a data set holds can be checked by eye in one image.
"""
from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from .sample import Sample

__all__ = ["contact_sheet", "tile_text"]

# Fields shown under each tile, in order, with short names (the tile is small).
_SHOWN = (("Organ_level", ""), ("Diagnosis", ""), ("Echogenicity", "echo"), ("Shape", "shape"),
          ("Margins", "margin"), ("InternalCharacteristics", "int"),
          ("PosteriorAcoustics", "post"), ("Vascularity", "vasc"))


def tile_text(sample: Sample) -> list[str]:
    """The short attribute lines printed under a tile (target first when there is one)."""
    lines = [sample.target] if sample.target else []
    for field, short in _SHOWN:
        vals = sample.labels.get(field, ())
        if vals:
            text = "/".join(v.split("/")[0] for v in vals)
            lines.append(f"{short}: {text}" if short else text)
    return lines or ["(no labels)"]


def _tile(sample: Sample, tile: int, text_rows: int) -> np.ndarray:
    import cv2

    img = sample.load_rgb()
    h, w = img.shape[:2]
    s = tile / max(h, w)
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    line_h = 13
    out = np.full((tile + text_rows * line_h + 6, tile, 3), 24, np.uint8)
    y0, x0 = (tile - img.shape[0]) // 2, (tile - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    for i, line in enumerate(tile_text(sample)[:text_rows]):
        cv2.putText(out, line[: tile // 6], (4, tile + 13 + i * line_h), cv2.FONT_HERSHEY_SIMPLEX,
                    0.36, (235, 235, 120) if i == 0 else (220, 220, 220), 1, cv2.LINE_AA)
    return out


def _spread(samples: Sequence[Sample], k: int, seed: int) -> np.ndarray:
    """k random samples, one per case first (views of a case are named ``<case>_v<i>``), so
    the sheet shows k cases rather than every view of a few."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    seen: set[str] = set()
    first, rest = [], []
    for i in order:
        case = re.sub(r"_v\d+$", "", os.path.splitext(os.path.basename(samples[int(i)].image_path))[0])
        (rest if case in seen else first).append(int(i))
        seen.add(case)
    return np.sort(np.asarray((first + rest)[:k]))


def contact_sheet(samples: Sequence[Sample], path: str | os.PathLike, n: int = 24, cols: int = 6,
                  tile: int = 200, seed: int | None = 0) -> np.ndarray:
    """Write a PNG grid of ``n`` samples (drawn with ``seed``, distinct cases first; None = the
    first n) to ``path``.

    Returns the sheet as H x W x 3 uint8 RGB.
    """
    import cv2

    if n < 1 or cols < 1 or tile < 32:
        raise ValueError(f"n, cols, tile: expected >= 1, >= 1, >= 32, found {n}, {cols}, {tile}")
    if len(samples) == 0:
        raise ValueError("samples: empty, nothing to show")
    k = min(n, len(samples))
    idx = np.arange(k) if seed is None else _spread(samples, k, seed)
    rows = max(len(tile_text(samples[int(i)])) for i in idx)
    tiles = [_tile(samples[int(i)], tile, rows) for i in idx]
    cols = min(cols, k)
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % cols)
    grid = np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(len(tiles) // cols)])
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(grid[:, :, ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    with open(path, "wb") as fh:
        fh.write(buf.tobytes())
    return grid
