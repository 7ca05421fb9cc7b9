"""The training loop: Ultrasound-CLIP (InfoNCE + lambda * semantic soft labels, attribute-graph
fusion on the text side) over a US-365K-layout folder.

    python -m usclip_train.train --data DIR --model usclip-edge --out RUN [--config F] [--set k=v]
    torchrun --nproc_per_node 2 -m usclip_train.train ...        (DDP: gloo on CPU, NCCL on GPU)

AdamW (no decay on biases, norms, embeddings, logit scale; the pretrained text transformer at
``text_lr_scale`` x lr), linear warm-up then cosine, gradient accumulation, autocast (bf16 /
fp16 on CUDA, optional bf16 on CPU), deterministic seeds, a progress bar on stderr, a JSONL log
(``RUN/log.jsonl``), periodic and final atomic checkpoints (``RUN/checkpoints``) and exact
resume: data order, crops and dropout depend only on (seed, epoch, step) and saved RNG state,
so a resumed CPU run reproduces the uninterrupted loss curve.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

try:
    import open_clip  # noqa: F401  (the models; imported here so a missing one is said up front)
    import torch
except ModuleNotFoundError as _missing:  # `python -m usclip_train.train` in an SDK-only install
    if __name__ != "__main__":
        raise
    sys.exit(f"usclip_train.train: needs {_missing.name}, which the [train] extra installs: "
             "pip install 'usclip-sdk[train]' (from a source checkout: pip install '.[train]')")
from torch import nn
from torch.nn import functional as F

from usclip_data.faults import BadSamples
from usclip_sdk import taxonomy

from . import checkpoint as ckpt
from .cli.train import build_arg_parser  # the parser lives torch-free, for `usclip --help`
from .config import RunConfig, load_run_config, parse_overrides
from .data import Batch, FrameTransform, UltrasoundDataset, collate
from .distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from .factory import ModelSpec, build_model, load_weights, resolve_spec, text_head_of, TextTokenizer
from .zoom import ZoomVisual, box_loss

__all__ = ["TrainModule", "TrainResult", "seed_everything", "model_spec_for", "build_similarity",
           "cache_frozen_text", "label_support",
           "param_groups", "lr_lambda", "train", "main"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_spec_for(cfg: RunConfig) -> ModelSpec:
    """The ModelSpec a run trains: config + image-size override + the graph's text head."""
    over: dict[str, Any] = {}
    if cfg.image_size is not None:
        over["vision_cfg"] = {"image_size": int(cfg.image_size)}
    if cfg.context_length is not None:
        over["text_cfg"] = {"context_length": int(cfg.context_length)}
    over["text_head"] = "graph_norm" if cfg.use_graph else "none"
    return resolve_spec(cfg.model, text_model=cfg.text_model, overrides=over)


