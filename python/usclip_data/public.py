"""Readers for local copies of public ultrasound data sets and generic layouts.

Each reader is a sequence of ``Sample(image_path, caption, labels, target)``: ``target`` is
the data set's own class name, ``caption`` a short text made from it (for fine-tuning and
retrieval), ``labels`` the taxonomy tags the class implies (empty where it implies none).

Label mappings (our reading; each data set's own classes stay in ``target``):
- BUSI: every image -> Organ_level Breast, Body_system_level Breast and Axilla; benign and
  malignant -> Diagnosis mass (BUSI's lesions are mostly solid masses; the benign cysts are not
  separated in its classes), normal -> Diagnosis normal appearance.
- FETAL_PLANES_DB: "Maternal cervix" -> Organ_level Uterus, Body_system_level Gynaecology;
  the fetal planes (abdomen, brain, femur, thorax) and "Other" have no UHAT organ (the
  taxonomy has no obstetric system), so their labels stay empty. No diagnosis is implied.
- Folder-of-classes and caption tables: labels only where the caller maps a class
  (``labels=``) or a table row carries the nine US-365K fields.
"""
from __future__ import annotations

import csv
import fnmatch
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

from usclip_sdk import taxonomy as tx
from .sample import Sample, SampleList, empty_labels
from .us365k import iter_jsonl_objects

__all__ = ["BUSI", "FetalPlanes", "ImageFolder", "CaptionTable", "open_dataset",
           "IMAGE_EXTENSIONS", "BUSI_LABELS", "FETAL_LABELS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BUSI_LABELS: dict[str, dict[str, str]] = {
    c: {"Organ_level": "Breast", "Body_system_level": "Breast and Axilla",
        "Diagnosis": "normal appearance" if c == "normal" else "mass"}
    for c in ("benign", "malignant", "normal")}
FETAL_LABELS: dict[str, dict[str, str]] = {
    "Maternal cervix": {"Organ_level": "Uterus", "Body_system_level": "Gynaecology"}}
_IMAGE_KEYS = ("image", "image_path", "filepath", "file", "path", "filename", "media_name")
_CAPTION_KEYS = ("caption", "text", "report", "title")


