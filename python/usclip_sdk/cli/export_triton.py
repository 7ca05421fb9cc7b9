"""``usclip export-triton BUNDLE --out DIR``: a Triton Inference Server model repository.

SDK-side (no torch): ``DIR/model_repository`` holds the pipeline model (Python backend: frame
in, nine attributes out), the bundle's ONNX encoders and any cached TensorRT engines
(``usclip build-engine``); ``DIR/client`` and ``DIR/README.md`` sit beside it. See
``usclip_sdk.triton_repo``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser("export-triton", help="write a Triton model repository from a bundle",
                              description="Write a Triton Inference Server model repository: the SDK "
                                          "pipeline as a python-backend model, onnxruntime encoder models, "
                                          "plus tensorrt_plan models for cached engines.")
    p.add_argument("bundle", type=Path, help="bundle folder or .zip")
    p.add_argument("--out", type=Path, required=True, help="output folder (model_repository/, client/, README.md)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="which ONNX variant the onnxruntime models serve (falls back to fp32 when absent)")
    p.add_argument("--max-batch", type=int, default=8, help="max_batch_size of the onnxruntime and pipeline models")
    p.add_argument("--instances", type=int, default=1, help="model instances per GPU/CPU")
    p.add_argument("--kind", choices=("gpu", "cpu"), default="gpu",
                   help="instance kind of the onnxruntime and pipeline models")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="engine cache (default: $USCLIP_ENGINE_CACHE, else the user cache folder)")
    p.add_argument("--overwrite", action="store_true", help="replace a repository already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bundle import Bundle
    from ..triton_repo import REPOSITORY, write_triton_repo

    with Bundle.open(args.bundle) as bundle:
        models = write_triton_repo(bundle, args.out, precision=args.precision, max_batch_size=args.max_batch,
                                   instances=args.instances, kind=f"KIND_{args.kind.upper()}",
                                   cache_dir=args.cache_dir, overwrite=args.overwrite)
    repo = args.out / REPOSITORY
    for m in models.values():
        print(f"{repo / m.name}\t{m.platform}\tmax_batch_size={m.max_batch_size}")
    print(f"serve: tritonserver --model-repository={repo}  (see {args.out / 'README.md'})", file=sys.stderr)
    return 0
