"""The ``usclip`` command.

Each subcommand is one module with ``register(subparsers)`` (which adds its parser and sets
``func`` to its ``run(args) -> int``). SDK commands live in this package; training commands
(train, eval, export, ...) live in ``usclip_train.cli`` and are registered only when torch is
installed (the ``[train]`` extra). Results go to stdout, progress and errors to stderr.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


def _command_modules(package: str):
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{package}.{info.name}")
        if hasattr(mod, "register"):
            yield mod


def _training_available() -> bool:
    return (importlib.util.find_spec("torch") is not None
            and importlib.util.find_spec("usclip_train") is not None)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="usclip", description="Ultrasound-CLIP: train, export and run ultrasound triage models.")
    parser.add_argument("--version", action="version", version=f"usclip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules("usclip_sdk.cli"):
        mod.register(sub)
    if _training_available():
        for mod in _command_modules("usclip_train.cli"):
            mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        if not _training_available():
            print("\n(training commands need the [train] extra: pip install '.[train]')", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # typed errors become one clear line, not a traceback
        from ..errors import UsclipError

        if isinstance(e, (UsclipError, ValueError, TypeError, FileNotFoundError)):
            print(f"usclip {args.command}: error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
