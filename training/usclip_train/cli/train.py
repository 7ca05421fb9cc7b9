"""``usclip train``: train an Ultrasound-CLIP model on a US-365K-layout folder.

    usclip train --data DIR --model usclip-edge --out RUN_DIR [--config FILE] [--set k=v ...] [--resume]

For several processes use torchrun: ``torchrun --nproc_per_node N -m usclip_train.train ...``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

# Checked by the usclip CLI before registering: without them the command says what to install.
REQUIRES = ("torch", "open_clip")
EXTRA = "train"
HELP = "train a model (Ultrasound-CLIP loss, DDP, resume)"
DESCRIPTION = ("Train an Ultrasound-CLIP model on a folder in the US-365K layout. For several processes: "
               "torchrun --nproc_per_node N -m usclip_train.train (same options).")

__all__ = ["register", "run", "build_arg_parser"]


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `usclip train` / `python -m usclip_train.train` arguments (no torch import here, so
    the `usclip` command starts fast)."""
    p = parser or argparse.ArgumentParser(prog="usclip train", description=DESCRIPTION)
    p.add_argument("--data", help="US-365K-layout folder (images/, train.jsonl, full_data.json)")
    p.add_argument("--model", help=f"model config name: {', '.join(_model_names())}")
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


def _model_names() -> list[str]:
    """The shipped model configs, read from their folder (no torch import for `usclip --help`)."""
    folder = Path(__file__).resolve().parents[1] / "configs" / "models"
    return sorted(p.stem for p in folder.glob("*.json"))


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help=HELP, description=DESCRIPTION)
    build_arg_parser(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import run_from_args

    return run_from_args(args)
