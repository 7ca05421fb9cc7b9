"""Readers for public layouts, each on a tiny fixture built here: BUSI, FETAL_PLANES_DB,
folder-of-classes, CSV and JSONL caption tables, and layout recognition."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from usclip_data.public import BUSI, CaptionTable, FetalPlanes, ImageFolder, open_dataset
from usclip_data.sample import Sample
from usclip_data.us365k import US365K


def _png(path: Path, value: int = 100, size=(12, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(size, value, np.uint8))
    return path


def test_busi_skips_masks_and_maps_labels(tmp_path):
    root = tmp_path / "Dataset_BUSI_with_GT"
    for cls, n in (("benign", 3), ("malignant", 2), ("normal", 1)):
        for i in range(1, n + 1):
            _png(root / cls / f"{cls} ({i}).png", 50 * i)
            _png(root / cls / f"{cls} ({i})_mask.png", 255)
    _png(root / "benign" / "benign (10).png")
    _png(root / "benign" / "benign (1)_mask_1.png", 255)
    for where in (root, tmp_path):  # the class folders' parent, or the folder above it
        ds = BUSI(where)
        assert len(ds) == 7 and not any("_mask" in Path(s.image_path).name for s in ds)
        assert [Path(s.image_path).name for s in ds][:4] == [
            "benign (1).png", "benign (2).png", "benign (3).png", "benign (10).png"]
        assert ds.classes() == ["benign", "malignant", "normal"]
        for s in ds:
            assert s.labels["Organ_level"] == ("Breast",)
            assert s.labels["Body_system_level"] == ("Breast and Axilla",)
            assert s.labels["Diagnosis"] == (("normal appearance",) if s.target == "normal" else ("mass",))
            assert s.labels["Shape"] == ()
    assert BUSI(root)[0].load_rgb().shape == (12, 16, 3)
    with pytest.raises(FileNotFoundError, match="malignant"):
        (tmp_path / "only").mkdir()
        _png(tmp_path / "only" / "benign" / "a.png")
        _png(tmp_path / "only" / "normal" / "a.png")
        BUSI(tmp_path / "only")


_FETAL_HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train "


def _fetal(root: Path, rows: list[str], header=_FETAL_HEADER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "FETAL_PLANES_DB_data.csv").write_text("\n".join([header] + rows) + "\n", encoding="utf-8-sig")
    return root


def test_fetal_planes_split_captions_and_labels(tmp_path):
    rows = ["Patient00001_Plane1_1_of_15;1;Other;Not A Brain;Op. 1;Voluson E6;1",
            "Patient00001_Plane2_1_of_15;1;Maternal cervix;Not A Brain;Op. 1;Voluson E6;1",
            "Patient00002_Plane3_1_of_3;2;Fetal brain;Trans-thalamic;Op. 2;Aloka;0",
            "Patient00003_Plane4_1_of_2;3;Fetal femur;Not A Brain;Other;Voluson S10;0"]
    root = _fetal(tmp_path / "fp", rows)
    for r in rows:
        _png(root / "Images" / (r.split(";")[0] + ".png"))
    all_ = FetalPlanes(root)
    assert len(all_) == 4 and len(FetalPlanes(root, "train")) == 2 and len(FetalPlanes(root, "test")) == 2
    assert all_.classes() == ["Fetal brain", "Fetal femur", "Maternal cervix", "Other"]
    by = {s.target: s for s in all_}
    assert by["Maternal cervix"].labels["Organ_level"] == ("Uterus",)
    assert by["Maternal cervix"].labels["Body_system_level"] == ("Gynaecology",)
    assert all(v == () for v in by["Fetal femur"].labels.values())
    assert "trans-thalamic" in by["Fetal brain"].caption and "femur" in by["Fetal femur"].caption
    assert [s.target for s in FetalPlanes(root, "test")] == ["Fetal brain", "Fetal femur"]
    with pytest.raises(ValueError, match="split"):
        FetalPlanes(root, "valid")


def test_fetal_planes_errors_name_file_and_line(tmp_path):
    bad = _fetal(tmp_path / "bad", ["a;1;Other;x;o;m;1", "b;1;Other;x;o;m"])
    _png(bad / "Images" / "a.png")
    with pytest.raises(ValueError, match=r"FETAL_PLANES_DB_data\.csv:3: expected 7 columns"):
        FetalPlanes(bad)
    bad2 = _fetal(tmp_path / "bad2", ["a;1;Other;x;o;m;yes"])
    with pytest.raises(ValueError, match=r"csv:2: Train"):
        FetalPlanes(bad2)
    gone = _fetal(tmp_path / "gone", ["a;1;Other;x;o;m;1"])
    with pytest.raises(FileNotFoundError, match=r"csv:2: a\.png"):
        FetalPlanes(gone)
    nocol = _fetal(tmp_path / "nocol", ["a;1;1"], header="Image_name;Patient_num;Train")
    with pytest.raises(ValueError, match="Plane"):
        FetalPlanes(nocol)


def test_image_folder_nested_excludes_and_label_map(tmp_path):
    _png(tmp_path / "thyroid_nodule" / "a.png")
    _png(tmp_path / "thyroid_nodule" / "sub" / "b.jpg")
    _png(tmp_path / "thyroid_nodule" / "a_mask.png")
    _png(tmp_path / "normal-liver" / "c.png")
    (tmp_path / "normal-liver" / "notes.txt").write_text("x")
    ds = ImageFolder(tmp_path, exclude=["*_mask*"],
                     labels={"thyroid_nodule": {"Diagnosis": "nodule", "Organ_level": "Thyroid gland"}})
    assert len(ds) == 3 and ds.classes() == ["normal-liver", "thyroid_nodule"]
    nod = [s for s in ds if s.target == "thyroid_nodule"]
    assert all(s.labels["Diagnosis"] == ("nodule",) for s in nod)
    assert nod[0].caption == "an ultrasound image of thyroid nodule."
    assert [s for s in ds if s.target == "normal-liver"][0].labels["Diagnosis"] == ()
    assert len(ImageFolder(tmp_path)) == 4
    with pytest.raises(ValueError, match="Shape"):
        ImageFolder(tmp_path, labels={"normal-liver": {"Shape": "square"}})
    with pytest.raises(ValueError, match="no folder"):
        ImageFolder(tmp_path, labels={"kidney": {"Diagnosis": "cyst"}})


def test_caption_csv_and_jsonl(tmp_path):
    _png(tmp_path / "img" / "a.png")
    _png(tmp_path / "img" / "b.png")
    (tmp_path / "pairs.csv").write_text(
        "filepath;title;Diagnosis;Shape\n"
        "img/a.png;a hypoechoic nodule;nodule;oval|round\n"
        "\n"
        f"{tmp_path / 'img' / 'b.png'};\"normal liver; no lesion\";normal appearance;\n")
    ds = CaptionTable(tmp_path / "pairs.csv")
    assert [s.caption for s in ds] == ["a hypoechoic nodule", "normal liver; no lesion"]
    assert ds[0].labels["Shape"] == ("oval", "round") and ds[1].labels["Shape"] == ()
    assert ds[1].labels["Diagnosis"] == ("normal appearance",)
    assert ds[0].image_path == str(tmp_path / "img" / "a.png")
    (tmp_path / "pairs.jsonl").write_text(
        json.dumps({"image": "a.png", "text": "cyst", "label": "cyst", "Diagnosis": ["cyst"]}) + "\n"
        + json.dumps({"image": "b.png", "text": "mass", "label": "mass"}) + "\n")
    js = CaptionTable(tmp_path / "pairs.jsonl", root=tmp_path / "img", target="label")
    assert [s.target for s in js] == ["cyst", "mass"] and js[0].labels["Diagnosis"] == ("cyst",)
    assert all(isinstance(s, Sample) for s in js)


def test_caption_table_errors_name_file_and_line(tmp_path):
    _png(tmp_path / "a.png")
    cases = {"x.jsonl": ('{"image": "a.png", "caption": "c"}\n{bad\n', r"x\.jsonl:2: not JSON"),
             "y.jsonl": ('{"image": "a.png", "caption": "c"}\n\n{"image": "a.png"}\n', r"y\.jsonl:3: no caption"),
             "z.csv": ("image,caption\na.png,c\na.png,c,extra\n", r"z\.csv:3: expected 2 columns"),
             "w.csv": ("image,caption,Echogenicity\na.png,c,glowing\n", r"w\.csv:2: .*Echogenicity"),
             "v.csv": ("image,caption\nmissing.png,c\n", r"v\.csv:2: missing\.png")}
    for name, (text, pat) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises((ValueError, FileNotFoundError), match=pat):
            CaptionTable(tmp_path / name)


def test_open_dataset_recognises_layouts(tmp_path):
    from usclip_data.us365k import write_dataset
    from test_data_us365k import fake_render_view, fake_sample_case

    write_dataset(tmp_path / "us", 3, 0, (1, 1), (32, 32), 1, progress=False,
                  sampler=fake_sample_case, renderer=fake_render_view)
    assert isinstance(open_dataset(tmp_path / "us"), US365K) and len(open_dataset(tmp_path / "us")) == 3
    assert len(open_dataset(tmp_path / "us", "train")) == 1
    for cls in ("benign", "malignant", "normal"):
        _png(tmp_path / "busi" / cls / "x.png")
    assert isinstance(open_dataset(tmp_path / "busi"), BUSI)
    fp = _fetal(tmp_path / "fp", ["a;1;Other;x;o;m;1"])
    _png(fp / "Images" / "a.png")
    assert isinstance(open_dataset(fp), FetalPlanes)
    _png(tmp_path / "folder" / "k" / "a.png")
    assert isinstance(open_dataset(tmp_path / "folder"), ImageFolder)
    (tmp_path / "folder" / "t.jsonl").write_text('{"image": "k/a.png", "caption": "c"}\n')
    assert isinstance(open_dataset(tmp_path / "folder" / "t.jsonl"), CaptionTable)
    with pytest.raises(FileNotFoundError):
        open_dataset(tmp_path / "nowhere")
