"""Hostile input to Classifier.classify and Classifier.stream.

Every hostile input gets either a typed error (InvalidInputError, also a ValueError) or the
documented result below; afterwards the process is alive and the next valid frame gives a
prediction identical (every field but timings) to the one it gave before.

Documented results (not errors):
- a 1 x 1 (or any < 16 px) frame is classified on the full frame (region kind "full");
- uint16 frames are rescaled to their used range (as a viewer would);
- a truncated video yields the frames decoded before the cut, identical to the full video's;
- DICOM ultrasound regions that do not fit the frame are ignored and the region is detected.
"""
from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

pytest.importorskip("onnx")
pydicom = pytest.importorskip("pydicom")
cv2 = pytest.importorskip("cv2")

from sdk_bundle import make_tiny_bundle  # noqa: E402
from test_classifier import screen  # noqa: E402

from usclip_sdk.classifier import Classifier  # noqa: E402
from usclip_sdk.errors import InvalidInputError  # noqa: E402
from usclip_sdk.inputs import MAX_PIXELS, to_frame  # noqa: E402
from usclip_sdk.region import detect_region  # noqa: E402


def _testdata(name: str) -> str:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)  # never the network
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return str(path)


def _same(p) -> dict:
    d = p.to_dict()
    d.pop("timings_ms", None)
    return d


@pytest.fixture(scope="module")
def clf(tmp_path_factory) -> Classifier:
    path = make_tiny_bundle(tmp_path_factory.mktemp("hostile") / "tiny")
    return Classifier.from_bundle(path, backend="onnxruntime", device="cpu")


@pytest.fixture(scope="module")
def good(clf):
    frame = screen(11)
    return frame, _same(clf.classify(frame))


def _recovers(clf, good) -> None:
    frame, want = good
    assert _same(clf.classify(frame)) == want


def _huge(shape, dtype=np.uint8) -> np.ndarray:
    """A frame that claims ``shape`` but owns a few bytes (zero strides): refusing it must not
    touch, copy or convert its pixels."""
    buf = np.zeros(8, dtype)
    return as_strided(buf, shape, (0,) * len(shape), writeable=False)


# ------------------------------------------------------------------------ arrays
BAD_ARRAYS = {
    "empty": np.zeros((0, 0, 3), np.uint8),
    "empty rows": np.zeros((0, 40), np.uint8),
    "empty cols": np.zeros((40, 0, 3), np.uint8),
    "float32": np.full((64, 80, 3), 0.5, np.float32),
    "float64 nan": np.full((64, 80), np.nan),
    "float32 inf": np.where(np.eye(64, 80, dtype=bool), np.inf, 0.5).astype(np.float32),
    "float16": np.zeros((64, 80), np.float16),
    "int32": np.zeros((64, 80, 3), np.int32),
    "int8": np.zeros((64, 80), np.int8),
    "bool": np.ones((64, 80), bool),
    "complex": np.zeros((64, 80), np.complex64),
    "object": np.full((8, 8), None, object),
    "1-D": np.zeros(64, np.uint8),
    "0-D": np.zeros((), np.uint8),
    "4-D": np.zeros((2, 64, 80, 3), np.uint8),
    "5-D": np.zeros((2, 3, 64, 80, 3), np.uint8),
    "2 channels": np.zeros((64, 80, 2), np.uint8),
    "5 channels": np.zeros((64, 80, 5), np.uint8),
}


@pytest.mark.parametrize("name", list(BAD_ARRAYS))
def test_bad_arrays_raise_typed_errors(clf, good, name):
    with pytest.raises(InvalidInputError):
        clf.classify(BAD_ARRAYS[name])
    _recovers(clf, good)


@pytest.mark.parametrize("shape,dtype", [((20000, 20000), np.uint8), ((20000, 20000, 3), np.uint8),
                                         ((20000, 20000, 4), np.uint8), ((20000, 20000), np.uint16),
                                         ((1, 8192 * 8192 + 1), np.uint8)])
def test_huge_frames_refused_without_allocating(clf, good, shape, dtype):
    frame = _huge(shape, dtype)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(InvalidInputError, match="exceeds the limit"):
            clf.classify(frame)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20 and seconds < 1.0, (peak, seconds)
    _recovers(clf, good)


