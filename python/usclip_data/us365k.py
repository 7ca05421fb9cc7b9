"""The US-365K layout: reader (``US365K``) and synthetic writer (``write_dataset``).

Layout (as the release distributes it): ``images.zip`` or ``images/``; ``train.jsonl``,
``valid.jsonl``, ``test.jsonl`` with one ``{"image": <file name>, "caption": <report>}`` per
line; ``full_data.json``, a list of ``{"media_name", <nine label fields>}`` records whose
fields are a string or a list of strings (empty when untagged); an absent field (older
writers) reads as untagged too.

``US365K(root, split)`` yields ``Sample(image_path, caption, labels)``; labels come from
``taxonomy.parse_record`` (all nine fields, empty tuples where untagged). Images are found in
``root/images/``, flat in ``root/``, or still inside ``root/images.zip`` (then ``image_path``
is ``"<root>/images.zip::<member>"``, opened by ``Sample.load_rgb``). A bad sample (a line that
is not UTF-8 or not JSON, a missing image, a label outside the taxonomy, with ``check_decode`` an
image that does not decode) raises ``faults.BadSampleError`` (a ValueError) naming file and
line, or with ``on_bad_sample="skip"`` is left out and counted in ``bad_samples`` (faults.py).
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from usclip_sdk import taxonomy as tx
from .faults import BadSampleError, BadSamples
from .sample import ZIP_SEP, Sample, SampleList, empty_labels, load_pixels
from .us365k_writer import SPLITS, WriteSummary, write_dataset

__all__ = ["US365K", "Sample", "write_dataset", "WriteSummary", "SPLITS", "read_full_data",
           "read_pairs", "iter_jsonl_objects"]

_ALIASES = {"val": "valid", "validation": "valid", "dev": "valid"}


def _iter_json_array(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """(line, element) of a top-level JSON array, so errors can name the element's line."""
    dec = json.JSONDecoder()
    i, n, line = 0, len(text), 1

    def skip(j: int) -> int:
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    def fail(j: int, msg: str) -> ValueError:
        ln = text.count("\n", 0, j) + 1
        return ValueError(f"{path}:{ln}: {msg}")

    i = skip(i)
    if i >= n or text[i] != "[":
        raise fail(i, "expected a JSON list of records")
    i = skip(i + 1)
    if i < n and text[i] == "]":
        return
    last = 0
    while True:
        line += text.count("\n", last, i)
        last = i
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}:{e.colno}: {e.msg}") from None
        yield line, obj
        i = skip(end)
        if i < n and text[i] == ",":
            i = skip(i + 1)
        elif i < n and text[i] == "]":
            if skip(i + 1) != n:
                raise fail(skip(i + 1), "unexpected text after the list")
            return
        else:
            raise fail(i, "expected ',' or ']' between records")


