"""Write a synthetic data set in the US-365K layout, in parallel, deterministic from a seed.

Layout written under ``out_dir`` (the first four are the US-365K release's own files):

- ``images/<media_name>``: PNG frames, ``media_name = "case{i:06d}_v{view}.png"``;
- ``train.jsonl`` / ``valid.jsonl`` / ``test.jsonl``: ``{"image", "caption"}`` per line;
- ``full_data.json``: a list of ``{"media_name", <nine fields>}``; every record carries all
  nine fields, each a string (one tag) or a list (several tags; empty when unlabelled), as
  the release's documentation describes its records;
- ``masks/<media_name>``: the true imaging-region mask of each frame, PNG, 255 inside the
  image sector and 0 on the scanner screen around it (scores region detection);
- ``cases.jsonl``: one line per image with its case id, view, split and the renderer's
  JSON parameters (what the labels must agree with);
- ``dataset.json``: how it was made (seed, counts, size, splits, taxonomy version) and which
  label values it holds: ``label_values`` (field -> value -> images) for the whole set and
  ``label_values_per_split``, so a model trained on it can declare what it has seen.

Every random choice of case ``i`` comes from ``SeedSequence(seed, spawn_key=(i,))``, so the
files do not depend on the worker count or on scheduling, and a data set of n cases holds the
first n cases of any larger one with the same seed. The split is by case: all views of a case
land in the same split.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from usclip_sdk import taxonomy as tx
from .progress import Progress

__all__ = ["write_dataset", "WriteSummary", "SPLITS", "split_cases", "media_name"]

SPLITS = ("train", "valid", "test")
_SPLIT_STREAM = 0x5B1175  # spawn key of the stream that shuffles cases into splits
_TABLES = ("train.jsonl", "valid.jsonl", "test.jsonl", "full_data.json", "cases.jsonl")
# Everything the writer may leave in a folder (temp tables too, if a run was killed).
_OUTPUTS = ("images", "masks", "dataset.json") + _TABLES + tuple(t + ".tmp" for t in _TABLES)


@dataclass(frozen=True)
class WriteSummary:
    out_dir: str
    n_cases: int
    n_images: int
    per_split: dict[str, int]  # images per split
    seconds: float
    workers: int

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else 0.0


def media_name(case_index: int, view: int) -> str:
    return f"case{case_index:06d}_v{view}.png"


def split_cases(n_cases: int, seed: int, fractions: Sequence[float]) -> list[str]:
    """Split name of each case: exact counts by largest remainder, each split with a positive
    fraction holding at least one case when there are enough cases, order shuffled by seed."""
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"splits: expected three non-negative fractions (train, valid, test), found {fractions}")
    fr = fr / fr.sum()
    counts = np.floor(fr * n_cases).astype(int)
    for i in np.argsort(-(fr * n_cases - counts), kind="stable")[: n_cases - counts.sum()]:
        counts[i] += 1
    if n_cases >= int((fr > 0).sum()):
        for i in np.flatnonzero((fr > 0) & (counts == 0)):
            counts[i] += 1
            counts[int(np.argmax(counts))] -= 1
    labels = np.repeat(np.arange(3), counts)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_STREAM,)))
    rng.shuffle(labels)
    return [SPLITS[int(k)] for k in labels]


def _record(name: str, labels: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    rec: dict[str, Any] = {"media_name": name}
    for f in tx.FIELDS:
        vals = tuple(labels.get(f, ()))
        rec[f] = vals[0] if len(vals) == 1 else list(vals)  # [] when the report has no tag
    return rec


def _value_counts(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Sum field -> value -> count tables; values in the taxonomy's canonical order."""
    out = {}
    for f in tx.FIELDS:
        seen = {v for p in parts for v in p[f]}
        order = [v for v in tx.dimension(f).values if v in seen] + sorted(seen - set(tx.dimension(f).values))
        out[f] = {v: sum(p[f].get(v, 0) for p in parts) for v in order}
    return out


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


# Worker state: set once per process by _init (spawn-safe: only picklable references cross).
_W: dict[str, Any] = {}


def _init(cfg: dict[str, Any]) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would oversubscribe
    _W.clear()
    _W.update(cfg)
    if _W["sampler"] is None or _W["renderer"] is None:
        from . import synth

        _W["sampler"] = _W["sampler"] or synth.sample_case
        _W["renderer"] = _W["renderer"] or synth.render_view
    if _W["captioner"] is None:
        from .synth.captions import caption

        _W["captioner"] = caption


