"""Soak: 50k frames through Classifier.stream; resident memory and latency over time.

    nice -n 10 python bench/soak.py --frames 50000 --json bench/results/soak.json

Frames are scanner-like 240 x 320 RGB screens (a pool of 64, each delivered as a fresh copy
with a frame counter burned in, as a capture card would hand over new buffers), streamed with
the default smoothing and region refresh. The bundle is the shipped one when installed
(python/usclip_sdk/models/usclip-edge*), else ``--bundle``, else the tests' tiny real-ONNX
bundle (tests/sdk_bundle.py).

Pass criteria (issue 7): RSS growth from frame ``--warmup`` (5k) to the end < 10 MB, and
latency p99 <= 2 x p50 after warm-up. Latency is reported as wall time per frame and as
process CPU time per frame: on a shared machine wall-clock tails mostly measure the
neighbours, CPU time measures this process. Exit status 1 when a criterion fails.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from usclip_sdk.classifier import Classifier  # noqa: E402

__all__ = ["rss_mb", "frames", "main"]


def rss_mb() -> float:
    """Resident set size of this process in MB (from /proc: no extra dependency)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def frames(n: int, h: int, w: int):
    """n fresh frames cycling through 64 scanner-like screens, each with a counter burned in."""
    from test_classifier import screen

    pool = [screen(s, h, w) for s in range(64)]
    for i in range(n):
        f = pool[i % len(pool)].copy()
        f[h - 6:h - 2, 4:4 + (i % 32)] = 255  # a changing on-screen counter, outside the scan
        yield f


