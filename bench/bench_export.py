"""Export precision bench: fp32 vs fp16 vs INT8 (Q/DQ) image encoder and int8 text encoder, on
this CPU with onnxruntime, at a real model size.

The INT8 image encoder is calibrated on synthetic frames (seeds 0..calib-1) and measured on
held-out synthetic cases (seeds from 10000): embedding cosine vs fp32, top-1 agreement, the
zero-shot AvgAcc of both (class embeddings from the model's own text tower), latency at batch 1
(median, 1 and 2 intra-op threads), file sizes. fp16 parity vs fp32 ONNX (fp16 runs here with
graph optimisation EXTENDED: onnxruntime 1.32's ORT_ENABLE_ALL crashes on fp16 graphs on CPU).

  python bench/bench_export.py --model usclip-edge [--checkpoint CKPT] [--calib 64 --eval 64]

Without --checkpoint the image tower has random weights (the text tower is MiniLM-L6): AvgAcc is
then near chance and only its change means anything. Writes bench/results/export.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _ort(path, threads=1, extended=False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if extended:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _median_ms(sess, feeds, repeats):
    sess.run(None, feeds)
    t = []
    for _ in range(repeats):
        s = time.perf_counter()
        sess.run(None, feeds)
        t.append(time.perf_counter() - s)
    return 1000 * float(np.median(t))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="usclip-edge")
    ap.add_argument("--checkpoint", default=None, help="a usclip checkpoint (else random image weights)")
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default="bench/results/export.json")
    args = ap.parse_args(argv)

    import torch

    from usclip_sdk.bundle_manifest import PreprocessSpec
    from usclip_train.export.bundle_writer import bundle_class_embeddings, quantize_text_int8
    from usclip_train.export.fp16 import convert_fp16
    from usclip_train.export.int8 import compare, quantize_image_encoder, synthetic_frames, to_model_input
    from usclip_train.export.onnx_export import export_image_encoder, export_text_encoder

    torch.manual_seed(0)
    if args.checkpoint:
        from usclip_train.checkpoint import load_model
        model, pre_cfg, tok = load_model(args.checkpoint)
    else:
        from usclip_train.factory import create_model
        model, pre_cfg, tok = create_model(args.model)
    pre = PreprocessSpec(tuple(pre_cfg.size), tuple(pre_cfg.mean), tuple(pre_cfg.std), resize_mode=pre_cfg.resize_mode)
    res: dict = {"model": args.model, "checkpoint": args.checkpoint, "image_size": list(pre.image_size)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        img = export_image_encoder(model, tmp / "img.onnx", pre.image_size)
        txt = export_text_encoder(model, tmp / "txt.onnx", tok.context_length)
        res["export_s"] = time.perf_counter() - t
        calib = [to_model_input(r, m, pre) for r, m, _ in synthetic_frames(args.calib, seed=0)]
        held = list(synthetic_frames(args.eval, seed=10_000))
        x = np.concatenate([to_model_input(r, m, pre) for r, m, _ in held])
        t = time.perf_counter()
        q = quantize_image_encoder(img.path, tmp / "img_int8.onnx", calib, img.fp32_nodes)
        res["quantize_s"] = time.perf_counter() - t
        emb = bundle_class_embeddings(model, tok)
        for threads in (1, 2):
            res[f"int8_threads{threads}"] = compare(img.path, q, x, labels=[h[2] for h in held], class_embeddings=emb,
                                                    logit_scale=float(model.logit_scale.detach().exp()),
                                                    threads=threads, repeats=args.repeats)
        h16 = convert_fp16(img.path, tmp / "img16.onnx")
        ref = _ort(img.path).run(None, {"image": x[:16]})[0]
        out16 = _ort(h16, extended=True).run(None, {"image": x[:16]})[0]
        res["fp16_image"] = {"max_abs_vs_fp32": float(np.abs(out16 - ref).max()),
                             "cosine_min": float(np.sum(out16 * ref, 1).min()),
                             "bytes": h16.stat().st_size,
                             "latency_ms_cpu_1thread": _median_ms(_ort(h16, 1, True), {"image": x[:1]}, args.repeats)}
        qt = quantize_text_int8(txt.path, tmp / "txt_int8.onnx")
        from usclip_sdk.text_tokenize import tokenize
        from usclip_sdk.bundle_manifest import TensorSpec, TextSpec
        spec = TextSpec("", tok.context_length, tok.pad_id, "none", "max_length",
                        (TensorSpec("input_ids", "int64"), TensorSpec("attention_mask", "int64")), "text_embedding")
        prompts = ["a thyroid nodule", "an anechoic cyst with posterior enhancement", "normal liver", "breast mass"]
        feeds = tokenize(tok.path, spec, prompts)
        a, b = _ort(txt.path).run(None, feeds)[0], _ort(qt).run(None, feeds)[0]
        res["int8_text"] = {"bytes_fp32": txt.path.stat().st_size, "bytes_int8": qt.stat().st_size,
                            "cosine_min": float(np.sum(a * b, 1).min()),
                            "latency_ms_fp32": _median_ms(_ort(txt.path), feeds, args.repeats),
                            "latency_ms_int8": _median_ms(_ort(qt), feeds, args.repeats)}
    print(json.dumps(res, indent=1))
    r1 = res["int8_threads1"]
    print("\n| image encoder | ms (1 thr) | ms (2 thr) | MB | cosine vs fp32 | AvgAcc | top-1 agree |", file=sys.stderr)
    print(f"| fp32 | {r1['latency_ms_fp32']:.1f} | {res['int8_threads2']['latency_ms_fp32']:.1f} | "
          f"{r1['bytes_fp32'] / 1e6:.1f} | 1 | {100 * r1['AvgAcc_fp32']:.2f} | - |", file=sys.stderr)
    print(f"| int8 Q/DQ | {r1['latency_ms_int8']:.1f} | {res['int8_threads2']['latency_ms_int8']:.1f} | "
          f"{r1['bytes_int8'] / 1e6:.1f} | {r1['cosine_mean']:.4f} (min {r1['cosine_min']:.4f}) | "
          f"{100 * r1['AvgAcc_int8']:.2f} | {r1['top1_agreement']:.3f} |", file=sys.stderr)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
