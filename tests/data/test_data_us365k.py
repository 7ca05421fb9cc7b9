"""US-365K layout: writer -> reader round trip, case-level splits, determinism across worker
counts, labels agreeing with the renderer's parameters, and errors that name file and line.

The writer is exercised with a small fake renderer (same contract as ``synth.render_view``)
so these tests time only the layout code; one test runs the real engine when it is present.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from usclip_sdk import taxonomy as tx
from usclip_data.sample import load_rgb
from usclip_data.us365k import US365K, read_full_data, write_dataset
from usclip_data.us365k_writer import split_cases

_DX = ("nodule", "cyst", "mass", "fluid collection", "normal appearance")


@dataclass(frozen=True)
class FakeCase:
    case_id: str
    labels: dict
    level: int
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FakeFrame:
    image: np.ndarray
    region_mask: np.ndarray
    labels: dict
    params: dict


def fake_sample_case(rng: np.random.Generator, case_id: str) -> FakeCase:
    dx = _DX[int(rng.integers(len(_DX)))]
    organ = tx.organs()[int(rng.integers(52))]
    labels = {"Diagnosis": (dx,), "Organ_level": (organ,), "Body_system_level": (tx.system_of(organ),)}
    if dx != "normal appearance":
        shapes = tx.dimension("Shape").values
        k = int(rng.integers(1, 3))  # sometimes two tags: exercises list-valued fields
        labels["Shape"] = tuple(shapes[int(i)] for i in rng.choice(len(shapes), k, replace=False))
        labels["Echogenicity"] = (tx.dimension("Echogenicity").values[int(rng.integers(5))],)
    return FakeCase(case_id, labels, int(rng.integers(30, 220)))


def fake_render_view(case: FakeCase, view: int, seed: int, size=None) -> FakeFrame:
    h, w = size or (64, 80)
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 8: h - h // 8, w // 6: w - w // 6] = 1
    img[mask > 0] = np.clip(rng.normal(case.level, 20, (int(mask.sum()), 3)), 0, 255).astype(np.uint8)
    params = {"case_id": case.case_id, "view": view, "seed": seed,
              "labels": {k: list(v) for k, v in case.labels.items()}, "gain": np.float32(1.5)}
    return FakeFrame(img, mask, case.labels, params)


def _write(tmp: Path, n=12, seed=3, workers=1, **kw):
    return write_dataset(tmp, n, seed, views_per_case=(2, 3), size=(48, 64), workers=workers,
                         progress=False, sampler=fake_sample_case, renderer=fake_render_view, **kw)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_layout_labels_masks(tmp_path):
    s = _write(tmp_path)
    assert s.n_images == sum(s.per_split.values()) and 24 <= s.n_images <= 36
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "full_data.json", "cases.jsonl",
                 "dataset.json"):
        assert (tmp_path / name).is_file()
    full = json.loads((tmp_path / "full_data.json").read_text())
    assert len(full) == s.n_images
    multi = [r for r in full if isinstance(r["Shape"], list) and r["Shape"]]
    assert multi and all(len(r["Shape"]) >= 2 for r in multi)  # list only when multi-tag
    assert all(r["Margins"] == [] for r in full)  # unlabelled fields: an empty list, not omitted
    cases = {json.loads(line)["media_name"]: json.loads(line) for line in open(tmp_path / "cases.jsonl")}
    seen = 0
    for split in ("train", "valid", "test"):
        ds = US365K(tmp_path, split)
        assert len(ds) == s.per_split[split]
        for smp in ds:
            seen += 1
            name = Path(smp.image_path).name
            img = load_rgb(smp.image_path)
            assert img.shape == (48, 64, 3) and smp.caption
            # labels in full_data.json agree with what the renderer says it drew
            drawn = cases[name]["params"]["labels"]
            for f in tx.FIELDS:
                assert smp.labels[f] == tuple(drawn.get(f, ())), (name, f)
            mask = load_rgb(tmp_path / "masks" / name)[:, :, 0]
            assert set(np.unique(mask)) == {0, 255}
            assert ((img.max(axis=2) > 0) <= (mask > 0)).all()  # nothing drawn outside the region
            assert cases[name]["params"]["gain"] == 1.5  # numpy scalars stored as JSON numbers
    assert seen == s.n_images


def test_splits_are_disjoint_by_case_and_cover_all(tmp_path):
    _write(tmp_path, n=20)
    case_split: dict[str, set] = {}
    for line in open(tmp_path / "cases.jsonl"):
        r = json.loads(line)
        case_split.setdefault(r["case_id"], set()).add(r["split"])
    assert len(case_split) == 20 and all(len(v) == 1 for v in case_split.values())
    by_split = {}
    for split in ("train", "valid", "test"):
        names = {Path(s.image_path).name for s in US365K(tmp_path, split)}
        by_split[split] = {n.split("_v")[0] for n in names}
    assert not (by_split["train"] & by_split["valid"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["valid"] & by_split["test"])
    assert [len(by_split[k]) for k in ("train", "valid", "test")] == [16, 2, 2]


def test_split_counts_small_and_exact():
    assert sorted(split_cases(3, 0, (0.8, 0.1, 0.1))) == ["test", "train", "valid"]
    assert split_cases(10, 5, (0.8, 0.1, 0.1)).count("train") == 8
    assert split_cases(7, 1, (1, 0, 0)) == ["train"] * 7
    assert split_cases(50, 1, (0.8, 0.1, 0.1)) == split_cases(50, 1, (0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="splits"):
        split_cases(5, 0, (0.5, -0.1, 0.6))


def test_same_seed_same_files_for_one_and_two_workers(tmp_path):
    _write(tmp_path / "a", n=8, workers=1)
    _write(tmp_path / "b", n=8, workers=2)
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da == db and len(da) > 20
    _write(tmp_path / "c", n=8, seed=4)
    assert _digest(tmp_path / "c") != da
    # a smaller set with the same seed is a prefix of a larger one
    _write(tmp_path / "d", n=5)
    names = [json.loads(line)["media_name"] for line in open(tmp_path / "d" / "cases.jsonl")]
    assert all((tmp_path / "a" / "images" / n).read_bytes() == (tmp_path / "d" / "images" / n).read_bytes()
               for n in names)


def test_refuses_non_empty_dir_unless_overwrite(tmp_path):
    (tmp_path / "keep.txt").write_text("user file")
    with pytest.raises(FileExistsError, match="overwrite"):
        _write(tmp_path, n=3)
    _write(tmp_path, n=3, overwrite=True)
    _write(tmp_path, n=4, overwrite=True)
    assert (tmp_path / "keep.txt").read_text() == "user file"
    assert json.loads((tmp_path / "dataset.json").read_text())["n_cases"] == 4


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="n_cases"):
        _write(tmp_path, n=0)
    with pytest.raises(ValueError, match="views_per_case"):
        write_dataset(tmp_path, 2, views_per_case=(3, 1), progress=False)
    with pytest.raises(ValueError, match="workers"):
        _write(tmp_path, n=2, workers=0)


def _layout(root: Path, train: str, full: str = "[]") -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"x")
    (root / "train.jsonl").write_text(train)
    (root / "full_data.json").write_text(full)
    return root


def test_malformed_jsonl_names_file_and_line(tmp_path):
    good = '{"image": "a.png", "caption": "ok"}\n'
    cases = {"notjson": good + "\n{oops\n", "list": good + "[1]\n",
             "noimage": good + good + '{"caption": "c"}\n', "badcap": '{"image": "a.png", "caption": 3}\n'}
    lines = {"notjson": 3, "list": 2, "noimage": 3, "badcap": 1}
    for key, text in cases.items():
        root = _layout(tmp_path / key, text)
        with pytest.raises(ValueError, match=rf"train\.jsonl:{lines[key]}:"):
            US365K(root, "train")


def test_malformed_full_data_names_file_and_line(tmp_path):
    good = '{"image": "a.png", "caption": "ok"}\n'
    bad = {"syntax": ('[\n {"media_name": "a.png"},\n {"media_name": "b.png",}\n]', 3),
           "noname": ('[\n {"media_name": "a.png"},\n\n {"Diagnosis": "cyst"}\n]', 4),
           "badvalue": ('[\n {"media_name": "a.png",\n  "Shape": "triangular"}\n]', 2),
           "notalist": ('{"media_name": "a.png"}', 1),
           "trailing": ('[{"media_name": "a.png"}] x', 1)}
    for key, (text, line) in bad.items():
        root = _layout(tmp_path / key, good, text)
        with pytest.raises(ValueError, match=rf"full_data\.json:{line}:"):
            US365K(root, "train")
    root = _layout(tmp_path / "lenient", good, bad["badvalue"][0])
    assert US365K(root, "train", strict_labels=False)[0].labels["Shape"] == ()


def test_missing_images_and_splits_are_reported(tmp_path):
    root = _layout(tmp_path / "r", '{"image": "a.png", "caption": "x"}\n{"image": "gone.png", "caption": "y"}\n')
    with pytest.raises(FileNotFoundError, match=r"train\.jsonl:2: gone\.png"):
        US365K(root, "train")
    assert len(US365K(root, "train", check_files=False)) == 2
    with pytest.raises(FileNotFoundError, match="valid.jsonl"):
        US365K(root, "val")
    with pytest.raises(ValueError, match="split"):
        US365K(root, "training")


def test_reads_flat_layout_and_images_zip(tmp_path):
    _write(tmp_path / "src", n=4)
    src = tmp_path / "src"
    ref = {Path(s.image_path).name: (s.caption, s.labels, load_rgb(s.image_path)) for s in US365K(src, "all")}
    flat = tmp_path / "flat"
    flat.mkdir()
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "full_data.json"):
        (flat / name).write_bytes((src / name).read_bytes())
        (zipped / name).write_bytes((src / name).read_bytes())
    with zipfile.ZipFile(zipped / "images.zip", "w") as zf:
        for p in (src / "images").iterdir():
            (flat / p.name).write_bytes(p.read_bytes())
            zf.write(p, f"images/{p.name}")
    for root in (flat, zipped):
        got = list(US365K(root, "all"))
        assert len(got) == len(ref)
        for s in got:
            name = s.image_path.rsplit("/", 1)[-1]
            cap, labels, img = ref[name]
            assert s.caption == cap and s.labels == labels
            assert np.array_equal(s.load_rgb(), img)
    assert "images.zip::images/" in US365K(zipped, "train")[0].image_path


def failing_render_view(case, view, seed, size=None):
    if case.case_id == "case000002":
        raise ValueError("boom")
    return fake_render_view(case, view, seed, size)


def test_renderer_failure_names_the_case_and_leaves_no_tables(tmp_path):
    with pytest.raises(RuntimeError, match=r"case 2 \(case000002\) view 0 .*render seed \d+.*boom"):
        write_dataset(tmp_path, 4, 0, (1, 1), (32, 32), 1, progress=False,
                      sampler=fake_sample_case, renderer=failing_render_view)
    assert not list(tmp_path.glob("*.json*"))  # no half-written tables, no temp files


# The record shape of the release, from its documentation (../shared/reference/ultrasound-clip.md):
# "full_data.json: a list of records, each with media_name plus the nine label fields below,
# each a string or a list of strings (an image can carry several tags in one dimension, or none)".
# Written out here by hand, not taken from our reader or from taxonomy.FIELDS.
RELEASE_FIELDS = ("Diagnosis", "Body_system_level", "Organ_level", "Shape", "Margins", "Echogenicity",
                  "InternalCharacteristics", "PosteriorAcoustics", "Vascularity")


def test_every_record_has_media_name_and_the_nine_fields(tmp_path):
    _write(tmp_path)
    full = json.loads((tmp_path / "full_data.json").read_text())
    assert full
    for rec in full:
        assert list(rec) == ["media_name", *RELEASE_FIELDS]  # exactly these keys, in this order
        assert isinstance(rec["media_name"], str) and rec["media_name"].endswith(".png")
        for f in RELEASE_FIELDS:
            v = rec[f]
            assert isinstance(v, str) and v or isinstance(v, list) and all(isinstance(t, str) for t in v), (f, v)
            assert not (isinstance(v, list) and len(v) == 1)  # one tag is written as a string
    assert any(rec["Margins"] == [] for rec in full)  # "or none": the empty list


def test_reader_takes_both_omitted_and_empty_fields(tmp_path):
    recs = [{"media_name": "a.png", "Diagnosis": "cyst", "Organ_level": "Liver"},
            {"media_name": "b.png", **{f: [] for f in RELEASE_FIELDS}, "Diagnosis": "cyst",
             "InternalCharacteristics": ["septations", "cystic components"]}]
    (tmp_path / "full_data.json").write_text(json.dumps(recs))
    got = read_full_data(tmp_path / "full_data.json")
    assert got["a.png"]["Margins"] == () == got["b.png"]["Margins"]
    assert got["a.png"]["Diagnosis"] == ("cyst",) == got["b.png"]["Diagnosis"]
    assert set(got["b.png"]["InternalCharacteristics"]) == {"septations", "cystic components"}


def test_dataset_json_counts_the_label_values_it_holds(tmp_path):
    _write(tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    full = json.loads((tmp_path / "full_data.json").read_text())
    for f in RELEASE_FIELDS:
        tags = [t for r in full for t in ([r[f]] if isinstance(r[f], str) else r[f])]
        assert meta["label_values"][f] == {v: tags.count(v) for v in set(tags)}
        per_split = sum(meta["label_values_per_split"][s].get(f, {}).get(v, 0)
                        for s in ("train", "valid", "test") for v in set(tags))
        assert per_split == len(tags)
