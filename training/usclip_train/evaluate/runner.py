"""The evaluation protocol end to end: encode a split once, run zero-shot classification per
UDAF dimension, retrieval both ways and (optionally) a linear probe, write results.json and
report.md.

Two entry points:
- ``evaluate(model_or_encoders, data, split, ...)`` for a model in memory (open_clip-like, with
  ``preprocess`` and ``tokenizer``) or an ``Encoders`` pair (e.g. ONNX towers of a bundle);
- ``evaluate_embeddings(...)`` for embeddings already computed (what the tests drive).
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from usclip_sdk import taxonomy

from . import metrics, zeroshot
from .encoders import Encoders, from_open_clip
from .linear_probe import ProbeConfig, linear_probe

__all__ = ["SplitEmbeddings", "load_samples", "embed_split", "evaluate_embeddings", "evaluate",
           "write_results"]

FORMAT = "usclip-eval/1"
_SAMPLES_CACHE: dict[tuple, list] = {}


@dataclass(frozen=True)
class SplitEmbeddings:
    """One split, encoded: unique images, one text per pair, the pair map and labels per image."""

    image_emb: np.ndarray            # n_images x D, unit rows
    text_emb: np.ndarray             # n_pairs x D, unit rows
    text_to_image: np.ndarray        # n_pairs, index into image_emb
    labels: list[Mapping[str, tuple[str, ...]]]  # per image
    n_duplicate_texts: int = 0       # pairs whose caption string also captions another image


def load_samples(data: str | Path | Sequence[Any], split: str = "test",
                 max_samples: int | None = None, seed: int = 0) -> list:
    """Samples (``image_path``, ``caption``, ``labels``) of a split.

    ``data`` is a US-365K root (read with ``usclip_data.us365k.US365K``, cached per root,
    split and file mtime so repeated evaluations do not re-parse ``full_data.json``) or a
    sequence of such samples. ``max_samples`` keeps a seeded random subset, in file order.
    """
    if isinstance(data, (str, Path)):
        root = Path(data)
        jsonl = root / f"{split}.jsonl"
        if not jsonl.is_file():
            raise FileNotFoundError(f"data: expected a US-365K root with {split}.jsonl, not found: {jsonl}")
        key = (str(root.resolve()), split, jsonl.stat().st_mtime_ns)
        if key not in _SAMPLES_CACHE:
            from usclip_data.us365k import US365K

            _SAMPLES_CACHE[key] = list(US365K(root, split))
        samples = _SAMPLES_CACHE[key]
    else:
        samples = list(data)
    if max_samples is not None and max_samples < len(samples):
        if max_samples < 1:
            raise ValueError(f"max_samples: expected >= 1, found {max_samples}")
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), max_samples, replace=False))
        samples = [samples[i] for i in keep]
    return samples


def _pairs(samples: Sequence[Any]) -> tuple[list[str], list, np.ndarray, int]:
    """Unique image paths (first-seen order), their labels, text->image map, duplicate count."""
    index: dict[str, int] = {}
    paths, labels, t2i = [], [], []
    for s in samples:
        key = str(s.image_path)
        if key not in index:
            index[key] = len(paths)
            paths.append(key)
            labels.append(s.labels)
        t2i.append(index[key])
    owners: dict[str, set] = {}
    for s, i in zip(samples, t2i):
        owners.setdefault(s.caption, set()).add(i)
    dup = sum(1 for s in samples if len(owners[s.caption]) > 1)
    return paths, labels, np.asarray(t2i, dtype=np.int64), dup


_PROGRESS_CHUNK = 1024  # images per progress line (a large split otherwise runs silently)


def _encode_images(encoders: Encoders, paths: list, progress: Callable[[str], None] | None) -> np.ndarray:
    if progress is None or len(paths) <= _PROGRESS_CHUNK:
        if progress is not None:
            progress(f"encoding {len(paths)} images")
        return encoders.encode_image(paths)
    parts, t0 = [], time.perf_counter()
    for i in range(0, len(paths), _PROGRESS_CHUNK):
        parts.append(encoders.encode_image(paths[i:i + _PROGRESS_CHUNK]))
        done = min(i + _PROGRESS_CHUNK, len(paths))
        progress(f"images {done}/{len(paths)} ({done / max(time.perf_counter() - t0, 1e-9):.0f}/s)")
    return np.concatenate(parts)


def embed_split(encoders: Encoders, samples: Sequence[Any], with_text: bool = True,
                progress: Callable[[str], None] | None = None) -> tuple[SplitEmbeddings, dict]:
    """Encode a split's images (each unique file once) and captions; returns (embeddings, timing_s).
    ``progress`` receives one line per stage and per 1024 images."""
    paths, labels, t2i, dup = _pairs(samples)
    t0 = time.perf_counter()
    img = metrics.l2_normalize(_encode_images(encoders, list(paths), progress))
    t1 = time.perf_counter()
    if with_text and progress is not None:
        progress(f"encoding {len(samples)} captions")
    txt = metrics.l2_normalize(encoders.encode_text([s.caption for s in samples])) if with_text \
        else np.zeros((0, img.shape[1]), np.float32)
    t2 = time.perf_counter()
    if img.shape[0] != len(paths):
        raise ValueError(f"encode_image: expected {len(paths)} embeddings, found {img.shape[0]}")
    timing = {"encode_images": t1 - t0, "encode_texts": t2 - t1,
              "images_per_s": len(paths) / max(t1 - t0, 1e-9)}
    return SplitEmbeddings(img, txt, t2i if with_text else np.zeros(0, np.int64), labels, dup), timing


def _targets(labels: Sequence[Mapping], fields: Sequence[str]) -> dict[str, np.ndarray]:
    return {f: metrics.targets_for(labels, f) for f in fields}


def evaluate_embeddings(split: SplitEmbeddings, class_weights: Mapping[str, np.ndarray] | None,
                        ks: Sequence[int] = (1, 5, 10, 50), retrieval: bool = True,
                        probe_train: SplitEmbeddings | None = None,
                        probe_config: ProbeConfig = ProbeConfig()) -> dict[str, dict]:
    """The three tasks on ready embeddings; returns ``{task: result}`` (JSON-able)."""
    tasks: dict[str, dict] = {}
    fields = list(class_weights) if class_weights else list(taxonomy.FIELDS)
    targets = _targets(split.labels, fields)
    if class_weights:
        tasks["zeroshot_classification"] = metrics.zeroshot_metrics(split.image_emb, class_weights, targets)
    if retrieval and len(split.text_emb):
        i2t, t2i = metrics.retrieval_ranks(split.image_emb, split.text_emb, split.text_to_image)
        r = metrics.rank_metrics(i2t, t2i, ks)
        r["n_duplicate_texts"] = split.n_duplicate_texts
        r["curve_k"], r["curve_i2t"], r["curve_t2i"] = _curve(i2t, t2i)
        tasks["zeroshot_retrieval"] = r
    if probe_train is not None:
        tasks["linear_probe"] = linear_probe(probe_train.image_emb, _targets(probe_train.labels, fields),
                                             split.image_emb, targets, probe_config)
    return tasks


def _curve(i2t: np.ndarray, t2i: np.ndarray) -> tuple[list[int], list[float], list[float]]:
    """Recall@k at ~40 log-spaced k (1 .. number of candidates), for the report's plot."""
    n = int(max(len(t2i), len(i2t), 1))
    ks = sorted({int(k) for k in np.unique(np.round(np.logspace(0, np.log10(n), 40)))})
    a, b = metrics.recall_at_k(i2t, ks), metrics.recall_at_k(t2i, ks)
    return ks, [a[k] for k in ks], [b[k] for k in ks]


