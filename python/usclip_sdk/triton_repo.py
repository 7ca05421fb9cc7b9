"""A Triton Inference Server model repository from a bundle (``usclip export-triton``).

Layout written under ``out`` (the model repository holds model folders and nothing else: a
real ``tritonserver`` refuses to start on any other folder in it)::

    model_repository/usclip_classify/config.pbtxt, 1/model.py, 1/bundle[.zip]   python backend:
                     frame in, the SDK pipeline inside, nine attributes out (triton_backend.py)
    model_repository/usclip_image/config.pbtxt, 1/model.onnx     onnxruntime backend
    model_repository/usclip_text/config.pbtxt,  1/model.onnx     onnxruntime backend
    model_repository/usclip_image_trt/config.pbtxt, 1/model.plan when a cached engine exists
    model_repository/usclip_text_trt/...                         (same, text tower)
    client/manifest.json, client/class_embeddings.npy, client/tokenizer.json
    README.md

Every model has dynamic batching and ``max_batch_size`` (for a plan: its profile's MAX, never
more). Encoder-only clients preprocess (bundle ``preprocess``), call the image model and score
against ``class_embeddings.npy`` (logits = logit_scale * image @ classes.T), exactly like the
SDK; ``usclip_classify`` does all of that server-side. No TensorRT or Triton is needed to write
the repository; the configs are protobuf text format of Triton's ``ModelConfig``
(tests/sdk/test_triton_server.py serves one with a real ``tritonserver``).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .bundle import Bundle
from .engine_cache import cache_dir_for
from .triton_backend import MODEL_PY

__all__ = ["TritonModel", "write_triton_repo", "model_config_text", "classify_config_text", "find_engines",
           "REPOSITORY", "CLASSIFY_MODEL"]

REPOSITORY = "model_repository"  # --model-repository=<out>/model_repository
CLASSIFY_MODEL = "usclip_classify"

_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32"}


@dataclass(frozen=True)
class TritonModel:
    name: str
    platform: str  # "onnxruntime_onnx" | "tensorrt_plan"
    inputs: tuple[tuple[str, str, tuple[int, ...]], ...]  # name, numpy dtype, dims without batch
    output: tuple[str, int]  # name, embedding dim
    max_batch_size: int


def _tensor(name: str, dtype: str, dims: tuple[int, ...]) -> str:
    if dtype not in _TYPES:
        raise ValueError(f"tensor {name!r}: dtype {dtype!r} has no Triton type; expected one of {sorted(_TYPES)}")
    return f'  {{\n    name: "{name}"\n    data_type: {_TYPES[dtype]}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}'


def model_config_text(m: TritonModel, instances: int = 1, kind: str = "KIND_GPU",
                      max_queue_delay_us: int = 2000) -> str:
    """config.pbtxt text (protobuf text format of inference.ModelConfig)."""
    if m.max_batch_size < 1:
        raise ValueError(f"max_batch_size: expected >= 1, found {m.max_batch_size}")
    if kind not in ("KIND_GPU", "KIND_CPU"):
        raise ValueError(f"kind: expected 'KIND_GPU' or 'KIND_CPU', found {kind!r}")
    lines = [f'name: "{m.name}"', f'platform: "{m.platform}"', f"max_batch_size: {m.max_batch_size}",
             "input [", ",\n".join(_tensor(*t) for t in m.inputs), "]",
             "output [", _tensor(m.output[0], "float32", (m.output[1],)), "]",
             *_batching(m.max_batch_size, max_queue_delay_us),
             "instance_group [", f"  {{\n    count: {int(instances)}\n    kind: {kind}\n  }}", "]"]
    return "\n".join(lines) + "\n"


def _batching(max_batch_size: int, max_queue_delay_us: int) -> list[str]:
    preferred = sorted({b for b in (1, 2, 4, 8, 16, 32) if b <= max_batch_size} | {max_batch_size})[-2:]
    return ["dynamic_batching {", f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
            f"  max_queue_delay_microseconds: {int(max_queue_delay_us)}", "}"]


def classify_config_text(fields: tuple[str, ...] | list[str], max_batch_size: int = 8, instances: int = 1,
                         kind: str = "KIND_CPU", backend: str = "auto", bundle: str = "bundle",
                         max_queue_delay_us: int = 2000) -> str:
    """config.pbtxt of the Python-backend pipeline model (usclip_sdk.triton_backend)."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size: expected >= 1, found {max_batch_size}")
    if kind not in ("KIND_GPU", "KIND_CPU"):
        raise ValueError(f"kind: expected 'KIND_GPU' or 'KIND_CPU', found {kind!r}")
    outs = [f'  {{\n    name: "{f}"\n    data_type: TYPE_STRING\n    dims: [ 1 ]\n  }}' for f in fields]
    # the order triton_backend.output_names gives (the model checks it at load)
    outs.append(f'  {{\n    name: "scores"\n    data_type: TYPE_FP32\n    dims: [ {len(fields)} ]\n  }}')
    params = {"backend": backend, "bundle": bundle, "region": "auto"}
    lines = [f'name: "{CLASSIFY_MODEL}"', 'backend: "python"', f"max_batch_size: {max_batch_size}",
             "input [", '  {\n    name: "frame"\n    data_type: TYPE_UINT8\n    dims: [ -1, -1, -1 ]\n  }', "]",
             "output [", ",\n".join(outs), "]", *_batching(max_batch_size, max_queue_delay_us),
             "instance_group [", f"  {{\n    count: {int(instances)}\n    kind: {kind}\n  }}", "]"]
    lines += [f'parameters {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}' for k, v in params.items()]
    return "\n".join(lines) + "\n"


