"""How well a zoom tower (image_head "zoom", usclip_train/zoom.py) finds the lesion on held-out
frames: the square it looks at against the synthetic truth, through the training pixel path.

    python bench/zoom_boxes.py runs/zoom128 --data data/synth-v4 --max 600 \
        --json bench/results/zoom_boxes_zoom128.json

Reports, over the test frames with a lesion: mean IoU of the found square with the true one
(``usclip_data.synth.lesion_box``, as in training), the share with IoU >= 0.5, and the median
centre error in half sides of the truth (bench/ceiling.py's ``box_quality``); and on frames
without a lesion where the square goes (its mean half side: a finder that learnt "no lesion"
has nowhere in particular to look).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ceiling import box_quality  # noqa: E402  (the one IoU / centre-error definition)

from usclip_data.synth.lesion_box import read_lesion_squares  # noqa: E402
from usclip_data.us365k import US365K  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="checkpoint folder or run folder of a zoom model")
    ap.add_argument("--data", required=True, help="US-365K-layout synthetic set (cases.jsonl holds the truth)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max", type=int, default=600)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from usclip_train.checkpoint import load_model
    from usclip_train.data import FrameTransform
    from usclip_train.zoom import ZoomVisual

    model, preprocess, _ = load_model(a.checkpoint)
    if not isinstance(model.visual, ZoomVisual):
        sys.exit(f"zoom_boxes: {a.checkpoint} is not a zoom model (image_head 'zoom')")
    model.eval()
    root = Path(a.data)
    squares = read_lesion_squares(root)
    samples = list(US365K(root, a.split))[: a.max]
    tf = FrameTransform(preprocess, root / "masks" if (root / "masks").is_dir() else None)
    t0 = time.perf_counter()
    found, truth = [], []
    with torch.no_grad():
        for k in range(0, len(samples), 64):
            chunk = samples[k:k + 64]
            x = torch.stack([tf(s.image_path) for s in chunk])
            model.visual(x)
            found.append(model.visual.last_box)
            for s in chunk:
                sq = squares.get(Path(s.image_path).name)
                if sq is None:
                    truth.append([0.0, 0.0, 0.0, 0.0])
                else:
                    fx, fy, hx, hy = sq.in_region()
                    truth.append([1.0, fx, fy, (hx + hy) / 2])
    p, t = torch.cat(found), torch.tensor(truth)
    has = t[:, 0] > 0
    out = {"checkpoint": a.checkpoint, "data": str(root), "split": a.split, "frames": len(samples),
           "with_lesion": int(has.sum()), **box_quality(p, t),
           "truth_half_mean": round(float(t[has, 3].mean()), 3), "found_half_mean": round(float(p[has, 2].mean()), 3),
           "no_lesion_found_half_mean": round(float(p[~has, 2].mean()), 3) if (~has).any() else None,
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
