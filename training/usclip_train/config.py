"""The run configuration: one frozen dataclass, read from a JSON/YAML file plus ``key=value``
overrides, never mutated (a changed run is a new object via ``with_overrides``).

Precedence (highest first): ``--set key=value`` > the file given with ``--config`` > defaults.
Values of ``--set`` are parsed as JSON when they parse (``3``, ``1e-4``, ``true``, ``null``,
``[1,2]``), else taken as strings; each is then checked against the field's type.
"""
from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["RunConfig", "load_run_config", "parse_overrides"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (saved in every checkpoint)."""

    # --- data
    data: str = ""                      # US-365K-layout root (images/, train.jsonl, full_data.json)
    train_split: str = "train"
    val_split: str = "valid"
    max_samples: int | None = None      # cap on training samples (quick runs, ablations)
    on_bad_sample: str = "error"        # error | skip: a bad sample raises naming file:line, or is left out, counted
    # --- model
    model: str = "usclip-edge"          # a name from factory.list_models()
    text_model: str | None = None       # local HF folder replacing the text tower (e.g. PubMedBERT)
    init_checkpoint: str | None = None  # open_clip checkpoint / usclip checkpoint to start from
    image_size: int | None = None       # override the config's image size (reduced-size runs)
    context_length: int | None = None   # override the text context length (short captions)
    lock_text: bool = False             # freeze the pretrained text transformer (LiT); its projection still trains
    unlock_text_layers: int = 0         # with lock_text: the last N transformer layers still learn (cached prefix)
    lock_image: bool = False            # freeze the whole image tower (zoom head too) in eval mode: a text-side
                                        # stage that moves only the anchors (text layers, projection, scale)
    # --- method (the paper's ablation axes)
    use_soft_labels: bool = True        # lambda * L_SM in the loss
    use_graph: bool = True              # attribute-graph fusion on the text side (training only)
    fusion_scale: str = "unit_norm"     # unit_norm (the release's strength) | unit_rms (sqrt(D) x weaker)
    sm_lambda: float = 1.0              # lambda of L = L_CLIP + lambda * L_SM
    similarity: str = "default"         # S^(k): default | cooccurrence | jaccard | prior | identity | a file
    prompt_loss: float = 0.0            # our prompt-alignment term's weight (loss.PromptAlignmentLoss; 0: paper)
    prompt_balance: str = "none"        # none | diagnosis: the prompt term weighs each value equally within each
                                        # diagnosis (balance.DiagnosisBalance): the lesion kind alone cannot answer
    zoom_box_loss: float = 10.0         # image_head "zoom": weight of the lesion-square loss (zoom.box_loss)
    zoom_teacher: float = 0.5           # zoom: the crop branch sees the true square with a probability
                                        # falling 1 -> 0 over this fraction of the run, then its own
    zoom_lr_scale: float = 1.0          # zoom: the head's own modules (finder, crop CNN, projection) at this x lr
    # --- optimisation
    epochs: int = 10
    max_steps: int | None = None        # stop after this many optimizer steps (overrides epochs)
    batch_size: int = 64                # per process, per micro-batch
    grad_accum: int = 1                 # micro-batches per optimizer step
    lr: float = 5e-4
    text_lr_scale: float = 0.2          # the pretrained text tower learns slower than the image tower
    weight_decay: float = 0.1           # not applied to biases, norms, embeddings, logit scale
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 100             # linear warm-up, then cosine to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    precision: str = "auto"             # auto | fp32 | bf16 | fp16 (auto: bf16 on CUDA if supported, else fp32)
    # --- data pipeline
    augment: bool = True                # mild crops inside the imaging region + intensity jitter
    template_captions: float = 0.0      # P(caption -> a label-template prompt of one of its tags), with augment
    workers: int = 0
    cache_images: bool = True           # keep decoded, region-cropped frames in memory
    # --- run control
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    log_every: int = 10
    save_every: int = 500               # optimizer steps between periodic checkpoints (0: final only)
    keep_checkpoints: int = 2
    eval_at_end: bool = True            # zero-shot / retrieval on val_split after training
    progress: bool = True

    def __post_init__(self) -> None:
        _check_choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        _check_choice("fusion_scale", self.fusion_scale, ("unit_norm", "unit_rms"))
        _check_choice("on_bad_sample", self.on_bad_sample, ("error", "skip"))
        for name in ("epochs", "batch_size", "grad_accum", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        for name in ("warmup_steps", "save_every", "workers", "seed", "unlock_text_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, found {getattr(self, name)}")
        if self.prompt_loss < 0:
            raise ValueError(f"prompt_loss: expected >= 0, found {self.prompt_loss}")
        _check_choice("prompt_balance", self.prompt_balance, ("none", "diagnosis"))
        if self.prompt_balance != "none" and self.prompt_loss == 0:
            raise ValueError("prompt_balance: weighs the prompt-alignment term, which prompt_loss=0 switches off")
        if self.zoom_lr_scale <= 0:
            raise ValueError(f"zoom_lr_scale: expected > 0, found {self.zoom_lr_scale}")
        if self.zoom_box_loss < 0 or not 0 <= self.zoom_teacher <= 1:
            raise ValueError(f"zoom_box_loss/zoom_teacher: expected >= 0 and in [0, 1], found "
                             f"{self.zoom_box_loss}/{self.zoom_teacher}")
        if self.lr <= 0 or self.sm_lambda < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"lr/sm_lambda/min_lr_ratio: expected lr > 0, sm_lambda >= 0, "
                             f"min_lr_ratio in [0, 1], found {self.lr}/{self.sm_lambda}/{self.min_lr_ratio}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    def with_overrides(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """A new RunConfig with ``overrides`` (field -> value, type-checked) applied."""
        known = {f.name: f for f in fields(self)}
        clean = {}
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"config: unknown key {key!r}; expected one of {sorted(known)}")
            clean[key] = _coerce(key, value, _field_types()[key])
        return replace(self, **clean)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, found {value!r}")


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` (int -> float widening allowed)."""
    args = typing.get_args(tp)
    if type(None) in args:
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(typing.get_args(tp)):
            raise ValueError(f"{key}: expected a list of {len(typing.get_args(tp))} numbers, found {value!r}")
        return tuple(_coerce(key, v, a) for v, a in zip(value, typing.get_args(tp)))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, found {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{key}: expected an integer, found {value!r}")
    if not isinstance(value, tp):
        raise ValueError(f"{key}: expected {tp.__name__}, found {type(value).__name__} {value!r}")
    return value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-4", "use_graph=false"]`` -> ``{"lr": 0.0001, "use_graph": False}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set: expected key=value, found {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def load_run_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                    **fixed: Any) -> RunConfig:
    """Defaults <- file (``.json``, ``.yaml``/``.yml``) <- ``fixed`` (CLI flags) <- ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            loaded = json.loads(text)
        else:
            raise ValueError(f"config: expected a .json, .yaml or .yml file, found {path.name!r}")
        if not isinstance(loaded, dict):
            raise ValueError(f"config {path}: expected a mapping at the top level, found {type(loaded).__name__}")
        values.update(loaded)
    values.update({k: v for k, v in fixed.items() if v is not None})
    values.update(overrides or {})
    return RunConfig().with_overrides(values)
