"""CPU end to end: Classifier (each image-encoder variant of a bundle) vs the savvy onnxruntime
pipeline on the same model, one run, as ratios; plus the accuracy guard of every variant.

The savvy pipeline is what a user who knows onnxruntime writes with the bundle's fp32 image ONNX
(the reference model: a Classifier variant on int8_cpu is the same model quantised, its accuracy
change reported by the guard below):
cv2.resize of the whole frame to the model input (bilinear), normalise to NCHW float32,
onnxruntime with default session options, numpy softmax per dimension over the class
embeddings. It does less than Classifier (no region detection, no masking, no quality gate).

Rows, for each variant (``--variants``, default every image precision the bundle ships for CPU):
- one layout: ``classify`` of 720p frames of one scanner layout (new speckle each frame);
- eight layouts in turn: the same through eight different screens, one frame of each in turn;
- stream: ``Classifier.stream`` over in-memory frames of one layout: frames/s and the p50/p99
  interval between outputs, with the next frame prepared in a worker thread (the default) and
  inline, in ABBA order;
- stage times (region, preprocess, encode, similarity) from Prediction.timings.
Accuracy guard (``--data``): each variant through Classifier on held-out frames: AvgAcc, its
change against fp32 (points), and top-1 agreement with fp32 over every (frame, dimension).
With ``--checkpoint`` the open_clip eager + PIL baseline of bench_e2e.py joins the one-layout row.

    python bench/bench_cpu_e2e.py --bundle B [--data DIR --max 300] [--checkpoint CKPT] --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_region import SIZES, layouts, respeckle  # noqa: E402

from usclip_sdk import Classifier, taxonomy  # noqa: E402

CPU_PRECISIONS = ("fp32", "int8_cpu")


def cpu_name() -> str:
    from usclip_sdk.cpuinfo import cpu_field

    return cpu_field("model name") or platform.processor() or platform.machine()


def savvy_pipeline(clf: Classifier, threads: int | None):
    """The savvy user's code on the bundle's fp32 image ONNX (default onnxruntime options)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(clf.bundle.encoder_path("image", "fp32")), opts,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    S = clf.image_size[0]
    m = np.array(clf.preprocess.mean, np.float32)[:, None, None] * 255.0
    s = 1.0 / (np.array(clf.preprocess.std, np.float32)[:, None, None] * 255.0)
    W = clf.class_embeddings
    scale = clf.bundle.logit_scale
    bounds = np.cumsum([0, *clf.group_sizes])

    def run(frame: np.ndarray) -> list[np.ndarray]:
        x = cv2.resize(frame, (S, S), interpolation=cv2.INTER_LINEAR)
        x = ((x.transpose(2, 0, 1).astype(np.float32) - m) * s)[None]
        e = sess.run(None, {name: x})[0][0]
        z = scale * (W @ (e / np.linalg.norm(e)))
        out = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            p = np.exp(z[a:b] - z[a:b].max())
            out.append(p / p.sum())
        return out

    return run


