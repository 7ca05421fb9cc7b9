"""Region cost: detect_region per resolution (per-stage profile), against the encoder-free part
of a savvy pipeline, and eight scanner layouts in turn through the layout cache, one run.

1. detect_region at 480p, 720p, 1080p on eight layouts (cli.bench.synthetic_screen and seven
   usclip_data.synth scanner screens, bench_e2e.py's cases), best of --reps per frame, median
   over the layouts; per-stage time with every helper of usclip_sdk.region/.layout timed
   (inclusive: foreground contains background and _max_pool).
2. The savvy pipeline without its encoder: cv2.resize of the whole frame to the model input,
   normalise to NCHW float32, numpy softmax over the 93 class logits; region time / that.
3. Eight layouts in turn, --passes times, the content re-speckled every frame (the layout's
   scan pixels times a random gain and Rayleigh noise): RegionCache(16) (Classifier.classify)
   against one kept layout (the previous policy: one region per frame size), hit rate, ms per
   frame after the first pass, and whether every frame got its own layout's region.
4. Layout matching on 40 random synthetic layouts x 4 content variants (720p, 480p): the old
   rule (at most 1 % of the 32 x 24 cells differ) against LayoutPrint.matches (3 % and the
   edge bands): same-layout hit rate, different-layout matches and their worst region IoU.
5. --classifier: the shipped bundle, eight layouts in turn through Classifier.classify (one
   frame a call) against the savvy pipeline with onnxruntime on the same image ONNX.
6. --before REV: usclip_sdk/region.py as of git revision REV, loaded beside the current one:
   its detect_region timed interleaved with the current one on the same frames (ratio), the
   regions compared, and its per-frame cost for eight layouts in turn (its fingerprint plus a
   detection: it kept one region per frame size, so every layout change re-detected).
Usage: python bench/bench_region.py [--reps 5] [--passes 4] [--classifier] [--before REV] [--json out.json]
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import types
from datetime import date
from pathlib import Path

import cv2
import numpy as np

from usclip_data.synth import render_view, sample_case
from usclip_sdk import layout, region
from usclip_sdk.cli.bench import synthetic_screen
from usclip_sdk.layout import FramePrint, LayoutPrint, RegionCache
from usclip_sdk.region import detect_region, iou

__all__ = ["main"]

SIZES = {"480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920)}


def layouts(h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Eight screens and their true region masks (synthetic_screen's: its detected mask)."""
    img = synthetic_screen(h, w, 0)
    out = [(img, detect_region(img).mask)]
    rng = np.random.default_rng(0)
    for i in range(7):
        f = render_view(sample_case(rng, f"e{i}"), 0, i, size=(h, w))
        out.append((f.image, f.region_mask))
    return out