def find_engines(bundle: Bundle, cache_dir: str | os.PathLike | None = None) -> dict[str, tuple[Path, dict]]:
    """tower -> (engine path, sidecar) of cached engines built from this bundle's ONNX files
    (the one with the largest batch MAX per tower)."""
    cache = Path(cache_dir or cache_dir_for(bundle.source))
    shas = {bundle.file_sha256(e.path) for by in bundle.manifest.encoders.values() for e in by.values()}
    best: dict[str, tuple[Path, dict]] = {}
    for side in sorted(cache.glob("*.json")) if cache.is_dir() else []:
        try:
            data = json.loads(side.read_text())
            key = data["key"]
        except (OSError, ValueError, KeyError):
            continue
        engine = side.with_suffix(".engine")
        if key.get("onnx_sha256") in shas and engine.is_file():
            tower = key["tower"]
            if tower not in best or key["profile"][2] > best[tower][1]["key"]["profile"][2]:
                best[tower] = (engine, data)
    return best


def _inputs(bundle: Bundle, tower: str, precision: str) -> tuple:
    spec = bundle.encoder(tower, precision)
    if tower == "image":
        h, w = bundle.preprocess.image_size
        return tuple((t.name, t.dtype, (3, h, w)) for t in spec.inputs)
    return tuple((t.name, t.dtype, (bundle.text.context_length,)) for t in spec.inputs)


def write_triton_repo(bundle: Bundle, out: str | os.PathLike, *, precision: str = "fp32", max_batch_size: int = 8,
                      instances: int = 1, kind: str = "KIND_GPU", cache_dir: str | os.PathLike | None = None,
                      overwrite: bool = False) -> dict[str, TritonModel]:
    """Write ``out/model_repository``, ``out/client`` and ``out/README.md``; returns the models
    written by name (``usclip_classify`` has platform "python")."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out: {out} exists and is not empty (pass overwrite=True / --overwrite)")
    repo = out / REPOSITORY
    if repo.exists():
        shutil.rmtree(repo)  # --overwrite: a model folder left from an earlier export would be served
    repo.mkdir(parents=True)
    dim = bundle.manifest.model.embed_dim
    models: dict[str, TritonModel] = {}
    for tower in bundle.manifest.encoders:
        have = bundle.precisions(tower)
        prec = precision if precision in have else ("fp32" if "fp32" in have else have[0])
        m = TritonModel(f"usclip_{tower}", "onnxruntime_onnx", _inputs(bundle, tower, prec),
                        (bundle.encoder(tower, prec).output, dim), max_batch_size)
        _write_model(repo, m, bundle.encoder_path(tower, prec), "model.onnx", instances, kind)
        models[m.name] = m
    engines = find_engines(bundle, cache_dir)  # globbed and parsed once, for the models and the README
    for tower, (engine, side) in engines.items():
        prec = side["key"]["precision"]
        src_prec = prec if prec in bundle.precisions(tower) else "fp32"
        m = TritonModel(f"usclip_{tower}_trt", "tensorrt_plan", _inputs(bundle, tower, src_prec),
                        (bundle.encoder(tower, src_prec).output, dim), int(side["key"]["profile"][2]))
        _write_model(repo, m, engine, "model.plan", instances, "KIND_GPU")
        models[m.name] = m
    models[CLASSIFY_MODEL] = _write_classify(bundle, repo, max_batch_size, instances, kind)
    _write_client(bundle, out)
    (out / "README.md").write_text(_readme(bundle, models, engines))
    return models


def _write_model(out: Path, m: TritonModel, src: Path, filename: str, instances: int, kind: str) -> None:
    (out / m.name / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out / m.name / "1" / filename)
    (out / m.name / "config.pbtxt").write_text(model_config_text(m, instances, kind))


def _write_classify(bundle: Bundle, repo: Path, max_batch_size: int, instances: int, kind: str) -> TritonModel:
    version = repo / CLASSIFY_MODEL / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(MODEL_PY)
    src = Path(bundle.source)
    name = "bundle.zip" if src.is_file() else "bundle"
    if src.is_file():
        shutil.copyfile(src, version / name)
    else:
        shutil.copytree(src, version / name)
    fields = tuple(dict.fromkeys(f for f, _ in bundle.class_names))
    (repo / CLASSIFY_MODEL / "config.pbtxt").write_text(
        classify_config_text(fields, max_batch_size, instances, kind, bundle=name))
    return TritonModel(CLASSIFY_MODEL, "python", (("frame", "uint8", (-1, -1, -1)),), ("scores", len(fields)),
                       max_batch_size)


def _write_client(bundle: Bundle, out: Path) -> None:
    client = out / "client"
    client.mkdir(exist_ok=True)
    shutil.copyfile(bundle.root / "manifest.json", client / "manifest.json")  # verified on open
    shutil.copyfile(bundle.file(bundle.manifest.class_embeddings), client / "class_embeddings.npy")
    shutil.copyfile(bundle.tokenizer_path, client / "tokenizer.json")


def _readme(bundle: Bundle, models: dict[str, TritonModel], engines: dict) -> str:
    pre = bundle.preprocess
    fields = ", ".join(f"`{f}`" for f in dict.fromkeys(f for f, _ in bundle.class_names))
    names = "\n".join(f"- `{m.name}` ({m.platform}, max batch {m.max_batch_size})" for m in models.values())
    trt_note = ("\n".join(f"- `usclip_{t}_trt` was built with TensorRT {s['key']['tensorrt_version']} on "
                          f"{s['key']['gpu_name']} (sm {s['key']['compute_capability']}); Triton loads it only "
                          "if its own TensorRT version and GPU match exactly - otherwise delete that folder "
                          "and serve the onnxruntime model." for t, (_, s) in engines.items())
                or "- No TensorRT plan: build one with `usclip build-engine` on the serving GPU and re-run.")
    return f"""# usclip Triton model repository

