"""``usclip train``: train an Ultrasound-CLIP model on a US-365K-layout folder.

    usclip train --data DIR --model usclip-edge --out RUN_DIR [--config FILE] [--set k=v ...] [--resume]

For several processes use torchrun: ``torchrun --nproc_per_node N -m usclip_train.train ...``.
"""
from __future__ import annotations

import argparse

# Checked by the usclip CLI before registering: without them the command says what to install.
REQUIRES = ("torch", "open_clip")
EXTRA = "train"

__all__ = ["register", "run", "build_arg_parser"]


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `usclip train` / `python -m usclip_train.train` arguments (no torch import here, so
    the `usclip` command starts fast)."""
    p = parser or argparse.ArgumentParser(prog="usclip train", description=__doc__.splitlines()[0])
    p.add_argument("--data", help="US-365K-layout folder (images/, train.jsonl, full_data.json)")
    p.add_argument("--model", help="model config name (see usclip_train.factory.list_models)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, log.jsonl, run_config.json")
    p.add_argument("--config", help="run config file (.json / .yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one run-config field (repeatable), e.g. --set lr=1e-4")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an existing run folder: delete its checkpoints, log and config first")
    p.add_argument("--on-bad-sample", choices=("error", "skip"), default=None,
                   help="a corrupt sample (bad line, missing or undecodable image, label outside the "
                        "taxonomy): error (default) names file and line; skip leaves it out, counted "
                        "and reported at the end of the run (bad_samples.json)")
    return p


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model (Ultrasound-CLIP loss, DDP, resume)",
                              description=__doc__.splitlines()[0])
    build_arg_parser(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import run_from_args

    return run_from_args(args)