def _summary(tasks: Mapping[str, dict], ks: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    zs = tasks.get("zeroshot_classification")
    if zs:
        out["AvgAcc"], out["AvgRecall"] = zs["AvgAcc"], zs["AvgRecall"]
        for f, m in zs["per_dimension"].items():
            out[f"acc1/{f}"], out[f"recall/{f}"] = m["acc1"], m["mean_per_class_recall"]
    rt = tasks.get("zeroshot_retrieval")
    if rt:
        for k in ks:
            out[f"i2t_R@{k}"], out[f"t2i_R@{k}"] = rt[f"i2t_R@{k}"], rt[f"t2i_R@{k}"]
    lp = tasks.get("linear_probe")
    if lp:
        out["probe_AvgAcc"], out["probe_AvgRecall"] = lp["AvgAcc"], lp["AvgRecall"]
    return out


def _as_encoders(model: Any, preprocess: Any, tokenizer: Callable | None, **kw: Any) -> Encoders:
    if isinstance(model, Encoders):
        return model
    if (preprocess is None and kw.get("image_transform") is None) or tokenizer is None:
        raise TypeError("evaluate: a model needs preprocess= (or image_transform=) and tokenizer= "
                        "(or pass an Encoders)")
    kw["name"] = kw.get("name") or type(model).__name__
    return from_open_clip(model, preprocess, tokenizer, **kw)


def _probe_embeddings(enc: Encoders, data: Any, split: str, max_samples: int | None) -> tuple[SplitEmbeddings, float]:
    if not isinstance(data, (str, Path)):
        raise TypeError("linear_probe_split: needs data to be a US-365K root")
    emb, t = embed_split(enc, load_samples(data, split, max_samples), with_text=False)
    return emb, t["encode_images"]


def evaluate(model: Any, data: str | Path | Sequence[Any], split: str = "test", *,
             preprocess: Any = None, tokenizer: Callable | None = None,
             image_transform: Callable | None = None,
             out_dir: str | Path | None = None, fields: Sequence[str] | None = None,
             templates: Mapping[str, Sequence[str]] | None = None,
             class_weights: Mapping[str, np.ndarray] | None = None,
             retrieval: bool = True, ks: Sequence[int] = (1, 5, 10, 50),
             linear_probe_split: str | None = None, probe_config: ProbeConfig = ProbeConfig(),
             max_samples: int | None = None, probe_max_samples: int | None = None,
             batch_size: int = 64, device: Any = None, num_workers: int = 0,
             name: str | None = None, plots: bool = True,
             progress: Callable[[str], None] | None = None) -> dict:
    """Run the protocol on one split; returns the results dict (the content of results.json).

    model: an open_clip-like model (with ``preprocess`` - a usclip_sdk.pixels.PreprocessSpec or a PIL
    transform - and ``tokenizer``; ``image_transform`` path -> tensor overrides ``preprocess``)
    or an ``Encoders``.
    data: a US-365K root or a sequence of samples (``image_path``, ``caption``, ``labels``).
    fields: dimensions to classify (default all nine); ``class_weights`` skips the text
    encoding of prompts (pass the result of ``zeroshot.class_weights`` to reuse it).
    linear_probe_split: e.g. ``"train"`` to fit a probe on that split's frozen features.
    out_dir: when given, results.json, report.md and plots are written there.
    progress: called with one line per stage (``usclip eval`` prints them to stderr).
    """
    enc = _as_encoders(model, preprocess, tokenizer, device=device, batch_size=batch_size,
                       num_workers=num_workers, name=name, image_transform=image_transform)
    samples = load_samples(data, split, max_samples)
    if not samples:
        raise ValueError(f"data: split {split!r} has no samples")
    t0 = time.perf_counter()
    if class_weights is None:
        if progress is not None:
            progress("encoding the class prompts")
        class_weights = zeroshot.class_weights(enc.encode_text, fields, templates)
    elif fields is not None:
        class_weights = {f: class_weights[f] for f in fields}
    timing = {"class_weights": time.perf_counter() - t0}
    emb, t = embed_split(enc, samples, with_text=retrieval, progress=progress)
    timing.update(t)
    probe_train = None
    if linear_probe_split:
        probe_train, timing["encode_probe_images"] = _probe_embeddings(enc, data, linear_probe_split,
                                                                       probe_max_samples)
    t1 = time.perf_counter()
    if progress is not None:
        progress("computing the metrics")
    tasks = evaluate_embeddings(emb, class_weights, ks, retrieval, probe_train, probe_config)
    timing["metrics"] = time.perf_counter() - t1
    result = {
        "format": FORMAT,
        "task": "usclip_udt",
        "model": enc.name,
        "dataset": str(data) if isinstance(data, (str, Path)) else "<in-memory samples>",
        "split": split,
        "taxonomy_version": taxonomy.TAXONOMY_VERSION,
        "n_pairs": len(samples),
        "n_images": int(emb.image_emb.shape[0]),
        "metrics": _summary(tasks, ks),
        "tasks": tasks,
        "timing_s": timing,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if out_dir is not None:
        write_results(result, out_dir, plots=plots)
    return result


def write_results(result: Mapping[str, Any], out_dir: str | Path, plots: bool = True) -> Path:
    """Write results.json (atomically) and report.md (+ PNG plots) into ``out_dir``."""
    from .report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    tmp.replace(out / "results.json")
    write_report(result, out, plots=plots)
    return out / "results.json"
