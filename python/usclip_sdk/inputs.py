"""Frame sources: numpy arrays, image files, videos, cameras and DICOM (single and multi-frame).

Everything becomes ``Frame``: uint8 pixels (H x W gray or H x W x 3 RGB), plus the DICOM
ultrasound regions when the source has them. Patient-identifying DICOM fields are never read
into a Frame, logged, or put in an error message: only technical attributes are copied.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ._deps import cv2  # names what to install when OpenCV is missing
from .errors import InvalidInputError

__all__ = ["Frame", "to_frame", "decode_image", "load_image", "read_dicom", "iter_frames", "is_video_path",
           "MAX_PIXELS", "VIDEO_SUFFIXES", "DICOM_SUFFIXES"]

# Larger frames are refused before any allocation (a 20000 x 20000 RGB frame is 1.2 GB).
MAX_PIXELS = 8192 * 8192
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg", ".webm"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
# DICOM attributes that are safe to keep (technical, never identifying).
_SAFE_DICOM = ("Modality", "Rows", "Columns", "NumberOfFrames", "PhotometricInterpretation",
               "FrameTime", "CineRate", "Manufacturer", "ManufacturerModelName", "SOPClassUID")


@dataclass
class Frame:
    """One frame ready for the classifier.

    pixels: uint8, H x W (gray) or H x W x 3 (RGB; BGR sources are converted at load).
    regions: DICOM Sequence of Ultrasound Regions entries (dicts of the location fields).
    source: a short non-identifying description (file name and frame index, never patient data).
    """

    pixels: np.ndarray
    regions: list[dict[str, Any]] = field(default_factory=list)
    source: str = "array"


def _check_array(a: Any, name: str = "frame") -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise InvalidInputError(f"{name}: expected a numpy array, a path or a DICOM dataset, "
                                f"found {type(a).__name__}")
    if a.dtype not in (np.uint8, np.uint16):
        raise InvalidInputError(
            f"{name}: expected dtype uint8 (or uint16), found {a.dtype}; convert float images "
            "with (x * 255).clip(0, 255).astype(np.uint8) after checking they are finite")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InvalidInputError(f"{name}: expected H x W, H x W x 3 or H x W x 4, found shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InvalidInputError(f"{name}: empty frame of shape {a.shape}")
    # Shape and size first: an oversized uint16 frame must be refused before it is converted.
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise InvalidInputError(f"{name}: {a.shape[1]} x {a.shape[0]} pixels exceeds the limit of "
                                f"{MAX_PIXELS} pixels")
    if a.dtype == np.uint16:
        # 16-bit scanner output: rescale the used range, as a viewer would.
        hi = int(a.max())
        a = (a.astype(np.float32) * (255.0 / max(hi, 1))).round().astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    return a


def decode_image(data: bytes | np.ndarray, name: str = "image") -> np.ndarray:
    """Encoded image bytes -> uint8 gray (H x W) or RGB (H x W x 3): the one decoder.

    Training, evaluation and the runtime all decode with this function, so a frame means the
    same pixels everywhere: 16-bit images are stretched by their maximum (as a viewer would;
    cv2's IMREAD_COLOR would shift them to 8 bits instead), alpha is dropped, BGR becomes RGB.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise InvalidInputError(f"cannot decode image file {name}: not an image or corrupt")
    if img.dtype == np.uint16:
        img = _check_array(img, name)
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        img = cv2.cvtColor(img, code)
    return _check_array(img, name)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (or gray); a missing or corrupt file raises."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"image file not found: {p}")
    return decode_image(np.fromfile(str(p), dtype=np.uint8), p.name)


def _dicom_module():
    try:
        import pydicom  # noqa: F401
    except ImportError as e:
        raise InvalidInputError("DICOM input needs the dicom extra: pip install 'usclip-sdk[dicom]'") from e
    return pydicom


def _dicom_regions(ds: Any) -> list[dict[str, Any]]:
    out = []
    for item in getattr(ds, "SequenceOfUltrasoundRegions", []) or []:
        entry = {}
        for key in ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1",
                    "RegionLocationMaxY1", "RegionSpatialFormat", "RegionDataType",
                    "PhysicalDeltaX", "PhysicalDeltaY"):
            if key in item:
                entry[key] = item.get(key)
        out.append(entry)
    return out


