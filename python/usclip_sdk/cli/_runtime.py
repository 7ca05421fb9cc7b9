"""The options that open a Classifier from the command line, shared by the commands that run
the model (classify, demo, bench), so they are spelt, explained and applied the same way."""
from __future__ import annotations

import argparse

__all__ = ["add_runtime_options", "open_classifier"]


def add_runtime_options(p: argparse.ArgumentParser, engine_batch: bool = True,
                        precision: bool = False) -> None:
    p.add_argument("--bundle", help="bundle folder or .zip (default: the shipped model)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"],
                   help="inference runtime; auto: a TensorRT engine when one is usable, else onnxruntime")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the encoder runs; auto: the GPU when one is usable, else the CPU")
    if engine_batch:
        p.add_argument("--engine-batch", default="1,1,8", metavar="MIN,OPT,MAX",
                       help="TensorRT engine batch profile, as given to build-engine --batch")
    if precision:
        p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8", "int8_cpu"],
                       help="encoder precision; auto: the best the bundle ships for the device (default auto)")


def open_classifier(args: argparse.Namespace):
    from ..classifier import Classifier

    kw = {"engine_batch": args.engine_batch} if hasattr(args, "engine_batch") else {}
    if hasattr(args, "precision"):
        kw["precision"] = args.precision
    return Classifier(args.bundle, backend=args.backend, device=args.device, **kw)