def _encode_png(img: np.ndarray, bilevel: bool = False) -> bytes:
    """PNG at zlib level 1 with the "sub" filter: measured 2.5x faster than OpenCV's default
    filters for these frames, for files about 3% larger. ``bilevel``: a 1-bit PNG for 0/255
    masks (0.2 ms and ~160 bytes at 256x256; OpenCV reads it back as 0/255)."""
    import cv2

    if img.ndim == 3:
        img = img[:, :, ::-1]  # RGB -> BGR for OpenCV
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if bilevel and hasattr(cv2, "IMWRITE_PNG_BILEVEL"):
        params += [cv2.IMWRITE_PNG_BILEVEL, 1]
    elif hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _case_streams(seed: int, index: int) -> list[np.random.SeedSequence]:
    """Case ``index``'s four independent streams: case, number of views, captions, render seeds."""
    return np.random.SeedSequence(seed, spawn_key=(index,)).spawn(4)


def _n_views(views_ss: np.random.SeedSequence, views: tuple[int, int]) -> int:
    return int(np.random.default_rng(views_ss).integers(views[0], views[1] + 1))


def _make_case(index: int) -> list[dict[str, Any]]:
    """Sample, render, caption and write every view of case ``index``; return its records."""
    case_ss, views_ss, caption_ss, render_ss = _case_streams(_W["seed"], index)
    case_id = f"case{index:06d}"
    case = _W["sampler"](np.random.default_rng(case_ss), case_id)
    n_views = _n_views(views_ss, _W["views"])
    cap_rng = np.random.default_rng(caption_ss)
    render_seeds = render_ss.generate_state(n_views)
    out_dir = Path(_W["out_dir"])
    records = []
    for view in range(n_views):
        try:
            frame = _W["renderer"](case, view, int(render_seeds[view]), _W["size"])
        except Exception as e:  # name the case so the failure can be replayed alone
            raise RuntimeError(f"rendering case {index} ({case_id}) view {view} failed (dataset seed "
                               f"{_W['seed']}, render seed {int(render_seeds[view])}, size {_W['size']}): "
                               f"{type(e).__name__}: {e}") from e
        name = media_name(index, view)
        labels = {f: tuple(frame.labels.get(f, ())) for f in tx.FIELDS}
        (out_dir / "images" / name).write_bytes(_encode_png(np.asarray(frame.image)))
        mask = (np.asarray(frame.region_mask) > 0).astype(np.uint8) * 255
        (out_dir / "masks" / name).write_bytes(_encode_png(mask, bilevel=True))
        records.append({"media_name": name, "case_id": case_id, "view": view,
                        "caption": _W["captioner"](labels, cap_rng), "labels": labels,
                        "params": json.loads(json.dumps(frame.params, default=_jsonable))})
    return records


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        ours = [p for p in _OUTPUTS if (out / p).exists()]
        if not overwrite:
            raise FileExistsError(f"out_dir: {out} is not empty; pass overwrite=True to replace "
                                  f"a data set written here ({len(ours)} of its files found)")
        for p in ours:  # remove only what this writer writes, never the user's other files
            shutil.rmtree(out / p) if (out / p).is_dir() else (out / p).unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)


def _check_args(n_cases: int, views: Sequence[int], size: Sequence[int] | None,
                workers: int | None) -> tuple[tuple[int, int], tuple[int, int] | None, int]:
    if not isinstance(n_cases, (int, np.integer)) or n_cases < 1:
        raise ValueError(f"n_cases: expected a positive integer, found {n_cases!r}")
    if len(views) != 2 or not 1 <= int(views[0]) <= int(views[1]):
        raise ValueError(f"views_per_case: expected (min, max) with 1 <= min <= max, found {views!r}")
    if size is not None and (len(size) != 2 or min(int(s) for s in size) < 32):
        raise ValueError(f"size: expected (height, width) of at least 32 pixels, found {size!r}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers: expected >= 1, found {workers}")
    return ((int(views[0]), int(views[1])),
            None if size is None else (int(size[0]), int(size[1])), min(workers, int(n_cases)))


