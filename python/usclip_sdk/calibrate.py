"""Fit a bundle's calibration on a labelled split and write the calibrated bundle (torch-free).

The Classifier (region detection included, the same path as inference) embeds every frame of
the split; ``calibration.fit_calibration`` fits temperatures, OOD reference and thresholds; the
bundle is rewritten through ``bundle.write_bundle`` with the same files, the OOD reference and
the new manifest section, so every file's sha256 is recomputed and the result re-verified. A
signature covers the manifest, so a calibrated bundle is unsigned until signed again.

Data: the US-365K layout (``SPLIT.jsonl`` lines of ``{"image": name}``, ``full_data.json``
records of tags, images in ``images/`` or beside the lists) - read here with the taxonomy's
own record parser, because the SDK does not depend on the data package.
"""
from __future__ import annotations

import io
import json
import os
import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import taxonomy
from .bundle import Bundle, write_bundle
from .bundle_manifest import CalibrationSpec, manifest_to_dict
from .calibration import REFERENCE_NAME, fit_calibration
from .errors import InvalidInputError

__all__ = ["read_split", "calibrate_bundle", "embed_split", "write_calibrated"]


def read_split(root: str | os.PathLike, split: str = "valid") -> list[tuple[Path, dict[str, tuple[str, ...]]]]:
    """(image path, tags per dimension) of every frame of ``split`` that has tags."""
    root = Path(root)
    lst, full = root / f"{split}.jsonl", root / "full_data.json"
    for p in (lst, full):
        if not p.is_file():
            raise InvalidInputError(f"--data {root}: no {p.name} (expected the US-365K layout)")
    records = json.loads(full.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise InvalidInputError(f"{full}: expected a JSON list of records")
    tags = {r.get("media_name"): taxonomy.parse_record(r) for r in records if isinstance(r, Mapping)}
    images = root / "images" if (root / "images").is_dir() else root
    out = []
    for n, line in enumerate(lst.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            name = json.loads(line)["image"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InvalidInputError(f"{lst}:{n}: expected {{\"image\": name, ...}}") from None
        if name in tags:
            out.append((images / name, tags[name]))
    if not out:
        raise InvalidInputError(f"--data {root}: split {split!r} has no frame with tags in full_data.json")
    return out


def embed_split(clf: Any, paths: Sequence[Path], batch: int = 16,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Image embeddings of ``paths`` through the Classifier (region detection included)."""
    out = []
    for i in range(0, len(paths), batch):
        out.append(clf.embed_image([str(p) for p in paths[i:i + batch]]))
        if progress is not None:
            progress(min(i + batch, len(paths)), len(paths))
    return np.concatenate(out).astype(np.float32)


def calibrate_bundle(bundle: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                     split: str = "valid", backend: str = "auto", overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None,
                     normal_point: str = "youden", lesion_sensitivity: float = 0.95) -> tuple[Path, dict]:
    """Write ``out`` (a .zip when it ends in .zip) = ``bundle`` + calibration fitted on
    ``data``/``split``; returns its path and the fit's figures. ``normal_point`` and
    ``lesion_sensitivity``: the normal operating point (``calibration.fit_calibration``)."""
    from .classifier import Classifier

    frames = read_split(data, split)
    with Bundle.open(bundle, trusted_keys=()) as b:
        # fitted on the fp32 encoder, the reference every reduced-precision variant is checked
        # against, so the calibration does not depend on the CPU it was fitted on
        clf = Classifier(b, backend=backend, precision="fp32")
        emb = embed_split(clf, [p for p, _ in frames], progress=progress)
        spec, ref, figures = fit_calibration(
            emb, [t for _, t in frames], b.class_embeddings(), b.class_names, b.logit_scale,
            fitted_on={"data": Path(data).name, "split": split, "precision": clf.backend.precision},
            support=b.manifest.label_support, normal_point=normal_point,
            lesion_sensitivity=lesion_sensitivity)
        path = write_calibrated(b, spec, ref, out, overwrite=overwrite)
    return path, {"frames": len(frames), "dimensions": figures,
                  "ood_threshold": spec.ood.threshold if spec.ood else None}


def write_calibrated(b: Bundle, spec: CalibrationSpec, reference: np.ndarray | None,
                     out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``b``'s files and manifest with ``spec`` as its calibration section (and ``reference``
    as the OOD reference file), written and re-verified by ``write_bundle``."""
    m = manifest_to_dict(dataclasses.replace(b.manifest, calibration=spec))  # the one JSON form
    sections = {k: v for k, v in m.items() if k not in ("format_version", "files", "class_embeddings")}
    files: dict[str, Any] = {rel: b.file(rel) for rel in b.manifest.files
                             if rel not in (b.manifest.class_embeddings, REFERENCE_NAME)}
    if reference is not None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(reference, np.float32), allow_pickle=False)
        files[REFERENCE_NAME] = buf.getvalue()
    return write_bundle(out, sections, files, b.class_embeddings(),
                        as_zip=str(out).endswith(".zip"), overwrite=overwrite)