class TrainModule(nn.Module):
    """Model + (optional) attribute-graph fusion; forward -> (image, text features, scale).

    With the graph, the text tower's TextHead is bypassed in training and GraphFusion applies
    the same (tied) LayerNorm plus the graph residual; without labels at inference the head
    computes GraphFusion's label-free path, so the exported tower matches.
    """

    def __init__(self, model: nn.Module, fusion: nn.Module | None = None, lock_image: bool = False):
        super().__init__()
        self.model = model
        self.fusion = fusion
        # A locked image tower is frozen and stays in eval mode (BatchNorm running statistics,
        # the zoom head's own square): the embeddings the text side is fitted to are the ones
        # the exported encoder computes.
        self.lock_image = lock_image
        if lock_image:
            model.visual.requires_grad_(False)
        # A convolutional (timm) image tower runs its convolutions channels-last: oneDNN's
        # fast layout on CPU (about 10 % per bf16 step here) and the tensor-core one on GPU.
        self.channels_last = not hasattr(model.visual, "transformer")
        if self.channels_last:
            model.visual.to(memory_format=torch.channels_last)
        self.head = text_head_of(model)
        if fusion is not None:
            if self.head is None:
                raise ValueError("fusion: the model needs text_head 'graph_norm' to carry the fusion's LayerNorm")
            fusion.fusion.norm = self.head.norm  # tie: one LayerNorm, trained by the graph path

    @property
    def zoom(self) -> bool:
        return isinstance(self.model.visual, ZoomVisual)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.lock_image:
            self.model.visual.eval()
        return self

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor,
                prompt_tokens: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                pick: torch.Tensor | None = None):
        """-> (image, text features, logit scale, value-prompt features or None).

        ``prompt_tokens`` (the prompt bank's rows) are encoded the way inference encodes class
        prompts (label-free, no graph residual), inside forward so DDP sees every use.
        ``boxes``/``pick`` (zoom tower only): the batch's lesion squares (Batch.boxes) and which
        frames' crop branch sees the true square; the found squares are in
        ``model.visual.last_box`` for the box loss."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.lock_image:
            with torch.no_grad():
                image = self.model.encode_image(images, normalize=True)
        elif self.zoom and boxes is not None:
            image = F.normalize(self.model.visual(images, boxes[:, 1:], pick), dim=-1)
        else:
            image = self.model.encode_image(images, normalize=True)
        if self.fusion is None:
            text = self.model.encode_text(tokens, normalize=True)
        else:
            self.head.active = False
            try:
                raw = self.model.encode_text(tokens, normalize=False)
            finally:
                self.head.active = True
            text = self.fusion(raw, labels)
        prompts = None if prompt_tokens is None else self.model.encode_text(prompt_tokens, normalize=True)
        return image, text, self.model.logit_scale.exp(), prompts


_TEXT_CACHES: dict[tuple, dict] = {}
_IMAGE_CACHES: dict[tuple, dict] = {}


def _image_cache(cfg: RunConfig, spec: ModelSpec) -> dict | None:
    """Decoded, region-cropped frames at the model size, shared by the runs of one process."""
    if not cfg.cache_images:
        return None
    key = (str(Path(cfg.data).resolve()), spec.preprocess.region, spec.preprocess.fill_color)
    return _IMAGE_CACHES.setdefault(key, {})


def cache_frozen_text(model: nn.Module, cache: dict | None = None, unlocked_layers: int = 0) -> dict:
    """Memoise a frozen text transformer's hidden states per token sequence (``lock_text``).

    A locked tower is a fixed function of the ids once its dropout is off, so each distinct
    caption or prompt is encoded once per process; the trainable projection still runs every
    step. With ``unlocked_layers`` = N > 0 only the first L - N layers are frozen: their output
    is what is cached, and the last N layers run (and learn) every step on it, so unlocking the
    top of the tower costs N layers, not L. Only ``forward`` of this instance is wrapped:
    parameters and state-dict keys are untouched, so checkpoints are the same as without the
    cache. Returns the cache dict.
    """
    from transformers.modeling_outputs import BaseModelOutput

    transformer = model.text.transformer
    inner = transformer.forward
    cache = {} if cache is None else cache
    layers = list(transformer.encoder.layer)
    tail = layers[len(layers) - unlocked_layers:] if unlocked_layers else []
    cut = len(layers) - len(tail)  # hidden_states[cut]: the output of the frozen prefix

    def prefix(input_ids, attention_mask):
        out = inner(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=bool(tail))
        return out.hidden_states[cut] if tail else out.last_hidden_state

    def forward(input_ids=None, attention_mask=None, **kw):
        keys = [tuple(r) for r in input_ids.tolist()]
        todo = sorted({i for i, k in enumerate(keys) if k not in cache})
        if todo:
            # Encode only up to the longest real sequence: trailing pads are masked out of
            # attention, so the real positions' states do not depend on them (and pooling
            # ignores pad positions), while the cost of a BERT layer grows with the length.
            n = int(attention_mask[todo].sum(1).max())
            was = transformer.training
            transformer.eval()  # no dropout: the cached value must be the function's value
            try:
                with torch.no_grad():
                    h = prefix(input_ids[todo, :n], attention_mask[todo, :n])
            finally:
                transformer.train(was)
            for j, i in enumerate(todo):
                cache[keys[i]] = h[j, :int(attention_mask[i].sum())].detach()
        length = input_ids.shape[1]
        states = [cache[k] for k in keys]
        hidden = states[0].new_zeros(len(keys), length, states[0].shape[-1])
        for j, s in enumerate(states):
            hidden[j, :s.shape[0]] = s
        if tail:
            mask = _layer_mask(transformer, attention_mask, hidden)
            for layer in tail:
                out = layer(hidden, attention_mask=mask)
                hidden = out[0] if isinstance(out, tuple) else out
        return BaseModelOutput(last_hidden_state=hidden)

    transformer.forward = forward
    return cache


@functools.cache
def _takes_position_ids(cls: type) -> bool:
    """Once per model class, not per step: the mask builder's signature (transformers 5.2x+)."""
    import inspect

    return "position_ids" in inspect.signature(cls._create_attention_masks).parameters


