"""The ``usclip`` command.

Each subcommand is one module with ``register(subparsers)`` (which adds its parser and sets
``func`` to its ``run(args) -> int``). SDK commands live in this package; other packages add
theirs through the ``usclip.commands`` entry-point group (``usclip_data``: synth;
``usclip_train``: train, eval, export), so this package never names them. A command module may
declare ``REQUIRES`` (importable module names, plus ``EXTRA``, the pip extra that brings them):
when one is missing the command still appears, and running it says what to install instead of
failing with a traceback. Results go to stdout, progress and errors to stderr.
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


def _plugin_modules():
    """Command modules other packages register (entry-point group ``usclip.commands``)."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group="usclip.commands"), key=lambda e: e.name):
        yield ep.name, ep.value


def _missing(mod) -> list[str]:
    return [m for m in getattr(mod, "REQUIRES", ()) if importlib.util.find_spec(m) is None]


def _register_unavailable(sub, name: str, help_text: str, missing: list[str], extra: str) -> None:
    def run(_args) -> int:
        print(f"usclip {name}: needs {', '.join(missing)}, which the [{extra}] extra installs: "
              f"pip install 'usclip-sdk[{extra}]' (from a source checkout: pip install '.[{extra}]')",
              file=sys.stderr)
        return 2

    p = sub.add_parser(name, help=f"{help_text} (needs the [{extra}] extra)", add_help=False)
    p.set_defaults(func=run, _any_arguments=True)  # its real options are unknown here


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="usclip", description="Ultrasound-CLIP: train, export and run ultrasound triage models. "
        "For research and development use only: not a medical device, not for diagnosis.")
    parser.add_argument("--version", action="version", version=f"usclip {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr: -v info (backend choice, engine cache), -vv debug (region source); "
                             "default: USCLIP_LOG_LEVEL or warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules("usclip_sdk.cli"):
        mod.register(sub)
    for name, target in _plugin_modules():
        try:
            mod = importlib.import_module(target)
        except ImportError:
            continue  # a package that is not importable here registers nothing
        missing = _missing(mod)
        if missing:
            doc = getattr(mod, "HELP", None) or (mod.__doc__ or name).strip().splitlines()[0]
            _register_unavailable(sub, name, doc.replace("``", ""), missing, getattr(mod, "EXTRA", "train"))
        else:
            mod.register(sub)
    return parser


_LOGGERS = ("usclip_sdk", "usclip_data", "usclip_train")


def _configure_logging(verbose: int) -> None:
    """One stderr handler on the project's own loggers (never the root logger: an application
    calling main() keeps its logging as it was)."""
    import logging

    from ..settings import env_log_level

    level = {0: env_log_level("WARNING"), 1: "INFO"}.get(verbose, "DEBUG")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("usclip %(levelname)s %(name)s: %(message)s"))
    handler._usclip_cli = True  # type: ignore[attr-defined]
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if getattr(h, "_usclip_cli", False)]:
            logger.removeHandler(h)  # main() called again in one process: one handler, not two
        logger.addHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        _configure_logging(args.verbose)
    except ValueError as e:  # a bad USCLIP_LOG_LEVEL
        print(f"usclip: error: {e}", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
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
