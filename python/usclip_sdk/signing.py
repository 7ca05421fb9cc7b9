"""Signed bundles: an Ed25519 signature over manifest.json, so a device can pin the models it accepts.

The sha256 manifest detects corruption, not tampering: whoever can change a file can change the
manifest too. The signature closes that gap. It covers the exact bytes of manifest.json (which
lists every file's size and sha256), so one check of 64 bytes vouches for the whole bundle once
the files are hashed against the manifest, as ``Bundle.open`` always does.

The signature lives beside the manifest, as ``manifest.sig`` (a folder file or a zip member);
it is not listed in the manifest (it cannot be: it signs it). Its content is one canonical
JSON line::

    {"algorithm":"ed25519","key_id":"<16 hex>","manifest_sha256":"<64 hex>","signature":"<128 hex>",
     "version":1}

Canonical means the reader re-encodes what it parsed and demands the same bytes, so no byte of
the file can change without the check failing (no insignificant whitespace, upper-case hex or
base64 padding bits to flip). ``manifest_sha256`` is not trusted for anything: it only lets the
error say "signature of another bundle" rather than "bad signature".

Keys: the private key is a PKCS#8 PEM file written with mode 0600 (``usclip keygen``); a public
key is written and printed as ``ed25519:<base64 of its 32 bytes>``; its key id is the first 16
hex digits of the sha256 of those 32 bytes. Trusted keys come from ``Classifier(trusted_keys=...)``
/ ``Bundle.open(trusted_keys=...)`` or, when those are not given, the ``USCLIP_TRUSTED_KEYS``
environment variable (keys or public-key files, separated by commas).
The signed message is a domain tag plus the manifest bytes, so a usclip signature cannot be
replayed as a signature of anything else made with the same key.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BundleSignatureError, UsclipError

# How a .zip bundle stores its members (write_bundle and sign_bundle alike). Deflate: the int8
# encoders shrink 22 %, the fp16-weight one 8 % (the shipped bundle 41.3 -> 33.7 MB); opening
# inflates every member once into the temporary folder it verifies anyway (sha256 per member).
ZIP_OPTIONS = {"compression": zipfile.ZIP_DEFLATED, "compresslevel": 6}

__all__ = [
    "ENV_TRUSTED_KEYS",
    "SIGNATURE_NAME",
    "PublicKey",
    "SignatureInfo",
    "describe_unverified",
    "encode_signature",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "read_signature",
    "sign_bundle",
    "sign_manifest",
    "trusted_keys_from",
    "verify_manifest",
]

SIGNATURE_NAME = "manifest.sig"
ENV_TRUSTED_KEYS = "USCLIP_TRUSTED_KEYS"
_DOMAIN = b"usclip-bundle-manifest-signature-v1\n"
_PREFIX = "ed25519:"
_MAX_SIGNATURE_FILE = 4096  # the real file is ~250 bytes; refuse to parse a huge one


def _ed25519():
    # cryptography is a dependency of the SDK; imported here so a bundle without a signature
    # and a device without trusted keys never pay for loading it.
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


@dataclass(frozen=True)
class PublicKey:
    """A trusted (or signing) public key: its 32 raw bytes and its key id."""
    raw: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    @property
    def text(self) -> str:
        return _PREFIX + base64.b64encode(self.raw).decode("ascii")

    def verify(self, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            _ed25519().Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
            return True
        except InvalidSignature:
            return False


@dataclass(frozen=True)
class SignatureInfo:
    """What a bundle's signature says and whether it was checked against a trusted key."""
    key_id: str
    manifest_sha256: str
    signature: bytes = field(repr=False)
    verified: bool = False


def _public_from_private(priv) -> PublicKey:
    from cryptography.hazmat.primitives import serialization as s

    return PublicKey(priv.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw))


def generate_key(private_path: str | os.PathLike) -> PublicKey:
    """Write a new private key (PEM, mode 0600, never overwriting) and ``<path>.pub``; return the public key."""
    from cryptography.hazmat.primitives import serialization as s

    path = Path(private_path)
    if (path.parent / "manifest.json").exists():
        raise ValueError(f"{path}: refusing to write a private key into a bundle folder ({path.parent})")
    priv = _ed25519().Ed25519PrivateKey.generate()
    pem = priv.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    # O_EXCL: an existing key is never replaced (it may be the one the devices trust);
    # mode 0600 from the start, so the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = _public_from_private(priv)
    Path(str(path) + ".pub").write_text(pub.text + "\n")
    return pub


