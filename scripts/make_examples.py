"""Render the example frames and the synthetic cine shipped with the SDK (usclip demo).

python scripts/make_examples.py [--out python/usclip_sdk/models/examples] [--seed 11]
Deterministic: the same seed writes the same files. Each frame is a full synthetic scanner
screen (overlays included) from usclip_data.synth; labels.json holds the true labels.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from usclip_data.synth import render_view, sample_case

WANT = ("liver", "kidney", "thyroid", "breast", "bladder", "testis", "gallbladder", "lymph_node")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("python/usclip_sdk/models/examples"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cine-frames", type=int, default=16)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    labels, seen, i = {}, set(), 0
    while len(seen) < len(WANT) and i < 2000:
        case = sample_case(rng, f"ex{i}")
        i += 1
        if case.organ_model not in WANT or case.organ_model in seen:
            continue
        seen.add(case.organ_model)
        f = render_view(case, 0, seed=i, size=(480, 640))
        name = f"{len(seen):02d}_{case.organ_model}.png"
        cv2.imwrite(str(a.out / name), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
        labels[name] = {k: list(v) for k, v in f.labels.items() if v}
    # The cine: one case, one view, fresh speckle each frame (as successive frames decorrelate).
    case = next(c for c in (sample_case(rng, f"cine{j}") for j in range(500)) if c.lesion is not None
                and c.organ_model == "liver")
    vw = cv2.VideoWriter(str(a.out / "cine_liver.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    for k in range(a.cine_frames):
        f = render_view(case, 1, seed=1000 + k, size=(480, 640))
        vw.write(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    vw.release()
    labels["cine_liver.avi"] = {k: list(v) for k, v in case.labels.items() if v}
    (a.out / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(labels)} examples to {a.out}")


if __name__ == "__main__":
    main()
