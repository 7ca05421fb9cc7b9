"""The one record type every data reader yields, and image loading for it.

``Sample(image_path, caption, labels)`` (plus ``target``, the class name where a data set has
classes). ``image_path`` is a file path, or ``"<archive>.zip::<member>"`` for an image still
inside a zip archive (US-365K ships as ``images.zip``); ``read_image_bytes`` and ``load_rgb``
open both forms.
"""
from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np

from usclip_sdk import taxonomy as tx

__all__ = ["Sample", "SampleList", "ZIP_SEP", "empty_labels", "read_image_bytes", "load_rgb"]

ZIP_SEP = "::"
_zips: dict[tuple[int, str], zipfile.ZipFile] = {}
_zips_lock = threading.Lock()


def empty_labels() -> dict[str, tuple[str, ...]]:
    """Labels with no tag in any of the nine dimensions."""
    return {f: () for f in tx.FIELDS}


@dataclass(frozen=True)
class Sample:
    """One image with its caption and labels (field -> canonical values, all nine fields).

    target: the data set's own class name (BUSI "benign", a folder name, a fetal plane);
    None for caption data sets such as US-365K.
    """

    image_path: str
    caption: str
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=empty_labels)
    target: str | None = None

    def read_bytes(self) -> bytes:
        return read_image_bytes(self.image_path)

    def load_rgb(self) -> np.ndarray:
        return load_rgb(self.image_path)


def _zip_handle(archive: str) -> zipfile.ZipFile:
    # One open handle per process and archive: parsing a 364k-entry central directory per
    # image would dominate loading; the pid key keeps forked workers off a shared file offset.
    key = (os.getpid(), os.path.abspath(archive))
    with _zips_lock:
        zf = _zips.get(key)
        if zf is None:
            zf = _zips[key] = zipfile.ZipFile(archive)
        return zf


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """The encoded bytes of an image file or of a ``archive.zip::member`` entry."""
    path = os.fspath(path)
    if ZIP_SEP in path:
        archive, member = path.split(ZIP_SEP, 1)
        zf = _zip_handle(archive)
        with _zips_lock:  # ZipFile reads share one file object
            return zf.read(member)
    with open(path, "rb") as fh:
        return fh.read()


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image to H x W x 3 uint8 RGB (grey images are replicated to three channels)."""
    import cv2

    data = np.frombuffer(read_image_bytes(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # BGR, 8-bit, alpha dropped
    if img is None:
        raise ValueError(f"{os.fspath(path)}: not a decodable image")
    return np.ascontiguousarray(img[:, :, ::-1])


class SampleList(Sequence[Sample]):
    """A fixed list of samples with the conveniences every reader shares."""

    def __init__(self, samples: Sequence[Sample], name: str):
        self.samples = list(samples)
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):  # type: ignore[override]
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def classes(self) -> list[str]:
        """The distinct targets, sorted (empty for caption-only data sets)."""
        return sorted({s.target for s in self.samples if s.target is not None})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} samples)"