Generated by `usclip export-triton` from bundle `{bundle.manifest.model.name}` (id {bundle.id[:16]}).

## Models
{names}

{trt_note}

## Serve
`model_repository/` is the model repository (model folders only). `usclip_classify` runs the
SDK's own pipeline in Triton's Python backend, so the server's Python needs usclip-sdk installed
(docs/deployment.md has the container command; `wheels/` holds the usclip-sdk wheel you built):
```bash
docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
  -v "$PWD/model_repository":/models -v "$PWD/wheels":/wheels nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
  bash -c "pip install /wheels/usclip_sdk-*.whl 'numpy<2' opencv-python-headless onnxruntime-gpu \\
           && tritonserver --model-repository=/models"
curl -s localhost:8000/v2/health/ready && curl -s localhost:8000/v2/models/usclip_classify/config
```
numpy<2: Triton 2.51's Python-backend stub reads arrays with the numpy 1 layout (with numpy 2
every output fails with "output tensor shape does not match size of output"; docs/deployment.md).
CPU-only hosts: export with `--kind cpu` (or change `kind: KIND_GPU` to `KIND_CPU` in each
config.pbtxt) and remove the `*_trt` folders.

## usclip_classify contract
- Input `frame`: uint8 N x H x W x C (C = 1 gray, 3 RGB); frames of one request share a size.
- Outputs: one BYTES [1] per taxonomy field ({fields}),
  the top value, and `scores` FP32 [{len(bundle.group_sizes)}], each field's top probability in that order:
  the same as `Classifier.classify(frame).attributes`.

## Encoder-only client contract (usclip_image / usclip_text)
- Input `image`: float32 N x 3 x {pre.image_size[0]} x {pre.image_size[1]}: crop to the imaging region,
  resize ({pre.resize_mode}, {pre.interpolation}), scale to 0..1, normalise with mean {list(pre.mean)}
  and std {list(pre.std)} (RGB). `usclip_sdk.ops.preprocess` does exactly this.
- Output `image_embedding`: float32 N x {bundle.manifest.model.embed_dim}, L2-normalised.
- Scores: `logit_scale * image_embedding @ client/class_embeddings.npy.T` (+ logit_bias), logit_scale
  = {bundle.logit_scale:.4f}; softmax within each taxonomy group (`client/manifest.json`,
  taxonomy.group_sizes, class_names).
- Free text: tokenise with `client/tokenizer.json` (context length {bundle.text.context_length}, pad id
  {bundle.text.pad_id}; `Bundle.tokenize`), call `usclip_text` with int64 `input_ids` and
  `attention_mask`.
"""
