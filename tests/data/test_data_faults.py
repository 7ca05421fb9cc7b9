"""Corrupt US-365K folders never give a silent wrong label: each fault is a typed error naming the
file and line (on_bad_sample="error", the default) or a counted skip ("skip"), and the samples
that remain carry exactly the labels of the clean folder."""
from __future__ import annotations

import json
import shutil

import pytest
from train_fixtures import make_dataset

from usclip_data.faults import BadSampleError, BadSamples, MissingImageError
from usclip_data.us365k import US365K
from usclip_sdk.errors import InvalidInputError

N = 24  # train split: img0000 .. img0017 on lines 1 .. 18 of train.jsonl


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("faults") / "clean", n=N, size=24)
    return root, {s.image_path.rsplit("/", 1)[-1]: s.labels for s in US365K(root, "train")}


def _copy(clean, tmp_path):
    return shutil.copytree(clean[0], tmp_path / "ds")


def _set_line(root, n: int, raw: bytes) -> None:
    lines = (root / "train.jsonl").read_bytes().splitlines(keepends=True)
    lines[n - 1] = raw + b"\n"
    (root / "train.jsonl").write_bytes(b"".join(lines))


def _missing(root):
    (root / "images" / "img0002.png").unlink()
    return "missing-image", r"train\.jsonl:3: .*img0002\.png", "img0002.png"


def _broken_json(root):
    _set_line(root, 2, b'{"image": "img0001.png", "caption": ')
    return "bad-json", r"train\.jsonl:2: not JSON", "img0001.png"


def _non_utf8(root):
    _set_line(root, 4, b'{"image": "img0003.png", "caption": "hypo\xff\xfeechoic nodule"}')
    return "non-utf8", r"train\.jsonl:4: not UTF-8 \(byte 0xff", "img0003.png"


def _outside_taxonomy(root):
    recs = json.loads((root / "full_data.json").read_text())
    for r in recs:
        if r["media_name"] == "img0005.png":
            r["Diagnosis"] = "unicorn"
    (root / "full_data.json").write_text(json.dumps(recs, indent=0))
    return "label-outside-taxonomy", r"full_data\.json:\d+: img0005\.png: .*unicorn", "img0005.png"


def _undecodable(root):
    (root / "images" / "img0007.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    return "undecodable-image", r"train\.jsonl:8: img0007\.png: cannot be decoded", "img0007.png"


FAULTS = [_missing, _broken_json, _non_utf8, _outside_taxonomy, _undecodable]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__.strip("_"))
def test_each_fault_is_a_typed_error_naming_file_and_line(clean, tmp_path, fault):
    root = _copy(clean, tmp_path)
    kind, where, _ = fault(root)
    with pytest.raises(BadSampleError, match=where) as e:
        US365K(root, "train", check_decode=True)
    assert e.value.kind == kind
    if kind == "missing-image":
        assert isinstance(e.value, MissingImageError) and isinstance(e.value, FileNotFoundError)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__.strip("_"))
def test_each_fault_is_a_counted_skip_and_the_rest_keep_their_labels(clean, tmp_path, fault):
    root = _copy(clean, tmp_path)
    kind, _, image = fault(root)
    ds = US365K(root, "train", on_bad_sample="skip", check_decode=True)
    names = [s.image_path.rsplit("/", 1)[-1] for s in ds]
    assert image not in names and len(names) == len(clean[1]) - 1
    assert ds.bad_samples.summary()["by_kind"] == {kind: 1}
    assert all(s.labels == clean[1][n] for s, n in zip(ds, names))  # nothing relabelled


def test_all_faults_at_once(clean, tmp_path):
    root = _copy(clean, tmp_path)
    kinds = {f(root)[0] for f in FAULTS}
    ds = US365K(root, "train", on_bad_sample="skip", check_decode=True)
    s = ds.bad_samples.summary()
    assert s["skipped"] == 5 and set(s["by_kind"]) == kinds and len(ds) == len(clean[1]) - 5
    assert all(len(v) == 1 and ":" in v[0] for v in s["examples"].values())
    assert "skipped 5 bad samples" in ds.bad_samples.describe()


def test_undecodable_image_without_the_up_front_check_fails_when_loaded(clean, tmp_path):
    root = _copy(clean, tmp_path)
    _undecodable(root)
    sample = US365K(root, "train")[7]  # the reader alone does not decode (that costs a pass)
    with pytest.raises(InvalidInputError, match="img0007.png"):
        sample.load_rgb()


def test_unattributable_faults_are_always_errors(clean, tmp_path):
    """A damaged label file cannot be skipped sample by sample: some image would be untagged."""
    root = _copy(clean, tmp_path)
    data = (root / "full_data.json").read_bytes()
    (root / "full_data.json").write_bytes(data[:40] + b"\xc3\x28" + data[40:])
    for policy in ("error", "skip"):
        with pytest.raises(ValueError, match=r"full_data\.json:1: not UTF-8"):
            US365K(root, "train", on_bad_sample=policy)
    (root / "full_data.json").write_bytes(data[:-1])  # cut: the list never closes
    with pytest.raises(ValueError, match=r"full_data\.json:"):
        US365K(root, "train", on_bad_sample="skip")


def test_policy_is_checked():
    with pytest.raises(ValueError, match="on_bad_sample"):
        BadSamples("ignore")
