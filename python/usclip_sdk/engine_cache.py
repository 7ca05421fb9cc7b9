"""TensorRT engine cache: keys, sidecars, lookups. Pure Python (no TensorRT).

An engine only runs on the TensorRT version and GPU it was built for (a Jetson Orin Nano and an
Orin NX share name and compute capability 8.7 but not their SM count, and TensorRT tunes
tactics per device), and only means something for the ONNX file, precision, batch profile and
builder options it was built from. Engines live in ``cache_dir=`` when given, else
``$USCLIP_ENGINE_CACHE``, else the user cache folder (``~/.cache/usclip/engines`` on Linux;
usclip_sdk.settings), in one folder per bundle path - never in site-packages beside a shipped
bundle. Each cached engine ``<tower>-<precision>-b<min>_<opt>_<max>-<digest16>.engine`` has a JSON sidecar
(``.json``) holding that key and the engine's own sha256. A lookup that finds an engine whose
sidecar disagrees (a TensorRT upgrade, another GPU, a re-exported bundle, a swapped or
truncated engine file) reports which fields differ, so the caller rebuilds or raises a clear
``EngineError`` - never "version tag does not match" from deep inside TensorRT.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from .bundle import sha256_file
from .errors import DeviceError, EngineError

__all__ = ["Profile", "EngineKey", "GpuInfo", "parse_batch", "cache_dir_for", "engine_path",
           "write_sidecar", "lookup", "read_engine", "gpu_info", "sm_count", "SIDECAR_VERSION"]

SIDECAR_VERSION = 1


@dataclass(frozen=True)
class Profile:
    """One optimisation profile over the batch dimension."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        vals = (self.min, self.opt, self.max)
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in vals)
        if not ints or not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"batch profile: expected integers 1 <= MIN <= OPT <= MAX, found {vals}")

    def __str__(self) -> str:
        return f"{self.min},{self.opt},{self.max}"


def parse_batch(text: str) -> Profile:
    """'1,4,8' -> Profile(1, 4, 8); a single number N means N,N,N (a static batch)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--batch: expected MIN,OPT,MAX integers (e.g. 1,4,8), found {text!r}") from None
    if len(nums) == 1:
        nums *= 3
    if len(nums) != 3:
        raise ValueError(f"--batch: expected MIN,OPT,MAX (three integers), found {text!r}")
    return Profile(*nums)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.7" (Orin), "9.0" (H100)
    sm_count: int = 0  # multiprocessors; 0 = could not be read (no libcuda)


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine's validity depends on."""

    tower: str
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: tuple[int, int, int]
    sm_count: int = 0
    builder: str = ""  # builder options (engine_build.builder_options): flavour, flags, pins, workspace

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def filename(self) -> str:
        lo, opt, hi = self.profile
        return f"{self.tower}-{self.precision}-b{lo}_{opt}_{hi}-{self.digest()[:16]}.engine"


def cache_dir_for(bundle_source: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """The default engine folder of a bundle: ``<root>/<bundle name>-<path digest12>``, root =
    ``USCLIP_ENGINE_CACHE`` or the user cache folder. Engines are machine-specific and never
    travel with the (verified, read-only) bundle; one folder per bundle path keeps them apart."""
    from .settings import engine_cache_root

    src = Path(bundle_source).expanduser().resolve()
    tag = hashlib.sha256(str(src).encode()).hexdigest()[:12]
    return Path(root or engine_cache_root()) / f"{src.name}-{tag}"


def engine_path(cache_dir: str | os.PathLike, key: EngineKey) -> Path:
    return Path(cache_dir) / key.filename()


def write_sidecar(engine: str | os.PathLike, key: EngineKey, build: dict | None = None) -> Path:
    """Write ``<engine>.json`` (key, engine sha256/size, build options) atomically."""
    engine = Path(engine)
    side = engine.with_suffix(".json")
    data = {"sidecar_version": SIDECAR_VERSION, "key": asdict(key), "digest": key.digest(),
            "engine_sha256": sha256_file(engine), "engine_size": engine.stat().st_size, "build": build or {}}
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, side)
    return side