def load_private_key(path: str | os.PathLike):
    """The Ed25519 private key in a PEM file; ValueError naming the file when it is not one."""
    from cryptography.hazmat.primitives import serialization as s

    path = Path(path)
    mode = path.stat().st_mode & 0o077
    if mode and os.name == "posix":  # as ssh does: a key others can read is no longer private
        raise ValueError(f"{path}: private key is readable by group or others (mode "
                         f"{path.stat().st_mode & 0o777:o}); chmod 600 {path}")
    try:
        key = s.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
        raise TypeError(f"{path}: expected an Ed25519 private key, found {type(key).__name__}")
    return key


def load_public_key(key: str | os.PathLike | bytes | PublicKey) -> PublicKey:
    """A public key from its text (``ed25519:<base64>``), a file holding that text, or 32 raw bytes."""
    if isinstance(key, PublicKey):
        return key
    if isinstance(key, (bytes, bytearray)):
        if len(key) != 32:
            raise ValueError(f"trusted key: expected 32 raw Ed25519 bytes, found {len(key)}")
        return PublicKey(bytes(key))
    text = str(key).strip()
    if not text.startswith(_PREFIX):
        p = Path(text)
        if not p.is_file():
            raise ValueError(f"trusted key {text!r}: neither '{_PREFIX}<base64>' nor a public key file")
        text = p.read_text(errors="replace").strip()
        if not text.startswith(_PREFIX):
            raise ValueError(f"{p}: not a usclip public key file (expected one line '{_PREFIX}<base64>')")
    try:
        raw = base64.b64decode(text[len(_PREFIX):], validate=True)
    except ValueError:
        raise ValueError(f"trusted key {text!r}: the part after '{_PREFIX}' is not base64") from None
    return load_public_key(raw)


def trusted_keys_from(keys: Iterable | None) -> tuple[PublicKey, ...] | None:
    """The trusted keys: ``keys`` when given, else those of USCLIP_TRUSTED_KEYS, else None (no check).

    An empty sequence means "no check" explicitly (the environment is then not consulted)."""
    if keys is None:
        env = os.environ.get(ENV_TRUSTED_KEYS, "").strip()
        if not env:
            return None
        keys = [k for k in env.split(",") if k.strip()]  # not os.pathsep: "ed25519:" has a colon
    elif isinstance(keys, (str, bytes, os.PathLike, PublicKey)):
        keys = [keys]
    out = tuple(load_public_key(k) for k in keys)
    return out or None


def _message(manifest_raw: bytes) -> bytes:
    return _DOMAIN + manifest_raw


