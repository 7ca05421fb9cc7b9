"""Contact sheets: PNG grids of frames, each tile captioned with its key attributes.

One grid drawer (``grid``) and its front ends: ``contact_sheet`` for any sequence of ``Sample``
(a written US-365K set, BUSI, a folder of classes), ``synth_contact_sheet`` for frames
rendered on the fly by the synthetic engine, and ``descriptor_sheet`` (one row per value of a
lesion descriptor, each tile the model's input crop), so what a data set holds can be checked
by eye.

    python -m usclip_data.contact_sheet --out docs/images/contact_sheet.png --n 24
    python -m usclip_data.contact_sheet --descriptor Shape --out docs/images/descriptor_shape.png
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .sample import Sample, case_of

__all__ = ["grid", "write_png", "contact_sheet", "tile_text", "synth_contact_sheet", "synth_tile_text",
           "descriptor_sheet", "organ_sheet", "main"]

# Fields shown under each tile, in order, with short names (the tile is small).
_SHOWN = (("Organ_level", ""), ("Diagnosis", ""), ("Echogenicity", "echo"), ("Shape", "shape"),
          ("Margins", "margin"), ("InternalCharacteristics", "int"),
          ("PosteriorAcoustics", "post"), ("Vascularity", "vasc"))
_ABBR = {"normal appearance": "normal", "fluid collection": "fluid coll.", "well-defined": "well-def",
         "ill-defined/indistinct": "ill-def", "mixed echogenicity": "mixed", "tubular/linear": "tubular",
         "indeterminate/inhomogeneous vascularity": "inhomog.", "reduced/diminished": "reduced",
         "normal/regular": "normal", "mixed cystic and solid mass": "cyst+solid",
         "complex cystic solid": "complex", "cystic components": "cystic", "solid components": "solid"}
_LINE_H = 13


def _a(v: str) -> str:
    return _ABBR.get(v, v)


def _fit(img: np.ndarray, th: int, tw: int, background: int) -> np.ndarray:
    """The image scaled to fit th x tw (aspect kept), centred on a plain background."""
    import cv2

    h, w = img.shape[:2]
    s = min(th / h, tw / w)
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((th, tw, 3), background, np.uint8)
    y0, x0 = (th - img.shape[0]) // 2, (tw - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return out


def grid(images: Sequence[np.ndarray], captions: Sequence[Sequence[str]], cols: int = 6,
         tile: tuple[int, int] = (200, 200), text_rows: int | None = None) -> np.ndarray:
    """RGB uint8 grid: each image fitted into a ``tile`` (height, width) cell with its caption
    lines below (the first line highlighted); short rows are padded with blank cells."""
    import cv2

    if len(images) == 0 or len(images) != len(captions):
        raise ValueError(f"images, captions: expected the same non-zero count, found "
                         f"{len(images)} and {len(captions)}")
    if cols < 1 or min(tile) < 32:
        raise ValueError(f"cols, tile: expected >= 1 and >= 32 px, found {cols}, {tile}")
    th, tw = tile
    rows_txt = text_rows if text_rows is not None else max(len(c) for c in captions)
    cells = []
    for img, lines in zip(images, captions):
        cell = np.full((th + rows_txt * _LINE_H + 6, tw, 3), 24, np.uint8)
        cell[:th] = _fit(img, th, tw, 24)
        for i, line in enumerate(list(lines)[:rows_txt]):
            cv2.putText(cell, line[: tw // 6], (4, th + 13 + i * _LINE_H), cv2.FONT_HERSHEY_SIMPLEX,
                        0.36, (235, 235, 120) if i == 0 else (220, 220, 220), 1, cv2.LINE_AA)
        cells.append(cell)
    cols = min(cols, len(cells))
    cells += [np.zeros_like(cells[0])] * (-len(cells) % cols)
    return np.vstack([np.hstack(cells[r * cols:(r + 1) * cols]) for r in range(len(cells) // cols)])


def write_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB image as PNG (parent folders created); returns the path."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    path.write_bytes(buf.tobytes())
    return path


def tile_text(sample: Sample) -> list[str]:
    """The short attribute lines printed under a tile (target first when there is one)."""
    lines = [sample.target] if sample.target else []
    for field, short in _SHOWN:
        vals = sample.labels.get(field, ())
        if vals:
            text = "/".join(v.split("/")[0] for v in vals)
            lines.append(f"{short}: {text}" if short else text)
    return lines or ["(no labels)"]


def _spread(samples: Sequence[Sample], k: int, seed: int) -> np.ndarray:
    """k random samples, one per case first (views of a case are named ``<case>_v<i>``), so
    the sheet shows k cases rather than every view of a few."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    seen: set[str] = set()
    first, rest = [], []
    for i in order:
        case = case_of(samples[int(i)].image_path)
        (rest if case in seen else first).append(int(i))
        seen.add(case)
    return np.sort(np.asarray((first + rest)[:k]))


