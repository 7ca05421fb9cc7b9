"""Where the rendered lesion is on the screen, from a synthetic frame's stored truth.

``cases.jsonl`` (written by ``usclip synth``) keeps each frame's render parameters: the imaging
region's box on the screen and the lesion's bounding box in millimetres of the scan field. This
module turns them into a square round the lesion in screen pixels, the one geometry the lesion
crop diagnostic (bench/ceiling.py) and the zoom tower's box loss (usclip_train.zoom) share.
Real data has no such truth; both users skip frames without it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

MARGIN = 1.2  # the square's side is 1.2 x the lesion's longer bounding-box side


class LesionSquare(NamedTuple):
    """A square round the lesion (centre in pixel-index coordinates of the screen, i.e. pixel
    (i, j)'s centre is (j, i); half side in pixels; 20 % margin) and the imaging region's box
    (x0, y0, x1, y1; x1, y1 exclusive) it lies in."""

    cx: float
    cy: float
    half: float
    region: tuple[int, int, int, int]

    def in_region(self) -> tuple[float, float, float, float]:
        """(centre x, centre y, half side x, half side y) as fractions of the region's width
        and height: where the lesion is in a model input that stretches the region."""
        x0, y0, x1, y1 = self.region
        w, h = x1 - x0, y1 - y0
        return (self.cx + 0.5 - x0) / w, (self.cy + 0.5 - y0) / h, self.half / w, self.half / h


def lesion_square(params: dict) -> LesionSquare | None:
    """The lesion's square from one frame's render parameters, or None without a lesion."""
    les = params.get("lesion")
    if not les:
        return None
    from .geometry import ScanGeometry

    g, mm = params["geometry"], float(params["mm_per_px"])
    x0, y0, x1, y1 = (int(v) for v in params["region_box"])
    # The region box's first pixel is the field's bounding-box corner (as scan conversion maps it).
    xmin, _, ymin, _ = ScanGeometry(g["probe"], g["depth_mm"], g["width_mm"], g["radius_mm"],
                                    float(np.radians(g["half_angle_deg"]))).bbox()
    bx0, bx1, by0, by1 = les["bbox_mm"]
    cx = x0 + ((bx0 + bx1) / 2 - xmin) / mm - 0.5
    cy = y0 + ((by0 + by1) / 2 - ymin) / mm - 0.5
    half = MARGIN / 2 * max(bx1 - bx0, by1 - by0) / mm
    return LesionSquare(float(cx), float(cy), float(half), (x0, y0, x1, y1))


def _records(root: str | Path) -> Iterator[tuple[str, str, dict]]:
    """(where: 'file:line', media_name, params) per record of ``root/cases.jsonl`` (none when
    the folder has no such file: real data); a line that is not a record names file and line."""
    path = Path(root) / "cases.jsonl"
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                name, params = rec["media_name"], rec.get("params") or {}
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a cases.jsonl record: {e}") from e
            yield f"{path}:{n}", name, params


def read_render_params(root: str | Path) -> dict[str, dict]:
    """media_name -> the renderer's ``params`` of every frame in ``root/cases.jsonl``."""
    return {name: params for _, name, params in _records(root)}


def read_lesion_squares(root: str | Path) -> dict[str, LesionSquare]:
    """media_name -> LesionSquare for every frame with a lesion in ``root/cases.jsonl``
    (empty when the folder has no cases.jsonl: real data)."""
    out: dict[str, LesionSquare] = {}
    for where, name, params in _records(root):
        try:
            sq = lesion_square(params)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{where}: cannot read the lesion's box: {e}") from e
        if sq is not None:
            out[name] = sq
    return out