def _layer_mask(transformer, attention_mask, hidden):
    """The attention mask a BERT layer takes, built the way the model itself builds it
    (transformers 5: ``_create_attention_masks``, which from 5.2x also takes ``position_ids``,
    None for absolute positions as BertModel.forward passes it; 4.x:
    ``get_extended_attention_mask``)."""
    if hasattr(transformer, "_create_attention_masks"):
        kw = dict(attention_mask=attention_mask, encoder_attention_mask=None, embedding_output=hidden,
                  encoder_hidden_states=None, cache=None)
        if _takes_position_ids(type(transformer)):
            kw["position_ids"] = None
        mask, _ = transformer._create_attention_masks(**kw)
        return mask
    return transformer.get_extended_attention_mask(attention_mask, attention_mask.shape).to(hidden.dtype)


def build_similarity(cfg: RunConfig, train_labels: torch.Tensor):
    """S^(k) for the soft labels (None for plain InfoNCE)."""
    from .semantic import TagSimilarity

    kind = cfg.similarity
    if kind == "default":
        return TagSimilarity.default(train_labels.numpy())
    if kind == "cooccurrence":
        return TagSimilarity.cooccurrence(train_labels.numpy())
    if kind == "jaccard":
        return TagSimilarity.jaccard(train_labels.numpy())
    if kind == "prior":
        return TagSimilarity.prior()
    if kind == "identity":
        return TagSimilarity.identity()
    if Path(kind).is_file():
        return TagSimilarity.load(kind)
    raise ValueError(f"similarity: expected default, cooccurrence, jaccard, prior, identity or a .json/.npz "
                     f"file, found {kind!r}")