def _dicom_pixels(ds: Any, label: str) -> np.ndarray:
    """All frames as N x H x W[x3] uint8 RGB/gray, whatever the photometric interpretation."""
    try:
        arr = ds.pixel_array
    except Exception as e:  # missing decoder, truncated data: say which, never patient data
        raise InvalidInputError(f"cannot decode DICOM pixel data of {label}: {type(e).__name__}: "
                                f"{_scrub(str(e))}") from None
    from pydicom.pixels import apply_color_lut  # pydicom >= 3

    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    # YBR_* needs nothing here: pydicom's pixel_array returns RGB for them by default.
    if pi == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.dtype != np.uint8:
        hi = float(arr.max()) if arr.size else 0.0
        arr = (arr.astype(np.float32) * (255.0 / max(hi, 1.0))).round().clip(0, 255).astype(np.uint8)
    if pi == "MONOCHROME1":
        arr = 255 - arr
    if frames == 1:
        arr = arr[None]
    return np.ascontiguousarray(arr)


def _scrub(msg: str) -> str:
    # Decoder messages can quote file names; keep them short and free of dataset values.
    return msg.splitlines()[0][:200] if msg else ""


def read_dicom(source: Any) -> list[Frame]:
    """Frames of a DICOM file path or pydicom Dataset (multi-frame cines give several)."""
    pydicom = _dicom_module()
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        label = p.name
        if not p.is_file():
            raise InvalidInputError(f"DICOM file not found: {label}")
        try:
            ds = pydicom.dcmread(str(p))
        except Exception as e:
            raise InvalidInputError(f"cannot read DICOM file {label}: {type(e).__name__}") from None
    else:
        ds, label = source, "dataset"
    if "PixelData" not in ds:
        raise InvalidInputError(f"DICOM {label} has no pixel data")
    pixels = _dicom_pixels(ds, label)
    regions = _dicom_regions(ds)
    return [Frame(_check_array(f, f"{label}[{i}]"), regions, f"{label}[{i}]")
            for i, f in enumerate(pixels)]


def is_video_path(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_SUFFIXES


def _is_dicom_path(p: Path) -> bool:
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def to_frame(source: Any) -> Frame:
    """One frame from a numpy array, an image/DICOM path, a pydicom Dataset or a Frame."""
    if isinstance(source, Frame):
        return source
    if isinstance(source, np.ndarray):
        return Frame(_check_array(source))
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_file() and _is_dicom_path(p):
            frames = read_dicom(p)
            if len(frames) != 1:
                raise InvalidInputError(f"{p.name} holds {len(frames)} frames; use stream() or "
                                        "classify_batch for multi-frame DICOM")
            return frames[0]
        if is_video_path(p):
            raise InvalidInputError(f"{p.name} is a video; use stream() for videos")
        return Frame(load_image(p), source=p.name)
    if hasattr(source, "PixelData") or type(source).__name__ in ("Dataset", "FileDataset"):
        frames = read_dicom(source)
        if len(frames) != 1:
            raise InvalidInputError(f"the dataset holds {len(frames)} frames; use stream()")
        return frames[0]
    raise InvalidInputError(f"frame: expected a numpy array, an image/DICOM path or a pydicom "
                            f"Dataset, found {type(source).__name__}")


def _iter_video(cap: Any, label: str) -> Iterator[Frame]:
    i = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break  # end of stream, or a truncated file: stop cleanly after the last good frame
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), source=f"{label}[{i}]")
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise InvalidInputError(f"no frame could be decoded from {label}")


def iter_frames(source: Any) -> Iterator[Frame]:
    """Frames of a video file, a DICOM (cine) file, a camera index, an image, or an iterable."""
    if isinstance(source, int) and not isinstance(source, bool):
        if source < 0:  # OpenCV 5 segfaults on isOpened() of a negative camera index
            raise InvalidInputError(f"camera index: expected >= 0, found {source}")
        # OpenCV logs "[ WARN:0@...] can't open camera by index" itself; our error says it once
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            cap = cv2.VideoCapture(source)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not cap.isOpened():
            raise InvalidInputError(f"cannot open camera {source}")
        return _iter_video(cap, f"camera{source}")
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise InvalidInputError(f"file not found: {p}")
        if _is_dicom_path(p):
            return iter(read_dicom(p))
        if is_video_path(p):
            cap = cv2.VideoCapture(str(p))
            if not cap.isOpened():
                raise InvalidInputError(f"cannot open video {p.name}: unsupported or corrupt")
            return _iter_video(cap, p.name)
        return iter([to_frame(p)])
    if isinstance(source, np.ndarray):
        if source.ndim == 4 or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            return (Frame(_check_array(f), source=f"array[{i}]") for i, f in enumerate(source))
        return iter([to_frame(source)])
    if hasattr(source, "PixelData"):
        return iter(read_dicom(source))
    try:
        it = iter(source)
    except TypeError:
        raise InvalidInputError(f"stream source: expected a video/DICOM path, a camera index or "
                                f"an iterable of frames, found {type(source).__name__}") from None
    return (to_frame(f) for f in it)