def test_pixel_limit_is_inclusive(clf, good, monkeypatch):
    """MAX_PIXELS itself is allowed, one more row is not (checked with a small limit: the real
    one, 8192 x 8192, takes seconds to classify)."""
    from usclip_sdk import inputs

    monkeypatch.setattr(inputs, "MAX_PIXELS", 100 * 120)
    frame = np.random.default_rng(2).integers(0, 256, (101, 120, 3), dtype=np.uint8)
    assert np.isfinite(clf.classify(frame[:100]).score)
    with pytest.raises(InvalidInputError, match="exceeds the limit of 12000 pixels"):
        clf.classify(frame)
    monkeypatch.undo()
    assert inputs.MAX_PIXELS == MAX_PIXELS == 8192 * 8192
    _recovers(clf, good)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (1, 1, 4), (2, 3), (1, 500), (500, 1, 3)])
def test_tiny_and_degenerate_frames_use_the_full_frame(clf, good, shape):
    frame = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    p = clf.classify(frame)
    assert p.region["kind"] == "full" and 0.0 < p.score <= 1.0
    assert np.isclose(sum(s for _, s in p.topk), 1.0, atol=1e-4)
    _recovers(clf, good)


def test_uint16_frames_are_rescaled(clf, good):
    f8 = screen(3)
    f16 = f8.astype(np.uint16) * 257  # the same picture on the 16-bit scale
    assert _same(clf.classify(f16)) == _same(clf.classify(f8))
    _recovers(clf, good)


@pytest.mark.parametrize("view", ["flip_rows", "flip_cols", "bgr_view", "step", "fortran",
                                  "readonly", "gray_channel"])
def test_strided_views_equal_their_contiguous_copy(clf, view):
    base = screen(5, 240, 320)
    f = {"flip_rows": base[::-1], "flip_cols": base[:, ::-1], "bgr_view": base[..., ::-1],
         "step": np.repeat(base, 2, axis=1)[:, ::2], "fortran": np.asfortranarray(base),
         "readonly": base.copy(), "gray_channel": base[..., 1]}[view]
    if view == "readonly":
        f.setflags(write=False)
    assert _same(clf.classify(f)) == _same(clf.classify(np.ascontiguousarray(f)))


@pytest.mark.parametrize("obj", [None, 42, 3.5, "no such file.png", ["a", "b"], object()])
def test_non_frames_raise_typed_errors(clf, good, obj):
    with pytest.raises(InvalidInputError):
        clf.classify(obj)
    _recovers(clf, good)


# ------------------------------------------------------------------------ image files
def _png(frame) -> bytes:
    return cv2.imencode(".png", frame)[1].tobytes()


def _jpg(frame) -> bytes:
    return cv2.imencode(".jpg", frame)[1].tobytes()


def _corrupt(data: bytes, at: float) -> bytes:
    b = bytearray(data)
    i = int(len(b) * at)
    b[i:i + 16] = bytes(16)
    return bytes(b)