def contact_sheet(samples: Sequence[Sample], path: str | os.PathLike, n: int = 24, cols: int = 6,
                  tile: int = 200, seed: int | None = 0) -> np.ndarray:
    """Write a PNG grid of ``n`` samples (drawn with ``seed``, distinct cases first; None = the
    first n) to ``path``. Returns the sheet as H x W x 3 uint8 RGB."""
    if n < 1 or cols < 1 or tile < 32:
        raise ValueError(f"n, cols, tile: expected >= 1, >= 1, >= 32, found {n}, {cols}, {tile}")
    if len(samples) == 0:
        raise ValueError("samples: empty, nothing to show")
    k = min(n, len(samples))
    idx = np.arange(k) if seed is None else _spread(samples, k, seed)
    chosen = [samples[int(i)] for i in idx]
    sheet = grid([s.load_rgb() for s in chosen], [tile_text(s) for s in chosen], cols, (tile, tile))
    write_png(sheet, path)
    return sheet


def synth_tile_text(params: dict) -> list[str]:
    """Caption lines of a rendered frame, from its rendering parameters (the rendered truth)."""
    les = params["lesion"]
    head = f"{params['organ']} | {params['probe']} {params['f0_mhz']:.1f}MHz"
    if les is None:
        return [head, "normal appearance"]
    return [head,
            f"{_a(params['diagnosis'])}: {_a(les['shape'])}, {_a(les['margins'])}, {_a(les['echogenicity'])}",
            f"{'/'.join(_a(t) for t in les['internal'])}; post: {les['posterior'] or 'none'}"
            + (f"; vasc: {_a(les['vascularity'])}" if params["doppler"] else "")]


def synth_contact_sheet(n: int = 24, seed: int = 0, cols: int = 6, tile: tuple[int, int] = (240, 320),
                        balanced: bool = True) -> np.ndarray:
    """RGB uint8 grid of ``n`` freshly rendered frames; ``balanced`` cycles the organ models so
    all appear."""
    from .synth.case import ORGAN_MODELS, sample_case
    from .synth.render import render_view

    if n < 1 or cols < 1:
        raise ValueError(f"n and cols: expected >= 1, found n={n}, cols={cols}")
    keys = list(ORGAN_MODELS)
    images, captions = [], []
    rng = np.random.default_rng(seed)
    tries = 0
    while len(images) < n and tries < 50 * n:
        tries += 1
        case = sample_case(rng, f"sheet{tries}")
        if balanced and case.organ_model != keys[len(images) % len(keys)]:
            continue
        f = render_view(case, 0, seed + tries)
        images.append(f.image)
        captions.append(synth_tile_text(f.params))
    return grid(images, captions, cols, tile, text_rows=3)


# Descriptor field -> key of the rendered lesion truth in ``params["lesion"]`` (None: params).
_TRUTH_KEY = {"Diagnosis": None, "Shape": "shape", "Margins": "margins", "Echogenicity": "echogenicity",
              "InternalCharacteristics": "internal", "PosteriorAcoustics": "posterior",
              "Vascularity": "vascularity"}


def _truth(case, field: str) -> tuple[str, ...]:
    """The rendered (true) values of ``field`` for a sampled case, before rendering."""
    les = case.lesion
    if field == "Diagnosis":
        return (case.diagnosis,)
    if les is None or (field == "Vascularity" and not case.doppler):
        return ()
    v = getattr(les, _TRUTH_KEY[field])
    return tuple(v) if isinstance(v, tuple) else (() if v is None else (v,))