def param_groups(module: TrainModule, cfg: RunConfig) -> list[dict]:
    """AdamW groups: decay / no decay x part, the part being the pretrained text transformer
    (lr x ``text_lr_scale``), a zoom tower's added head (lr x ``zoom_lr_scale``: it starts at
    zero on a trained tower) or the rest (lr)."""
    # its own group only when its lr differs: the groups (and a checkpoint's optimizer state) of a
    # zoom run at the default stay what they were
    own = module.zoom and cfg.zoom_lr_scale != 1.0
    zoom_head = tuple(f"model.visual.{m}." for m in ZoomVisual.HEAD) if own else ()
    scale = {"text": cfg.text_lr_scale, "zoom": cfg.zoom_lr_scale, "main": 1.0}
    groups: dict[tuple[bool, str], list] = {}
    seen: set[int] = set()
    for name, p in module.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        no_decay = p.ndim < 2 or "logit_scale" in name or "embed" in name or "norm" in name
        part = ("text" if name.startswith("model.text.transformer.") else
                "zoom" if name.startswith(zoom_head) else "main")
        groups.setdefault((no_decay, part), []).append(p)
    out = []
    for (no_decay, part), params in sorted(groups.items()):
        out.append({"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                    "lr": cfg.lr * scale[part], "name": f"{part}-{'nodecay' if no_decay else 'decay'}"})
    return out


def lr_lambda(total_steps: int, warmup: int, min_ratio: float):
    """Multiplier of the base lr at step s: linear warm-up, then cosine to ``min_ratio``."""
    warmup = min(warmup, max(total_steps - 1, 0))

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def _cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """AVX512-BF16 or AMX-BF16 in the CPU flags (oneDNN's own check accepts plain AVX512BW,
    where bf16 is still converted in software). Without /proc/cpuinfo: oneDNN's check."""
    from usclip_sdk.cpuinfo import cpu_flags

    flags = cpu_flags(cpuinfo)
    if flags is not None:
        return "avx512_bf16" in flags or "amx_bf16" in flags
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: assume not
        return False


def _autocast(cfg: RunConfig, device: str):
    """(autocast context factory, GradScaler or None) for the run's precision."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    prec = cfg.precision
    if prec == "auto":
        prec = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if kind == "cuda" else "fp32"
    if prec == "fp16" and kind != "cuda":
        raise ValueError("precision: fp16 needs CUDA; use bf16 or fp32 on CPU")
    if prec == "fp32":
        return contextlib.nullcontext, None, prec
    if prec == "bf16" and kind == "cpu" and not _cpu_has_native_bf16():
        # emulated bf16 is no saving: 15x slower than fp32 for the conv tower on an AVX2 EPYC
        warnings.warn(f"precision bf16: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native "
                      "bf16 (AVX512-BF16 or AMX), so bf16 runs emulated and far slower than fp32; "
                      "use --set precision=fp32", RuntimeWarning, stacklevel=2)
    dtype = torch.bfloat16 if prec == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if prec == "fp16" else None
    return (lambda: torch.autocast(kind, dtype=dtype)), scaler, prec


class _EpochSampler(torch.utils.data.Sampler):
    """DistributedSampler order for one epoch, skipping the first ``skip`` indices (resume)."""

    def __init__(self, dataset, info: DistInfo, seed: int, epoch: int, skip: int = 0):
        base = torch.utils.data.DistributedSampler(dataset, num_replicas=info.world_size,
                                                   rank=info.rank, shuffle=True, seed=seed,
                                                   drop_last=True)
        base.set_epoch(epoch)
        self.indices = list(base)[skip:]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    seconds: float
    samples_per_s: float
    final_loss: float
    metrics: dict
    bad_samples: dict = field(default_factory=dict)  # usclip_data.faults summary (skips by kind)


class _Log:
    """JSONL log of rank 0 (truncated to the resume step, so the file is one clean curve)."""

    def __init__(self, path: Path, active: bool, resume_step: int | None):
        self.path, self.active = path, active
        if active and resume_step is not None and path.is_file():
            keep = [ln for ln in path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            ckpt.atomic_write_text(path, "".join(k + "\n" for k in keep))
        elif active and resume_step is None and path.exists():
            path.unlink()

    def write(self, record: dict) -> None:
        if self.active:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _setup(cfg: RunConfig, run_dir: Path, info: DistInfo):
    """Model, fusion, datasets, loss for a run (same on every rank)."""
    from .graph import AttributeGraphFusion
    from .loss import PromptAlignmentLoss, UltrasoundClipLoss, all_gather_with_grad
    from .balance import DiagnosisBalance
    from .prompt_bank import PromptBank

    seed_everything(cfg.seed)
    spec = model_spec_for(cfg)
    model = build_model(spec, pretrained_text=True)
    if cfg.init_checkpoint:
        load_weights(model, cfg.init_checkpoint)
    if cfg.lock_text:
        model.text.transformer.requires_grad_(False)
        n = int(cfg.unlock_text_layers)
        for layer in (list(model.text.transformer.encoder.layer)[-n:] if n else []):
            layer.requires_grad_(True)  # the top of the tower learns descriptor wording
        # Runs in one process (an ablation) share the cache: same frozen prefix, same ids.
        key = (spec.text_dir, cfg.init_checkpoint, n)
        cache_frozen_text(model, _TEXT_CACHES.setdefault(key, {}), unlocked_layers=n)
    fusion = (AttributeGraphFusion(int(spec.model_cfg["embed_dim"]), scale=cfg.fusion_scale)
              if cfg.use_graph else None)
    module = TrainModule(model, fusion, lock_image=cfg.lock_image).to(info.device)
    tokenizer = TextTokenizer(spec.tokenizer_path, spec.context_length)
    ds = UltrasoundDataset.from_root(cfg.data, cfg.train_split, spec.preprocess, tokenizer,
                                     max_samples=cfg.max_samples, on_bad_sample=cfg.on_bad_sample,
                                     augment=cfg.augment,
                                     seed=cfg.seed, cache=_image_cache(cfg, spec),
                                     template_captions=cfg.template_captions)
    sim = build_similarity(cfg, ds.labels) if cfg.use_soft_labels else None
    if sim is not None and info.is_main:
        sim.save(run_dir / "similarity.json")
    loss_fn = UltrasoundClipLoss(similarity=sim, lambda_sm=cfg.sm_lambda if cfg.use_soft_labels else 0.0,
                                 gather=all_gather_with_grad if info.distributed else None,
                                 rank=info.rank).to(info.device)
    prompts = None
    if cfg.prompt_loss > 0:  # our prompt-alignment term: its prompt rows, loss and sample weights, or None
        bank = PromptBank(tokenizer, label_support(ds.samples))
        balance = (DiagnosisBalance(ds.labels.to(info.device), bank.columns)  # on the device: no per-step copies
                   if cfg.prompt_balance == "diagnosis" else None)
        prompts = (bank, PromptAlignmentLoss(), balance)
    return spec, module, tokenizer, ds, loss_fn, prompts


def _steps_per_epoch(ds, cfg: RunConfig, info: DistInfo) -> int:
    per_rank = len(ds) // info.world_size
    spe = (per_rank // cfg.batch_size) // cfg.grad_accum
    if spe < 1:
        raise ValueError(f"data: {len(ds)} samples cannot fill one step of {info.world_size} x "
                         f"{cfg.batch_size} x {cfg.grad_accum} (world x batch_size x grad_accum)")
    return spe


def train(cfg: RunConfig, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Run (or resume) training; returns on every rank, rank 0 has written the checkpoints."""
    run_dir = Path(run_dir)
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, run_dir, resume, info)
    finally:
        cleanup(info)


def _train(cfg: RunConfig, run_dir: Path, resume: bool, info: DistInfo) -> TrainResult:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec, module, tokenizer, ds, loss_fn, prompts = _setup(cfg, run_dir, info)
    bad = getattr(ds, "bad_samples", None) or BadSamples()
    if bad.skipped and info.is_main:  # said now and again at the end, never only in a file
        print(f"train: {bad.describe()} from {cfg.data} (--on-bad-sample skip)", file=sys.stderr)
    spe = _steps_per_epoch(ds, cfg, info)
    total = cfg.max_steps if cfg.max_steps else cfg.epochs * spe
    groups = param_groups(module, cfg)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, cfg.warmup_steps, cfg.min_lr_ratio))
    autocast, scaler, precision = _autocast(cfg, info.device)
    manager = ckpt.CheckpointManager(run_dir, keep=cfg.keep_checkpoints)
    aux = {"fusion": module.fusion} if module.fusion is not None else {}
    step = 0
    latest = manager.latest() if resume else None
    if latest is not None:
        ck = ckpt.read_checkpoint(latest)
        ckpt.restore_training_state(ck, module.model, optimizer=opt, scheduler=sched, scaler=scaler, aux=aux)
        step = ck.step
    log = _Log(run_dir / "log.jsonl", info.is_main, step if latest is not None else None)
    if info.is_main:
        ckpt.atomic_write_text(run_dir / "run_config.json", json.dumps(cfg.to_dict(), indent=1))
    ddp = module
    if info.distributed:
        ddp = nn.parallel.DistributedDataParallel(
            module, device_ids=[info.device] if info.device.startswith("cuda") else None)
    module.train()
    bar = _progress(cfg, info, total, step)
    t_start, seen, last = time.perf_counter(), 0, {}
    save_kw = dict(run_config=cfg.to_dict(), optimizer=opt, scheduler=sched, scaler=scaler, aux=aux,
                   label_support=label_support(ds.samples))
    while step < total:
        epoch, done_in_epoch = divmod(step, spe)
        ds.set_epoch(epoch)
        sampler = _EpochSampler(ds, info, cfg.seed, epoch, skip=done_in_epoch * cfg.grad_accum * cfg.batch_size)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, drop_last=True,
            num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed + epoch),
            pin_memory=info.device.startswith("cuda"))
        it = iter(loader)
        for _ in range(spe - done_in_epoch):
            t0 = time.perf_counter()
            lr_used = opt.param_groups[0]["lr"]
            terms = _optimizer_step(ddp, module, loss_fn, opt, scaler, autocast, it, cfg, info, step,
                                    prompts, total)
            sched.step()
            step += 1
            seen += cfg.batch_size * cfg.grad_accum * info.world_size
            last = {k: float(all_reduce_mean(v, info)) for k, v in terms.items()}
            rec = {"step": step, "epoch": epoch, "lr": lr_used, **last,
                   "logit_scale": float(module.model.logit_scale.detach().exp()),
                   "step_s": round(time.perf_counter() - t0, 4)}
            if step % cfg.log_every == 0 or step == total or step == 1:
                log.write(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.4f}", refresh=False)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                _save(manager, info, step, module, spec, step // spe, save_kw)
            if step >= total:
                break
    seconds = time.perf_counter() - t_start
    if bar is not None:
        bar.close()
    metrics = _final_eval(cfg, module, spec, tokenizer, info, run_dir)
    path = _save(manager, info, step, module, spec, step // spe, {**save_kw, "metrics": metrics})
    if info.is_main:
        ckpt.atomic_write_text(run_dir / "bad_samples.json", json.dumps(bad.summary(), indent=1))
        if bad.skipping:
            print(f"train: {bad.describe()}; details in {run_dir / 'bad_samples.json'}", file=sys.stderr)
    return TrainResult(run_dir, path, step, seconds, seen / seconds if seconds > 0 else 0.0,
                       float(last.get("loss", float("nan"))), metrics, bad.summary())


def _optimizer_step(ddp, module: TrainModule, loss_fn, opt, scaler, autocast, it, cfg: RunConfig,
                    info: DistInfo, step: int = 0, prompts=None, total: int = 1) -> dict:
    """One optimizer step over ``grad_accum`` micro-batches; returns mean loss terms."""
    opt.zero_grad(set_to_none=True)
    sums: dict[str, torch.Tensor] = {}
    bank, align_loss, balance = prompts if prompts is not None else (None, None, None)
    for micro in range(cfg.grad_accum):
        batch: Batch = next(it).to(info.device)
        sync = micro == cfg.grad_accum - 1 or not info.distributed
        ctx = contextlib.nullcontext() if sync else ddp.no_sync()
        # the templates drawn depend only on (seed, step, micro): a resumed run draws the same
        prompt_tokens = None if bank is None else bank.sample(
            torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 97 + micro)).to(info.device)
        pick = None
        # the truth's share falls 1 -> 0 (zoom_teacher); a locked tower only ever uses its own square
        if module.zoom and batch.boxes is not None and not module.lock_image:
            share = max(0.0, 1.0 - step / (cfg.zoom_teacher * max(total, 1))) if cfg.zoom_teacher > 0 else 0.0
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + step * 13 + micro)  # same draw on resume
            draw = torch.rand(len(batch.boxes), generator=gen)
            pick = (draw.to(batch.boxes.device) < share) & (batch.boxes[:, 0] > 0)
        with ctx:
            with autocast():
                image, text, scale, prompt_emb = ddp(batch.images, batch.tokens, batch.labels, prompt_tokens,
                                                     batch.boxes if pick is not None else None, pick)
            terms = loss_fn(image.float(), text.float(), scale.float(), batch.labels)
            if pick is not None and cfg.zoom_box_loss > 0:
                found = box_loss(module.model.visual.last_box.float(), batch.boxes.float())
                terms = {**terms, "loss": terms["loss"] + cfg.zoom_box_loss * found, "box": found.detach()}
            if bank is not None:
                align = align_loss(image.float(), prompt_emb.float(), scale.float(), batch.labels, bank.columns,
                                   None if balance is None else balance.weights(batch.labels))
                terms = {**terms, "loss": terms["loss"] + cfg.prompt_loss * align, "prompt": align.detach()}
            loss = terms["loss"] / cfg.grad_accum
            (scaler.scale(loss) if scaler is not None else loss).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0) + v.detach().float() / cfg.grad_accum
    if scaler is not None:
        scaler.unscale_(opt)
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    with torch.no_grad():  # CLIP's clamp: a temperature below 1/100 destabilises training
        module.model.logit_scale.clamp_(0, math.log(100))
    return sums


