"""Supervised learnability ceiling per label dimension: do the pixels carry the labels?

    nice -n 10 python bench/ceiling.py --data /tmp/ceiling_set --n 800 --seed 20261202 \
        --sizes 128,224 --json bench/results/ceiling_after.json

1. Writes a synthetic set with ``usclip synth --out DIR --n N --seed S --size 256`` (the US-365K
   layout with masks/ and a case-level split) unless DIR already holds one.
2. Builds the model's input crops with the project's pixel path,
   ``usclip_train.data.FrameTransform(PreprocessSpec(image_size), DIR/masks)``.
3. Trains one small multi-head CNN (torch, CPU) on the train split and scores the held-out
   test split (other cases): accuracy per dimension over the test frames that carry a tag in
   that dimension, beside the majority baseline (the most common training value, scored on
   the same frames) and the mean per-class recall (what a constant answer cannot fake).

Every dimension gets a softmax head (cross-entropy over tagged frames only). A multi-label
dimension (InternalCharacteristics: a frame may carry two tags) is classified over the exact
tag sets its training split contains, and a frame counts as correct only when the predicted
set equals the labelled set (the baseline is the most common exact set). An earlier version
scored one sigmoid per value above 0.5, which left a fifth of the lesions with no tag at all.
A dimension is a ceiling for what any model can learn from these pixels, at this data size.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from usclip_data.us365k import read_full_data
from usclip_sdk import taxonomy as tx

GOAL = 0.90


def ensure_dataset(root: Path, n: int, seed: int, splits: str, workers: int) -> None:
    if (root / "full_data.json").is_file() and (root / "cases.jsonl").is_file():
        return
    cmd = ["usclip", "synth", "--out", str(root), "--n", str(n), "--seed", str(seed), "--size", "256",
           "--splits", splits, "--workers", str(workers), "--quiet", "--overwrite"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def load_split(root: Path) -> tuple[list[str], list[str], dict[str, dict[str, tuple[str, ...]]], set[str]]:
    """Train and test media names (case-level split written by the synth command), labels, and
    the frames that show a colour-Doppler box (it covers part of the lesion's grey)."""
    labels = read_full_data(root / "full_data.json")
    train, test, doppler = [], [], set()
    with open(root / "cases.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            (train if rec["split"] == "train" else test if rec["split"] == "test" else []).append(rec["media_name"])
            if (rec.get("params") or {}).get("doppler"):
                doppler.add(rec["media_name"])
    return train, test, labels, doppler


def class_sets(names: list[str], labels: dict) -> dict[str, list[tuple[str, ...]]]:
    """The classes of each dimension: its values, or for a multi-label dimension (a frame may
    carry two tags) every exact tag set that occurs in ``names`` (the training split)."""
    out = {}
    for f in tx.FIELDS:
        sets = sorted({tuple(sorted(labels[n].get(f, ()))) for n in names} - {()})
        out[f] = sets if any(len(s) > 1 for s in sets) else [(v,) for v in tx.dimension(f).values]
    return out


class Targets:
    """Per-dimension targets of a list of frames: class index into ``classes`` (-1 = untagged
    or a tag set the training split never shows)."""

    def __init__(self, names: list[str], labels: dict, classes: dict[str, list[tuple[str, ...]]]):
        self.raw = {f: [labels[n].get(f, ()) for n in names] for f in tx.FIELDS}
        self.single: dict[str, torch.Tensor] = {}
        for f in tx.FIELDS:
            index = {s: i for i, s in enumerate(classes[f])}
            self.single[f] = torch.tensor([index.get(tuple(sorted(t)), -1) if t else -1 for t in self.raw[f]])


def _cbr(i: int, o: int, s: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class MultiHeadCNN(nn.Module):
    """Seven 3x3 conv layers (five stride-2; at 224 px one more stride-2 stem layer so both sizes
    cost about the same), avg+max pooled (``pool="avg"``: average only, as the conv CLIP tower
    pools), one linear head per dimension. Max pooling keeps small bright structures
    (calcified foci, septa) that averaging dilutes."""

    def __init__(self, heads: dict[str, int], size: int, pool: str = "avgmax"):
        super().__init__()
        if pool not in ("avgmax", "avg"):
            raise ValueError(f"pool: expected 'avgmax' or 'avg', found {pool!r}")
        self.pool = pool
        stem = _cbr(3, 24, 2) + (_cbr(24, 24, 2) if size > 160 else [])
        self.body = nn.Sequential(*stem, *_cbr(24, 48, 2), *_cbr(48, 48, 1), *_cbr(48, 96, 2),
                                  *_cbr(96, 96, 1), *_cbr(96, 160, 2), *_cbr(160, 192, 2))
        self.drop = nn.Dropout(0.2)
        width = 384 if pool == "avgmax" else 192
        self.heads = nn.ModuleDict({f: nn.Linear(width, k) for f, k in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        z = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1) if self.pool == "avgmax" else h.mean((2, 3))
        z = self.drop(z)
        return {f: head(z) for f, head in self.heads.items()}


def build_inputs(names: list[str], root: Path, size: int) -> torch.Tensor:
    from usclip_sdk.pixels import PreprocessSpec
    from usclip_train.data import FrameTransform

    tf = FrameTransform(PreprocessSpec(image_size=(size, size)), root / "masks")  # the one pixel path
    x = torch.empty((len(names), 3, size, size), dtype=torch.float16)
    for i, n in enumerate(names):
        x[i] = tf(str(root / "images" / n)).to(torch.float16)
    return x


def _lesion_box_px(params: dict) -> tuple[float, float, float]:
    """Centre (x, y) and half side, in screen pixels, of a square round the rendered lesion's
    bounding box with a 20 % margin (the frame's centre when it has no lesion)."""
    x0, y0, x1, y1 = params["region_box"]
    les = params.get("lesion")
    if not les:
        return (x0 + x1) / 2, (y0 + y1) / 2, 0.3 * min(x1 - x0, y1 - y0)
    from usclip_data.synth.geometry import ScanGeometry

    g, mm = params["geometry"], params["mm_per_px"]
    # The region box's first pixel is the field's bounding-box corner (as scan conversion maps it).
    xmin, _, ymin, _ = ScanGeometry(g["probe"], g["depth_mm"], g["width_mm"], g["radius_mm"],
                                    float(np.radians(g["half_angle_deg"]))).bbox()
    bx0, bx1, by0, by1 = les["bbox_mm"]
    cx = x0 + ((bx0 + bx1) / 2 - xmin) / mm - 0.5
    cy = y0 + ((by0 + by1) / 2 - ymin) / mm - 0.5
    return cx, cy, 0.6 * max(bx1 - bx0, by1 - by0) / mm


def build_lesion_crops(names: list[str], root: Path, size: int) -> torch.Tensor:
    """Diagnostic input (``--lesion-crop``): a square round the lesion from the stored truth,
    resized to ``size``, normalised like the model input. Not what any model gets to see: it
    separates "the pixels do not show it" from "a small CNN cannot find it in the frame"."""
    import cv2

    from usclip_sdk.pixels import PreprocessSpec, model_input

    spec = PreprocessSpec(image_size=(size, size))
    params = {}
    with open(root / "cases.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            params[rec["media_name"]] = rec["params"]
    x = torch.empty((len(names), 3, size, size), dtype=torch.float16)
    for i, n in enumerate(names):
        img = cv2.cvtColor(cv2.imread(str(root / "images" / n), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        cx, cy, half = _lesion_box_px(params[n])
        half = max(half, 8.0)
        m = np.float32([[size / (2 * half), 0, size / 2 - cx * size / (2 * half)],
                        [0, size / (2 * half), size / 2 - cy * size / (2 * half)]])
        crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))
        x[i] = torch.from_numpy(np.asarray(model_input(crop, None, None, spec, dtype="float32"))[0])  # normalised
    return x


def _loss(out: dict[str, torch.Tensor], t: Targets, idx: torch.Tensor) -> torch.Tensor:
    total = out[tx.FIELDS[0]].new_zeros(())
    for f, y in t.single.items():
        yb = y[idx]
        if (yb >= 0).any():
            total = total + F.cross_entropy(out[f], yb, ignore_index=-1)
    return total


def train(x: torch.Tensor, t: Targets, classes: dict, epochs: int, batch: int, seed: int,
          pool: str = "avgmax") -> MultiHeadCNN:
    torch.manual_seed(seed)
    model = MultiHeadCNN({f: len(classes[f]) for f in tx.FIELDS}, x.shape[-1], pool)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        run = 0.0
        for k in range(0, len(x), batch):
            idx = perm[k:k + batch]
            xb = x[idx].float()
            flip = torch.rand(len(idx), generator=g) < 0.5  # no label depends on left/right
            xb[flip] = xb[flip].flip(-1)
            loss = _loss(model(xb), t, idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run += float(loss.detach()) * len(idx)
        print(f"  epoch {ep + 1}/{epochs} loss {run / len(x):.3f}", flush=True)
    return model


@torch.no_grad()
def predict(model: MultiHeadCNN, x: torch.Tensor, batch: int = 128) -> dict[str, torch.Tensor]:
    model.eval()
    outs = [model(x[k:k + batch].float()) for k in range(0, len(x), batch)]
    return {f: torch.cat([o[f] for o in outs]) for f in tx.FIELDS}


def score(pred: dict[str, torch.Tensor], t: Targets, tr: Targets, classes: dict,
          doppler: list[bool] | None = None) -> dict:
    """Per dimension: accuracy, majority baseline, mean per-class recall, confusion counts, and
    the accuracy on frames with and without a colour-Doppler box."""
    res = {}
    for f in tx.FIELDS:
        truth = [tuple(sorted(v)) for v in t.raw[f]]
        keep = [i for i, v in enumerate(truth) if v]
        if not keep:
            continue
        multi = any(len(s) > 1 for s in classes[f])
        guess = [classes[f][int(a)] for a in pred[f].argmax(1).numpy()]
        train_sets = Counter(tuple(sorted(v)) for v in tr.raw[f] if v)
        major = train_sets.most_common(1)[0][0]
        hit = {i: guess[i] == truth[i] for i in keep}
        acc = float(np.mean(list(hit.values())))
        split = {}
        for name, on in (("with_doppler", True), ("without_doppler", False)):
            sel = [hit[i] for i in keep if doppler is not None and doppler[i] == on]
            split[name] = {"accuracy": round(float(np.mean(sel)), 4) if sel else None, "n": len(sel)}
        base = float(np.mean([truth[i] == major for i in keep]))
        confusion: dict[str, Counter] = {}
        for i in keep:
            confusion.setdefault(" + ".join(truth[i]), Counter())[" + ".join(guess[i]) or "(none)"] += 1
        recalls = [c[k] / sum(c.values()) for k, c in confusion.items()]
        res[f] = {"accuracy": round(acc, 4), "majority_baseline": round(base, 4),
                  "majority_value": " + ".join(major), "mean_class_recall": round(float(np.mean(recalls)), 4),
                  "n_test": len(keep), "n_train": sum(train_sets.values()),
                  "formulation": f"softmax over the {len(classes[f])} tag sets of the training split, exact set"
                  if multi else "softmax",
                  "meets_goal": acc >= GOAL, **split,
                  "confusion": {k: dict(c.most_common()) for k, c in sorted(confusion.items())}}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="data set folder (written by usclip synth if absent)")
    ap.add_argument("--n", type=int, default=800, help="cases to render when --data is absent")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--splits", default="0.75,0,0.25", help="train,valid,test case fractions")
    ap.add_argument("--sizes", default="128,224", help="model input sizes (square), comma separated")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="usclip synth processes")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--label", default="", help="free text stored in the JSON (e.g. renderer commit)")
    ap.add_argument("--lesion-crop", action="store_true",
                    help="diagnostic: crop round the lesion from the stored truth instead of the model input")
    ap.add_argument("--pool", default="avgmax", choices=("avgmax", "avg"),
                    help="global pooling of the CNN (avg: what the conv CLIP tower uses)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(a.data)
    t0 = time.perf_counter()
    ensure_dataset(root, a.n, a.seed, a.splits, a.workers)
    train_names, test_names, labels, doppler = load_split(root)
    classes = class_sets(train_names, labels)
    tr, te = Targets(train_names, labels, classes), Targets(test_names, labels, classes)
    meta = json.loads((root / "dataset.json").read_text())
    out = {"goal": GOAL, "label": a.label, "data": str(root), "seed": meta.get("seed"), "n_cases": meta.get("n_cases"),
           "n_train_images": len(train_names), "n_test_images": len(test_names), "epochs": a.epochs,
           "batch": a.batch, "torch_threads": a.threads, "cpu_count": os.cpu_count(),
           "input": "lesion crop (diagnostic)" if a.lesion_crop else "model input crop", "pool": a.pool,
           "sizes": {}}
    inputs = build_lesion_crops if a.lesion_crop else build_inputs
    for size in [int(s) for s in a.sizes.split(",")]:
        s0 = time.perf_counter()
        xtr, xte = inputs(train_names, root, size), inputs(test_names, root, size)
        s1 = time.perf_counter()
        model = train(xtr, tr, classes, a.epochs, a.batch, a.seed, a.pool)
        s2 = time.perf_counter()
        res = score(predict(model, xte), te, tr, classes, [n in doppler for n in test_names])
        out["sizes"][str(size)] = {"input_seconds": round(s1 - s0, 1), "train_seconds": round(s2 - s1, 1),
                                   "dimensions": res}
        print(f"\nsize {size}: {'dimension':26s} {'ceiling':>8s} {'majority':>9s} {'recall':>7s} {'n':>5s}")
        for f, r in res.items():
            print(f"  {f:34s} {r['accuracy']:8.3f} {r['majority_baseline']:9.3f} "
                  f"{r['mean_class_recall']:7.3f} {r['n_test']:5d}{'' if r['meets_goal'] else '  < goal'}")
        del xtr, xte
        out["total_seconds"] = round(time.perf_counter() - t0, 1)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)  # after each size: a long run keeps what it has
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", a.json, f"({out['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