class _Tables:
    """The jsonl splits, full_data.json and cases.jsonl, streamed to temp files as cases
    arrive (memory stays flat for any n) and renamed into place on ``close``."""

    def __init__(self, out: Path, split_of: list[str]):
        self.out, self.split_of = out, split_of
        self.fh = {n: open(out / (n + ".tmp"), "w", encoding="utf-8") for n in _TABLES}
        self.per_split = {s: 0 for s in SPLITS}
        self.values = {s: {f: {} for f in tx.FIELDS} for s in SPLITS}  # split -> field -> value -> n
        self.n = 0

    def add(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            split = self.split_of[int(rec["case_id"][4:])]
            self.per_split[split] += 1
            for f in tx.FIELDS:
                counts = self.values[split][f]
                for v in rec["labels"].get(f, ()):
                    counts[v] = counts.get(v, 0) + 1
            self.fh[f"{split}.jsonl"].write(json.dumps(
                {"image": rec["media_name"], "caption": rec["caption"]}, ensure_ascii=False) + "\n")
            # One record per line: greppable, and the reader can name the line of a bad record.
            self.fh["full_data.json"].write(("[\n" if self.n == 0 else ",\n") + json.dumps(
                _record(rec["media_name"], rec["labels"]), ensure_ascii=False))
            self.fh["cases.jsonl"].write(json.dumps(
                {"media_name": rec["media_name"], "case_id": rec["case_id"], "view": rec["view"],
                 "split": split, "params": rec["params"]}, sort_keys=True) + "\n")
            self.n += 1

    def close(self, commit: bool) -> None:
        self.fh["full_data.json"].write("[\n]\n" if self.n == 0 else "\n]\n")
        for name, fh in self.fh.items():
            fh.close()
            tmp = self.out / (name + ".tmp")
            os.replace(tmp, self.out / name) if commit else tmp.unlink()


def _run_cases(cfg: dict[str, Any], n_cases: int, workers: int, start_method: str):
    """Each case's records, in case order, from this process or a pool."""
    if workers == 1:
        import cv2

        threads = cv2.getNumThreads()
        try:
            _init(cfg)
            yield from map(_make_case, range(n_cases))
        finally:
            cv2.setNumThreads(threads)  # leave the caller's OpenCV as it was
        return
    ctx = mp.get_context(start_method)
    chunk = max(1, min(16, n_cases // (workers * 8)))
    with ctx.Pool(workers, initializer=_init, initargs=(cfg,)) as pool:
        yield from pool.imap(_make_case, range(n_cases), chunksize=chunk)


def write_dataset(out_dir: str | os.PathLike, n_cases: int, seed: int = 0,
                  views_per_case: Sequence[int] = (2, 4), size: Sequence[int] | None = (256, 256),
                  workers: int | None = None, splits: Sequence[float] = (0.8, 0.1, 0.1),
                  progress: bool = True, *, overwrite: bool = False,
                  sampler: Callable | None = None, renderer: Callable | None = None,
                  captioner: Callable | None = None, start_method: str = "spawn") -> WriteSummary:
    """Render ``n_cases`` synthetic cases (``views_per_case`` frames each) into the US-365K layout.

    size: (height, width) of every frame, or None to let the renderer vary it.
    workers: processes (default: all cores); the files are identical for any value.
    sampler / renderer / captioner: replace ``synth.sample_case`` / ``synth.render_view`` /
    ``synth.captions.caption`` (same signatures; must be importable module-level functions
    when workers > 1). start_method: multiprocessing start method for the pool ("spawn" is
    safe in processes that hold threads, e.g. after torch or OpenCV started theirs).
    """
    import time

    views, size_t, workers = _check_args(n_cases, views_per_case, size, workers)
    split_of = split_cases(int(n_cases), int(seed), splits)
    out = Path(out_dir)
    _prepare(out, overwrite)
    cfg = {"seed": int(seed), "views": views, "size": size_t, "out_dir": str(out),
           "sampler": sampler, "renderer": renderer, "captioner": captioner}
    # The bar's total: exact for up to 20k cases (~0.1 ms each), the mean beyond.
    expected = (sum(_n_views(_case_streams(int(seed), i)[1], views) for i in range(int(n_cases)))
                if n_cases <= 20000 else int(n_cases) * (views[0] + views[1]) // 2)
    t0 = time.perf_counter()
    tables = _Tables(out, split_of)
    try:
        with Progress(expected, "img", "usclip synth", enabled=progress) as bar:
            for recs in _run_cases(cfg, int(n_cases), workers, start_method):
                tables.add(recs)
                bar.update(len(recs))
    except BaseException:
        tables.close(commit=False)
        raise
    tables.close(commit=True)
    per_split = tables.per_split
    seconds = time.perf_counter() - t0
    meta = {"format": "us365k", "generator": "usclip_data.synth", "seed": int(seed),
            "n_cases": int(n_cases), "n_images": tables.n, "views_per_case": list(views),
            "size": None if size_t is None else list(size_t), "splits": list(splits),
            "cases_per_split": {s: split_of.count(s) for s in SPLITS},
            "images_per_split": per_split, "taxonomy_version": tx.TAXONOMY_VERSION,
            "label_values": _value_counts([tables.values[s] for s in SPLITS]),
            "label_values_per_split": {s: _value_counts([tables.values[s]]) for s in SPLITS}}
    (out / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return WriteSummary(str(out), int(n_cases), tables.n, per_split, seconds, workers)