@pytest.mark.parametrize("ext,make", [(".png", _png), (".jpg", _jpg)])
def test_truncated_and_corrupt_images(clf, good, tmp_path, ext, make):
    data = make(screen(4))
    ok = tmp_path / f"ok{ext}"
    ok.write_bytes(data)
    clf.classify(ok)  # the intact file is fine
    cases = {"half": data[: len(data) // 2], "header only": data[:40], "eight bytes": data[:8],
             "empty": b"", "zeros in the middle": _corrupt(data, 0.5),
             "zeros in the header": _corrupt(data, 0.0), "garbage": bytes(range(256)) * 8,
             "text": b"not an image at all"}
    for name, blob in cases.items():
        p = tmp_path / f"{name.replace(' ', '_')}{ext}"
        p.write_bytes(blob)
        try:
            pred = clf.classify(p)
        except InvalidInputError as e:
            assert p.name in str(e) or "decode" in str(e)
        else:  # a decoder may recover a damaged body: then it is a full, valid picture
            assert name == "zeros in the middle" and 0.0 < pred.score <= 1.0, name
        _recovers(clf, good)


def test_directory_and_wrong_extension(clf, good, tmp_path):
    with pytest.raises(InvalidInputError):
        clf.classify(tmp_path)
    p = tmp_path / "frame.png"
    p.write_bytes(_jpg(screen(4)))  # a JPEG named .png is decoded by content
    assert _same(clf.classify(p))["label"]
    _recovers(clf, good)


# ------------------------------------------------------------------------ video
def _video(path: Path, n: int = 20) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (240, 180))
    if not vw.isOpened():
        pytest.skip("OpenCV cannot write MJPG video here")
    for i in range(n):
        vw.write(cv2.cvtColor(screen(i % 5, 180, 240), cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def test_video_that_ends_mid_stream(clf, good, tmp_path):
    full = _video(tmp_path / "clip.mkv")
    want = [_same(p) for p in clf.stream(full, smoothing=0.0)]
    assert len(want) == 20
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 3 // 5])
    got = [_same(p) for p in clf.stream(cut, smoothing=0.0)]
    assert 3 <= len(got) < 20
    for g, w in zip(got, want):
        g.pop("source"), w.pop("source")
        assert g == w  # the decoded prefix is classified exactly as in the full video
    _recovers(clf, good)


@pytest.mark.parametrize("blob", ["header", "empty", "garbage"])
def test_unreadable_videos_raise_typed_errors(clf, good, tmp_path, blob):
    data = _video(tmp_path / "v.mkv").read_bytes()
    p = tmp_path / "bad.mkv"
    p.write_bytes({"header": data[:200], "empty": b"", "garbage": bytes(range(256)) * 64}[blob])
    with pytest.raises(InvalidInputError):
        list(clf.stream(p))
    with pytest.raises(InvalidInputError, match="stream"):
        clf.classify(tmp_path / "v.mkv")  # a video is not one frame
    _recovers(clf, good)


# ------------------------------------------------------------------------ DICOM
@pytest.mark.parametrize("name", ["examples_palette.dcm", "examples_ybr_color.dcm",
                                  "examples_rgb_color.dcm"])
def test_truncated_dicom(clf, good, tmp_path, name):
    data = Path(_testdata(name)).read_bytes()
    for frac in (0.99, 0.5, 0.1, 0.0):
        p = tmp_path / f"cut{int(frac * 100)}.dcm"
        p.write_bytes(data[: max(int(len(data) * frac), 0)])
        with pytest.raises(InvalidInputError) as e:
            list(clf.stream(p))
        assert "Patient" not in str(e.value)
        with pytest.raises(InvalidInputError):
            clf.classify(p)
        _recovers(clf, good)


def test_dicom_with_lying_header_is_refused_cheaply(clf, good):
    ds = pydicom.dcmread(_testdata("examples_palette.dcm"))
    ds.Rows, ds.Columns = 20000, 20000
    t0 = time.perf_counter()
    with pytest.raises(InvalidInputError, match="pixel data"):
        clf.classify(ds)
    assert time.perf_counter() - t0 < 2.0
    ds = pydicom.dcmread(_testdata("examples_palette.dcm"))
    ds.NumberOfFrames = 1000
    with pytest.raises(InvalidInputError):
        clf.classify(ds)
    _recovers(clf, good)


def _palette_with_regions(entries: list[dict] | None):
    """pydicom's real ultrasound file (800 x 350, a fan near the top) with our region entries
    (None: its own, which describe a taller frame than the one stored)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(_testdata("examples_palette.dcm"))
    if entries is None:
        return ds
    items = []
    for e in entries:
        item = Dataset()
        for k, v in e.items():
            setattr(item, k, v)
        items.append(item)
    ds.SequenceOfUltrasoundRegions = Sequence(items)
    return ds


BOGUS_REGIONS = {
    "outside the frame": [dict(RegionLocationMinX0=100, RegionLocationMinY0=50,
                               RegionLocationMaxX1=5000, RegionLocationMaxY1=4000)],
    "swapped corners": [dict(RegionLocationMinX0=700, RegionLocationMinY0=300,
                             RegionLocationMaxX1=100, RegionLocationMaxY1=60)],
    "negative": [dict(RegionLocationMinX0=-50, RegionLocationMinY0=-5,
                      RegionLocationMaxX1=400, RegionLocationMaxY1=300)],
    "tiny": [dict(RegionLocationMinX0=300, RegionLocationMinY0=200,
                  RegionLocationMaxX1=301, RegionLocationMaxY1=201)],
    "background only": [dict(RegionLocationMinX0=100, RegionLocationMinY0=200,
                             RegionLocationMaxX1=420, RegionLocationMaxY1=345)],
    "as shipped (stale: 518 rows in a 350-row frame)": None,
    "missing fields": [dict(RegionLocationMinX0=10), dict()],
    "text values": [dict(RegionLocationMinX0="left", RegionLocationMinY0="top",
                         RegionLocationMaxX1="right", RegionLocationMaxY1="bottom")],
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on out-of-range UL values
@pytest.mark.parametrize("name", list(BOGUS_REGIONS))
def test_bogus_dicom_regions_are_rejected_and_detection_used(clf, good, name):
    ds = _palette_with_regions(BOGUS_REGIONS[name])
    pixels = to_frame(ds).pixels
    want = detect_region(pixels)
    p = clf.classify(ds)
    assert p.region["kind"] != "dicom" and tuple(p.region["bbox"]) == tuple(want.bbox)
    assert _same(p) | {"source": ""} == _same(clf.classify(pixels)) | {"source": ""}
    streamed = list(clf.stream(ds, smoothing=0.0))
    assert len(streamed) == 1 and streamed[0].region["kind"] != "dicom"
    _recovers(clf, good)


def test_valid_dicom_region_is_used(clf):
    """The control for the test above: a fitting region is taken from the DICOM header."""
    ds = _palette_with_regions([dict(RegionLocationMinX0=300, RegionLocationMinY0=60,
                                     RegionLocationMaxX1=620, RegionLocationMaxY1=200)])
    p = clf.classify(ds)
    assert p.region["kind"] == "dicom" and tuple(p.region["bbox"]) == (300, 60, 621, 201)
    assert [q.region["kind"] for q in clf.stream(ds)] == ["dicom"]


# ------------------------------------------------------------------------ streams
def test_stream_with_a_bad_frame_in_the_middle(clf, good):
    frames = [screen(1), screen(2), np.full((64, 80), np.nan), screen(3)]
    it = clf.stream(frames, smoothing=0.0)
    first = [_same(next(it)), _same(next(it))]
    with pytest.raises(InvalidInputError):
        next(it)
    # A new stream carries no state from the broken one.
    again = [_same(p) for p in clf.stream([screen(1), screen(2)], smoothing=0.0)]
    assert again == first
    _recovers(clf, good)


def test_stream_source_that_fails_mid_stream(clf, good):
    """A camera that disconnects: the source's own exception reaches the caller unchanged."""
    def camera():
        yield screen(1)
        yield screen(2)
        raise OSError("device disconnected")

    got = []
    with pytest.raises(OSError, match="disconnected"):
        for p in clf.stream(camera()):
            got.append(p)
    assert len(got) == 2
    _recovers(clf, good)


@pytest.mark.parametrize("source", [None, 3.5, object(), "missing.mp4", -7, -1,
                                    np.zeros((3, 0, 0, 3), np.uint8)])
def test_stream_rejects_bad_sources(clf, good, source):
    with pytest.raises(InvalidInputError):
        list(clf.stream(source))
    _recovers(clf, good)


def test_stream_of_huge_frames_is_refused_cheaply(clf, good):
    t0 = time.perf_counter()
    with pytest.raises(InvalidInputError, match="exceeds the limit"):
        list(clf.stream(_huge((3, 20000, 20000, 3))))
    assert time.perf_counter() - t0 < 1.0
    _recovers(clf, good)


def test_stream_survives_frame_size_changes(clf, good):
    a, b = screen(1, 240, 320), screen(2, 300, 400)
    got = [_same(p) for p in clf.stream([a, a, b, b, a], smoothing=0.0, refresh_region_every=1)]
    want = {id(a): _same(clf.classify(a)), id(b): _same(clf.classify(b))}
    for g, f in zip(got, [a, a, b, b, a]):
        assert g["label"] == want[id(f)]["label"] and g["region"] == want[id(f)]["region"]
    _recovers(clf, good)