def read_full_data(path: str | os.PathLike, strict: bool = True,
                   rejected: dict[str, str] | None = None) -> dict[str, dict[str, tuple[str, ...]]]:
    """media_name -> labels from a ``full_data.json`` (first record wins on duplicates).

    strict: unknown label values raise (naming file, line and field); otherwise they are dropped.
    rejected: when given (and strict), a record with values outside the taxonomy is put there
    (media_name -> "file:line: why") instead of raising, so its samples can be skipped.
    A file that is not UTF-8 always raises, naming the line of the first bad byte.
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 (byte {data[e.start]:#04x} at offset {e.start}); "
                         "the label file itself is damaged, so no sample can be trusted to it") from None
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    # Records repeat the same few tag combinations: parse each combination once (5x faster
    # on a 100k-record file) and share the result.
    parsed: dict[tuple, dict[str, tuple[str, ...]]] = {}
    for line, rec in _iter_json_array(text, path):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}:{line}: expected a record object, found {type(rec).__name__}")
        name = rec.get("media_name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}:{line}: record without a 'media_name' string")
        raw = tuple(rec.get(f) for f in tx.FIELDS)
        key = tuple(tuple(v) if isinstance(v, list) else v for v in raw)
        try:
            labels = parsed.get(key) if _hashable(key) else None
            if labels is None:
                labels = tx.parse_record(rec, strict=strict)
                if _hashable(key):
                    parsed[key] = labels
        except ValueError as e:
            if rejected is None:
                raise BadSampleError("label-outside-taxonomy", f"{path}:{line}", f"{name}: {e}") from None
            rejected.setdefault(name, f"{path}:{line}: {name}: {e}")
            continue
        out.setdefault(name, labels)
    return out


def _hashable(key: tuple) -> bool:
    try:
        hash(key)
    except TypeError:  # e.g. a dict where a tag should be: parse_record reports it
        return False
    return True


def iter_jsonl_objects(path: str | os.PathLike, bad: BadSamples | None = None):
    """(line number, object) of a JSON-lines file; blank lines are skipped; a line that is not
    UTF-8 or not a JSON object goes to ``bad`` (default: raise BadSampleError naming file and
    line). Lines are decoded one by one, so a bad byte names its own line."""
    path = os.fspath(path)
    bad = bad or BadSamples()
    with open(path, "rb") as fh:
        for ln, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad.report("non-utf8", f"{path}:{ln}", f"not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                bad.report("bad-json", f"{path}:{ln}", f"not JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(obj, dict):
                bad.report("bad-json", f"{path}:{ln}", f"expected an object, found {type(obj).__name__}")
                continue
            yield ln, obj


def read_pairs(path: str | os.PathLike, bad: BadSamples | None = None) -> list[tuple[int, str, str]]:
    """(line, image, caption) of a split file; blank lines are skipped, bad ones go to ``bad``."""
    path = os.fspath(path)
    bad = bad or BadSamples()
    out = []
    for ln, obj in iter_jsonl_objects(path, bad):
        img, cap = obj.get("image"), obj.get("caption")
        if not isinstance(img, str) or not img:
            bad.report("bad-record", f"{path}:{ln}", f"expected a non-empty 'image' string, found {img!r}")
        elif not isinstance(cap, str):
            bad.report("bad-record", f"{path}:{ln}", f"expected a 'caption' string, found {type(cap).__name__}")
        else:
            out.append((ln, img, cap))
    return out


class _ImageIndex:
    """Where each image lives: root/images/, root/ itself, or inside root/images.zip."""

    def __init__(self, root: Path):
        self.root = root
        self.base, self.images = str(root), os.path.join(str(root), "images")
        self.archive = os.path.join(str(root), "images.zip")
        self.dir_names = set(os.listdir(root / "images")) if (root / "images").is_dir() else set()
        self.flat_names = {p.name for p in root.iterdir() if p.is_file()}
        self.zip_members: dict[str, str] = {}
        archive = root / "images.zip"
        if archive.is_file():
            with zipfile.ZipFile(archive) as zf:
                for m in zf.namelist():
                    if not m.endswith("/"):
                        self.zip_members.setdefault(m, m)
                        self.zip_members.setdefault(m.rsplit("/", 1)[-1], m)

    def locate(self, name: str) -> str | None:
        # string joins, not Path objects: this runs once per image (364k times on US-365K)
        in_dir, flat = os.path.join(self.images, name), os.path.join(self.base, name)
        if name in self.dir_names or ("/" in name and os.path.isfile(in_dir)):
            return in_dir
        if name in self.flat_names or ("/" in name and os.path.isfile(flat)):
            return flat
        member = self.zip_members.get(name)
        if member is not None:
            return f"{self.archive}{ZIP_SEP}{member}"
        return None


class US365K(SampleList):
    """One split of a US-365K layout: a sequence of ``Sample``.

    split: "train", "valid" ("val" accepted) or "test", or "all" for the three in order.
    strict_labels: unknown label values in full_data.json raise instead of being dropped.
    check_files: every listed image must exist (MissingImageError, a FileNotFoundError, lists
    the missing ones).
    on_bad_sample: "error" (default: the first bad sample raises BadSampleError naming file and
    line) or "skip" (left out, counted in ``bad_samples``; see faults.py), or a BadSamples.
    check_decode: decode every image once now, so an undecodable one is reported here (naming
    its split line) and not in the middle of training.
    Images without a full_data.json record get empty labels (all nine fields untagged).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *,
                 strict_labels: bool = True, check_files: bool = True,
                 on_bad_sample: str | BadSamples = "error", check_decode: bool = False):
        bad = on_bad_sample if isinstance(on_bad_sample, BadSamples) else BadSamples(on_bad_sample)
        self.bad_samples = bad
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root: {self.root} is not a directory")
        split = _ALIASES.get(split, split)
        if split not in SPLITS + ("all",):
            raise ValueError(f"split: expected one of {list(SPLITS) + ['all']}, found {split!r}")
        self.split = split
        names = SPLITS if split == "all" else (split,)
        missing_files = [n for n in names if not (self.root / f"{n}.jsonl").is_file()]
        if missing_files:
            raise FileNotFoundError(f"{self.root}: no {', '.join(m + '.jsonl' for m in missing_files)}")
        full = self.root / "full_data.json"
        rejected: dict[str, str] | None = {} if bad.skipping else None
        self.labels_by_name: Mapping[str, dict[str, tuple[str, ...]]] = (
            read_full_data(full, strict=strict_labels, rejected=rejected) if full.is_file() else {})
        index = _ImageIndex(self.root)
        samples, missing = [], []
        fallback = os.path.join(str(self.root), "images", "")
        for n in names:
            jsonl = self.root / f"{n}.jsonl"
            for ln, img, cap in read_pairs(jsonl, bad):
                why = rejected and (rejected.get(img) or rejected.get(img.rsplit("/", 1)[-1]))
                if why:  # its labels are not in the taxonomy: never trained as untagged
                    bad.report("label-outside-taxonomy", f"{jsonl}:{ln}", f"{img}: record {why}")
                    continue
                path = index.locate(img)
                if path is None:
                    if bad.skipping and check_files:
                        bad.report("missing-image", f"{jsonl}:{ln}", f"{img}: not found under {self.root}")
                        continue
                    missing.append(f"{jsonl}:{ln}: {img}")
                    path = fallback + img
                elif check_decode and not _decodes(path, f"{jsonl}:{ln}", img, bad):
                    continue
                # the release's split files and records may differ by a folder prefix
                labels = (self.labels_by_name.get(img) or self.labels_by_name.get(img.rsplit("/", 1)[-1])
                          or empty_labels())
                samples.append(Sample(path, cap, labels))
        if missing and check_files:
            shown = "\n  ".join(missing[:5])
            bad.report("missing-image", missing[0].rsplit(": ", 1)[0],
                       f"{len(missing)} listed images not found under {self.root} "
                       f"(images/, flat, or images.zip):\n  {shown}")
        super().__init__(samples, f"{self.root}:{split}")


def _decodes(path: str, where: str, img: str, bad: BadSamples) -> bool:
    try:
        load_pixels(path)
        return True
    except Exception as e:  # noqa: BLE001 - whatever the decoder raises, this image is unusable
        bad.report("undecodable-image", where, f"{img}: cannot be decoded ({type(e).__name__}: {e})")
        return False
