"""Checkpoints: self-describing folders written atomically, loaded without pickle.

Layout of one checkpoint folder::

    config.json          format/version, model spec (name, open_clip model_cfg, preprocess_cfg,
                         context_length, pad_id), run config, step, epoch, RNG states, metrics
    model.safetensors    the open_clip model (CustomTextCLIP) state dict: what export needs
    aux.safetensors      training-only modules (graph fusion, loss parameters), optional
    optimizer.pt         optimizer / scheduler / grad-scaler state (torch.save of plain
                         tensors and numbers; read back with weights_only=True), optional
    text/                the text tower's config.json and tokenizer files (no weights), so a
                         checkpoint rebuilds and tokenises on a machine without the HF folder

Atomicity: the folder is assembled under a temporary name beside the target, every file and
the folder are fsynced, then it is renamed into place; an interrupted save leaves the previous
checkpoint untouched. A run keeps ``checkpoints/step-XXXXXXXX`` folders and a ``latest`` file
(replaced atomically) naming the newest one.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from usclip_sdk.pixels import parse_preprocess

from .factory import TEXT_META_FILES, CreatedModel, ModelSpec, TextTokenizer, build_model

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "atomic_write_text",
    "save_checkpoint",
    "read_checkpoint",
    "load_model",
    "restore_training_state",
    "rng_state",
    "set_rng_state",
    "CheckpointManager",
    "resolve_checkpoint",
    "aux_state_of",
]

FORMAT = "usclip-checkpoint"
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk (tensors on CPU)."""

    path: Path
    config: dict
    spec: ModelSpec
    state_dict: dict
    aux_state: dict

    @property
    def step(self) -> int:
        return int(self.config["step"])

    @property
    def epoch(self) -> int:
        return int(self.config["epoch"])


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync_file(path)
    except OSError:  # some filesystems refuse fsync on a directory; the rename still orders
        pass


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file + fsync + os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as JSON-able lists."""
    py = random.getstate()
    np_state = np.random.get_state()
    out = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _tensors(module_or_sd) -> dict[str, torch.Tensor]:
    sd = module_or_sd.state_dict() if hasattr(module_or_sd, "state_dict") else module_or_sd
    # clone: safetensors refuses tensors that share storage (and views of larger buffers)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def _spec_record(spec: ModelSpec) -> dict:
    d = spec.to_dict()
    d["model_cfg"]["text_cfg"]["hf_model_name"] = "text"
    d["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = "text"
    d["text_dir"] = "text"
    d["tokenizer_path"] = "text/tokenizer.json"
    return d


def save_checkpoint(path: str | Path, model, spec: ModelSpec, *, step: int, epoch: int,
                    run_config: Mapping[str, Any] | None = None, optimizer=None, scheduler=None,
                    scaler=None, aux: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, Any] | None = None, save_rng: bool = True,
                    label_support: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint folder at ``path`` atomically (replacing one already there).

    model: the bare open_clip model (unwrap DDP first). aux: name -> module (or state dict)
    for training-only parts, stored in aux.safetensors as ``<name>.<key>``.
    label_support: {field: [values]} the training data contains (exported into the bundle).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(_tensors(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if aux:
            flat = {f"{name}.{k}": v for name, m in aux.items() for k, v in _tensors(m).items()}
            save_file(flat, str(tmp / "aux.safetensors"), metadata={"format": "pt"})
        states = {k: v.state_dict() for k, v in
                  (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)) if v is not None}
        if states:
            torch.save(states, tmp / "optimizer.pt")
        (tmp / "text").mkdir()
        for name in TEXT_META_FILES:
            src = Path(spec.text_dir) / name
            if src.is_file():
                shutil.copyfile(src, tmp / "text" / name)
        config = {"format": FORMAT, "version": VERSION, "model": _spec_record(spec),
                  "run_config": dict(run_config or {}), "step": int(step), "epoch": int(epoch),
                  "metrics": dict(metrics or {}), "rng": rng_state() if save_rng else None,
                  "label_support": {k: list(v) for k, v in (label_support or {}).items()} or None}
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync_file(f)
        _fsync_dir(tmp / "text")
        _fsync_dir(tmp)
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _swap_into_place(tmp: Path, path: Path) -> None:
    # rename() cannot replace a non-empty folder: move the old one aside first, so at every
    # instant either the old or the new complete checkpoint exists under a known name.
    old = None
    if path.exists():
        old = path.parent / f".old-{path.name}-{uuid.uuid4().hex[:8]}"
        os.rename(path, old)
    os.rename(tmp, path)
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder / checkpoints folder -> its latest checkpoint."""
    path = Path(path)
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    for base in (path / "checkpoints", path):
        latest = base / "latest"
        if latest.is_file():
            return base / latest.read_text().strip()
    raise FileNotFoundError(f"checkpoint: {path} is neither a checkpoint folder (config.json + "
                            "model.safetensors) nor a run folder with checkpoints/latest")


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint (or a run folder's latest) from disk; no code is executed."""
    from safetensors.torch import load_file

    path = resolve_checkpoint(path)
    config = json.loads((path / "config.json").read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: format {config.get('format')!r}, expected {FORMAT!r}")
    if int(config.get("version", -1)) > VERSION:
        raise ValueError(f"checkpoint {path}: version {config.get('version')} is newer than "
                         f"this code reads ({VERSION})")
    m = config["model"]
    text_dir = path / m["text_dir"]
    cfg = m["model_cfg"]
    cfg["text_cfg"]["hf_model_name"] = cfg["text_cfg"]["hf_tokenizer_name"] = str(text_dir)
    spec = ModelSpec(name=m["name"], model_cfg=cfg,
                     preprocess=parse_preprocess(m["preprocess_cfg"], "preprocess_cfg"),
                     text_dir=str(text_dir), tokenizer_path=str(path / m["tokenizer_path"]),
                     context_length=int(m["context_length"]), pad_id=int(m["pad_id"]))
    sd = load_file(str(path / "model.safetensors"), device="cpu")
    aux_path = path / "aux.safetensors"
    aux = load_file(str(aux_path), device="cpu") if aux_path.is_file() else {}
    return Checkpoint(path=path, config=config, spec=spec, state_dict=sd, aux_state=aux)


def load_model(checkpoint_path: str | Path, device: str = "cpu",
               precision: str = "fp32") -> CreatedModel:
    """Rebuild the trained model from a checkpoint (for export and evaluation).

    Returns (model in eval mode, preprocess config, tokenizer); the tokenizer's ``path`` is the
    checkpoint's own ``text/tokenizer.json``. ``read_checkpoint(path).spec`` has the rest.
    """
    ck = read_checkpoint(checkpoint_path)
    model = build_model(ck.spec, pretrained_text=False)
    model.load_state_dict(ck.state_dict, strict=True)
    model = model.to(device=torch.device(device), dtype=_dtype(precision))
    model.eval()
    return CreatedModel(model, ck.spec.preprocess, TextTokenizer(ck.spec.tokenizer_path, ck.spec.context_length))


def _dtype(precision: str) -> torch.dtype:
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"precision: expected one of {list(dtypes)}, found {precision!r}")
    return dtypes[precision]


def aux_state_of(ck: Checkpoint, name: str) -> dict:
    """The aux state dict stored under ``name`` (keys without the prefix)."""
    pre = f"{name}."
    return {k[len(pre):]: v for k, v in ck.aux_state.items() if k.startswith(pre)}


def restore_training_state(ck: Checkpoint, model, *, optimizer=None, scheduler=None, scaler=None,
                           aux: Mapping[str, Any] | None = None, restore_rng: bool = True) -> None:
    """Load weights, optimizer/scheduler/scaler state and RNG states for an exact resume."""
    model.load_state_dict(ck.state_dict, strict=True)
    for name, module in (aux or {}).items():
        module.load_state_dict(aux_state_of(ck, name), strict=True)
    opt_path = ck.path / "optimizer.pt"
    wanted = {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    if any(v is not None for v in wanted.values()):
        if not opt_path.is_file():
            raise FileNotFoundError(f"checkpoint {ck.path}: no optimizer.pt to resume from")
        states = torch.load(opt_path, map_location="cpu", weights_only=True)
        for key, obj in wanted.items():
            if obj is not None and key in states:
                obj.load_state_dict(states[key])
    if restore_rng and ck.config.get("rng"):
        set_rng_state(ck.config["rng"])


class CheckpointManager:
    """Periodic checkpoints of one run: ``<run>/checkpoints/step-XXXXXXXX`` + ``latest``.

    keep: how many step folders to keep (oldest removed after a successful save).
    """

    def __init__(self, run_dir: str | Path, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep: expected >= 1, found {keep}")
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep

    def save(self, step: int, model, spec: ModelSpec, **kw) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = save_checkpoint(self.dir / f"step-{step:08d}", model, spec, step=step, **kw)
        atomic_write_text(self.dir / "latest", path.name + "\n")
        for old in sorted(self.dir.glob("step-*"))[:-self.keep]:
            if old.name != path.name:
                shutil.rmtree(old, ignore_errors=True)
        return path

    def latest(self) -> Path | None:
        try:
            return resolve_checkpoint(self.dir)
        except FileNotFoundError:
            return None
