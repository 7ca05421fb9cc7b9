"""``Classifier``: the one object a device maker embeds.

frame -> imaging region -> fused preprocess kernel -> image encoder (backend) -> fused
similarity kernel -> Prediction. The classifier owns its bundle, backend, the precomputed
class embeddings of every taxonomy value and a cache of text embeddings. It is thread-safe:
inference holds no mutable state, and ``set_labels`` swaps the label set atomically.
"""
from __future__ import annotations

import copy
import heapq
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import ops
from .ops.similarity import ClassEmbeddings, similarity
from .pixels import model_input
from .backends import open_backend
from .bundle import Bundle
from .calibration import Calibration, reweight
from .errors import InvalidInputError
from .inputs import Frame, iter_frames, to_frame
from .models import default_bundle_path
from .prediction import Attribute, Prediction
from .prefetch import Prefetcher
from .quality import FrozenDetector, Quality, assess
from .layout import RegionCache
from .region import Region, RegionTracker, detect_region, full_region, region_from_dicom
from .settings import usable_cores
from .triage import decide, mark_applicable

__all__ = ["Classifier", "DEFAULT_LABEL_TEMPLATES"]

log = logging.getLogger(__name__)

DEFAULT_LABEL_TEMPLATES = ("an ultrasound image of {}.", "a sonogram showing {}.",
                           "ultrasound findings: {}.", "b-mode ultrasound with {}.")


class _LabelSet:
    """The active label set and what scoring needs: the taxonomy's class embeddings with the
    labels' embeddings appended (built once per set_labels, not per frame), and its groups;
    ``weights``: e^offset per matrix row when the bundle's calibration has class offsets."""

    def __init__(self, names: Sequence[str], embeddings: np.ndarray, classes: np.ndarray,
                 groups: Sequence[int], weights: np.ndarray | None = None):
        self.names = tuple(names)
        # prepared once: no per-frame class norms or checks; float32, as float16 would move the
        # probabilities by ~1e-3 for ~1 us at K ~ 100 (docs/performance.md, "Similarity")
        self.matrix = ClassEmbeddings(np.concatenate([classes, embeddings]).astype(np.float32, copy=False), "float32")
        self.groups = (*groups, len(self.names))
        self.weights = weights