def _sequence(lay, layouts_used: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [respeckle(*lay[i % layouts_used], rng) for i in range(n)]


def timing(clfs: dict[str, Classifier], savvy, lay, frames_n: int, eager=None) -> dict:
    """Interleaved per frame (noise hits every pipeline alike); medians in ms."""
    out: dict = {}
    for label, k in (("one_layout", 1), ("eight_layouts", len(lay))):
        seq = _sequence(lay, k, frames_n + len(lay), seed=k)
        warm, timed = seq[:len(lay)], seq[len(lay):]
        pipes = {"savvy": savvy, **{f"classify_{v}": c.classify for v, c in clfs.items()}}
        if eager is not None and k == 1:
            pipes["open_clip_eager"] = eager
        for fn in pipes.values():  # warm-up: sessions, allocators, the layout cache
            for f in warm:
                fn(f)
        ts = {p: [] for p in pipes}
        stages: dict[str, dict[str, list[float]]] = {v: {} for v in clfs}
        names = list(pipes)
        for j, f in enumerate(timed):
            for p in names[j % len(names):] + names[:j % len(names)]:  # rotated: no pipeline always first
                fn = pipes[p]
                t = time.perf_counter()
                r = fn(f)
                ts[p].append((time.perf_counter() - t) * 1e3)
                if p.startswith("classify_"):
                    for st, ms in r.timings.items():
                        stages[p[len("classify_"):]].setdefault(st, []).append(ms)
        med = {p: float(np.median(v)) for p, v in ts.items()}
        row = {"frames": len(timed), "ms": {p: round(v, 3) for p, v in med.items()},
               "speedup_vs_savvy": {v: round(med["savvy"] / med[f"classify_{v}"], 2) for v in clfs},
               "stages_ms": {v: {st: round(float(np.median(x)), 3) for st, x in s.items()} for v, s in stages.items()}}
        if "open_clip_eager" in med:
            row["speedup_vs_open_clip_eager"] = {v: round(med["open_clip_eager"] / med[f"classify_{v}"], 2)
                                                 for v in clfs}
        out[label] = row
    return out


def _stream_once(clf: Classifier, seq: list[np.ndarray], prefetch: bool) -> tuple[float, list[float]]:
    it = clf.stream(iter(seq), smoothing=0.6, prefetch=prefetch)
    for _ in range(20):
        next(it)
    gaps = []
    t_all = time.perf_counter()
    for _ in range(len(seq) - 20):
        t = time.perf_counter()
        next(it)
        gaps.append((time.perf_counter() - t) * 1e3)
    secs = time.perf_counter() - t_all
    it.close()
    return secs, gaps


def streaming(clf: Classifier, lay, n: int) -> dict:
    """Frames already in memory (decode is not part of it), one layout; prefetch on and off in
    ABBA order, halves of ``n`` each. Per frame: the interval between two outputs (with
    prefetch that is not one frame's latency: the next frame was prepared meanwhile)."""
    seq = _sequence(lay, 1, n // 2 + 20, seed=7)
    runs: dict[bool, list] = {True: [], False: []}
    for pf in (True, False, False, True):
        runs[pf].append(_stream_once(clf, seq, pf))
    out = {}
    for pf, rs in runs.items():
        secs = sum(r[0] for r in rs)
        gaps = [g for r in rs for g in r[1]]
        p50, p99 = float(np.median(gaps)), float(np.percentile(gaps, 99))
        out["prefetch" if pf else "inline"] = {
            "frames": len(gaps), "frames_per_s": round(len(gaps) / secs, 1), "interval_p50_ms": round(p50, 3),
            "interval_p99_ms": round(p99, 3), "p99_over_p50": round(p99 / p50, 2)}
    return out


def accuracy(clfs: dict[str, Classifier], data: str, n: int) -> dict:
    from usclip_data.us365k import US365K

    test = list(US365K(data, "test"))[:n]
    picks = {}
    for v, c in clfs.items():
        ps = []
        for i in range(0, len(test), 16):
            ps += c.classify_batch([s.image_path for s in test[i:i + 16]])
        picks[v] = ps
    out = {"frames": len(test), "data": data}
    acc = {}
    for v, ps in picks.items():
        dims = []
        for f in taxonomy.FIELDS:
            idx = [i for i, s in enumerate(test) if s.labels.get(f)]
            if idx:
                dims.append(np.mean([ps[i].attributes[f].value in s_tags for i, s_tags in
                                     ((i, set(test[i].labels[f])) for i in idx)]))
        acc[v] = float(np.mean(dims))
    out["AvgAcc"] = {v: round(100 * a, 2) for v, a in acc.items()}
    if "fp32" in picks:
        for v, ps in picks.items():
            if v == "fp32":
                continue
            same = [ps[i].attributes[f].value == picks["fp32"][i].attributes[f].value
                    for i in range(len(test)) for f in taxonomy.FIELDS]
            out.setdefault("AvgAcc_delta_points", {})[v] = round(100 * (acc[v] - acc["fp32"]), 2)
            out.setdefault("top1_agreement", {})[v] = round(float(np.mean(same)), 4)
    return out


def open_clip_eager(checkpoint: str, clf: Classifier):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_e2e import _baseline

    from usclip_train.checkpoint import load_model

    model = load_model(checkpoint).model.eval()
    pre = clf.preprocess
    run = _baseline(model, clf.class_embeddings, list(clf.group_sizes), clf.image_size[0], pre.mean, pre.std)
    return lambda f: run([f])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--variants", default=None, help="image precisions, comma separated (default: the CPU ones it has)")
    ap.add_argument("--frame", default="720p", choices=sorted(SIZES))
    ap.add_argument("--frames", type=int, default=80, help="timed frames per row")
    ap.add_argument("--stream-frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads, every pipeline (default: its own)")
    ap.add_argument("--data", default=None, help="US-365K-layout folder: the accuracy guard on its test split")
    ap.add_argument("--max", type=int, default=300, help="held-out frames for the accuracy guard")
    ap.add_argument("--checkpoint", default=None, help="also open_clip eager + PIL on this checkpoint")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    probe = Classifier(a.bundle, backend="onnxruntime", device="cpu")
    have = probe.bundle.precisions("image")
    variants = a.variants.split(",") if a.variants else [p for p in CPU_PRECISIONS if p in have]
    clfs = {v: Classifier(a.bundle, backend="onnxruntime", device="cpu", precision=v, threads=a.threads)
            for v in variants}
    auto = probe.backend.info()
    lay = layouts(*SIZES[a.frame])
    eager = open_clip_eager(a.checkpoint, probe) if a.checkpoint else None
    res = {"cpu": cpu_name(), "cores": os.cpu_count(), "frame": a.frame, "threads": a.threads,
           "bundle": probe.bundle.manifest.model.name, "bundle_path": str(a.bundle or "shipped"),
           "auto_precision": {"precision": auto["precision"], "reason": auto.get("precision_reason")},
           "command": "python bench/bench_cpu_e2e.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    res["timing"] = timing(clfs, savvy_pipeline(probe, a.threads), lay, a.frames, eager)
    res["stream"] = {v: streaming(c, lay, a.stream_frames) for v, c in clfs.items()}
    if a.data:
        res["accuracy"] = accuracy(clfs, a.data, a.max)
    for label, row in res["timing"].items():
        print(f"{label}: " + ", ".join(f"{p} {ms:.2f} ms" for p, ms in row["ms"].items())
              + "; vs savvy " + ", ".join(f"{v} {x}x" for v, x in row["speedup_vs_savvy"].items())
              + ("; vs open_clip eager " + ", ".join(f"{v} {x}x" for v, x in row["speedup_vs_open_clip_eager"].items())
                 if "speedup_vs_open_clip_eager" in row else ""))
        for v, st in row["stages_ms"].items():
            print(f"   {v} stages: " + ", ".join(f"{k} {x:.2f}" for k, x in st.items()))
    for v, modes in res["stream"].items():
        for mode, s in modes.items():
            print(f"stream {v} {mode}: {s['frames_per_s']} frames/s, interval p50 {s['interval_p50_ms']} ms, "
                  f"p99 {s['interval_p99_ms']} ms")
    if "accuracy" in res:
        print("accuracy:", json.dumps(res["accuracy"]))
    print(f"auto precision here: {auto['precision']} ({auto.get('precision_reason')})")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