def read_engine(engine: str | os.PathLike, require_sidecar: bool = True) -> bytes:
    """The engine's bytes for TensorRT, checked against the sidecar's sha256 *in memory*: the
    bytes deserialised are the bytes hashed, so a file swapped after ``lookup`` (other bytes, same
    name) is an EngineError, never a foreign plan handed to TensorRT. Without ``require_sidecar``
    (an explicit ``engine=`` file the caller vouches for) an engine with no sidecar is read as is."""
    engine = Path(engine)
    blob = engine.read_bytes()
    side = engine.with_suffix(".json")
    if not side.is_file():
        if require_sidecar:
            raise EngineError(f"{engine}: its sidecar {side.name} is gone; rebuild it with usclip build-engine")
        return blob
    try:
        want = json.loads(side.read_text()).get("engine_sha256")
    except (OSError, json.JSONDecodeError, AttributeError) as e:
        raise EngineError(f"{side}: unreadable sidecar ({e}); rebuild the engine with usclip build-engine") from None
    got = hashlib.sha256(blob).hexdigest()
    if got != want:
        raise EngineError(f"{engine}: sha256 {got[:16]} does not match its sidecar ({str(want)[:16]}): the "
                          "engine file was replaced or modified; rebuild it with usclip build-engine")
    return blob


def _differences(found: dict, key: EngineKey) -> list[str]:
    want = asdict(key)
    return [f"{k}: cached {found.get(k)!r}, needed {v!r}" for k, v in want.items()
            if (list(found.get(k)) if isinstance(v, tuple) and found.get(k) is not None else found.get(k)) !=
            (list(v) if isinstance(v, tuple) else v)]


def lookup(cache_dir: str | os.PathLike, key: EngineKey) -> tuple[Path | None, list[str]]:
    """(path of a valid cached engine or None, reasons the cached one - if any - is unusable).

    The exact-key file is checked first; other engines for the same tower/precision/profile
    are read only to explain a miss (e.g. "tensorrt_version: cached '10.3.0', needed '10.7.0'").
    """
    cache_dir = Path(cache_dir)
    path = engine_path(cache_dir, key)
    side = path.with_suffix(".json")
    if path.is_file() and side.is_file():
        try:
            data = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError) as e:
            return None, [f"{side.name}: unreadable sidecar ({e})"]
        diffs = _differences(data.get("key", {}), key)
        if data.get("sidecar_version") != SIDECAR_VERSION:
            diffs.append(f"sidecar_version: cached {data.get('sidecar_version')!r}, needed {SIDECAR_VERSION}")
        if not diffs and (path.stat().st_size != data.get("engine_size")
                          or sha256_file(path) != data.get("engine_sha256")):
            diffs.append(f"{path.name}: engine file does not match its sidecar sha256 (modified or truncated)")
        return (None, diffs) if diffs else (path, [])
    if path.is_file():
        return None, [f"{path.name}: no sidecar {side.name}; cannot tell what it was built for"]
    lo, opt, hi = key.profile
    reasons = []
    for other in sorted(cache_dir.glob(f"{key.tower}-{key.precision}-b{lo}_{opt}_{hi}-*.json")):
        try:
            reasons += [f"{other.stem}: {d}" for d in _differences(json.loads(other.read_text()).get("key", {}), key)]
        except (OSError, json.JSONDecodeError):
            continue
    return None, reasons or [f"no cached engine {path.name} in {cache_dir}"]


def _from_native() -> GpuInfo | None:
    try:
        from .ops import build_info

        devices = build_info().get("cuda_devices") or []
    except Exception:  # extension not built / no CUDA: try the next source
        return None
    if not devices:
        return None
    d = devices[0]
    major, minor = d["compute_capability"]  # the native status gives a (major, minor) tuple
    return GpuInfo(str(d["name"]), f"{major}.{minor}")


def sm_count(device: int = 0) -> int:
    """Multiprocessor count of CUDA device ``device`` from the driver (libcuda, via ctypes: no
    extension rebuild, works on Jetson); 0 when no driver or device answers."""
    import ctypes
    import ctypes.util

    for name in ("libcuda.so.1", "libcuda.so", ctypes.util.find_library("cuda") or ""):
        try:
            cuda = ctypes.CDLL(name) if name else None
        except OSError:
            continue
        if cuda is None:
            continue
        dev, value = ctypes.c_int(), ctypes.c_int()
        multiprocessor_count = 16  # CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
        if (cuda.cuInit(0) == 0 and cuda.cuDeviceGet(ctypes.byref(dev), device) == 0 and
                cuda.cuDeviceGetAttribute(ctypes.byref(value), multiprocessor_count, dev) == 0):
            return int(value.value)
        return 0
    return 0


def _from_nvidia_smi() -> GpuInfo | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    name, _, cc = first.rpartition(",")
    return GpuInfo(name.strip(), cc.strip()) if name and cc else None


def gpu_info() -> GpuInfo:
    """Name, compute capability (our native extension, else nvidia-smi) and SM count (libcuda)
    of CUDA device 0."""
    info = _from_native() or _from_nvidia_smi()
    if info is None:
        raise DeviceError("no CUDA GPU found (neither usclip_sdk's CUDA status nor nvidia-smi reports one); "
                          "TensorRT engines are built on the GPU they will run on")
    return GpuInfo(info.name, info.compute_capability, sm_count())

