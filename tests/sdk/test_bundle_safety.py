"""Bundle format: round trip, and every way a bundle can be wrong raises a typed error naming the
file. numpy only (the files are placeholders: Bundle.open verifies bytes, it does not parse ONNX)."""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from usclip_sdk import taxonomy
from usclip_sdk.bundle import Bundle, check_relative_path, sha256_file, write_bundle
from usclip_sdk.errors import BundleError, BundleIntegrityError, BundleVersionError

from manifest_builder import build_manifest

D = 8


def _manifest(name: str = "tiny") -> dict:
    return build_manifest(name, embed_dim=D)


def _emb(seed: int = 0) -> np.ndarray:
    e = np.random.default_rng(seed).standard_normal((len(taxonomy.class_names()), D)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _make(root: Path, name: str = "b", seed: int = 0, as_zip: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    files = {"image_encoder.onnx": rng.bytes(3000), "text_encoder.onnx": rng.bytes(2000),
             "tokenizer.json": json.dumps({"seed": seed}).encode()}
    return write_bundle(root / (name + (".zip" if as_zip else "")), _manifest(name), files, _emb(seed),
                        as_zip=as_zip)


def _rewrite_manifest(bundle: Path, edit) -> None:
    p = bundle / "manifest.json"
    d = json.loads(p.read_text())
    edit(d)
    p.write_text(json.dumps(d))


@pytest.mark.parametrize("as_zip", [False, True])
def test_round_trip(tmp_path, as_zip):
    path = _make(tmp_path, as_zip=as_zip)
    with Bundle.open(path) as b:
        assert b.manifest.model.name == "b" and b.manifest.format_version == 1
        assert b.class_names == taxonomy.class_names() and b.group_sizes == taxonomy.group_sizes()
        np.testing.assert_array_equal(b.class_embeddings(), _emb(0))
        assert b.encoder_path("image").read_bytes() == np.random.default_rng(0).bytes(3000)
        assert b.encoder("text").inputs[0].dtype == "int64"
        assert b.preprocess.image_size == (32, 32) and b.preprocess.resize_mode == "stretch"
        assert set(b.manifest.files) == {"image_encoder.onnx", "text_encoder.onnx", "tokenizer.json",
                                         "class_embeddings.npy"}
        root = b.root
        assert len(b.id) == 64
    if as_zip:  # the private temp folder is gone after close
        assert not root.exists()


def test_tampered_byte_names_file(tmp_path):
    path = _make(tmp_path)
    f = path / "image_encoder.onnx"
    data = bytearray(f.read_bytes())
    data[1234] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"image_encoder\.onnx.*sha256"):
        Bundle.open(path)


def test_truncated_file_names_file(tmp_path):
    path = _make(tmp_path)
    f = path / "text_encoder.onnx"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(BundleIntegrityError, match=r"text_encoder\.onnx.*size 1990"):
        Bundle.open(path)


def test_missing_file_names_file(tmp_path):
    path = _make(tmp_path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(BundleIntegrityError, match=r"tokenizer\.json.*missing"):
        Bundle.open(path)


@pytest.mark.parametrize("version", [2, 0, "1", None, True])
def test_unknown_format_version(tmp_path, version):
    path = _make(tmp_path)
    _rewrite_manifest(path, lambda d: d.__setitem__("format_version", version))
    with pytest.raises(BundleVersionError, match="format_version"):
        Bundle.open(path)


def test_manifest_from_another_bundle(tmp_path):
    a, b = _make(tmp_path, "a", seed=1), _make(tmp_path, "b", seed=2)
    shutil.copyfile(a / "manifest.json", b / "manifest.json")
    with pytest.raises(BundleIntegrityError, match=r"another bundle"):
        Bundle.open(b)


@pytest.mark.parametrize("bad", ["../evil.onnx", "/etc/passwd.json", "a/../../x.onnx", "sub\\x.onnx",
                                 "C:x.onnx", "./x.onnx", "model.pkl", "weights.pt", ""])
def test_path_traversal_and_unsafe_types_rejected(tmp_path, bad):
    path = _make(tmp_path)

    def edit(d):
        d["files"][bad] = d["files"].pop("image_encoder.onnx")
        d["encoders"]["image"]["fp32"]["path"] = bad
    _rewrite_manifest(path, edit)
    with pytest.raises(BundleError, match="bundle path"):
        Bundle.open(path)
    with pytest.raises(BundleError):
        check_relative_path(bad)


def test_symlink_out_of_bundle_rejected(tmp_path):
    path = _make(tmp_path)
    outside = tmp_path / "outside.onnx"
    shutil.copyfile(path / "image_encoder.onnx", outside)
    (path / "image_encoder.onnx").unlink()
    os.symlink(outside, path / "image_encoder.onnx")
    with pytest.raises(BundleError, match=r"image_encoder\.onnx.*outside the bundle"):
        Bundle.open(path)


def test_referenced_file_without_checksum_rejected(tmp_path):
    path = _make(tmp_path)
    _rewrite_manifest(path, lambda d: d["files"].pop("text_encoder.onnx"))
    with pytest.raises(BundleError, match=r"text_encoder\.onnx.*no entry in 'files'"):
        Bundle.open(path)


def test_unknown_manifest_key_rejected(tmp_path):
    path = _make(tmp_path)
    _rewrite_manifest(path, lambda d: d["model"].__setitem__("pickle_loader", "x"))
    with pytest.raises(BundleError, match=r"model: unknown keys \['pickle_loader'\]"):
        Bundle.open(path)


def test_bad_class_embeddings_rejected(tmp_path):
    path = _make(tmp_path)
    f = path / "class_embeddings.npy"
    np.save(f, _emb() * 2.0)  # not unit-norm
    _rewrite_manifest(path, lambda d: d["files"].__setitem__(
        "class_embeddings.npy", {"sha256": sha256_file(f), "size": f.stat().st_size}))
    with Bundle.open(path) as b, pytest.raises(BundleError, match="unit-norm"):
        b.class_embeddings()


def test_pickled_npy_never_loaded(tmp_path):
    path = _make(tmp_path)
    f = path / "class_embeddings.npy"
    np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _rewrite_manifest(path, lambda d: d["files"].__setitem__(
        "class_embeddings.npy", {"sha256": sha256_file(f), "size": f.stat().st_size}))
    with Bundle.open(path) as b, pytest.raises(ValueError, match="allow_pickle"):
        b.class_embeddings()


def _rezip(src: Path, dst: Path, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


def test_zip_tampered_and_missing_member(tmp_path):
    z = _make(tmp_path, as_zip=True)
    bad = tmp_path / "bad.zip"
    _rezip(z, bad, lambda n, b: b[:-1] + bytes([b[-1] ^ 1]) if n == "text_encoder.onnx" else b)
    with pytest.raises(BundleIntegrityError, match=r"text_encoder\.onnx"):
        Bundle.open(bad)
    _rezip(z, bad, lambda n, b: None if n == "tokenizer.json" else b)
    with pytest.raises(BundleIntegrityError, match=r"tokenizer\.json.*missing"):
        Bundle.open(bad)


def test_zip_oversized_member_stops_early(tmp_path):
    z = _make(tmp_path, as_zip=True)
    bad = tmp_path / "bomb.zip"
    _rezip(z, bad, lambda n, b: b * 2000 if n == "image_encoder.onnx" else b)
    with pytest.raises(BundleIntegrityError, match=r"image_encoder\.onnx.*larger than"):
        Bundle.open(bad)


def test_zip_traversal_member_never_extracted(tmp_path):
    z = _make(tmp_path, as_zip=True)
    bad = tmp_path / "trav.zip"
    with zipfile.ZipFile(z) as zin:
        m = json.loads(zin.read("manifest.json"))
    m["files"]["../escape.onnx"] = m["files"].pop("image_encoder.onnx")
    m["encoders"]["image"]["fp32"]["path"] = "../escape.onnx"
    _rezip(z, bad, lambda n, b: json.dumps(m).encode() if n == "manifest.json" else b)
    with zipfile.ZipFile(bad, "a") as za:
        za.writestr("../escape.onnx", b"x")
    with pytest.raises(BundleError, match="bundle path"):
        Bundle.open(bad)
    assert not (tmp_path.parent / "escape.onnx").exists()


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no such bundle"):
        Bundle.open(tmp_path / "nope")
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle.open(tmp_path)
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.open(tmp_path / "x.zip")


def test_write_bundle_refuses_to_overwrite_and_validates(tmp_path):
    _make(tmp_path)
    with pytest.raises(FileExistsError):
        _make(tmp_path)
    m = _manifest()
    m["encoders"]["image"]["fp32"]["path"] = "absent.onnx"
    with pytest.raises(BundleError, match="absent.onnx"):
        write_bundle(tmp_path / "c", m, {"image_encoder.onnx": b"x", "text_encoder.onnx": b"y",
                                         "tokenizer.json": b"{}"}, _emb())
    assert not (tmp_path / "c").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".usclip-bundle-")]  # no staging left
