"""Signed bundles (usclip_sdk.signing): round trip, every single-byte change refused with a typed
error that says which, wrong key, truncated signature, another bundle's signature, the check
before any parsing, trusted keys from the environment, the CLI, and no private key ever in a
bundle or in the repository."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryptography")

from sdk_bundle import make_tiny_bundle
from usclip_sdk import Classifier, signing
from usclip_sdk import bundle as bundle_mod
from usclip_sdk.bundle import MANIFEST_NAME, Bundle
from usclip_sdk.cli import main as cli_main
from usclip_sdk.errors import BundleIntegrityError, BundleSignatureError

SIG = signing.SIGNATURE_NAME
REPO = Path(__file__).resolve().parents[2]
PEM_MARK = b"-----BEGIN " + b"PRIVATE KEY"  # split so this file never matches its own scan


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("signing")
    keys = root / "keys"
    keys.mkdir()
    pub = signing.generate_key(keys / "device.pem")
    other = signing.generate_key(keys / "other.pem")
    unsigned = make_tiny_bundle(root / "unsigned")
    folder = make_tiny_bundle(root / "folder")
    zipped = make_tiny_bundle(root / "bundle.zip", as_zip=True)
    foreign = make_tiny_bundle(root / "foreign", seed=1)  # a different model, same key
    for b in (folder, zipped, foreign):
        signing.sign_bundle(b, keys / "device.pem")
    return {"root": root, "keys": keys, "pub": pub, "other": other, "unsigned": unsigned,
            "folder": folder, "zipped": zipped, "foreign": foreign}


def _copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def test_round_trip_folder_and_zip(world):
    for path in (world["folder"], world["zipped"]):
        with Bundle.open(path, trusted_keys=[world["pub"]]) as b:
            assert b.verified and b.signature.key_id == world["pub"].key_id
        with Bundle.open(path, trusted_keys=()) as b:  # no trusted keys: as before, unverified
            assert not b.verified and b.signature.key_id == world["pub"].key_id
    clf = Classifier(world["folder"], trusted_keys=[str(world["keys"] / "device.pem.pub")])
    assert clf.info()["signature"] == {"verified": True, "key_id": world["pub"].key_id}
    frame = np.random.default_rng(0).integers(0, 255, (48, 64), np.uint8)
    assert clf.classify(frame).label
    assert Classifier(world["unsigned"], trusted_keys=[]).info()["signature"] == {"verified": False, "key_id": None}
    # a second key replaces the first signature (zip: still one manifest.sig member)
    z = _copy(world["zipped"], world["root"] / "resigned.zip")
    signing.sign_bundle(z, world["keys"] / "other.pem")
    assert zipfile.ZipFile(z).namelist().count(SIG) == 1
    with pytest.raises(BundleSignatureError) as e:
        Bundle.open(z, trusted_keys=[world["pub"]])
    assert e.value.reason == "untrusted-key"
    assert Bundle.open(z, trusted_keys=[world["other"]]).verified


def test_unsigned_and_wrong_key_refused(world):
    with pytest.raises(BundleSignatureError, match="unsigned") as e:
        Bundle.open(world["unsigned"], trusted_keys=[world["pub"]])
    assert e.value.reason == "unsigned"
    with pytest.raises(BundleSignatureError, match=world["pub"].key_id) as e:
        Classifier(world["folder"], trusted_keys=[world["other"]])
    assert e.value.reason == "untrusted-key"
    # A forged key id: the signature is by "other" but names the trusted key.
    b = _copy(world["folder"], world["root"] / "forged")
    raw = (b / MANIFEST_NAME).read_bytes()
    other_key = signing.load_private_key(world["keys"] / "other.pem")
    real = signing.read_signature(signing.sign_manifest(raw, other_key), "x")
    (b / SIG).write_bytes(signing.encode_signature(world["pub"].key_id, real.manifest_sha256, real.signature))
    with pytest.raises(BundleSignatureError) as e:
        Bundle.open(b, trusted_keys=[world["pub"]])
    assert e.value.reason == "bad-signature"


def test_truncated_signature_refused(world):
    b = _copy(world["folder"], world["root"] / "truncated")
    full = (b / SIG).read_bytes()
    for n in (0, 1, len(full) // 2, len(full) - 2, len(full) - 1):
        (b / SIG).write_bytes(full[:n])
        with pytest.raises(BundleSignatureError) as e:
            Bundle.open(b, trusted_keys=[world["pub"]])
        assert e.value.reason == "malformed", n
    info = signing.read_signature(full, "x")
    for short in (info.signature[:63], info.signature[:32], b""):  # shortened, re-encoded canonically
        (b / SIG).write_bytes(signing.encode_signature(info.key_id, info.manifest_sha256, short))
        with pytest.raises(BundleSignatureError, match="64 bytes") as e:
            Bundle.open(b, trusted_keys=[world["pub"]])
        assert e.value.reason == "malformed"


def test_signature_of_another_bundle_refused(world):
    b = _copy(world["folder"], world["root"] / "swapped-sig")
    shutil.copyfile(world["foreign"] / SIG, b / SIG)
    with pytest.raises(BundleSignatureError, match="another") as e:
        Bundle.open(b, trusted_keys=[world["pub"]])
    assert e.value.reason == "other-bundle"
    # manifest and signature both from the other (signed) bundle: the files then fail the manifest
    shutil.copyfile(world["foreign"] / MANIFEST_NAME, b / MANIFEST_NAME)
    with pytest.raises(BundleIntegrityError, match="sha256") as e:
        Bundle.open(b, trusted_keys=[world["pub"]])
    assert not isinstance(e.value, BundleSignatureError)


def _positions(size: int, rng, n: int) -> list[int]:
    if size <= n:
        return list(range(size))
    return sorted({0, size - 1, *rng.choice(size, n - 2, replace=False).tolist()})


def test_every_single_byte_change_of_a_signed_folder_refused(world, tmp_path):
    """Every position of manifest.sig, 1500 sampled positions of manifest.json, 48 of every other
    file (first and last always included), each XORed with a random non-zero byte: all refused, typed, naming
    the changed file; the untouched bundle still verifies after each restore."""
    b = _copy(world["folder"], tmp_path / "b")
    rng = np.random.default_rng(17)
    tried = refused = 0
    for rel in sorted(p.name for p in b.iterdir()):
        path = b / rel
        orig = path.read_bytes()
        n = {SIG: len(orig), MANIFEST_NAME: 1500}.get(rel, 48)
        for pos in _positions(len(orig), rng, n):
            bad = bytearray(orig)
            bad[pos] ^= int(rng.integers(1, 256))
            path.write_bytes(bad)
            tried += 1
            with pytest.raises(BundleIntegrityError) as e:  # BundleSignatureError is one too
                Bundle.open(b, trusted_keys=[world["pub"]])
            refused += 1
            if rel == MANIFEST_NAME:
                assert isinstance(e.value, BundleSignatureError) and "manifest" in str(e.value)
            elif rel == SIG:
                assert isinstance(e.value, BundleSignatureError)
            else:
                assert not isinstance(e.value, BundleSignatureError) and rel in str(e.value)
        path.write_bytes(orig)
    assert Bundle.open(b, trusted_keys=[world["pub"]]).verified
    assert tried == refused and tried > 1500 + 250 + 4 * 48
    print(f"\nsigned folder: {refused}/{tried} single-byte changes refused")


def test_single_byte_changes_of_a_signed_zip(world, tmp_path):
    """Zip: every sampled byte inside a member's (deflated) data is refused, or - a bit deflate
    never reads, such as the padding of a stream's last byte - the bundle that opens has byte
    for byte the signed content; a change anywhere else in the file (headers, directory) is
    refused or, when zip ignores it (a timestamp), leaves the content the signed one too."""
    src = world["zipped"]
    orig = src.read_bytes()
    with zipfile.ZipFile(src) as z:
        members = {i.filename: i for i in z.infolist()}
        content = {name: z.read(name) for name in members}
    rng = np.random.default_rng(5)
    z = tmp_path / "b.zip"
    inside = anywhere = accepted = inert = 0
    for name, info in members.items():
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for pos in _positions(info.compress_size, rng, 16):
            bad = bytearray(orig)
            bad[start + pos] ^= int(rng.integers(1, 256))
            z.write_bytes(bad)
            inside += 1
            try:
                b = Bundle.open(z, trusted_keys=[world["pub"]])
            except BundleIntegrityError:
                continue
            inert += 1
            with b:
                for other, data in content.items():
                    if other != SIG:
                        assert (b.root / other).read_bytes() == data, (name, pos, other)
    for pos in _positions(len(orig), rng, 48):
        bad = bytearray(orig)
        bad[pos] ^= int(rng.integers(1, 256))
        z.write_bytes(bad)
        anywhere += 1
        try:
            b = Bundle.open(z, trusted_keys=[world["pub"]])
        except (BundleIntegrityError, bundle_mod.BundleError):
            continue
        accepted += 1
        with b:
            for name, data in content.items():
                if name != SIG:
                    assert (b.root / name).read_bytes() == data, (pos, name)
    assert inert <= len(members)  # at most the last byte's padding of each stream
    print(f"\nsigned zip: {inside - inert}/{inside} member-data changes refused ({inert} inert); "
          f"{anywhere - accepted}/{anywhere} "
          f"changes anywhere refused, the {accepted} accepted ones left the content unchanged")


def test_signature_checked_before_the_manifest_is_parsed(world, monkeypatch):
    def must_not_run(*a, **k):
        raise AssertionError("parsed or hashed before the signature check")

    unsigned_zip = make_tiny_bundle(world["root"] / "unsigned.zip", as_zip=True)
    monkeypatch.setattr(bundle_mod, "_read_manifest", must_not_run)
    monkeypatch.setattr(bundle_mod, "_verify_file", must_not_run)
    for path in (world["unsigned"], unsigned_zip):
        with pytest.raises(BundleSignatureError):
            Bundle.open(path, trusted_keys=[world["pub"]])


def test_trusted_keys_from_the_environment(world, monkeypatch):
    monkeypatch.setenv(signing.ENV_TRUSTED_KEYS, f"{world['other'].text},{world['keys'] / 'device.pem.pub'}")
    assert Classifier(world["folder"]).info()["signature"]["verified"]
    with pytest.raises(BundleSignatureError, match="unsigned"):
        Classifier(world["unsigned"])
    assert not Classifier(world["unsigned"], trusted_keys=[]).info()["signature"]["verified"]  # explicit off
    monkeypatch.setenv(signing.ENV_TRUSTED_KEYS, "ed25519:not-base64!")
    with pytest.raises(ValueError, match="base64"):
        Bundle.open(world["folder"])


def test_cli_keygen_sign_verify(world, tmp_path, capsys):
    key = tmp_path / "k.pem"
    assert cli_main(["keygen", str(key)]) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pub = (tmp_path / "k.pem.pub").read_text().strip()
    assert f"public key: {pub}" in out and f"key id: {signing.load_public_key(pub).key_id}" in out
    assert cli_main(["keygen", str(key)]) == 1  # never overwrites
    b = _copy(world["unsigned"], tmp_path / "b")
    assert cli_main(["verify", str(b), "--trusted", pub]) == 1
    assert "unsigned" in capsys.readouterr().err
    assert cli_main(["sign", str(b), "--key", str(key)]) == 0
    assert cli_main(["verify", str(b), "--trusted", str(tmp_path / "k.pem.pub")]) == 0
    assert "verified" in capsys.readouterr().out
    assert cli_main(["verify", str(b), "--trusted", world["pub"].text]) == 1
    # the key never goes into a bundle, by either door
    assert cli_main(["keygen", str(b / "inside.pem")]) == 1
    shutil.copyfile(key, b / "k.pem")
    assert cli_main(["sign", str(b), "--key", str(b / "k.pem")]) == 1
    assert "inside the bundle" in capsys.readouterr().err
    shared = tmp_path / "shared.pem"
    shutil.copyfile(key, shared)
    shared.chmod(0o644)
    assert cli_main(["sign", str(b), "--key", str(shared)]) == 1  # a key others can read is refused
    assert "chmod 600" in capsys.readouterr().err


def _scan(data: bytes, secrets: list[bytes]) -> bool:
    return PEM_MARK in data or any(s in data for s in secrets)


def test_no_private_key_in_any_bundle_or_the_repository(world):
    from cryptography.hazmat.primitives import serialization as s

    secrets = []
    for name in ("device.pem", "other.pem"):
        pem = (world["keys"] / name).read_bytes()
        raw = signing.load_private_key(world["keys"] / name).private_bytes(
            s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption())
        secrets += [raw, pem.splitlines()[1]]  # the 32 secret bytes and the PEM body line
    assert _scan((world["keys"] / "device.pem").read_bytes(), secrets)  # the scan finds a key
    for b in (world["folder"], world["zipped"], world["foreign"]):
        files = [p for p in Path(b).rglob("*") if p.is_file()] if Path(b).is_dir() else [Path(b)]
        for p in files:
            assert not _scan(p.read_bytes(), secrets), p
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    found = [name for name in listed if name and (REPO / os.fsdecode(name)).is_file()
             and _scan((REPO / os.fsdecode(name)).read_bytes(), [])]
    assert found == [], f"private key material in the repository: {found}"


def test_a_bundle_opened_elsewhere_is_held_to_the_trusted_keys(world, monkeypatch):
    with Bundle.open(world["unsigned"], trusted_keys=()) as b, pytest.raises(BundleSignatureError) as e:
        Classifier(b, trusted_keys=[world["pub"]])
    assert e.value.reason == "unsigned"
    with Bundle.open(world["folder"], trusted_keys=()) as b:
        with pytest.raises(BundleSignatureError, match="not a trusted key"):
            Classifier(b, trusted_keys=[world["other"]])
        assert Classifier(b, trusted_keys=[world["pub"]]).info()["signature"]["verified"]
    monkeypatch.setenv(signing.ENV_TRUSTED_KEYS, world["pub"].text)
    with Bundle.open(world["unsigned"], trusted_keys=()) as b, pytest.raises(BundleSignatureError):
        Classifier(b)


def test_a_signature_that_is_not_a_file_in_the_bundle(world, tmp_path):
    outside = tmp_path / "elsewhere.sig"
    shutil.copyfile(world["folder"] / SIG, outside)
    for make in (lambda p: p.symlink_to(outside), lambda p: p.mkdir()):
        b = _copy(world["unsigned"], tmp_path / f"b{len(list(tmp_path.iterdir()))}")
        make(b / SIG)
        with pytest.raises(BundleSignatureError) as e:
            Bundle.open(b, trusted_keys=[world["pub"]])
        assert e.value.reason == "malformed"
        assert not Bundle.open(b, trusted_keys=()).verified  # without trusted keys: as before