def _proxy_image_onnx(size: int = 224) -> bytes:
    """A conv image encoder of edge-model cost (3 strided 3x3 convs, 64-128-256 channels:
    about 0.48 GMAC at 224 x 224, near the edge ViT's ~0.6) with random weights: a stand-in
    for the encoder's compute, not a model. Output: L2-normalised 16-d embeddings."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from sdk_bundle import D

    rng = np.random.default_rng(0)
    chans, inits, nodes, x = [3, 64, 128, 256], [], [], "image"
    for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
        w = (rng.standard_normal((b, a, 3, 3)) / np.sqrt(9 * a)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    inits += [numpy_helper.from_array(rng.standard_normal((chans[-1], D)).astype(np.float32), "P"),
              numpy_helper.from_array(np.array(1e-12, np.float32), "eps")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"], axis=1),
              helper.make_node("MatMul", ["f", "P"], ["feat"]),
              helper.make_node("ReduceL2", ["feat"], ["norm"], axes=[1], keepdims=1),
              helper.make_node("Max", ["norm", "eps"], ["safe"]),
              helper.make_node("Div", ["feat", "safe"], ["image_embedding"])]
    graph = helper.make_graph(
        nodes, "proxy_image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("image_embedding", TensorProto.FLOAT, ["batch", D])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _proxy_bundle(tiny: Path) -> Path:
    """The tiny bundle with its image encoder swapped for the edge-cost proxy at 224 x 224."""
    from sdk_bundle import manifest

    from usclip_sdk.bundle import write_bundle

    m = manifest("proxy-encoder")
    m["preprocess"]["image_size"] = [224, 224]
    files = {"image_encoder.onnx": _proxy_image_onnx(), "text_encoder.onnx": tiny / "text_encoder.onnx",
             "tokenizer.json": tiny / "tokenizer.json"}
    emb = np.load(tiny / "class_embeddings.npy", allow_pickle=False)
    return write_bundle(tiny.parent / "proxy", m, files, emb)


def _bundle(arg: str | None, proxy: bool = False) -> tuple[Path, str]:
    if arg:
        return Path(arg), "given"
    if proxy:
        from sdk_bundle import make_tiny_bundle

        tiny = make_tiny_bundle(Path(tempfile.mkdtemp(prefix="soak-")) / "tiny")
        return _proxy_bundle(tiny), "tiny bundle with an edge-cost proxy image encoder"
    shipped = sorted((ROOT / "python" / "usclip_sdk" / "models").glob("usclip-edge*"))
    if shipped:
        return shipped[0], "shipped"
    from sdk_bundle import make_tiny_bundle

    return make_tiny_bundle(Path(tempfile.mkdtemp(prefix="soak-")) / "tiny"), "tiny test bundle"


def _pct(a: np.ndarray) -> dict:
    p50, p90, p99 = (float(np.percentile(a, q)) for q in (50, 90, 99))
    return {"p50_ms": round(p50, 3), "p90_ms": round(p90, 3), "p99_ms": round(p99, 3),
            "max_ms": round(float(a.max()), 3), "p99_over_p50": round(p99 / p50, 3)}


STAGES = ("region", "preprocess", "encode", "similarity")


def soak(clf: Classifier, n: int, warmup: int, h: int, w: int, sample_every: int,
         refresh: int) -> dict:
    wall = np.empty(n)
    cpu = np.empty(n)
    stages = np.empty((n, len(STAGES)))
    rss: list[tuple[int, float]] = [(0, rss_mb())]
    it = clf.stream(frames(n, h, w), refresh_region_every=refresh)
    t_start = time.perf_counter()
    for i in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        pred = next(it)
        wall[i] = (time.perf_counter() - t0) * 1e3
        cpu[i] = (time.process_time() - c0) * 1e3
        stages[i] = [pred.timings[k] for k in STAGES]
        if (i + 1) % sample_every == 0 or i + 1 == warmup:
            rss.append((i + 1, rss_mb()))
    seconds = time.perf_counter() - t_start
    at = dict(rss)
    after = [(k, v) for k, v in rss if k >= warmup]
    slope = np.polyfit([k for k, _ in after], [v for _, v in after], 1)[0] if len(after) > 2 else 0.0
    return {"frames": n, "warmup": warmup, "seconds": round(seconds, 1),
            "rss_start_mb": round(rss[0][1], 1), "rss_at_warmup_mb": round(at[warmup], 1),
            "rss_end_mb": round(rss[-1][1], 1),
            "rss_growth_after_warmup_mb": round(rss[-1][1] - at[warmup], 2),
            "rss_max_after_warmup_mb": round(max(v for _, v in after), 1),
            "rss_slope_mb_per_10k_frames": round(float(slope) * 1e4, 3),
            "wall": _pct(wall[warmup:]), "cpu": _pct(cpu[warmup:]),
            "stages": {k: _pct(stages[warmup:, j]) for j, k in enumerate(STAGES)},
            "rss_samples": [(k, round(v, 2)) for k, v in rss]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--warmup", type=int, default=5_000)
    ap.add_argument("--size", default="240x320", help="frame H x W")
    ap.add_argument("--bundle", help="bundle path (default: shipped, else the tiny test bundle)")
    ap.add_argument("--sample-every", type=int, default=500, help="RSS sample interval (frames)")
    ap.add_argument("--refresh", type=int, default=10,
                    help="stream(refresh_region_every=...): 10 is the default; a huge value "
                         "isolates the per-frame pipeline from the periodic region refresh")
    ap.add_argument("--proxy-encoder", action="store_true",
                    help="swap the tiny bundle's image encoder for a conv proxy of edge-model "
                         "cost (~0.48 GMAC at 224 x 224), so the other stages weigh as in use")
    ap.add_argument("--threads", type=int, default=0,
                    help="native + onnxruntime threads (0: their defaults, all cores)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.threads:  # read by the native thread pool on first use, i.e. after this
        os.environ["USCLIP_NUM_THREADS"] = str(args.threads)
    path, kind = _bundle(args.bundle, args.proxy_encoder)
    clf = Classifier.from_bundle(path, backend="onnxruntime", device="cpu",
                                 threads=args.threads or None)
    r = soak(clf, args.frames, args.warmup, h, w, args.sample_every, args.refresh)
    growth_ok = r["rss_growth_after_warmup_mb"] < 10.0
    tail_ok = r["wall"]["p99_over_p50"] <= 2.0
    print(f"soak: {r['frames']} frames of {h}x{w} via Classifier.stream on the {kind} "
          f"({clf.bundle.manifest.model.name}), region refresh every {args.refresh}, "
          f"threads {args.threads or 'default'}, {r['seconds']} s")
    print(f"{'measure':<34} {'value':>10}")
    rows = [("RSS at start (MB)", r["rss_start_mb"]), (f"RSS at frame {args.warmup} (MB)",
            r["rss_at_warmup_mb"]), ("RSS at end (MB)", r["rss_end_mb"]),
            ("RSS growth after warm-up (MB)", r["rss_growth_after_warmup_mb"]),
            ("RSS slope (MB / 10k frames)", r["rss_slope_mb_per_10k_frames"])]
    for clock in ("wall", "cpu"):
        rows += [(f"{clock} {k}", v) for k, v in r[clock].items()]
    for k, v in r["stages"].items():  # from Prediction.timings: where the tail comes from
        rows += [(f"stage {k} p50 / p99 (ms)", f"{v['p50_ms']} / {v['p99_ms']}")]
    for name, v in rows:
        print(f"{name:<34} {v:>10}")
    verdict = ("PASS" if growth_ok and tail_ok else "FAIL")
    print(f"RSS growth < 10 MB: {'yes' if growth_ok else 'NO'}; wall p99 <= 2 x p50: "
          f"{'yes' if tail_ok else 'NO'} (cpu p99/p50 {r['cpu']['p99_over_p50']}): {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        r |= {"bundle": kind, "size": [h, w], "refresh_region_every": args.refresh,
              "threads": args.threads or "default",
              "result": verdict, "loadavg_at_end": os.getloadavg(),
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "command": "python bench/soak.py " + " ".join(argv if argv is not None else sys.argv[1:])}
        args.json.write_text(json.dumps(r, indent=1) + "\n")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