def _smooth(state: np.ndarray | None, p: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average of a stream's probabilities (restarts when the label set's
    size changed)."""
    if state is not None and state.shape == p.shape and smoothing > 0:
        return smoothing * state + (1.0 - smoothing) * p
    return p


class Classifier:
    """Zero-shot ultrasound triage with a model bundle.

    ``Classifier()`` loads the shipped default model with the best available backend;
    ``Classifier.from_bundle(path, backend=..., device=..., precision=...)`` any other bundle.
    ``region``: "auto" (DICOM regions when valid, else detection), "full" (no cropping).
    ``threads``: onnxruntime threads; ``engine_batch``: the TensorRT engine's batch profile
    ("MIN,OPT,MAX", as built by ``usclip build-engine --batch``); larger batches are split into
    chunks the backend takes (``backend.max_batch``). ``cache_dir``: TensorRT engine cache
    (default ``USCLIP_ENGINE_CACHE``, else the user cache folder; usclip_sdk.engine_cache).
    ``scope``: "trained" (default) scores only the taxonomy values the bundle declares its model
    was trained on (manifest ``label_support``; all values when a bundle declares none),
    "taxonomy" every value of the taxonomy.
    """

    def __init__(self, bundle: str | Path | Bundle | None = None, backend: str = "auto",
                 device: str = "auto", precision: str = "auto", region: str = "auto",
                 threads: int | None = None, engine_batch: str = "1,1,8",
                 text_cache_size: int = 4096, trusted_keys=None, cache_dir: str | Path | None = None,
                 scope: str = "trained"):
        if region not in ("auto", "full"):
            raise ValueError(f"region: expected 'auto' or 'full', found {region!r}")
        if scope not in ("trained", "taxonomy"):
            raise ValueError(f"scope: expected 'trained' or 'taxonomy', found {scope!r}")
        # trusted_keys (else USCLIP_TRUSTED_KEYS): the bundle must be signed by one of them,
        # checked before any model file is parsed (usclip_sdk.signing).
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(
            bundle if bundle is not None else default_bundle_path(), trusted_keys=trusted_keys)
        if isinstance(bundle, Bundle):  # opened elsewhere: held to the same trusted keys
            bundle.require_trusted(trusted_keys)
        self.backend = open_backend(self.bundle, backend, device, precision, threads=threads,
                                    engine_batch=engine_batch, cache_dir=cache_dir)
        # The bundle's preprocess spec is the one description of the encoder's input, checked
        # when the manifest was parsed (usclip_sdk.pixels); a spec of region "full" means the
        # model was trained on whole frames, so no region is cropped whatever ``region`` says.
        self.preprocess = self.bundle.preprocess
        self.region_mode = "full" if self.preprocess.region == "full" else region
        self.image_size = tuple(self.preprocess.image_size)
        self.class_names = self.bundle.class_names
        self.group_sizes = tuple(self.bundle.group_sizes)
        self.class_embeddings = np.ascontiguousarray(self.bundle.class_embeddings(), np.float32)
        # The bundle's optional calibration (usclip_sdk.calibration): each dimension's
        # temperature divides its class rows of the scoring matrix and its class offsets
        # reweight the softmax (= softmax(logits / T + b)); the OOD reference and confidence
        # thresholds feed Prediction.status (usclip_sdk.triage).
        self.calibration = Calibration.from_bundle(self.bundle)
        self._scoring_classes = self.class_embeddings if self.calibration is None else np.ascontiguousarray(
            self.class_embeddings * self.calibration.row_scale(self.class_names)[:, None])
        self.scope = scope
        self._class_weights = self._scoped(self.calibration.row_weights(self.class_names)
                                           if self.calibration is not None and self.calibration.spec.offsets
                                           else None)
        self.fields = tuple(dict.fromkeys(f for f, _ in self.class_names))
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._lock = threading.Lock()
        # Regions of the last 16 screen layouts (usclip_sdk.layout); detect_region looked up per call.
        self._regions = RegionCache(lambda px: detect_region(px), size=16)
        self._labels = self._taxonomy_labels("Diagnosis")

    @classmethod
    def from_bundle(cls, path: str | Path, backend: str = "auto", device: str = "auto",
                    precision: str = "auto", **kw: Any) -> "Classifier":
        return cls(path, backend=backend, device=device, precision=precision, **kw)

    def _scoped(self, weights: np.ndarray | None) -> np.ndarray | None:
        """Row weights with the values outside the bundle's label support set to 0: a softmax
        renormalised over what the model was trained on, so no probability leaks onto organs
        it never saw (scope="trained")."""
        support = self.bundle.manifest.label_support
        if self.scope == "taxonomy" or not support:
            return weights
        keep = np.array([f not in support or v in support[f] for f, v in self.class_names], np.float32)
        if keep.all():
            return weights
        return keep if weights is None else weights * keep

    # ----------------------------------------------------------------- labels and text
    def _taxonomy_labels(self, field: str) -> _LabelSet:
        idx = [i for i, (f, _) in enumerate(self.class_names) if f == field]
        if not idx:
            raise InvalidInputError(f"labels: the bundle has no taxonomy dimension {field!r}; "
                                    f"available: {list(self.fields)}")
        cw = self._class_weights
        return _LabelSet([self.class_names[i][1] for i in idx], self._scoring_classes[idx],
                         self._scoring_classes, self.group_sizes,
                         None if cw is None else np.concatenate([cw, cw[idx]]))

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels.names

    def set_labels(self, labels: Sequence[str] | str | None, templates: Sequence[str] | None = None) -> None:
        """Set the active label set for ``Prediction.label``/``topk``.

        A taxonomy field name (e.g. "Organ_level") uses that dimension's precomputed
        embeddings; a list of free-text labels is encoded with the bundle's text tower as a
        prompt ensemble (``templates``, each with one ``{}``); None restores "Diagnosis".
        """
        if labels is None:
            new = self._taxonomy_labels("Diagnosis")
        elif isinstance(labels, str):
            new = self._taxonomy_labels(labels)
        else:
            names = [str(x).strip() for x in labels]
            if not names or any(not n for n in names):
                raise InvalidInputError(f"labels: expected non-empty strings, found {list(labels)!r}")
            if len(set(names)) != len(names):
                raise InvalidInputError(f"labels: duplicates in {names}")
            tmpl = tuple(templates or DEFAULT_LABEL_TEMPLATES)
            if any(t.count("{}") != 1 for t in tmpl):
                raise InvalidInputError(f"templates: each needs exactly one '{{}}', found {list(tmpl)}")
            emb = np.stack([self._ensemble([t.format(n) for t in tmpl]) for n in names])
            cw = self._class_weights  # free-text labels have no fitted offsets
            new = _LabelSet(names, emb, self._scoring_classes, self.group_sizes,
                            None if cw is None else np.concatenate([cw, np.ones(len(names), np.float32)]))
        with self._lock:
            self._labels = new

    def _ensemble(self, prompts: Sequence[str]) -> np.ndarray:
        e = self.embed_text(prompts).mean(axis=0)
        return e / max(float(np.linalg.norm(e)), 1e-12)

    def embed_text(self, texts: str | Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings (N x D), cached per string."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            emb = self.backend.encode_text(self.bundle.tokenize(missing))
            with self._lock:
                for t, e in zip(missing, emb):
                    self._text_cache[t] = e
                    self._text_cache.move_to_end(t)
                while len(self._text_cache) > self._text_cache_size:
                    self._text_cache.popitem(last=False)
                fresh = dict(zip(missing, emb))
        else:
            fresh = {}
        with self._lock:
            return np.stack([fresh[t] if t in fresh else self._text_cache[t] for t in texts])

    # ----------------------------------------------------------------- images
    def _region(self, frame: Frame, region: Region | None, tracker: RegionTracker | None) -> Region:
        h, w = frame.pixels.shape[:2]
        if region is not None:
            if region.frame_shape != (h, w):
                raise InvalidInputError(f"region: made for a {region.frame_shape} frame, "
                                        f"found a {(h, w)} frame")
            return region
        if self.region_mode == "full":
            return full_region(h, w)
        if tracker is not None:
            return tracker(frame.pixels)
        if frame.regions:
            r = region_from_dicom(frame.regions, frame.pixels)
            if r is not None:
                return r
        return self._cached_region(frame.pixels)

    def _cached_region(self, pixels: np.ndarray) -> Region:
        """Detection, reused across calls for frames with a layout seen recently.

        A scanner sends frame after frame with one screen layout, and a few layouts in turn
        (presets, probes, several scanners on one server), so the regions of the last 16
        layouts are kept with their layout prints (usclip_sdk.layout.RegionCache, ~0.4 ms
        a frame at 720p): a frame that matches one (at most 3 % of the fingerprint's cells
        differ and the scan's edge has not moved) reuses its region, any other is detected.
        """
        return self._regions(pixels)

    def _preprocess(self, frames: Sequence[Frame], regions: Sequence[Region]) -> np.ndarray:
        h, w = self.image_size
        batch = np.empty((len(frames), 3, h, w), dtype=self.backend.input_dtype)
        for i, (f, r) in enumerate(zip(frames, regions)):
            # Frames of any size in one batch: one kernel call per frame, straight into its slot.
            model_input(f.pixels, r.bbox, r.mask, self.preprocess, dtype=batch.dtype.name,
                        out=batch[i:i + 1])
        return batch

    def _encode(self, frames: Sequence[Frame], regions: Sequence[Region]) -> tuple[np.ndarray, float]:
        """Image embeddings, and the time spent preprocessing (ms), in chunks of at most the
        backend's ``max_batch`` frames."""
        step = self.backend.max_batch or len(frames)
        embs, pre_ms = [], 0.0
        for i in range(0, len(frames), step):
            e, ms = self._encode_chunk(frames[i:i + step], regions[i:i + step])
            embs.append(e)
            pre_ms += ms
        return (embs[0] if len(embs) == 1 else np.concatenate(embs)), pre_ms

    def _encode_chunk(self, frames: Sequence[Frame], regions: Sequence[Region]) -> tuple[np.ndarray, float]:
        # On a backend whose input lives on the GPU (TensorRT) the CUDA kernel writes each frame
        # straight into the engine's input binding: the pixels cross to the GPU once, as uint8.
        t = time.perf_counter()
        if not self.backend.device_input:
            batch = self._preprocess(frames, regions)
            pre_ms = (time.perf_counter() - t) * 1e3
            return self.backend.encode_image(batch), pre_ms
        h, w = self.image_size
        n = len(frames)
        with self.backend.lock:
            binding = self.backend.bind_input(n)
            per = 3 * h * w * binding.dtype.itemsize
            for i, (f, r) in enumerate(zip(frames, regions)):
                model_input(f.pixels, r.bbox, r.mask, self.preprocess, dtype=binding.dtype.name,
                            device="cuda", stream=self.backend.stream,
                            out=(binding.ptr + i * per, (1, 3, h, w)))
            pre_ms = (time.perf_counter() - t) * 1e3  # queued, not waited for: see run_bound
            return self.backend.run_bound(n), pre_ms

    def embed_image(self, frames: Any) -> np.ndarray:
        """L2-normalised image embeddings (N x D) of frames (same inputs as classify_batch)."""
        fr = self._frames(frames)
        return self._encode(fr, [self._region(f, None, None) for f in fr])[0]

    @staticmethod
    def _frames(frames: Any) -> list[Frame]:
        if isinstance(frames, np.ndarray) and frames.ndim == 4:
            frames = list(frames)
        elif isinstance(frames, (np.ndarray, str, Path, Frame)):
            frames = [frames]
        out = [to_frame(f) for f in frames]
        if not out:
            raise InvalidInputError("frames: empty batch")
        return out

    # ----------------------------------------------------------------- classification
    def _score(self, emb: np.ndarray, labels: _LabelSet) -> np.ndarray:
        """Per-group softmax probabilities over [93 taxonomy classes | active labels]."""
        res = similarity(emb, labels.matrix, scale=self.bundle.logit_scale,
                         bias=self.bundle.logit_bias or 0.0, topk=1, groups=labels.groups,
                         normalize=False)
        probs = np.asarray(res.probs, dtype=np.float32)
        return probs if labels.weights is None else reweight(probs, labels.weights, labels.groups)

    def _prediction(self, probs: np.ndarray, labels: _LabelSet, region: Region,
                    timings: dict[str, float], source: str, emb: np.ndarray | None, *,
                    pixels: np.ndarray, vec: np.ndarray, frozen: FrozenDetector | None = None,
                    quality: Quality | None = None) -> Prediction:
        attrs: dict[str, Attribute] = {}
        off = 0
        # Python floats once, and heapq's top-k (== sorted(..., reverse=True)[:k], stable: ties
        # keep class order, as argsort(-p, kind="stable") did) - two numpy calls a dimension
        # cost more than the whole loop on ~100 numbers.
        plist = probs.tolist()
        for field, n in zip(self.fields, self.group_sizes):
            p = plist[off:off + n]
            top = [(self.class_names[off + j][1], p[j]) for j in heapq.nlargest(3, range(n), key=p.__getitem__)]
            attrs[field] = Attribute(field, top[0][0], top[0][1], tuple(top))
            off += n
        lp = plist[off:]
        order = heapq.nlargest(5, range(len(lp)), key=lp.__getitem__)
        t = time.perf_counter()
        if quality is None:
            quality = assess(pixels, region)
        status, reasons = decide(quality, attrs, vec, self.calibration, frozen)
        decided = (time.perf_counter() - t) * 1e3
        timings = dict(timings, triage=timings.get("triage", 0.0) + decided)
        timings["total"] += decided
        return Prediction(
            label=labels.names[order[0]], score=lp[order[0]],
            topk=tuple((labels.names[j], lp[j]) for j in order),
            attributes=mark_applicable(attrs, status), region=region.to_dict(), timings=timings,
            backend=self.backend.name, bundle=self.bundle.manifest.model.name, source=source,
            embedding=emb, status=status, reasons=reasons)

    def classify(self, frame: Any, region: Region | None = None,
                 return_embedding: bool = False) -> Prediction:
        """Classify one frame (numpy uint8 gray/RGB, image or DICOM path, pydicom Dataset).

        Arrays are read as RGB. ``cv2.imread`` and OpenCV cameras give BGR, which is accepted
        without an error (nothing in the pixels says which order they are in) but swaps red and
        blue: convert first with ``cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)``, or pass the file
        path, which is decoded to RGB here. Gray B-mode frames are the same either way."""
        return self._run([to_frame(frame)], [region], return_embedding)[0]

    def classify_batch(self, frames: Iterable[Any], return_embedding: bool = False) -> list[Prediction]:
        """Classify several frames (sizes may differ) in one encoder call."""
        fr = self._frames(frames)
        return self._run(fr, [None] * len(fr), return_embedding)

    def _run(self, frames: list[Frame], regions_in: list[Region | None],
             return_embedding: bool) -> list[Prediction]:
        labels = self._labels  # one consistent label set for the whole call
        emb, probs, regions, ms = self._infer(frames, regions_in, None, labels)
        return [self._prediction(probs[i], labels, regions[i], ms, frames[i].source,
                                 emb[i] if return_embedding else None, pixels=frames[i].pixels,
                                 vec=emb[i]) for i in range(len(frames))]

    def _infer(self, frames: list[Frame], regions_in: list[Region | None],
               tracker: RegionTracker | None, labels: _LabelSet
               ) -> tuple[np.ndarray, np.ndarray, list[Region], dict[str, float]]:
        """Embeddings, per-group probabilities, regions and per-frame stage times (ms)."""
        t0 = time.perf_counter()
        regions = [self._region(f, r, tracker) for f, r in zip(frames, regions_in)]
        if log.isEnabledFor(logging.DEBUG):  # which region source each frame used (dicom, detected kind, full)
            log.debug("regions: %s", "; ".join(f"{f.source or i}: {r.kind} {list(r.bbox)}"
                                               for i, (f, r) in enumerate(zip(frames, regions))))
        t1 = time.perf_counter()
        emb, pre_ms = self._encode(frames, regions)
        t3 = time.perf_counter()
        probs = self._score(emb, labels)
        t4 = time.perf_counter()
        n = len(frames)
        ms = {"region": (t1 - t0) * 1e3 / n, "preprocess": pre_ms / n,
              "encode": ((t3 - t1) * 1e3 - pre_ms) / n, "similarity": (t4 - t3) * 1e3 / n,
              "total": (t4 - t0) * 1e3 / n}
        return emb, probs, regions, ms

    def stream(self, source: Any, every: int = 1, smoothing: float = 0.6,
               refresh_region_every: int = 10, frozen_after: int = 10,
               prefetch: bool | str = "auto") -> Iterator[Prediction]:
        """Predictions for a video file, DICOM cine, camera index or iterable of frames.

        every: run the model on every n-th frame and re-emit the last result in between.
        smoothing: exponential moving average of the probabilities across processed frames
            (0 = none; 0.6 keeps 60 % of the history), which steadies the triage display.
        The imaging region is detected once per layout: every ``refresh_region_every`` frames a
        cheap fingerprint checks whether the scanner layout changed (RegionTracker).
        Status "frozen" once the imaging region has not changed for ``frozen_after`` processed
        frames in a row (quality.FrozenDetector; 10 = a third of a second at 30 frames/s).
        prefetch: decode the next frame, find its region, gate it and preprocess it in a
            worker thread while the encoder runs on this one, the encoder then with one
            thread fewer (``backend.encode_image_pipelined``) so the two do not take turns on
            the same cores. "auto" (default): on for a host backend (onnxruntime) with at
            least 2 cores, off for a device backend (TensorRT preprocesses on the GPU, inline).
            Measured on an idle 2-core EPYC (docs/performance.md): int8_cpu 247-264 frames/s
            prefetched vs 175 inline. Same predictions either way; errors from the source are
            raised here, in order; a live feed lags at most one frame more. Argument errors are
            raised by this call itself.
        """
        if every < 1:
            raise ValueError(f"every: expected >= 1, found {every}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing: expected 0 <= smoothing < 1, found {smoothing}")
        if prefetch not in (True, False, "auto"):
            raise ValueError(f"prefetch: expected True, False or 'auto', found {prefetch!r}")
        if prefetch == "auto":
            prefetch = not self.backend.device_input and usable_cores() >= 2
        if prefetch:
            return self._stream_prefetched(source, every, smoothing, refresh_region_every, frozen_after)
        return self._stream_inline(source, every, smoothing, refresh_region_every, frozen_after)

    def _stream_inline(self, source: Any, every: int, smoothing: float, refresh_region_every: int,
                       frozen_after: int) -> Iterator[Prediction]:
        tracker: RegionTracker | None = None
        state: np.ndarray | None = None
        last: Prediction | None = None
        frozen = FrozenDetector(after=frozen_after)
        for i, frame in enumerate(iter_frames(source)):
            if tracker is None:
                tracker = RegionTracker(refresh_every=refresh_region_every,
                                        dicom_regions=frame.regions)
            if i % every and last is not None:
                yield last
                continue
            labels = self._labels
            emb, probs, regions, ms = self._infer([frame], [None], tracker, labels)
            frozen.update(frame.pixels, regions[0])
            state = _smooth(state, probs[0], smoothing)
            last = self._prediction(state, labels, regions[0], ms, frame.source, None,
                                    pixels=frame.pixels, vec=emb[0], frozen=frozen)
            yield last

    def _stream_prefetched(self, source: Any, every: int, smoothing: float, refresh_region_every: int,
                           frozen_after: int) -> Iterator[Prediction]:
        """stream() with the pixel stages of frame i+1 in a worker thread (see stream's prefetch).

        Everything that reads a frame's pixels (region, preprocess, quality gate, the frozen
        check) runs in the worker, so a source that refills one buffer in place is safe here
        too; one frame is prepared ahead (depth 1): enough to overlap, and a live feed lags
        at most one frame more than inline."""
        frames = Prefetcher(self._prepare_frames(source, every, refresh_region_every, frozen_after), depth=1)
        state: np.ndarray | None = None
        last: Prediction | None = None
        try:
            for skipped, item in frames:
                for _ in range(skipped if last is not None else 0):  # frames skipped by ``every``
                    yield last
                if item is None:
                    continue
                frame, region, batch, quality, frozen, ms = item
                labels = self._labels
                t = time.perf_counter()
                emb = self.backend.encode_image_pipelined(batch)
                t1 = time.perf_counter()
                p = self._score(emb, labels)[0]
                t2 = time.perf_counter()
                ms = dict(ms, encode=(t1 - t) * 1e3, similarity=(t2 - t1) * 1e3)
                ms["total"] = sum(ms.values())
                state = _smooth(state, p, smoothing)
                last = self._prediction(state, labels, region, ms, frame.source, None, pixels=frame.pixels,
                                        vec=emb[0], frozen=frozen, quality=quality)
                yield last
        finally:
            frames.close()

    def _prepare_frames(self, source: Any, every: int, refresh_region_every: int,
                        frozen_after: int) -> Iterator[tuple[int, tuple | None]]:
        """Worker side of the prefetched stream: (frames skipped before it, (frame, region, model
        input, quality, frozen-check snapshot, stage ms)); (n, None) carries trailing skips."""
        tracker: RegionTracker | None = None
        frozen = FrozenDetector(after=frozen_after)
        skipped = 0
        for i, frame in enumerate(iter_frames(source)):
            if tracker is None:
                tracker = RegionTracker(refresh_every=refresh_region_every, dicom_regions=frame.regions)
            if i % every:
                skipped += 1
                continue
            t0 = time.perf_counter()
            region = self._region(frame, None, tracker)
            t1 = time.perf_counter()
            batch = self._preprocess([frame], [region])
            t2 = time.perf_counter()
            quality = assess(frame.pixels, region)
            frozen.update(frame.pixels, region)
            t3 = time.perf_counter()
            yield skipped, (frame, region, batch, quality, copy.copy(frozen),
                            {"region": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, "triage": (t3 - t2) * 1e3})
            skipped = 0
        if skipped:
            yield skipped, None

    def info(self) -> dict[str, Any]:
        sig = self.bundle.signature
        return {"bundle": self.bundle.manifest.model.name, "bundle_path": str(self.bundle.source),
                "signature": {"verified": self.bundle.verified, "key_id": sig.key_id if sig else None},
                "backend": self.backend.info() | {"name": self.backend.name,
                                                  "fallback": self.backend.fallback},
                "preprocess": self.preprocess.to_dict(),
                "image_size": list(self.image_size), "labels": list(self.labels),
                "scope": self.scope, "label_support": ({f: list(v) for f, v in
                                                        self.bundle.manifest.label_support.items()}
                                                       if self.bundle.manifest.label_support else None),
                "native": ops.build_info()}