def respeckle(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same layout with new content: the scan's pixels times a gain and Rayleigh noise."""
    out = img.copy()
    m = mask > 0
    g = rng.uniform(0.6, 1.4) * rng.rayleigh(0.8, int(m.sum()))
    out[m] = np.clip(img[m] * g[:, None], 0, 255).astype(np.uint8)
    return out


def _best(fn, frame, reps: int) -> float:
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        fn(frame)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _profile(frames: list[np.ndarray], reps: int) -> dict[str, float]:
    """ms per frame in each helper of region and layout (inclusive), detect_region timed whole."""
    acc: dict[str, float] = {}
    saved = []
    for mod in (region, layout):
        for name, fn in list(vars(mod).items()):
            if isinstance(fn, types.FunctionType) and fn.__module__ in (region.__name__, layout.__name__) \
                    and name not in ("detect_region", "check_frame", "_check"):
                def timed(*a, _fn=fn, _n=name, **k):
                    t = time.perf_counter()
                    try:
                        return _fn(*a, **k)
                    finally:
                        acc[_n] = acc.get(_n, 0.0) + time.perf_counter() - t
                saved.append((mod, name, fn))
                setattr(mod, name, functools.wraps(fn)(timed))
    try:
        for _ in range(reps):
            for f in frames:
                region.detect_region(f)
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    n = reps * len(frames)
    return {k: round(v / n * 1e3, 3) for k, v in sorted(acc.items(), key=lambda kv: -kv[1])}


def savvy_free(image_size: int, mean, std):
    """The savvy pipeline minus its encoder: resize, normalise (NCHW), softmax of 93 logits."""
    m = np.array(mean, np.float32)[:, None, None] * 255.0
    s = 1.0 / (np.array(std, np.float32)[:, None, None] * 255.0)
    logits = np.random.default_rng(0).normal(size=93).astype(np.float32)

    def run(frame: np.ndarray) -> np.ndarray:
        x = cv2.resize(frame, (image_size, image_size), interpolation=cv2.INTER_LINEAR)
        x = (x.transpose(2, 0, 1).astype(np.float32) - m) * s
        e = np.exp(logits - logits.max())
        return x, e / e.sum()
    return run


def detection(reps: int, image_size: int) -> tuple[dict, dict]:
    res, frames_by_size = {}, {}
    free = savvy_free(image_size, (0.481, 0.458, 0.408), (0.269, 0.261, 0.276))
    for name, (h, w) in SIZES.items():
        lay = layouts(h, w)
        frames_by_size[name] = lay
        frames = [f for f, _ in lay]
        for f in frames:
            detect_region(f)  # warm
        det = [_best(detect_region, f, reps) for f in frames]
        prints = [_best(FramePrint, f, reps) for f in frames]
        fr = [_best(free, f, reps) for f in frames]
        res[name] = {"detect_ms": round(float(np.median(det)), 2), "detect_ms_max": round(max(det), 2),
                     "detect_ms_per_layout": [round(x, 2) for x in det],
                     "frame_print_ms": round(float(np.median(prints)), 3),
                     "savvy_encoder_free_ms": round(float(np.median(fr)), 3),
                     "detect_over_savvy_free": round(float(np.median(det) / np.median(fr)), 2),
                     "kinds": [detect_region(f).kind for f in frames],
                     "stages_ms": _profile(frames, max(1, reps // 2))}
    return res, frames_by_size


def in_turn(lay: list[tuple[np.ndarray, np.ndarray]], passes: int, size: int) -> dict:
    """Eight layouts in turn through a RegionCache of ``size`` layouts."""
    cache = RegionCache(detect_region, size=size)
    rng = np.random.default_rng(1)
    first, later, ious = [], [], []
    for p in range(passes):
        for img, mask in lay:
            f = respeckle(img, mask, rng) if p else img
            t = time.perf_counter()
            r = cache(f)
            (later if p else first).append((time.perf_counter() - t) * 1e3)
            ious.append(iou(r.mask, mask))
    n = passes * len(lay)
    return {"kept_layouts": size, "hit_rate": round(cache.hits / n, 3), "detections": cache.detections,
            "ms_per_frame_first_pass": round(float(np.median(first)), 2),
            "ms_per_frame_later_passes": round(float(np.median(later)), 3) if later else None,
            "iou_vs_truth_min": round(min(ious), 3), "iou_vs_truth_mean": round(float(np.mean(ious)), 4)}


def matching(h: int, w: int, n: int = 40) -> dict:
    """Old rule (cells <= 1 %) vs LayoutPrint.matches on n random layouts x 4 variants."""
    rng = np.random.default_rng(5)
    frs = []
    for i in range(n):
        try:
            frs.append(render_view(sample_case(rng, f"x{i}"), int(rng.integers(0, 4)),
                                   int(rng.integers(1 << 30)), size=(h, w)))
        except ValueError:
            pass
    vr = np.random.default_rng(2)
    variants = [[respeckle(f.image, f.region_mask, vr) for _ in range(4)] for f in frs]
    regs = [detect_region(f.image) for f in frs]
    kept = [LayoutPrint(FramePrint(f.image), r) for f, r in zip(frs, regs)]
    vp = [[FramePrint(x) for x in row] for row in variants]
    old = lambda p, q: float(np.mean(p.cells != q.cells)) <= 0.01  # noqa: E731
    new = lambda p, q: p.matches(q, 0.03) is not None  # noqa: E731
    out = {}
    for name, rule in (("old_cells_1pct", old), ("layout_print_3pct", new)):
        same = np.mean([rule(kept[i], q) for i in range(len(frs)) for q in vp[i]])
        cross = [iou(regs[i].mask, regs[j].mask) for i in range(len(frs)) for j in range(len(frs))
                 if i != j and rule(kept[i], vp[j][0])]
        out[name] = {"same_layout_hit_rate": round(float(same), 3),
                     "other_layout_matches": len(cross), "pairs": len(frs) * (len(frs) - 1),
                     "other_layout_matches_iou_below_0.98": int(np.sum(np.array(cross) < 0.98)),
                     "worst_iou_of_a_match": round(min(cross), 3) if cross else None}
    return out


def classifier_in_turn(lay: list[tuple[np.ndarray, np.ndarray]], passes: int, threads: int) -> dict:
    """Classifier.classify (one frame a call) vs the savvy pipeline with onnxruntime."""
    import onnxruntime as ort

    from usclip_sdk.classifier import Classifier

    clf = Classifier(backend="onnxruntime", device="cpu", threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(clf.bundle.encoder_path("image")), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    S = clf.image_size[0]
    m = np.array(clf.preprocess.mean, np.float32)[:, None, None] * 255.0
    s = 1.0 / (np.array(clf.preprocess.std, np.float32)[:, None, None] * 255.0)
    W = clf.class_embeddings
    bounds = np.cumsum([0, *clf.group_sizes])

    def savvy(frame: np.ndarray) -> np.ndarray:
        x = cv2.resize(frame, (S, S), interpolation=cv2.INTER_LINEAR)
        x = ((x.transpose(2, 0, 1).astype(np.float32) - m) * s)[None]
        e = sess.run(None, {name: x})[0][0]
        z = clf.bundle.logit_scale * (W @ (e / np.linalg.norm(e)))
        return np.concatenate([np.exp(z[a:b] - z[a:b].max()) / np.exp(z[a:b] - z[a:b].max()).sum()
                               for a, b in zip(bounds[:-1], bounds[1:])])

    rng = np.random.default_rng(3)
    seq = [(k, respeckle(img, mask, rng)) for _ in range(passes) for k, (img, mask) in enumerate(lay)]
    for _, f in seq[:len(lay)]:  # first pass: warm-up for both, and the cache learns the layouts
        savvy(f)
        clf.classify(f)
    ours, theirs, stages = [], [], {}
    for _, f in seq[len(lay):]:
        t = time.perf_counter()
        p = clf.classify(f)
        ours.append((time.perf_counter() - t) * 1e3)
        for k, v in p.timings.items():
            stages.setdefault(k, []).append(v)
        t = time.perf_counter()
        savvy(f)
        theirs.append((time.perf_counter() - t) * 1e3)
    o, t = float(np.median(ours)), float(np.median(theirs))
    return {"bundle": clf.bundle.manifest.model.name, "threads": threads, "frames": len(ours),
            "classify_ms": round(o, 2), "savvy_ms": round(t, 2), "speedup_vs_savvy": round(t / o, 2),
            "classify_stages_ms": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
            "region_cache": {"hits": clf._regions.hits, "detections": clf._regions.detections}}


def load_before(rev: str) -> types.ModuleType:
    """usclip_sdk/region.py at git revision ``rev``, as the module usclip_sdk._region_before."""
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "show", f"{rev}:python/usclip_sdk/region.py"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("usclip_sdk._region_before", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "usclip_sdk"  # its relative imports (._deps, .errors) resolve as usual
    sys.modules[spec.name] = mod  # dataclasses look their module up
    exec(compile(src, f"{rev}:region.py", "exec"), mod.__dict__)
    return mod


def before_after(old: types.ModuleType, by_size: dict, reps: int) -> dict:
    """Old and current detect_region interleaved on the same frames; identical regions?"""
    out = {}
    for name, lay in by_size.items():
        o, n, fp, same = [], [], [], 0
        for f, _ in lay:
            t_old = t_new = 1e9
            for _ in range(reps):  # interleaved: both see the same load
                t = time.perf_counter()
                old.detect_region(f)
                t_old = min(t_old, time.perf_counter() - t)
                t = time.perf_counter()
                detect_region(f)
                t_new = min(t_new, time.perf_counter() - t)
            a, b = old.detect_region(f), detect_region(f)
            same += a.bbox == b.bbox and a.kind == b.kind and bool(np.array_equal(a.mask, b.mask))
            o.append(t_old * 1e3)
            n.append(t_new * 1e3)
            fp.append(_best(old.RegionTracker.fingerprint, f, reps))
        out[name] = {"before_ms": round(float(np.median(o)), 2), "after_ms": round(float(np.median(n)), 2),
                     "speedup": round(float(np.median(o) / np.median(n)), 2),
                     "identical_regions": f"{same}/{len(lay)}",
                     "before_eight_layouts_ms_per_frame": round(float(np.median(np.add(o, fp))), 2),
                     "before_fingerprint_ms": round(float(np.median(fp)), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="best of this many runs per frame")
    ap.add_argument("--passes", type=int, default=4, help="passes over the eight layouts")
    ap.add_argument("--image-size", type=int, default=128, help="savvy pipeline input (shipped model: 128)")
    ap.add_argument("--classifier", action="store_true", help="also the shipped bundle vs savvy + onnxruntime")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads on both sides (1: on a busy "
                    "2-core box a second thread waits for a core, and its spin-wait slows the next stage)")
    ap.add_argument("--before", help="git revision whose region.py to time beside the current one")
    ap.add_argument("--json", help=f"default bench/results/region_{date.today():%Y%m%d}.json")
    a = ap.parse_args()
    old = load_before(a.before) if a.before else None
    det, by_size = detection(a.reps, a.image_size)
    cpuinfo = Path("/proc/cpuinfo")
    model = next((ln.split(":", 1)[1].strip() for ln in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
                  if ln.startswith("model name")), platform.processor() or platform.machine())
    res = {"date": str(date.today()), "machine": model,
           "cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
           "cv2_threads": cv2.getNumThreads(), "detect_region": det,
           "eight_layouts_in_turn": {k: {"cache_16": in_turn(v, a.passes, 16), "cache_1": in_turn(v, a.passes, 1)}
                                     for k, v in by_size.items()},
           "layout_matching": {f"{h}p": matching(h, w) for h, w in ((720, 1280), (480, 640))}}
    if old is not None:
        res["before_after"] = {"before": a.before, **before_after(old, by_size, a.reps)}
    if a.classifier:
        res["classifier_eight_layouts_720p"] = classifier_in_turn(by_size["720p"], a.passes, a.threads)
    for k, v in det.items():
        top = ", ".join(f"{n} {ms}" for n, ms in list(v["stages_ms"].items())[:6])
        print(f"{k}: detect {v['detect_ms']} ms (max {v['detect_ms_max']}), print {v['frame_print_ms']} ms, "
              f"savvy encoder-free {v['savvy_encoder_free_ms']} ms (detect x{v['detect_over_savvy_free']}); {top}")
    for k, v in res["eight_layouts_in_turn"].items():
        print(f"{k} eight layouts in turn: {v['cache_16']} | one kept: {v['cache_1']}")
    for k, v in res["layout_matching"].items():
        print(f"{k} matching: {v}")
    if a.before:
        print("before/after:", res["before_after"])
    if a.classifier:
        print("classifier:", res["classifier_eight_layouts_720p"])
    out = Path(a.json or f"bench/results/region_{date.today():%Y%m%d}.json")
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
