"""The model bundle: the one artifact the SDK loads (a folder, or the same files in one .zip).

``Bundle.open(path)`` reads manifest.json (schema in ``bundle_manifest``), checks that every
listed path stays inside the bundle, and verifies the size and sha256 of every file by
streaming it (a bundle is hundreds of MB; it is never read into memory to be hashed). A zip is
unpacked member by member into a private temporary folder, hashing as it copies, so nothing
is written outside that folder and a member larger than the manifest says stops the copy.

Only safe formats are ever loaded: ONNX, JSON and ``.npy`` with ``allow_pickle=False``.
``write_bundle`` (numpy-only) is the one writer, used by the training-side exporter, so the
format is owned here, beside its reader.

Signatures (``signing``): with trusted keys (``open(trusted_keys=...)`` or USCLIP_TRUSTED_KEYS)
the Ed25519 signature in ``manifest.sig`` is checked against the raw manifest bytes before the
manifest is even parsed, then every file is hashed against the manifest as always; without
them a bundle opens as before and ``verified`` is False.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

import numpy as np

from .bundle_manifest import (FORMAT_VERSION, SAFE_SUFFIXES, EncoderSpec, FileEntry, Manifest,
                              PreprocessSpec, TextSpec, manifest_to_dict, parse_manifest)
from .errors import BundleError, BundleIntegrityError
from .signing import (SIGNATURE_NAME, ZIP_OPTIONS, SignatureInfo, describe_unverified, encode_signature,
                      trusted_keys_from, verify_manifest)

__all__ = ["Bundle", "write_bundle", "sha256_file", "check_relative_path", "MANIFEST_NAME"]

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20
_MAX_MANIFEST = 16 << 20  # a manifest is a few KB; refuse to parse a huge one


def sha256_file(path: str | os.PathLike) -> str:
    """Streaming sha256 of a file (1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_relative_path(p: str) -> str:
    """``p`` if it is a safe bundle-relative POSIX path with a safe suffix, else BundleError."""
    pp = PurePosixPath(p)
    if (not p or "\\" in p or ":" in p or pp.is_absolute() or any(part in ("..", ".", "") for part in p.split("/"))):
        raise BundleError(f"bundle path {p!r}: expected a relative path inside the bundle "
                          "(no absolute path, '..', '.', backslash or drive)")
    if pp.suffix not in SAFE_SUFFIXES:
        raise BundleError(f"bundle path {p!r}: file type {pp.suffix!r} is not loadable; "
                          f"safe types are {list(SAFE_SUFFIXES)}")
    return p


def _inside(root: Path, rel: str) -> Path:
    # resolve() follows symlinks, so a link pointing out of the bundle is caught here too.
    full = (root / rel).resolve()
    if not full.is_relative_to(root.resolve()):
        raise BundleError(f"bundle file {rel!r}: resolves to {full}, outside the bundle folder {root}")
    return full


def _verify_file(path: Path, rel: str, entry: FileEntry) -> None:
    if not path.is_file():
        raise BundleIntegrityError(f"bundle file {rel!r}: missing (listed in manifest.json)")
    size = path.stat().st_size
    if size != entry.size:
        raise BundleIntegrityError(f"bundle file {rel!r}: size {size} bytes, manifest says {entry.size}")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise BundleIntegrityError(
            f"bundle file {rel!r}: sha256 {digest} does not match the manifest ({entry.sha256}); "
            "the file was modified or belongs to another bundle")


def _read_manifest(raw: bytes, where: str) -> Manifest:
    if len(raw) > _MAX_MANIFEST:
        raise BundleError(f"{where}: manifest.json is {len(raw)} bytes, more than {_MAX_MANIFEST}")
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{where}: manifest.json is not valid UTF-8 JSON ({e})") from None
    m = parse_manifest(d)
    for rel in m.files:
        check_relative_path(rel)
    return m


def _check_signature(raw: bytes, sig_raw: bytes | None, trusted, where: str) -> SignatureInfo | None:
    # Runs on the raw manifest bytes, before json parses them and before any model file is read.
    if trusted is None:
        return describe_unverified(sig_raw)
    return verify_manifest(raw, sig_raw, trusted, where)


def _read_folder_signature(src: Path) -> bytes | None:
    p = src / SIGNATURE_NAME
    if not p.exists() and not p.is_symlink():
        return None
    if not p.resolve().is_relative_to(src.resolve()) or not p.is_file():
        return b""  # a link out of the bundle or a folder: malformed when checked, ignored otherwise
    with open(p, "rb") as f:
        return f.read(_MAX_MANIFEST)  # read_signature refuses anything over 4 KB


def _unzip_verified(zpath: Path, dest: Path, trusted) -> tuple[Manifest, SignatureInfo | None]:
    with zipfile.ZipFile(zpath) as z:
        try:
            info = z.getinfo(MANIFEST_NAME)
        except KeyError:
            raise BundleError(f"{zpath}: no manifest.json at the root of the zip") from None
        if info.file_size > _MAX_MANIFEST:
            raise BundleError(f"{zpath}: manifest.json is {info.file_size} bytes, more than {_MAX_MANIFEST}")
        raw = z.read(info)
        sig_raw = None
        if SIGNATURE_NAME in z.namelist():
            sinfo = z.getinfo(SIGNATURE_NAME)
            if sinfo.file_size > _MAX_MANIFEST:
                raise BundleError(f"{zpath}: {SIGNATURE_NAME} is {sinfo.file_size} bytes")
            sig_raw = z.read(sinfo)
        sig = _check_signature(raw, sig_raw, trusted, str(zpath))
        m = _read_manifest(raw, str(zpath))
        (dest / MANIFEST_NAME).write_bytes(raw)
        members = set(z.namelist())
        for rel, entry in m.files.items():
            if rel not in members:
                raise BundleIntegrityError(f"bundle file {rel!r}: missing from {zpath.name}")
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            h, n = hashlib.sha256(), 0
            with z.open(rel) as src, open(out, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    n += len(chunk)
                    if n > entry.size:  # stop a zip bomb or a swapped member early
                        raise BundleIntegrityError(
                            f"bundle file {rel!r}: larger than the {entry.size} bytes the manifest says")
                    h.update(chunk)
                    dst.write(chunk)
            if n != entry.size:
                raise BundleIntegrityError(f"bundle file {rel!r}: size {n} bytes, manifest says {entry.size}")
            if h.hexdigest() != entry.sha256:
                raise BundleIntegrityError(
                    f"bundle file {rel!r}: sha256 {h.hexdigest()} does not match the manifest ({entry.sha256})")
    return m, sig


class Bundle:
    """An opened, verified bundle. Use as a context manager (or ``close()``) for zip bundles.

    What the runtime needs: ``encoder_path(tower, precision)`` and ``encoder(...)`` (ONNX path
    and its input/output names and dtypes), ``class_embeddings()`` (N x D float32, rows
    L2-normalised, in ``class_names`` order), ``preprocess`` (image size, mean/std, resize mode),
    ``text`` + ``tokenizer_path`` (tokenizer.json, context length, inputs), ``logit_scale``,
    ``logit_bias``, ``class_names``, ``group_sizes`` and ``id`` (sha256 of manifest.json).
    ``signature``: what manifest.sig says (None when unsigned); ``verified``: True only when it
    was checked against a trusted key.
    """

    def __init__(self, source: Path, root: Path, manifest: Manifest, manifest_sha256: str,
                 tmp: tempfile.TemporaryDirectory | None, signature: SignatureInfo | None = None) -> None:
        self.source, self.root, self.manifest, self.id = source, root, manifest, manifest_sha256
        self._tmp = tmp
        self.signature = signature
        self.verified = bool(signature and signature.verified)

    @classmethod
    def open(cls, path: str | os.PathLike, trusted_keys=None) -> "Bundle":
        """Open and verify a bundle folder or .zip; raises BundleError (or a subclass) on any fault.

        ``trusted_keys``: public keys (``signing.load_public_key`` forms); None reads
        USCLIP_TRUSTED_KEYS, an empty list turns the signature check off. With keys, an unsigned,
        foreign-signed or modified bundle is a BundleSignatureError / BundleIntegrityError."""
        src = Path(path)
        trusted = trusted_keys_from(trusted_keys)
        if src.is_dir():
            mpath = src / MANIFEST_NAME
            if not mpath.is_file():
                raise BundleError(f"{src}: not a bundle (no manifest.json)")
            raw = mpath.read_bytes()
            sig = _check_signature(raw, _read_folder_signature(src), trusted, str(src))
            m = _read_manifest(raw, str(src))
            for rel, entry in m.files.items():
                _verify_file(_inside(src, rel), rel, entry)
            return cls(src, src, m, hashlib.sha256(raw).hexdigest(), None, sig)
        if src.is_file() and zipfile.is_zipfile(src):
            tmp = tempfile.TemporaryDirectory(prefix="usclip-bundle-")
            try:
                m, sig = _unzip_verified(src, Path(tmp.name), trusted)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # a CRC, header or deflate stream
                tmp.cleanup()                                          # that no longer matches its member
                raise BundleIntegrityError(f"{src}: damaged zip ({type(e).__name__}: {e})") from None
            except BaseException:
                tmp.cleanup()
                raise
            raw = (Path(tmp.name) / MANIFEST_NAME).read_bytes()
            return cls(src, Path(tmp.name), m, hashlib.sha256(raw).hexdigest(), tmp, sig)
        if not src.exists():
            raise BundleError(f"{src}: no such bundle (expected a folder or a .zip)")
        raise BundleError(f"{src}: not a bundle (expected a folder with manifest.json or a .zip)")

    def require_trusted(self, trusted_keys=None) -> None:
        """Hold an already opened bundle to ``trusted_keys`` (None: USCLIP_TRUSTED_KEYS; none
        configured: no check): BundleSignatureError unless signed by one of them."""
        trusted = trusted_keys_from(trusted_keys)
        if trusted is None:
            return
        raw = (self.root / MANIFEST_NAME).read_bytes()
        if hashlib.sha256(raw).hexdigest() != self.id:
            raise BundleIntegrityError(f"{self.source}: manifest.json changed since the bundle was opened")
        sig = self.signature
        sig_raw = None if sig is None else encode_signature(sig.key_id, sig.manifest_sha256, sig.signature)
        self.signature = verify_manifest(raw, sig_raw, trusted, str(self.source))
        self.verified = True

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Bundle({str(self.source)!r}, model={self.manifest.model.name!r}, id={self.id[:12]})"

    # -- files ---------------------------------------------------------------------------
    def file(self, rel: str) -> Path:
        """Local path of a manifest-listed file (only listed, verified files are reachable)."""
        if rel not in self.manifest.files:
            raise BundleError(f"bundle file {rel!r}: not listed in manifest.json; "
                              f"listed: {sorted(self.manifest.files)}")
        return _inside(self.root, rel)

    def precisions(self, tower: str = "image") -> tuple[str, ...]:
        return tuple(self.manifest.encoders.get(tower, {}))

    def encoder(self, tower: str = "image", precision: str = "fp32") -> EncoderSpec:
        """The ONNX encoder spec of ``tower`` ("image"|"text") at ``precision``."""
        by_prec = self.manifest.encoders.get(tower)
        if by_prec is None:
            raise BundleError(f"bundle has no {tower!r} encoder; towers: {sorted(self.manifest.encoders)}")
        if precision not in by_prec:
            raise BundleError(f"bundle has no {precision!r} {tower} encoder; available: {sorted(by_prec)}")
        return by_prec[precision]

    def encoder_path(self, tower: str = "image", precision: str = "fp32") -> Path:
        return self.file(self.encoder(tower, precision).path)

    def file_sha256(self, rel: str) -> str:
        return self.manifest.files[rel].sha256

    # -- model facts ---------------------------------------------------------------------
    @property
    def preprocess(self) -> PreprocessSpec:
        return self.manifest.preprocess

    @property
    def text(self) -> TextSpec:
        return self.manifest.text

    @property
    def tokenizer_path(self) -> Path:
        return self.file(self.manifest.text.tokenizer)

    @property
    def class_names(self) -> tuple[tuple[str, str], ...]:
        return self.manifest.taxonomy.class_names

    @property
    def group_sizes(self) -> tuple[int, ...]:
        return self.manifest.taxonomy.group_sizes

    @property
    def logit_scale(self) -> float:
        return self.manifest.model.logit_scale

    @property
    def logit_bias(self) -> float | None:
        return self.manifest.model.logit_bias

    def class_embeddings(self) -> np.ndarray:
        """N x D float32 prompt-ensemble embeddings, rows unit-norm, in ``class_names`` order."""
        rel = self.manifest.class_embeddings
        arr = np.load(self.file(rel), allow_pickle=False)
        n, d = len(self.class_names), self.manifest.model.embed_dim
        if arr.shape != (n, d) or arr.dtype != np.float32:
            raise BundleError(f"bundle file {rel!r}: expected float32 {(n, d)}, found {arr.dtype} {arr.shape}")
        norms = np.linalg.norm(arr, axis=1)
        if not np.all(np.isfinite(arr)) or np.max(np.abs(norms - 1.0)) > 1e-3:
            raise BundleError(f"bundle file {rel!r}: rows must be finite and unit-norm "
                              f"(norms in [{norms.min():.4f}, {norms.max():.4f}])")
        return arr

    def tokenize(self, texts: str | Sequence[str]) -> dict[str, np.ndarray]:
        """Token ids and attention mask (int64, B x context_length) exactly as the exporter's
        open_clip HFTokenizer produced them; keys are the text encoder's input names."""
        from .text_tokenize import tokenize  # tokenizers is only needed for free text

        return tokenize(self.tokenizer_path, self.manifest.text, texts)


def _entry(path: Path) -> dict:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def write_bundle(out: str | os.PathLike, manifest: Mapping, files: Mapping[str, str | os.PathLike | bytes],
                 class_embeddings: np.ndarray, *, as_zip: bool = False, overwrite: bool = False) -> Path:
    """Write a bundle (folder, or .zip when ``as_zip``) and return its path.

    ``manifest`` is every manifest section except ``format_version``, ``files`` and the
    embeddings path (filled in here); ``files`` maps bundle-relative paths to source files or
    bytes. The result is re-opened and verified before this returns.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"write_bundle: {out} exists (pass overwrite=True to replace it)")
    emb = np.ascontiguousarray(class_embeddings, dtype=np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)  # the .partial and the final rename live there
    stage = Path(tempfile.mkdtemp(prefix=".usclip-bundle-", dir=out.parent))
    try:
        for rel, src in files.items():
            dst = stage / check_relative_path(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                dst.write_bytes(src)
            else:
                shutil.copyfile(src, dst)
        np.save(stage / "class_embeddings.npy", emb, allow_pickle=False)
        all_files = sorted(set(files) | {"class_embeddings.npy"})
        d = dict(manifest, format_version=FORMAT_VERSION, class_embeddings="class_embeddings.npy",
                 files={rel: _entry(stage / rel) for rel in all_files})
        d = manifest_to_dict(parse_manifest(d))  # validate before anything is published
        (stage / MANIFEST_NAME).write_text(json.dumps(d, indent=1, sort_keys=True) + "\n")
        return _publish(stage, out, all_files, as_zip)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out: Path, rels: list[str], as_zip: bool) -> Path:
    tmp_out = out.with_name(out.name + ".partial")
    if as_zip:
        with zipfile.ZipFile(tmp_out, "w", **ZIP_OPTIONS) as z:
            z.write(stage / MANIFEST_NAME, MANIFEST_NAME)
            for rel in rels:
                z.write(stage / rel, rel)
    else:
        os.replace(stage, tmp_out)  # the stage lies beside ``out``: a rename, not a second copy
        # mkdtemp made the stage 0700: give the bundle folder the mode any new folder gets
        # here (umask), so other users and services can read it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_out, 0o777 & ~umask)
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    os.replace(tmp_out, out)  # atomic publish: readers never see half a bundle
    with Bundle.open(out, trusted_keys=()):  # not signed yet: check integrity only
        pass
    return out