def descriptor_sheet(field: str, per_value: int = 6, seed: int = 0, input_size: int = 128,
                     tile: int | None = None, max_cases: int = 40000) -> np.ndarray:
    """RGB grid with one row per value of ``field`` (``per_value`` frames of different cases
    whose rendered lesion has that value), each tile the region crop resized to the model's
    ``input_size`` (shown at ``tile`` px, default the input size): what a model of that input
    size gets to see."""

    from usclip_sdk import taxonomy as tx

    from .synth.case import sample_case
    from .synth.render import render_view

    if field not in _TRUTH_KEY:
        raise ValueError(f"field: expected one of {list(_TRUTH_KEY)}, found {field!r}")
    values = tx.dimension(field).values
    rows: dict[str, list] = {v: [] for v in values}
    rng = np.random.default_rng(seed)
    for i in range(max_cases):
        if all(len(r) >= per_value for r in rows.values()):
            break
        case = sample_case(rng, f"d{i}")
        want = [v for v in _truth(case, field) if len(rows[v]) < per_value]
        if not want:
            continue
        f = render_view(case, 0, seed + i, size=(256, 256))
        crop = _region_tile(f, input_size)
        rows[want[0]].append((crop, [_a(want[0]), f.params["organ"]]))
    images, captions = [], []
    for v in values:  # short rows (a value the sampler rarely draws) are padded with blanks
        got = rows[v] + [(np.zeros((input_size, input_size, 3), np.uint8), [_a(v), "(not drawn)"])] * (
            per_value - len(rows[v]))
        images += [g[0] for g in got]
        captions += [g[1] for g in got]
    tile = tile or input_size
    return grid(images, captions, per_value, (tile, tile), text_rows=2)


def _region_tile(frame, size: int) -> np.ndarray:
    """The frame's imaging region (its region box) shrunk to size x size, for a sheet tile."""
    import cv2

    x0, y0, x1, y1 = frame.params["region_box"]
    return cv2.resize(frame.image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def organ_sheet(seed: int = 0, input_size: int = 128, cols: int = 8, max_cases: int = 20000) -> np.ndarray:
    """One normal-appearance frame per organ model (model input crops, in taxonomy order)."""

    from usclip_sdk import taxonomy as tx

    from .synth.case import ORGAN_MODELS, sample_case
    from .synth.render import render_view

    got: dict[str, tuple[np.ndarray, list[str]]] = {}
    rng = np.random.default_rng(seed)
    for i in range(max_cases):
        if len(got) == len(ORGAN_MODELS):
            break
        case = sample_case(rng, f"o{i}")
        if case.lesion is not None or case.organ in got:
            continue
        f = render_view(case, 0, seed + i, size=(256, 256))
        crop = _region_tile(f, input_size)
        got[case.organ] = (crop, [case.organ[:24], f"{case.probe} {case.f0_mhz:.1f}MHz {case.depth_mm:.0f}mm"])
    order = [o for o in tx.organs() if o in got]
    return grid([got[o][0] for o in order], [got[o][1] for o in order], cols, (input_size, input_size), text_rows=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write a contact sheet of synthetic ultrasound frames.")
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--n", type=int, default=24, help="number of frames")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the cases")
    ap.add_argument("--cols", type=int, default=6, help="tiles per row")
    ap.add_argument("--descriptor", help="one row per value of this field (e.g. Shape), model input crops")
    ap.add_argument("--input-size", type=int, default=128, help="model input size of --descriptor tiles")
    ap.add_argument("--organs", action="store_true", help="one normal frame per organ model, model input crops")
    a = ap.parse_args(argv)
    if a.organs:
        print(write_png(organ_sheet(a.seed, a.input_size, a.cols), a.out))
        return 0
    if a.descriptor:
        print(write_png(descriptor_sheet(a.descriptor, a.cols, a.seed, a.input_size), a.out))
        return 0
    print(write_png(synth_contact_sheet(a.n, a.seed, a.cols), a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
