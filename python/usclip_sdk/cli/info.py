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


def run(args: argparse.Namespace) -> int:
    info = collect(args.bundle)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    for key, val in info.items():
        if isinstance(val, dict):
            print(f"{key}:")
            for k, v in val.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {val}")
    return 0
