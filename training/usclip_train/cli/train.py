"""``usclip train``: train an Ultrasound-CLIP model on a US-365K-layout folder.

    usclip train --data DIR --model usclip-edge --out RUN_DIR [--config FILE] [--set k=v ...] [--resume]

For several processes use torchrun: ``torchrun --nproc_per_node N -m usclip_train.train ...``.
"""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from ..train import build_arg_parser

    p = subparsers.add_parser("train", help="train a model (Ultrasound-CLIP loss, DDP, resume)",
                              description=__doc__.splitlines()[0])
    build_arg_parser(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import run_from_args

    return run_from_args(args)