def label_support(samples) -> dict[str, list[str]]:
    """The taxonomy values the training samples carry, per dimension, in taxonomy order: what
    the exported bundle declares its model was trained on."""
    seen = {f: set() for f in taxonomy.FIELDS}
    for s in samples:
        for f, vals in s.labels.items():
            seen[f].update(vals)
    return {d.field: [v for v in d.values if v in seen[d.field]] for d in taxonomy.DIMENSIONS
            if seen[d.field]}


def _save(manager, info: DistInfo, step: int, module: TrainModule, spec, epoch: int, kw: dict):
    path = None
    if info.is_main:
        path = manager.save(step, module.model, spec, epoch=epoch, **kw)
    barrier(info)
    return path if path is not None else manager.dir / f"step-{step:08d}"


def _progress(cfg: RunConfig, info: DistInfo, total: int, start: int):
    if not (cfg.progress and info.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", file=sys.stderr,
                dynamic_ncols=True, mininterval=1.0)


def _final_eval(cfg: RunConfig, module: TrainModule, spec, tokenizer, info: DistInfo, run_dir: Path) -> dict:
    """Zero-shot AvgAcc/AvgRecall and retrieval on ``val_split`` (rank 0; others get {})."""
    if not (cfg.eval_at_end and info.is_main):
        return {}
    split_file = Path(cfg.data) / f"{cfg.val_split}.jsonl"
    if not split_file.is_file():
        return {}
    from .evaluate import evaluate
    from .export.bundle_writer import graph_class_weights

    module.eval()
    try:
        masks = Path(cfg.data) / "masks"
        transform = FrameTransform(spec.preprocess, masks if masks.is_dir() else None,
                                   cache=_image_cache(cfg, spec))
        res = evaluate(module.model, cfg.data, cfg.val_split, image_transform=transform,
                       tokenizer=tokenizer, out_dir=run_dir / f"eval-{cfg.val_split}",
                       device=info.device, plots=False, name=spec.name,  # the model, not its class
                       class_weights=None if module.fusion is None else  # graph models: graph anchors
                       graph_class_weights(module.model, tokenizer, module.fusion))
    finally:
        module.train()
    return dict(res["metrics"])


