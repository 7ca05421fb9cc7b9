"""The one record type every data reader yields, and image loading for it.

``Sample(image_path, caption, labels)`` (plus ``target``, the class name where a data set has
classes). ``image_path`` is a file path, or ``"<archive>.zip::<member>"`` for an image still
inside a zip archive (US-365K ships as ``images.zip``); ``read_image_bytes`` and ``load_rgb``
open both forms.
"""
from __future__ import annotations

import os
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from usclip_sdk import taxonomy as tx

__all__ = ["Sample", "SampleList", "ZIP_SEP", "empty_labels", "case_of", "read_image_bytes", "load_pixels",
           "load_rgb", "mask_path", "load_stored_mask"]

ZIP_SEP = "::"
_VIEW_NAME = re.compile(r"(.+)_v\d+\.[^.]+$")
_zips: dict[tuple[int, str], zipfile.ZipFile] = {}
_zips_lock = threading.Lock()


def empty_labels() -> dict[str, tuple[str, ...]]:
    """Labels with no tag in any of the nine dimensions."""
    return {f: () for f in tx.FIELDS}


def case_of(image_path: str | os.PathLike) -> str:
    """The case an image belongs to: views of one case are named ``<case>_v<k>.<ext>`` (the
    synthetic writer's ``caseNNNNNN_vK.png``); any other image is its own case (its file name)."""
    name = Path(str(image_path).split(ZIP_SEP)[-1]).name
    m = _VIEW_NAME.match(name)
    return m.group(1) if m else name


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


def load_pixels(path: str | os.PathLike) -> np.ndarray:
    """Decode an image (file or ``archive.zip::member``) exactly as the runtime does: uint8 gray
    H x W or RGB H x W x 3, 16-bit stretched by its maximum (``usclip_sdk.inputs.decode_image``)."""
    from usclip_sdk.inputs import decode_image

    return decode_image(read_image_bytes(path), os.fspath(path))


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """``load_pixels`` as H x W x 3 uint8 RGB (grey images are replicated to three channels)."""
    img = load_pixels(path)
    return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img)


def mask_path(image_path: str | os.PathLike, mask_dir: str | os.PathLike | None = None) -> Path | None:
    """Where the stored imaging-region mask of an image would be, or None if it has no place.

    ``mask_dir/<file name>`` when a folder is given; else the US-365K layout's sibling:
    ``<root>/masks/<name>`` for ``<root>/images/<name>`` and for a member ``images/<name>`` of
    ``<root>/images.zip`` (the synthetic writer stores the true region of every frame there).
    """
    p = os.fspath(image_path)
    if ZIP_SEP in p:
        archive, member = p.split(ZIP_SEP, 1)
        name, root = Path(member).name, Path(archive).parent
    else:
        name = Path(p).name
        root = Path(p).parent.parent if Path(p).parent.name == "images" else None
    if mask_dir is not None:
        return Path(mask_dir) / name
    return root / "masks" / name if root is not None else None


def load_stored_mask(image_path: str | os.PathLike, shape: tuple[int, int],
                     mask_dir: str | os.PathLike | None = None) -> np.ndarray | None:
    """The stored region mask of an image (uint8, 1 inside), or None when there is none.

    A mask file that exists but cannot be read, has another size than the frame, or is empty
    is corrupt data: ValueError naming the file, never a silent switch to another region.
    """
    import cv2

    mp = mask_path(image_path, mask_dir)
    if mp is None or not mp.is_file():
        return None
    m = cv2.imread(str(mp), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ValueError(f"{mp}: stored region mask is not a decodable image")
    if m.shape != tuple(shape):
        raise ValueError(f"{mp}: stored region mask is {m.shape[1]}x{m.shape[0]}, its image "
                         f"{shape[1]}x{shape[0]}")
    if not m.any():
        raise ValueError(f"{mp}: stored region mask is empty (no imaging region)")
    return (m > 0).astype(np.uint8)


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
