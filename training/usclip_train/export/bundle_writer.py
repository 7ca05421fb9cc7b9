"""Checkpoint -> model bundle (the one artifact the SDK loads).

Writes image_encoder.onnx and text_encoder.onnx (fp32, L2-normalised outputs), optionally
their fp16 variants (``fp16=True``) and an int8 dynamically quantised text encoder
(``int8_text=True``; it then replaces the fp32 text encoder to keep the bundle small),
tokenizer.json, and class_embeddings.npy: the prompt-ensemble embeddings of all 93 taxonomy
values (mean of L2-normalised prompt embeddings, renormalised; ``evaluate.zeroshot``), so the
default use needs no text tower. The file format itself is ``usclip_sdk.bundle.write_bundle``.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from usclip_sdk import taxonomy
from usclip_sdk.bundle import sha256_file, write_bundle
from usclip_sdk.pixels import PreprocessSpec

from ..evaluate.zeroshot import class_weights, flat_class_embeddings
from ..factory import embed_dim_of
from .fp16 import convert_fp16
from .onnx_export import ExportedTower, ImageTower, TextTower, export_image_encoder, export_text_encoder
from .parity import check_image_parity, check_text_parity, recorded_trace_warnings
from .weight_storage import store_weights_fp16

__all__ = ["BundleSource", "bundle_class_embeddings", "quantize_text_int8", "write_model_bundle",
           "export_checkpoint"]


@dataclass(frozen=True)
class BundleSource:
    """What a bundle records about the model besides its weights (from a checkpoint's spec)."""

    name: str
    preprocess: PreprocessSpec  # the one spec of the image input (usclip_sdk.pixels)
    tokenizer_path: str
    context_length: int
    pad_id: int
    provenance: Mapping[str, Any] = field(default_factory=dict)
    label_support: Mapping[str, Sequence[str]] | None = None  # values the training data carries


def _encode_text_fn(model: torch.nn.Module, tokenizer, batch: int = 64):
    tower = TextTower(model).float().cpu().eval()
    pad_id = int(tokenizer.pad_id)

    @torch.no_grad()
    def encode(texts: Sequence[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch):
            ids = tokenizer(list(texts[i:i + batch]))
            out.append(tower(ids, (ids != pad_id).long()).numpy())
        return np.concatenate(out).astype(np.float32)
    return encode


def _templates(prompt_set: str) -> dict[str, tuple[str, ...]]:
    return {d.field: taxonomy.prompt_templates(d.field, prompt_set) for d in taxonomy.DIMENSIONS}


def bundle_class_embeddings(model: torch.nn.Module, tokenizer, prompt_set: str = "held_out") -> np.ndarray:
    """93 x D prompt-ensemble class embeddings in ``taxonomy.class_names()`` order, from the
    taxonomy's ``prompt_set``: "held_out" (phrasings training never uses as captions, so the
    bundle's zero-shot answers are not prompt classification) or "train"."""
    return flat_class_embeddings(class_weights(_encode_text_fn(model, tokenizer),
                                               templates=_templates(prompt_set)))


@torch.no_grad()
def graph_class_embeddings(model: torch.nn.Module, tokenizer, fusion: torch.nn.Module,
                           prompt_set: str = "held_out") -> np.ndarray:
    """93 x D class embeddings through the training's full text path: each value's prompts
    through the text tower, fused with the attribute graph of that value's own label.

    A model trained with the graph aligns images with text + graph residual, and at the
    release's fusion strength that residual turns the embedding a long way (the conv edge run
    at step 500: cosine 0.46 between fused and label-free anchors; zero-shot AvgAcc 33.9 with
    label-free anchors, 46.2 with these). A class prompt knows its label, so its anchor can
    take the same path; only free text (``Classifier.set_labels``) has no label and uses the
    exported label-free text tower."""
    from ..factory import text_head_of

    head = text_head_of(model)
    if head is None:
        raise ValueError("graph_class_embeddings: the model has no TextHead (text_head 'none'), "
                         "so it was not trained with the attribute graph")
    # Computed in float32 on the CPU; the model and the fusion go back to where they were
    # (training's end-of-run evaluation and `usclip eval` keep using them on their device).
    where = [(m, next(m.parameters())) for m in (model, fusion)]
    model, fusion = model.float().cpu().eval(), fusion.float().cpu().eval()
    rows = []
    try:
        for j, (dim, value) in enumerate(taxonomy.class_names()):
            ids = tokenizer(list(taxonomy.prompts(dim, value, prompt_set=prompt_set)))
            head.active = False
            try:
                raw = model.encode_text(ids, normalize=False)
            finally:
                head.active = True
            labels = torch.zeros(raw.shape[0], len(taxonomy.class_names()))
            labels[:, j] = 1.0
            e = torch.nn.functional.normalize(fusion(raw, labels), dim=-1).mean(0)
            rows.append(torch.nn.functional.normalize(e, dim=0))
    finally:
        for m, p in where:
            m.to(device=p.device, dtype=p.dtype)
    return torch.stack(rows).numpy().astype(np.float32)


def graph_class_weights(model: torch.nn.Module, tokenizer, fusion: torch.nn.Module,
                        fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``graph_class_embeddings`` of the training templates as zero-shot weights per dimension
    (what ``evaluate(class_weights=...)`` takes): how a model trained with the graph is scored
    at the end of training and by ``usclip eval`` of its checkpoint. Label-free anchors score
    such a model far below what it learnt (the v4 full model: AvgAcc 41.4 vs 56.3 on 600 test
    frames), which would make every graph variant of bench/ablation.py look worse than it is."""
    from ..evaluate.zeroshot import split_flat

    weights = split_flat(graph_class_embeddings(model, tokenizer, fusion, prompt_set="train"))
    return {f: w for f, w in weights.items() if not fields or f in fields}


def quantize_text_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation (weights int8, activations quantised at run time) of a text
    encoder: MatMul weights and the word-embedding Gather, which is most of MiniLM's bytes.

    Per-channel weight scales: per-tensor ones cost MiniLM-L6 a cosine of 0.966 (min 0.946) vs
    fp32 on taxonomy prompts, per-channel 0.993 (min 0.988) at the same 23 MB (fp32: 91 MB)."""
    import logging

    from .quiet_quantizer import quiet_quantizer
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs "Please consider to run pre-processing before quantization" on the root
    # logger: advice for static calibration of unoptimised graphs. This is dynamic weight
    # quantisation of an exported graph, whose cosine to fp32 is measured (docstring); keep stderr for errors.
    with quiet_quantizer(logging.ERROR):  # errors only; the root logger is never touched
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gather"], per_channel=True)
    return Path(dst)


def _encoder_entry(t: ExportedTower, rel: str) -> dict:
    return {"path": rel, "inputs": [{"name": n, "dtype": d} for n, d in t.inputs], "output": t.output,
            "fp32_nodes": list(t.fp32_nodes)}


def _manifest(model: torch.nn.Module, src: BundleSource, encoders: dict,
              prompt_set: str = "held_out") -> dict:
    logit_bias = getattr(model, "logit_bias", None)
    return {
        "model": {"name": src.name, "embed_dim": embed_dim_of(model),
                  "logit_scale": float(model.logit_scale.detach().exp().item()),
                  "logit_bias": None if logit_bias is None else float(logit_bias.detach().item()),
                  "source": dict(src.provenance, torch=torch.__version__, prompt_set=prompt_set)},
        "preprocess": src.preprocess.to_dict(),  # every field, so the runtime honours or refuses each
        "text": {"tokenizer": "tokenizer.json", "context_length": int(src.context_length),
                 "pad_id": int(src.pad_id), "clean": "none", "padding": "max_length",
                 "inputs": [{"name": "input_ids", "dtype": "int64"}, {"name": "attention_mask", "dtype": "int64"}],
                 "output": "text_embedding"},
        "taxonomy": {"version": taxonomy.TAXONOMY_VERSION,
                     "class_names": [list(p) for p in taxonomy.class_names()],
                     "group_sizes": list(taxonomy.group_sizes()),
                     "prompt_templates": {f: list(t) for f, t in _templates(prompt_set).items()}},
        "encoders": encoders,
        **({"label_support": {f: list(v) for f, v in src.label_support.items()}} if src.label_support else {}),
    }


def write_model_bundle(model: torch.nn.Module, src: BundleSource, tokenizer, out: str | Path, *,
                       as_zip: bool = False, fp16: bool = False, int8_text: bool = False,
                       overwrite: bool = False, int8_image: str | Path | None = None,
                       calib_frames: int = 64, fp16_weights: bool = False,
                       progress: Callable[[str], None] | None = None,
                       prompt_set: str = "held_out", fusion: torch.nn.Module | None = None,
                       int8_for: str = "both") -> Path:
    """Export ``model`` and write the bundle at ``out``; returns its path.

    fp16_weights: store the fp32 image encoder's weights as float16 (half the file, fp32
    compute; see ``export.weight_storage``), recorded in the manifest's model source.

    int8_image: also ship a Q/DQ int8 image encoder calibrated on ``calib_frames`` frames from
    this source ("synthetic" or a folder of the user's frames; see ``export.int8``).

    prompt_set: the taxonomy templates the class embeddings are built from ("held_out": never
    training captions, the default; "train"); recorded in the manifest.

    The fp32 towers are checked against torch on fresh inputs (``export.parity``); the tracer's
    warnings are recorded, and summarised in one ``progress`` line only when parity holds.
    progress: called with one line per stage (``usclip export`` prints them to stderr).
    """
    say = progress or (lambda _line: None)
    model = model.float().cpu().eval()
    size = tuple(src.preprocess.image_size)
    with tempfile.TemporaryDirectory(prefix="usclip-export-") as tmp:
        tmp = Path(tmp)
        say("tracing the image and text towers to ONNX")
        with recorded_trace_warnings() as traced:
            img = export_image_encoder(model, tmp / "image_encoder.onnx", size)
            txt = export_text_encoder(model, tmp / "text_encoder.onnx", src.context_length)
        d_img = check_image_parity(ImageTower(model).float().cpu(), img.path, size)
        d_txt = check_text_parity(TextTower(model).float().cpu(), txt.path, src.context_length)
        note = (f"; torch's {traced.summary()} are about Python branches frozen in the trace, "
                "harmless as this check shows") if traced.messages else ""
        say(f"ONNX matches torch on unseen batch sizes and paddings: max |diff| image {d_img:.1e}, "
            f"text {d_txt:.1e}{note}")
        image_file = (store_weights_fp16(img.path, tmp / "image_encoder_w16.onnx") if fp16_weights
                      else img.path)
        files: dict[str, Path] = {"image_encoder.onnx": image_file, "tokenizer.json": Path(src.tokenizer_path)}
        enc: dict[str, dict] = {"image": {"fp32": _encoder_entry(img, "image_encoder.onnx")}, "text": {}}
        if int8_text:
            say("quantising the text encoder to int8")
            q = quantize_text_int8(txt.path, tmp / "text_encoder_int8.onnx")
            files["text_encoder_int8.onnx"] = q
            enc["text"]["int8"] = _encoder_entry(txt, "text_encoder_int8.onnx")
        else:
            files["text_encoder.onnx"] = txt.path
            enc["text"]["fp32"] = _encoder_entry(txt, "text_encoder.onnx")
        if fp16:
            say("converting the encoders to fp16")
            files["image_encoder_fp16.onnx"] = convert_fp16(img.path, tmp / "image_encoder_fp16.onnx")
            enc["image"]["fp16"] = _encoder_entry(img, "image_encoder_fp16.onnx")
            if not int8_text:
                files["text_encoder_fp16.onnx"] = convert_fp16(txt.path, tmp / "text_encoder_fp16.onnx")
                enc["text"]["fp16"] = _encoder_entry(txt, "text_encoder_fp16.onnx")
        if fusion is not None:
            say("encoding the class prompts with the attribute graph of each class's label")
            emb = graph_class_embeddings(model, tokenizer, fusion, prompt_set)
        else:
            say("encoding the class prompts")
            emb = bundle_class_embeddings(model, tokenizer, prompt_set)
        if int8_image is not None:
            say(f"calibrating the int8 image encoders (TensorRT and CPU forms) on {calib_frames} "
                f"frames ({int8_image})")
            for prec, path in _int8_images(img, tmp, src, int8_image, calib_frames, int8_for).items():
                files[path.name] = path
                enc["image"][prec] = _encoder_entry(img, path.name)
            say(f"measuring the int8 encoders against fp32 on {AGREEMENT_FRAMES} held-out synthetic cases")
            for prec in [p for p in ("int8", "int8_cpu") if p in enc["image"]]:
                enc["image"][prec]["agreement"] = int8_agreement(img.path, files[f"image_encoder_{prec}.onnx"],
                                                                 src, emb, float(model.logit_scale.detach().exp()))
        manifest = _manifest(model, src, enc, prompt_set)
        manifest["model"]["source"] = dict(manifest["model"]["source"] or {}, class_embeddings=(
            "text tower + attribute graph of the class label" if fusion is not None else "text tower"))
        if fp16_weights:
            manifest["model"]["source"] = dict(manifest["model"]["source"] or {},
                                               image_weights_storage="float16 (fp32 compute)")
        say(f"writing and verifying {out}")
        return write_bundle(out, manifest, files, emb, as_zip=as_zip, overwrite=overwrite)


AGREEMENT_FRAMES = 96
AGREEMENT_SEED = 20_000  # disjoint from the calibration seeds (0..n) and bench/test seeds (10_000..)


def int8_agreement(fp32_onnx: Path, int8_onnx: Path, src: BundleSource, class_emb, logit_scale: float,
                   n: int = AGREEMENT_FRAMES) -> dict[str, float]:
    """What the manifest records for an int8 encoder: cosine, top-1 agreement over every (frame,
    dimension) and the zero-shot AvgAcc change vs fp32 on ``n`` held-out synthetic cases."""
    import numpy as np

    from .int8 import compare, synthetic_frames, to_model_input

    frames = list(synthetic_frames(n, seed=AGREEMENT_SEED))
    x = np.concatenate([to_model_input(rgb, mask, src.preprocess) for rgb, mask, _ in frames])
    r = compare(fp32_onnx, int8_onnx, x, labels=[f[2] for f in frames], class_embeddings=class_emb,
                logit_scale=logit_scale, repeats=1)
    return {"frames": float(n), "cosine_min": round(r["cosine_min"], 5), "cosine_mean": round(r["cosine_mean"], 5),
            "top1_agreement": round(r["top1_agreement"], 4), "avgacc_delta_points": round(r["AvgAcc_delta_points"], 2)}


_INT8_FILES = {"both": (("int8", "tensorrt"), ("int8_cpu", "cpu")), "tensorrt": (("int8", "tensorrt"),),
               "cpu": (("int8_cpu", "cpu"),)}


def _int8_images(img: ExportedTower, tmp: Path, src: BundleSource, source: str | Path, n: int,
                 int8_for: str = "both") -> dict[str, Path]:
    """{"int8": the TensorRT Q/DQ file, "int8_cpu": the onnxruntime x86 file} (``int8_for``:
    both, or one), from the same calibration frames."""
    from .int8 import calibration_frames, quantize_image_encoder, to_model_input

    if int8_for not in _INT8_FILES:
        raise ValueError(f"int8_for: expected one of {list(_INT8_FILES)}, found {int8_for!r}")
    inputs = [to_model_input(rgb, mask, src.preprocess) for rgb, mask, _ in calibration_frames(source, n, seed=0)]
    return {prec: quantize_image_encoder(img.path, tmp / f"image_encoder_{prec}.onnx", inputs, img.fp32_nodes,
                                         target=target)
            for prec, target in _INT8_FILES[int8_for]}


def export_checkpoint(checkpoint: str | Path, out: str | Path, bn_data: str | Path | None = None,
                      bn_frames: int = 512, **kw: Any) -> Path:
    """``usclip export``: a usclip checkpoint folder -> bundle (keywords as write_model_bundle).

    bn_data: a US-365K-layout folder whose training split re-estimates the image tower's
    BatchNorm statistics on served pixels first (export/batchnorm.py; towers without BatchNorm
    are unaffected)."""
    from ..checkpoint import load_model, read_checkpoint

    ck = read_checkpoint(checkpoint)
    model, _pre, tokenizer = load_model(ck.path)
    spec = ck.spec
    weights = ck.path / "model.safetensors"
    src = BundleSource(name=spec.name, preprocess=spec.preprocess,
                       tokenizer_path=spec.tokenizer_path, context_length=spec.context_length,
                       pad_id=spec.pad_id,
                       provenance={"checkpoint": ck.path.name, "weights_sha256": sha256_file(weights),
                                   "step": ck.config.get("step"), "epoch": ck.config.get("epoch")},
                       label_support=ck.config.get("label_support"))
    if "fusion" not in kw:
        kw["fusion"] = _trained_fusion(ck)
    if bn_data is not None:
        from .batchnorm import recalibrate_batchnorm, training_frames

        n = recalibrate_batchnorm(model.visual, training_frames(bn_data, bn_frames), spec.preprocess)
        if n:
            src = replace(src, provenance=dict(src.provenance, batchnorm=(
                f"{n} layers re-estimated on {bn_frames} un-augmented training frames of {Path(bn_data).name} "
                "through the SDK pixel path")))
    return write_model_bundle(model, src, tokenizer, out, **kw)


def _trained_fusion(ck) -> torch.nn.Module | None:
    """The checkpoint's attribute-graph fusion (aux "fusion"), or None if it trained without it."""
    from ..checkpoint import aux_state_of
    from ..graph import AttributeGraphFusion

    state = aux_state_of(ck, "fusion")
    run = ck.config.get("run_config") or {}
    if not state or not run.get("use_graph", False):
        return None
    fusion = AttributeGraphFusion(int(ck.spec.model_cfg["embed_dim"]), scale=run.get("fusion_scale", "unit_norm"))
    fusion.load_state_dict(state, strict=True)
    return fusion.eval()
