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

from usclip_data.synth.lesion_box import MARGIN, lesion_square, read_render_params
from usclip_data.us365k import read_full_data
from usclip_sdk import taxonomy as tx
from usclip_train.zoom import sample_square, square_grid

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


POOLS = ("avgmax", "avg", "attn", "zoom")


class MultiHeadCNN(nn.Module):
    """Seven 3x3 conv layers (five stride-2; at 224 px one more stride-2 stem layer so both sizes
    cost about the same), avg+max pooled (``pool="avg"``: average only, as the conv CLIP tower
    pools), one linear head per dimension. Max pooling keeps small bright structures
    (calcified foci, septa) that averaging dilutes. ``pool="attn"``: average pooled beside an
    attention pool whose per-cell logits (a 1x1 conv) are also returned as ``"_where"``, so a
    loss can teach them where the lesion is (the synthetic truth knows)."""

    def __init__(self, heads: dict[str, int], size: int, pool: str = "avgmax"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool: expected one of {POOLS}, found {pool!r}")
        self.pool = pool
        stem = _cbr(3, 24, 2) + (_cbr(24, 24, 2) if size > 160 else [])
        self.body = nn.Sequential(*stem, *_cbr(24, 48, 2), *_cbr(48, 48, 1), *_cbr(48, 96, 2),
                                  *_cbr(96, 96, 1), *_cbr(96, 160, 2), *_cbr(160, 192, 2))
        self.where = nn.Conv2d(192, 1, 1) if pool == "attn" else None
        self.drop = nn.Dropout(0.2)
        width = 192 if pool == "avg" else 384
        self.heads = nn.ModuleDict({f: nn.Linear(width, k) for f, k in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        extra = {}
        if self.pool == "attn":
            logits = self.where(h).flatten(1)  # N x cells
            w = logits.softmax(1).unsqueeze(1)  # N x 1 x cells
            z = torch.cat([h.mean((2, 3)), (h.flatten(2) * w).sum(2)], 1)
            extra["_where"] = logits
        elif self.pool == "avgmax":
            z = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        else:
            z = h.mean((2, 3))
        z = self.drop(z)
        return {**{f: head(z) for f, head in self.heads.items()}, **extra}


class ZoomCNN(nn.Module):
    """``pool="zoom"``: the whole-frame CNN (avg+max pooled) also regresses a square round the
    lesion (centre x, y and half side, as fractions of the input); a second, smaller CNN sees
    that square resampled to ``crop`` px from the same input (``grid_sample``: one graph,
    exportable), and the heads read both. In training the square is the stored truth with a
    probability that falls from 1 to 0 (the crop branch first learns what lesions look like,
    then to live with its own boxes); at test it is always the predicted one."""

    def __init__(self, heads: dict[str, int], size: int, crop: int = 64):
        super().__init__()
        self.frame = MultiHeadCNN({}, size, "avgmax")
        self.box = nn.Linear(384, 3)
        self.lesion = nn.Sequential(*_cbr(3, 32, 2), *_cbr(32, 48, 1), *_cbr(48, 96, 2), *_cbr(96, 96, 1),
                                    *_cbr(96, 160, 2), *_cbr(160, 192, 2))
        self.register_buffer("grid", square_grid(crop), persistent=False)
        self.drop = nn.Dropout(0.2)
        self.heads = nn.ModuleDict({f: nn.Linear(768, k) for f, k in heads.items()})

    def forward(self, x: torch.Tensor, truth: torch.Tensor | None = None,
                pick: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``truth`` (N x 3) replaces the predicted square where ``pick`` (N, bool) is set."""
        h = self.frame.body(x)
        zg = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        b = self.box(zg)
        pred = torch.cat([b[:, :2].sigmoid(), 0.05 + 0.5 * b[:, 2:].sigmoid()], 1)  # cx, cy, half
        use = pred.detach() if truth is None else torch.where(pick[:, None], truth, pred.detach())
        hl = self.lesion(sample_square(x, use, self.grid))  # the zoom tower's resampling
        z = self.drop(torch.cat([zg, hl.mean((2, 3)), hl.amax((2, 3))], 1))
        return {**{f: head(z) for f, head in self.heads.items()}, "_box": pred}


def lesion_boxes(names: list[str], root: Path) -> torch.Tensor:
    """N x 4: (has lesion, centre x, centre y, half side) of the square ``--lesion-crop`` cuts,
    as fractions of the model input (the region box stretched; one half side, the mean of the
    two axes'), from the same truth the zoom tower trains on (usclip_data.synth.lesion_box)."""
    params = _params(root)
    out = torch.zeros((len(names), 4))
    for i, n in enumerate(names):
        sq = lesion_square(params[n])
        if sq is None:
            continue
        fx, fy, hx, hy = sq._replace(half=max(sq.half, 8.0)).in_region()
        out[i] = torch.tensor([1.0, fx, fy, (hx + hy) / 2])
    return out


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
    sq = lesion_square(params)
    if sq is None:
        x0, y0, x1, y1 = params["region_box"]
        return (x0 + x1) / 2, (y0 + y1) / 2, 0.3 * min(x1 - x0, y1 - y0)
    return sq.cx, sq.cy, sq.half


def lesion_cells(names: list[str], root: Path, size: int, grid: int) -> torch.Tensor:
    """Where the lesion is in the model input, per cell of a ``grid`` x ``grid`` feature map:
    the fraction of each cell its tight bounding box covers, normalised to sum 1 (all zeros
    for a frame without a lesion). The input is the region box stretched to ``size``
    (PreprocessSpec's "stretch"), so the map is the screen box moved and scaled."""
    params = _params(root)
    out = torch.zeros((len(names), grid * grid))
    edges = np.linspace(0, size, grid + 1)
    for i, n in enumerate(names):
        p = params[n]
        if not p.get("lesion"):
            continue
        cx, cy, half = _lesion_box_px(p)
        half /= MARGIN  # the tight box (the crop adds 20 %)
        x0, y0, x1, y1 = p["region_box"]
        sx, sy = size / (x1 - x0), size / (y1 - y0)
        u0, u1 = (cx - half - x0) * sx, (cx + half - x0) * sx
        v0, v1 = (cy - half - y0) * sy, (cy + half - y0) * sy
        ox = np.clip(np.minimum(edges[1:], u1) - np.maximum(edges[:-1], u0), 0, None)
        oy = np.clip(np.minimum(edges[1:], v1) - np.maximum(edges[:-1], v0), 0, None)
        cover = np.outer(oy, ox).ravel()
        if cover.sum() > 0:
            out[i] = torch.from_numpy(cover / cover.sum()).float()
    return out


def _params(root: Path) -> dict[str, dict]:
    return read_render_params(root)


def build_lesion_crops(names: list[str], root: Path, size: int) -> torch.Tensor:
    """Diagnostic input (``--lesion-crop``): a square round the lesion from the stored truth,
    resized to ``size``, normalised like the model input. Not what any model gets to see: it
    separates "the pixels do not show it" from "a small CNN cannot find it in the frame"."""
    import cv2

    from usclip_sdk.pixels import PreprocessSpec, model_input

    spec = PreprocessSpec(image_size=(size, size))
    params = _params(root)
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


def _loss(out: dict[str, torch.Tensor], t: Targets, idx: torch.Tensor,
          where: torch.Tensor | None = None, where_weight: float = 1.0) -> torch.Tensor:
    total = out[tx.FIELDS[0]].new_zeros(())
    for f, y in t.single.items():
        yb = y[idx]
        if (yb >= 0).any():
            total = total + F.cross_entropy(out[f], yb, ignore_index=-1)
    if where is not None and "_box" in out:
        q = where[idx]
        has = q[:, 0] > 0
        if has.any():
            total = total + where_weight * 10 * F.smooth_l1_loss(out["_box"][has], q[has, 1:], beta=0.05)
    elif where is not None and "_where" in out:
        q = where[idx]
        has = q.sum(1) > 0
        if has.any():  # cross-entropy of the attention against where the lesion is
            total = total - where_weight * (q[has] * out["_where"][has].log_softmax(1)).sum(1).mean()
    return total


def train(x: torch.Tensor, t: Targets, classes: dict, epochs: int, batch: int, seed: int,
          pool: str = "avgmax", where: torch.Tensor | None = None) -> MultiHeadCNN:
    torch.manual_seed(seed)
    heads = {f: len(classes[f]) for f in tx.FIELDS}
    model = ZoomCNN(heads, x.shape[-1]) if pool == "zoom" else MultiHeadCNN(heads, x.shape[-1], pool)
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
            wb = where
            if where is not None and flip.any():  # the truth flips with the frame
                wb = where.clone()
                sel = idx[flip]
                if pool == "zoom":
                    wb[sel, 1] = 1 - where[sel, 1]
                else:
                    g_ = int(round(where.shape[1] ** 0.5))
                    wb[sel] = where[sel].view(-1, g_, g_).flip(-1).reshape(len(sel), -1)
            if pool == "zoom":
                teach = 1 - (ep * len(x) + k) / (epochs * len(x))  # truth's share falls 1 -> 0
                q = wb[idx]
                pick = (torch.rand(len(idx), generator=g) < teach) & (q[:, 0] > 0)
                out = model(xb, q[:, 1:], pick)
            else:
                out = model(xb)
            loss = _loss(out, t, idx, wb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run += float(loss.detach()) * len(idx)
        print(f"  epoch {ep + 1}/{epochs} loss {run / len(x):.3f}", flush=True)
    return model


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 128) -> dict[str, torch.Tensor]:
    model.eval()
    outs = [model(x[k:k + batch].float()) for k in range(0, len(x), batch)]
    return {f: torch.cat([o[f] for o in outs]) for f in outs[0]}


def box_quality(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    """How well ``--pool zoom`` finds the lesion on the test frames that have one: IoU of the
    predicted square with the true one, and the centre error in half sides of the truth."""
    has = truth[:, 0] > 0
    p, t = pred[has], truth[has, 1:]
    lo = torch.maximum(p[:, :2] - p[:, 2:], t[:, :2] - t[:, 2:])
    hi = torch.minimum(p[:, :2] + p[:, 2:], t[:, :2] + t[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(1)
    iou = inter / ((2 * p[:, 2]) ** 2 + (2 * t[:, 2]) ** 2 - inter)
    err = (p[:, :2] - t[:, :2]).norm(dim=1) / t[:, 2]
    return {"n": int(has.sum()), "iou_mean": round(float(iou.mean()), 3),
            "iou_at_least_0.5": round(float((iou >= 0.5).float().mean()), 3),
            "centre_error_median_half_sides": round(float(err.median()), 3)}


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
    ap.add_argument("--pool", default="avgmax", choices=POOLS,
                    help="global pooling of the CNN (avg: what the conv CLIP tower uses; attn: an "
                         "attention pool taught where the lesion is from the stored truth)")
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
        grid = size
        for _ in range(5 + (size > 160)):  # the stride-2 layers (3x3, padding 1)
            grid = (grid + 1) // 2
        where = (lesion_cells(train_names, root, size, grid) if a.pool == "attn" else
                 lesion_boxes(train_names, root) if a.pool == "zoom" else None)
        model = train(xtr, tr, classes, a.epochs, a.batch, a.seed, a.pool, where)
        s2 = time.perf_counter()
        pred = predict(model, xte)
        res = score(pred, te, tr, classes, [n in doppler for n in test_names])
        out["sizes"][str(size)] = {"input_seconds": round(s1 - s0, 1), "train_seconds": round(s2 - s1, 1),
                                   "dimensions": res}
        if "_box" in pred:
            out["sizes"][str(size)]["lesion_box"] = q = box_quality(pred["_box"], lesion_boxes(test_names, root))
            print("  lesion square on test frames:", q)
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
