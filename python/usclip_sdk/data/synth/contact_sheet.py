"""A contact sheet: a PNG grid of synthetic frames annotated with their key attributes.

    python -m usclip_sdk.data.synth.contact_sheet --out docs/images/contact_sheet.png --n 24
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from .case import ORGAN_MODELS, sample_case
from .render import render_view

__all__ = ["contact_sheet", "write_contact_sheet", "main"]

_ABBR = {"normal appearance": "normal", "fluid collection": "fluid coll.", "well-defined": "well-def",
         "ill-defined/indistinct": "ill-def", "mixed echogenicity": "mixed", "tubular/linear": "tubular",
         "indeterminate/inhomogeneous vascularity": "inhomog.", "reduced/diminished": "reduced",
         "normal/regular": "normal", "mixed cystic and solid mass": "cyst+solid",
         "complex cystic solid": "complex", "cystic components": "cystic", "solid components": "solid"}


def _a(v: str) -> str:
    return _ABBR.get(v, v)


def _caption_lines(params: dict) -> list[str]:
    les = params["lesion"]
    head = f"{params['organ']} | {params['probe']} {params['f0_mhz']:.1f}MHz"
    if les is None:
        return [head, "normal appearance"]
    return [head,
            f"{_a(params['diagnosis'])}: {_a(les['shape'])}, {_a(les['margins'])}, {_a(les['echogenicity'])}",
            f"{'/'.join(_a(t) for t in les['internal'])}; post: {les['posterior'] or 'none'}"
            + (f"; vasc: {_a(les['vascularity'])}" if params["doppler"] else "")]


def contact_sheet(n: int = 24, seed: int = 0, cols: int = 6, tile: tuple[int, int] = (240, 320),
                  balanced: bool = True) -> np.ndarray:
    """RGB uint8 grid of ``n`` frames; ``balanced`` cycles the organ models so all appear."""
    if n < 1 or cols < 1:
        raise ValueError(f"n and cols: expected >= 1, found n={n}, cols={cols}")
    th, tw = tile
    text_h = 46
    rows = int(np.ceil(n / cols))
    sheet = np.full((rows * (th + text_h), cols * tw, 3), 255, np.uint8)
    keys = list(ORGAN_MODELS)
    k, tries = 0, 0
    rng = np.random.default_rng(seed)
    while k < n and tries < 50 * n:
        tries += 1
        case = sample_case(rng, f"sheet{tries}")
        if balanced and case.organ_model != keys[k % len(keys)]:
            continue
        f = render_view(case, 0, seed + tries)
        img = cv2.resize(f.image, (tw, th), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        y, x = r * (th + text_h), c * tw
        sheet[y:y + th, x:x + tw] = img
        for i, line in enumerate(_caption_lines(f.params)):
            cv2.putText(sheet, line, (x + 3, y + th + 13 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                        (0, 0, 0), 1, cv2.LINE_AA)
        k += 1
    return sheet


def write_contact_sheet(path: str | Path, n: int = 24, seed: int = 0, cols: int = 6) -> Path:
    """Render and write the PNG; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(n, seed, cols)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write contact sheet to {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write a contact sheet of synthetic ultrasound frames.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cols", type=int, default=6)
    a = ap.parse_args(argv)
    print(write_contact_sheet(a.out, a.n, a.seed, a.cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
