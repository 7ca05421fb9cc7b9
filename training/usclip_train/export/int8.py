"""INT8 by explicit quantisation: Q/DQ ONNX files of the image encoder, one per runtime.

onnxruntime's static quantisation in QDQ format (QuantizeLinear/DequantizeLinear pairs around
each quantised tensor), calibrated on ultrasound frames: synthetic scanner frames from
``usclip_data.synth`` (held-out seeds are disjoint) or a folder of a user's frames. Both
TensorRT 10 and 11 consume Q/DQ ONNX directly (no calibrator). A second file, the bundle's
``int8_cpu`` encoder, is calibrated on the same frames with uint8 activations for onnxruntime
on x86 CPUs (``target="cpu"``).

Weights int8 per channel, activations int8 (TensorRT) or uint8 (CPU) per tensor (MinMax over
the calibration set: percentile calibration clipped ViT outliers worse here). LayerNormalization, Softmax and the
final L2 norm are left unquantised (``nodes_to_exclude``): they stay fp32, the same islands as
the fp16 variant. ``compare`` measures what it costs: embedding cosine vs fp32, zero-shot
AvgAcc on labelled synthetic cases, and CPU latency.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = ["TARGETS", "calibration_frames", "synthetic_frames", "folder_frames", "to_model_input",
           "quantize_image_encoder", "compare"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def synthetic_frames(n: int, seed: int = 0,
                     size: tuple[int, int] = (240, 320)) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """``n`` synthetic frames as (RGB uint8, region mask, labels); seeds ``seed..seed+n-1``."""
    from usclip_data.synth import render_view, sample_case

    for i in range(n):
        case = sample_case(np.random.default_rng(seed + i), f"calib-{seed + i}")
        f = render_view(case, 0, seed + i, size=size)
        yield f.image, f.region_mask, f.labels


def folder_frames(folder: str | Path, n: int) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Up to ``n`` image files from ``folder`` (sorted) with their detected imaging regions."""
    from usclip_sdk.inputs import load_image
    from usclip_sdk.region import detect_region

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"calibration folder {folder}: no images ({', '.join(_IMAGE_SUFFIXES)})")
    for p in paths[:n]:
        px = load_image(p)  # the runtime's decoder (16-bit stretched as at inference)
        yield px, detect_region(px).mask, {}


def calibration_frames(source: str | Path, n: int, seed: int = 0):
    """'synthetic' or a folder path -> iterator of (RGB, mask, labels)."""
    return synthetic_frames(n, seed) if str(source) == "synthetic" else folder_frames(source, n)


def to_model_input(pixels: np.ndarray, mask: np.ndarray, pre: Any) -> np.ndarray:
    """The runtime's model input (``usclip_sdk.pixels.model_input``) of a frame and its region
    mask -> 1 x 3 x H x W float32; ``pre`` is the model's PreprocessSpec."""
    from usclip_sdk.pixels import model_input
    from usclip_sdk.region import region_from_mask

    r = region_from_mask(mask)
    return model_input(pixels, r.bbox, r.mask, pre, dtype="float32")


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed frames."""

    def __init__(self, inputs: Sequence[np.ndarray], name: str):
        self._it = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self._it, None)


TARGETS = ("tensorrt", "cpu")


def quantize_image_encoder(fp32_onnx: str | Path, dst: str | Path, calib_inputs: Sequence[np.ndarray],
                           fp32_nodes: Sequence[str] = (), input_name: str = "image",
                           target: str = "tensorrt") -> Path:
    """Write the Q/DQ int8 image encoder to ``dst``; ``calib_inputs`` are 1 x 3 x H x W arrays.

    target "tensorrt": int8 activations with zero point 0 (TensorRT's Q/DQ path requires them);
    "cpu": uint8 activations with a zero point, int8 symmetric per-channel 7-bit weights - the U8S8
    form onnxruntime's x86 kernels run fast (conv edge tower, 1 thread: about 3x fp32 on an
    AVX512-VNNI Xeon, 1.6x on an AVX2 EPYC, while the TensorRT form runs no faster than fp32)."""
    if target not in TARGETS:
        raise ValueError(f"target: expected one of {list(TARGETS)}, found {target!r}")
    import logging

    from .quiet_quantizer import quiet_quantizer
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(calib_inputs) < 8:
        raise ValueError(f"calib_inputs: expected >= 8 calibration frames, found {len(calib_inputs)}")
    # the quantizer logs advice for every Gemm: errors only, without touching the root logger
    with quiet_quantizer(logging.ERROR):
        quantize_static(
            str(fp32_onnx), str(dst), _Reader(calib_inputs, input_name), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if target == "tensorrt" else QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=True,
            # 7-bit weights on the CPU file: onnxruntime's x86 u8 x s8 kernels add pairs of
            # products in int16 and saturate with full-range weights (embedding cosine to fp32
            # 0.98 -> 0.999 on the tiny test tower with reduce_range, at the same speed)
            reduce_range=target == "cpu",
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(fp32_nodes),
            extra_options={"ActivationSymmetric": target == "tensorrt", "WeightSymmetric": True})
    return Path(dst)


def _latency_ms(sess, x: np.ndarray, name: str, repeats: int) -> float:
    sess.run(None, {name: x})  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times))


def compare(fp32_onnx: str | Path, int8_onnx: str | Path, inputs: np.ndarray, labels: Sequence[dict] | None = None,
            class_embeddings: np.ndarray | None = None, logit_scale: float = 100.0, threads: int = 1,
            repeats: int = 20) -> dict:
    """fp32 vs int8 on ``inputs`` (N x 3 x H x W): cosine, AvgAcc (when labels and class
    embeddings are given), median CPU latency at batch 1 (``threads`` intra-op threads)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sessions = {k: ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
                for k, p in (("fp32", fp32_onnx), ("int8", int8_onnx))}
    name = sessions["fp32"].get_inputs()[0].name
    emb = {k: np.concatenate([s.run(None, {name: inputs[i:i + 16]})[0] for i in range(0, len(inputs), 16)])
           for k, s in sessions.items()}
    cos = np.sum(emb["fp32"] * emb["int8"], axis=1)
    out: dict[str, Any] = {"n": int(len(inputs)), "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
                           "threads": threads}
    for k, s in sessions.items():
        out[f"latency_ms_{k}"] = _latency_ms(s, inputs[:1], name, repeats)
    out["speedup"] = out["latency_ms_fp32"] / out["latency_ms_int8"]
    out["bytes_fp32"], out["bytes_int8"] = Path(fp32_onnx).stat().st_size, Path(int8_onnx).stat().st_size
    if labels is not None and class_embeddings is not None:
        from usclip_sdk import taxonomy

        from ..evaluate.metrics import targets_for, zeroshot_metrics
        from ..evaluate.zeroshot import split_flat

        weights = split_flat(class_embeddings)
        targets = {f: targets_for(labels, f) for f in taxonomy.FIELDS}
        for k in ("fp32", "int8"):
            out[f"AvgAcc_{k}"] = zeroshot_metrics(emb[k], weights, targets, scale=logit_scale)["AvgAcc"]
        out["AvgAcc_delta_points"] = 100.0 * (out["AvgAcc_int8"] - out["AvgAcc_fp32"])
        # how often both pick the same class, over every (frame, dimension): noise-free, unlike AvgAcc
        same = [np.argmax(emb["fp32"] @ w.T, 1) == np.argmax(emb["int8"] @ w.T, 1) for w in weights.values()]
        out["top1_agreement"] = float(np.mean(np.concatenate(same)))
    return out