_RUN_FILES = ("checkpoints", "log.jsonl", "run_config.json", "bad_samples.json")


def _claim_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start over silently in a folder holding a run: a fresh start there would point
    checkpoints/latest at step 1 beside the old steps, and `usclip export RUN` would ship it."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite: pass one (continue the run, or delete it and start over)")
    found = [name for name in _RUN_FILES if (out / name).exists()]
    if not found or resume:
        return
    if not overwrite:
        raise ValueError(
            f"--out {out}: holds a run ({', '.join(found)}); pass --resume to continue it "
            f"or --overwrite to delete it and start over")
    if init_rank() == 0:
        import shutil

        for name in found:
            shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
        for old_eval in out.glob("eval-*"):
            shutil.rmtree(old_eval, ignore_errors=True)


def run_from_args(args: argparse.Namespace) -> int:
    cfg = load_run_config(args.config, parse_overrides(args.overrides), data=args.data, model=args.model,
                          on_bad_sample=getattr(args, "on_bad_sample", None))
    if not cfg.data:
        raise ValueError("data: expected --data DIR (or data in the config file), found none")
    _claim_run_dir(Path(args.out), resume=args.resume, overwrite=getattr(args, "overwrite", False))
    result = train(cfg, args.out, resume=args.resume)
    if init_rank() == 0:
        print(json.dumps({"run_dir": str(result.run_dir), "checkpoint": str(result.checkpoint),
                          "steps": result.steps, "seconds": round(result.seconds, 2),
                          "samples_per_s": round(result.samples_per_s, 2),
                          "final_loss": result.final_loss, "metrics": result.metrics,
                          "bad_samples": result.bad_samples}))
    return 0


def init_rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_arg_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
