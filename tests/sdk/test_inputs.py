"""Frame sources: arrays, image files, videos, DICOM; hostile and corrupt inputs."""
import warnings

import cv2
import numpy as np
import pytest

from usclip_sdk.errors import InvalidInputError
from usclip_sdk.inputs import Frame, iter_frames, load_image, read_dicom, to_frame

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

warnings.filterwarnings("ignore", module="pydicom")


def test_arrays_gray_rgb_rgba_uint16():
    g = np.full((10, 12), 7, np.uint8)
    assert to_frame(g).pixels.shape == (10, 12)
    assert to_frame(np.zeros((10, 12, 4), np.uint8)).pixels.shape == (10, 12, 3)
    assert to_frame(np.zeros((10, 12, 1), np.uint8)).pixels.shape == (10, 12)
    u16 = np.array([[0, 1000], [2000, 4000]], np.uint16)
    assert to_frame(u16).pixels.tolist() == [[0, 64], [128, 255]]


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 5), np.uint8), "empty"),
    (np.zeros((5, 5), np.float32), "uint8"),
    (np.full((5, 5), np.nan), "uint8"),
    (np.zeros((2, 3, 4, 5, 6), np.uint8), "shape"),
    (np.zeros((5, 5, 2), np.uint8), "shape"),
    ("not-a-file.png", "not found"),
    (3.5, "expected"),
])
def test_bad_frames_raise_typed_errors(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        to_frame(bad)


def test_huge_frame_refused_before_allocation():
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (20000, 20000), (0, 0))
    with pytest.raises(InvalidInputError, match="exceeds"):
        to_frame(huge)


def test_image_files_roundtrip_and_corruption(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200  # red
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert np.array_equal(load_image(p), rgb)  # loaded as RGB, not BGR
    data = p.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("trunc.png", "junk.jpg", "empty.png"):
        with pytest.raises(InvalidInputError, match=name):
            to_frame(tmp_path / name)


def test_video_frames_and_truncated_video(tmp_path):
    p = tmp_path / "cine.avi"
    vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(6):
        vw.write(np.full((48, 64, 3), 40 * i, np.uint8))
    vw.release()
    frames = list(iter_frames(p))
    assert len(frames) == 6 and frames[3].pixels.shape == (48, 64, 3)
    assert abs(int(frames[3].pixels.mean()) - 120) < 6
    data = p.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    # Ends mid-stream: either the good frames then a clean stop, or (container index lost)
    # a clear error up front - never a crash or a garbage frame.
    try:
        cut = list(iter_frames(tmp_path / "cut.avi"))
    except InvalidInputError as e:
        assert "cut.avi" in str(e)
    else:
        assert 1 <= len(cut) < 6 and all(f.pixels.shape == (48, 64, 3) for f in cut)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InvalidInputError):
        list(iter_frames(tmp_path / "bad.mp4"))
    with pytest.raises(InvalidInputError, match="video"):
        to_frame(p)


def test_dicom_palette_single_frame_with_regions():
    frames = read_dicom(get_testdata_file("examples_palette.dcm"))
    assert len(frames) == 1
    f = frames[0]
    assert f.pixels.shape == (350, 800, 3) and f.pixels.dtype == np.uint8
    assert f.regions and "RegionLocationMinX0" in f.regions[0]
    assert to_frame(get_testdata_file("examples_palette.dcm")).pixels.shape == (350, 800, 3)


def test_dicom_multiframe_ybr_jpeg_cine():
    path = get_testdata_file("examples_ybr_color.dcm")
    try:
        frames = read_dicom(path)
    except InvalidInputError as e:  # no JPEG decoder installed: a clear message, not a crash
        assert "decode" in str(e)
        pytest.skip("no JPEG decoder for pydicom here")
    assert len(frames) == 30 and frames[0].pixels.shape == (240, 320, 3)
    # Decoded to RGB: the grey ultrasound has nearly equal channels.
    px = frames[0].pixels.astype(int)
    assert np.median(np.abs(px[..., 0] - px[..., 1])) <= 3
    with pytest.raises(InvalidInputError, match="30 frames"):
        to_frame(path)
    assert len(list(iter_frames(path))) == 30


def test_dicom_patient_fields_never_in_frame_or_errors(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-998877"
    frames = read_dicom(ds)
    text = repr(frames[0].regions) + frames[0].source
    assert "Doe" not in text and "998877" not in text
    del ds.PixelData
    with pytest.raises(InvalidInputError) as e:
        read_dicom(ds)
    assert "Doe" not in str(e.value) and "998877" not in str(e.value)
    p = tmp_path / "corrupt.dcm"
    p.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00" * 20)
    with pytest.raises(InvalidInputError):
        read_dicom(p)


def test_iter_frames_over_arrays_and_iterables():
    batch = np.zeros((3, 8, 8, 3), np.uint8)
    assert len(list(iter_frames(batch))) == 3
    assert len(list(iter_frames([np.zeros((8, 8), np.uint8)] * 2))) == 2
    assert isinstance(next(iter(iter_frames(np.zeros((8, 8), np.uint8)))), Frame)
    with pytest.raises(InvalidInputError):
        iter_frames(object())