def encode_signature(key_id: str, manifest_sha256: str, signature: bytes) -> bytes:
    d = {"algorithm": "ed25519", "key_id": key_id, "manifest_sha256": manifest_sha256,
         "signature": signature.hex(), "version": 1}
    return (json.dumps(d, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


def sign_manifest(manifest_raw: bytes, private_key) -> bytes:
    """The content of ``manifest.sig`` for these exact manifest bytes."""
    pub = _public_from_private(private_key)
    sig = private_key.sign(_message(manifest_raw))
    return encode_signature(pub.key_id, hashlib.sha256(manifest_raw).hexdigest(), sig)


def read_signature(raw: bytes, where: str) -> SignatureInfo:
    """Parse a ``manifest.sig``; BundleSignatureError(reason="malformed") on any deviation."""
    def bad(why: str) -> BundleSignatureError:
        return BundleSignatureError(f"{where}: {SIGNATURE_NAME} is malformed ({why})", reason="malformed")

    if len(raw) > _MAX_SIGNATURE_FILE:
        raise bad(f"{len(raw)} bytes, more than {_MAX_SIGNATURE_FILE}")
    try:
        d = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not ASCII JSON: {e}") from None
    if not isinstance(d, dict) or sorted(d) != ["algorithm", "key_id", "manifest_sha256", "signature", "version"]:
        raise bad("expected the keys algorithm, key_id, manifest_sha256, signature, version")
    if d["version"] != 1 or d["algorithm"] != "ed25519":
        raise bad(f"version {d['version']!r} / algorithm {d['algorithm']!r}; this SDK reads version 1, ed25519")
    try:
        sig = bytes.fromhex(d["signature"]) if isinstance(d["signature"], str) else None
    except ValueError:
        sig = None
    if sig is None or len(sig) != 64:
        raise bad("the signature is not 64 bytes of hex (truncated?)")
    if not all(isinstance(d[k], str) for k in ("key_id", "manifest_sha256")):
        raise bad("key_id and manifest_sha256 must be strings")
    # Canonical form: the bytes must be exactly what encode_signature writes for these values.
    if encode_signature(d["key_id"], d["manifest_sha256"], sig) != raw:
        raise bad("not in canonical form (one JSON line, sorted keys, lower-case hex)")
    return SignatureInfo(d["key_id"], d["manifest_sha256"], sig)


def verify_manifest(manifest_raw: bytes, signature_raw: bytes | None, trusted: Sequence[PublicKey],
                    where: str) -> SignatureInfo:
    """Check the signature of these manifest bytes against ``trusted``; the verified info, else
    BundleSignatureError whose ``reason`` says which check failed: "unsigned", "malformed",
    "untrusted-key", "other-bundle" (made for another manifest) or "bad-signature"."""
    ids = ", ".join(k.key_id for k in trusted)
    if signature_raw is None:
        raise BundleSignatureError(
            f"{where}: bundle is unsigned (no {SIGNATURE_NAME}) but trusted keys are configured ({ids}); "
            "sign it with `usclip sign`", reason="unsigned")
    info = read_signature(signature_raw, where)
    key = next((k for k in trusted if k.key_id == info.key_id), None)
    if key is None:
        raise BundleSignatureError(
            f"{where}: signed by key {info.key_id}, which is not a trusted key (trusted: {ids})",
            reason="untrusted-key")
    actual = hashlib.sha256(manifest_raw).hexdigest()
    if info.manifest_sha256 != actual:
        raise BundleSignatureError(
            f"{where}: {SIGNATURE_NAME} was made for another manifest (sha256 {info.manifest_sha256[:16]}, "
            f"this manifest.json is {actual[:16]}): manifest.json changed after signing, or the "
            "signature belongs to another bundle", reason="other-bundle")
    if not key.verify(info.signature, _message(manifest_raw)):
        raise BundleSignatureError(
            f"{where}: the signature by key {info.key_id} does not verify: manifest.json or "
            f"{SIGNATURE_NAME} was modified", reason="bad-signature")
    return SignatureInfo(info.key_id, info.manifest_sha256, info.signature, verified=True)


def describe_unverified(signature_raw: bytes | None) -> SignatureInfo | None:
    """What an unchecked signature claims (for ``info()``), or None when absent or unreadable."""
    if signature_raw is None:
        return None
    try:
        return read_signature(signature_raw, "bundle")
    except UsclipError:
        return None


def sign_bundle(bundle_path: str | os.PathLike, private_key_path: str | os.PathLike) -> SignatureInfo:
    """Add (or replace) ``manifest.sig`` in a bundle folder or .zip, then re-open it against the
    signing key to prove the result verifies. The private key never enters the bundle."""
    import tempfile
    import zipfile

    from .bundle import MANIFEST_NAME, Bundle

    src = Path(bundle_path)
    key_path = Path(private_key_path).resolve()
    if src.is_dir() and key_path.is_relative_to(src.resolve()):
        raise ValueError(f"{private_key_path}: the private key is inside the bundle {src}; move it out first")
    key = load_private_key(key_path)
    with Bundle.open(src, trusted_keys=()):  # sign only a bundle whose files match its manifest
        pass
    if src.is_dir():
        content = sign_manifest((src / MANIFEST_NAME).read_bytes(), key)
        tmp = src / (SIGNATURE_NAME + ".partial")
        tmp.write_bytes(content)
        os.replace(tmp, src / SIGNATURE_NAME)
    else:
        # Rewrite the zip (ZIP_OPTIONS, same members, new signature) and publish it atomically;
        # appending would leave a second, stale manifest.sig member behind.
        with zipfile.ZipFile(src) as zin:
            content = sign_manifest(zin.read(MANIFEST_NAME), key)
            fd, tmp_name = tempfile.mkstemp(prefix=".usclip-sign-", suffix=".zip", dir=src.parent)
            os.close(fd)
            try:
                with zipfile.ZipFile(tmp_name, "w", **ZIP_OPTIONS) as zout:
                    for item in zin.infolist():
                        if item.filename != SIGNATURE_NAME:
                            with zin.open(item) as r, zout.open(item.filename, "w") as w:
                                while chunk := r.read(1 << 20):
                                    w.write(chunk)
                    zout.writestr(SIGNATURE_NAME, content)
                os.chmod(tmp_name, src.stat().st_mode & 0o777)  # mkstemp made it 0600
                os.replace(tmp_name, src)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
    with Bundle.open(src, trusted_keys=[_public_from_private(key)]) as b:
        return b.signature
