"""The DICOM path on every pydicom the ``dicom`` extra allows, with DICOM files made here.

pydicom's own test files differ between releases (3.0.0 lacks examples_palette.dcm and would
try to download it), so these datasets are written by the test: a palette-colour ultrasound
frame with an ultrasound region (pydicom.pixels.apply_color_lut, 3.0+) and an RGB multi-frame
cine. CI runs this file a second time with the lowest allowed pydicom first on the path
(.ci/run; USCLIP_EXPECT_PYDICOM says which version must have been imported).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from usclip_sdk.inputs import iter_frames, read_dicom, to_frame  # noqa: E402


def test_expected_pydicom_version():
    want = os.environ.get("USCLIP_EXPECT_PYDICOM")
    if not want:
        pytest.skip("USCLIP_EXPECT_PYDICOM not set (CI sets it for the lowest-version run)")
    assert pydicom.__version__ == want, pydicom.__file__


def _dataset(tmp_path, name: str, pixels: np.ndarray, photometric: str, frames: int = 1, **extra):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = "Doe^Jane", "PID-998877", "US"
    h, w = pixels.shape[-3:-1] if photometric == "RGB" else pixels.shape[-2:]
    ds.Rows, ds.Columns = h, w
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_palette_frame_with_region(tmp_path):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    lut = np.arange(256, dtype=np.uint16) * 257  # 16-bit entries, grey ramp on red, inverse on blue
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 10, 5
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 70, 55
    region.RegionSpatialFormat, region.RegionDataType = 1, 1
    path = _dataset(tmp_path, "palette.dcm", idx, "PALETTE COLOR",
                    RedPaletteColorLookupTableDescriptor=[256, 0, 16],
                    GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
                    BluePaletteColorLookupTableDescriptor=[256, 0, 16],
                    RedPaletteColorLookupTableData=lut.tobytes(),
                    GreenPaletteColorLookupTableData=lut.tobytes(),
                    BluePaletteColorLookupTableData=lut[::-1].copy().tobytes(),
                    SequenceOfUltrasoundRegions=[region])
    frames = read_dicom(path)
    assert len(frames) == 1
    f = frames[0]
    assert f.pixels.shape == (60, 80, 3) and f.pixels.dtype == np.uint8
    np.testing.assert_array_equal(f.pixels[..., 0], idx)  # the LUT was applied, scaled to 8 bits
    np.testing.assert_array_equal(f.pixels[..., 2], 255 - idx)
    assert f.regions[0]["RegionLocationMaxX1"] == 70
    assert "Doe" not in repr(f.regions) + f.source and "998877" not in repr(f.regions) + f.source
    assert to_frame(path).pixels.shape == (60, 80, 3)


def test_rgb_multiframe_cine(tmp_path):
    cine = np.random.default_rng(1).integers(0, 256, (4, 32, 40, 3), dtype=np.uint8)
    path = _dataset(tmp_path, "cine.dcm", cine, "RGB", frames=4)
    frames = read_dicom(path)
    assert len(frames) == 4
    np.testing.assert_array_equal(np.stack([f.pixels for f in frames]), cine)
    assert len(list(iter_frames(path))) == 4