def _natural(s: str) -> list:
    """Sort key that puts "benign (2)" before "benign (10)"."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _labels(record: Mapping[str, object] | None, where: str) -> dict[str, tuple[str, ...]]:
    if not record:
        return empty_labels()
    try:
        return tx.parse_record(record)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _phrase(name: str) -> str:
    return " ".join(re.split(r"[_\-\s]+", name)).strip().lower()


class ImageFolder(SampleList):
    """``root/<class>/**/<image>``: one class per sub-folder (any depth below it).

    labels: optional class -> US-365K style record ({"Diagnosis": "cyst", ...}).
    caption: template receiving the class name with _ and - read as spaces.
    exclude: file-name patterns to skip (e.g. ``"*_mask*"``).
    """

    def __init__(self, root: str | os.PathLike, labels: Mapping[str, Mapping[str, object]] | None = None,
                 caption: str = "an ultrasound image of {}.", exclude: Sequence[str] = (),
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, name: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root: {self.root} is not a directory")
        classes = sorted((d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                         key=lambda d: _natural(d.name))
        if not classes:
            raise ValueError(f"root: {self.root} has no class sub-folders")
        exts = tuple(e.lower() for e in extensions)
        labels = labels or {}
        unknown = set(labels) - {d.name for d in classes}
        if unknown:
            raise ValueError(f"labels: classes {sorted(unknown)} have no folder under {self.root}; "
                             f"found {[d.name for d in classes]}")
        samples = []
        for d in classes:
            lab = _labels(labels.get(d.name), f"labels[{d.name!r}]")
            files = [p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in exts
                     and not any(fnmatch.fnmatch(p.name, pat) for pat in exclude)]
            for p in sorted(files, key=lambda p: _natural(str(p.relative_to(d)))):
                samples.append(Sample(str(p), caption.format(_phrase(d.name)), lab, d.name))
        if not samples:
            raise ValueError(f"root: no images with extensions {list(exts)} under {self.root}")
        super().__init__(samples, name or str(self.root))


_BUSI_CAPTIONS = {"benign": "breast ultrasound showing a benign breast mass.",
                  "malignant": "breast ultrasound showing a malignant breast mass.",
                  "normal": "breast ultrasound with normal appearance, no focal lesion."}


class BUSI(SampleList):
    """Breast Ultrasound Images (BUSI): ``root/{benign,malignant,normal}/*.png``.

    Lesion masks (``*_mask.png``, ``*_mask_1.png``) are skipped. ``root`` may also be the
    folder holding ``Dataset_BUSI_with_GT``.
    """

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if not (root / "benign").is_dir() and (root / "Dataset_BUSI_with_GT").is_dir():
            root = root / "Dataset_BUSI_with_GT"
        present = {d.name.lower(): d.name for d in root.iterdir() if d.is_dir()} if root.is_dir() else {}
        missing = [c for c in BUSI_LABELS if c not in present]
        if missing:
            raise FileNotFoundError(f"root: {root} lacks BUSI class folders {missing}")
        self.root = root
        samples = []
        for c in BUSI_LABELS:
            folder = root / present[c]
            files = [p for p in folder.iterdir() if p.suffix.lower() == ".png" and "_mask" not in p.name]
            lab = tx.parse_record(BUSI_LABELS[c])
            samples += [Sample(str(p), _BUSI_CAPTIONS[c], lab, c)
                        for p in sorted(files, key=lambda p: _natural(p.name))]
        super().__init__(samples, f"BUSI:{root}")


def _fetal_caption(plane: str, brain: str) -> str:
    if plane == "Fetal brain" and brain and brain.lower() not in ("not a brain", "other"):
        return f"fetal ultrasound, {brain.lower()} plane of the fetal brain."
    if plane == "Maternal cervix":
        return "transvaginal ultrasound of the maternal cervix."
    if plane == "Other":
        return "fetal ultrasound, other plane."
    return f"fetal ultrasound, standard {plane.lower()} plane."


class FetalPlanes(SampleList):
    """FETAL_PLANES_DB: ``FETAL_PLANES_DB_data.csv`` (semicolon separated, columns
    Image_name, Plane, Train, optionally Brain_plane) with images in ``Images/<name>.png``.

    split: "train" (Train == 1), "test" (Train == 0) or None for all. target is the Plane.
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, csv_name: str | None = None):
        self.root = Path(root)
        if split not in (None, "all", "train", "test"):
            raise ValueError(f"split: expected 'train', 'test' or None, found {split!r}")
        table = self.root / (csv_name or "FETAL_PLANES_DB_data.csv")
        if not table.is_file():
            found = sorted(p.name for p in self.root.glob("*.csv")) if self.root.is_dir() else []
            raise FileNotFoundError(f"{table} not found (csv files there: {found})")
        samples, missing = [], []
        for ln, row in _csv_rows(table, delimiter=";"):
            try:
                name, plane, train = row["Image_name"], row["Plane"], row["Train"].strip()
            except KeyError as e:
                raise ValueError(f"{table}:{ln}: missing column {e.args[0]!r}") from None
            if train not in ("0", "1"):
                raise ValueError(f"{table}:{ln}: Train: expected 0 or 1, found {train!r}")
            if split in ("train", "test") and (train == "1") != (split == "train"):
                continue
            path = self.root / "Images" / (name if Path(name).suffix else f"{name}.png")
            if not path.is_file():
                missing.append(f"{table}:{ln}: {path.name}")
            samples.append(Sample(str(path), _fetal_caption(plane, row.get("Brain_plane", "")),
                                  _labels(FETAL_LABELS.get(plane), f"{table}:{ln}"), plane))
        if missing:
            raise FileNotFoundError(f"{len(missing)} images missing under {self.root / 'Images'}:\n  "
                                    + "\n  ".join(missing[:5]))
        super().__init__(samples, f"FETAL_PLANES_DB:{self.root}:{split or 'all'}")


def _csv_rows(path: Path, delimiter: str | None = None):
    """(line, row dict with stripped header names) of a CSV file; sniffs the delimiter if None."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        text = fh.read()
    if delimiter is None:
        head = text.split("\n", 1)[0]
        delimiter = max((",", ";", "\t", "|"), key=head.count)
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise ValueError(f"{path}:1: empty file, expected a header row")
    for row in reader:
        ln = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{ln}: expected {len(header)} columns ({delimiter!r} separated), "
                             f"found {len(row)}")
        yield ln, dict(zip(header, row))


def _table_rows(path: Path):
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from iter_jsonl_objects(path)
    else:
        yield from _csv_rows(path, "\t" if path.suffix.lower() == ".tsv" else None)


def _key(row: Mapping[str, object], wanted: str | None, options: Sequence[str], what: str, where: str) -> str:
    if wanted is not None:
        if wanted not in row:
            raise ValueError(f"{where}: no {what} column {wanted!r}; columns: {sorted(row)}")
        return wanted
    for k in options:
        if k in row:
            return k
    raise ValueError(f"{where}: no {what} column (tried {list(options)}); columns: {sorted(row)}")


class CaptionTable(SampleList):
    """Image-caption pairs from a CSV/TSV (delimiter sniffed) or JSONL file.

    image / caption: column names (default: the first of "image", "filepath", "file", ... and
    "caption", "text", ...). Relative image paths resolve against ``root`` (default: the
    table's folder). Columns named like the nine US-365K fields become labels (a CSV cell may
    hold several tags separated by "|"); ``target``: optional class column.
    """

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None,
                 image: str | None = None, caption: str | None = None, target: str | None = None,
                 check_files: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path: {self.path} is not a file")
        base = Path(root) if root is not None else self.path.parent
        samples, missing = [], []
        for ln, row in _table_rows(self.path):
            where = f"{self.path}:{ln}"
            ik = _key(row, image, _IMAGE_KEYS, "image", where)
            ck = _key(row, caption, _CAPTION_KEYS, "caption", where)
            img, cap = row[ik], row[ck]
            if not isinstance(img, str) or not img.strip():
                raise ValueError(f"{where}: {ik}: expected a non-empty path, found {img!r}")
            if not isinstance(cap, str):
                raise ValueError(f"{where}: {ck}: expected a string, found {type(cap).__name__}")
            rec = {f: (v.split("|") if isinstance(v, str) and "|" in v else v)
                   for f, v in row.items() if f in tx.FIELDS}
            p = Path(img.strip())
            p = p if p.is_absolute() else base / p
            if check_files and not p.is_file():
                missing.append(f"{where}: {img}")
            tgt = row.get(target) if target else None
            samples.append(Sample(str(p), cap, _labels(rec, where), None if tgt is None else str(tgt)))
        if missing:
            raise FileNotFoundError(f"{len(missing)} images not found:\n  " + "\n  ".join(missing[:5]))
        super().__init__(samples, str(self.path))


def open_dataset(path: str | os.PathLike, split: str | None = None) -> SampleList:
    """Recognise a layout and open it: US-365K, FETAL_PLANES_DB, BUSI, a caption table
    (.csv/.tsv/.jsonl file) or a folder of classes. ``split`` is passed where the layout has one."""
    from .us365k import US365K

    p = Path(path)
    if p.is_file():
        return CaptionTable(p)
    if not p.is_dir():
        raise FileNotFoundError(f"path: {p} does not exist")
    if (p / "full_data.json").is_file() or (p / "train.jsonl").is_file():
        return US365K(p, split or "all")
    if (p / "FETAL_PLANES_DB_data.csv").is_file():
        return FetalPlanes(p, split)
    subdirs = {d.name.lower() for d in p.iterdir() if d.is_dir()}
    if {"benign", "malignant", "normal"} <= subdirs or "dataset_busi_with_gt" in subdirs:
        return BUSI(p)
    return ImageFolder(p)
