"""`usclip info`: backends, GPU, TensorRT version, native build flags, bundle details."""
from __future__ import annotations

import argparse
import json
import platform
import sys

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show backends, GPU, native build and bundle details")
    p.add_argument("--bundle", help="bundle folder or .zip (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def collect(bundle_path: str | None) -> dict:
    from .. import __version__, ops
    from ..backends import available_backends
    from ..backends.tensorrt import tensorrt_version

    out: dict = {"usclip_sdk": __version__, "python": sys.version.split()[0],
                 "platform": platform.platform(), "machine": platform.machine()}
    try:
        out["native"] = ops.build_info()
    except ImportError as e:
        out["native"] = {"error": str(e)}
    out["backends"] = available_backends()
    out["tensorrt"] = tensorrt_version()
    try:
        import onnxruntime as ort

        out["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    except ImportError:
        out["onnxruntime"] = None
    out["bundle"] = _bundle_info(bundle_path)
    return out


def _bundle_info(path: str | None) -> dict:
    from ..bundle import Bundle
    from ..errors import BundleError
    from ..models import default_bundle_path

    try:
        b = Bundle.open(path or default_bundle_path())
    except BundleError as e:
        return {"error": str(e)}
    m = b.manifest
    return {"path": str(b.source), "id": b.id[:16], "model": m.model.name,
            "embed_dim": m.model.embed_dim, "image_size": list(m.preprocess.image_size),
            "taxonomy": m.taxonomy.version, "classes": len(m.taxonomy.class_names),
            "encoders": {t: sorted(p) for t, p in m.encoders.items()},
            "files": {k: v.size for k, v in m.files.items()},
            "signature": {"verified": b.verified, "key_id": b.signature.key_id if b.signature else None}}


def _cuda_in_words(reason: str) -> str:
    """The CUDA runtime's error name, said as what it means for the user (JSON keeps the raw text)."""
    if "InsufficientDriver" in reason or "NoDriver" in reason or "libcuda" in reason:
        return "no GPU driver found (the CUDA kernels are built but cannot run here)"
    if "NoDevice" in reason or "no CUDA-capable device" in reason:
        return "no GPU found"
    return reason


def _in_words(info: dict) -> dict:
    info = dict(info)
    native = info.get("native")
    if isinstance(native, dict) and native.get("cuda_reason"):
        info["native"] = dict(native, cuda_reason=_cuda_in_words(str(native["cuda_reason"])))
    if info.get("tensorrt") is None:
        info["tensorrt"] = "TensorRT not installed"
    return info


def run(args: argparse.Namespace) -> int:
    info = collect(args.bundle)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    for key, val in _in_words(info).items():
        if isinstance(val, dict):
            print(f"{key}:")
            for k, v in val.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {val}")
    return 0
