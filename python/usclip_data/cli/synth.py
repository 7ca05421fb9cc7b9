"""`usclip synth`: render a synthetic data set in the US-365K layout (parallel, seeded).

    usclip synth --out DIR --n N --seed S [--size 256 | HxW | auto] [--views 2,4]
                 [--workers K] [--splits 0.8,0.1,0.1] [--contact-sheet PATH] [--overwrite]

A progress bar goes to stderr; the summary (or --json) to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["register", "run", "parse_size", "parse_views"]


def parse_size(text: str) -> tuple[int, int] | None:
    """"256" -> (256, 256); "240x320" -> (height 240, width 320); "auto" -> None (varied)."""
    t = text.strip().lower()
    if t in ("auto", "0", "none"):
        return None
    try:
        parts = [int(p) for p in t.split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"expected N, HEIGHTxWIDTH (each >= 32) or auto, found {text!r}")
    return parts[0], parts[1]


def parse_views(text: str) -> tuple[int, int]:
    """"3" -> (3, 3); "2,4" -> between 2 and 4 views per case."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX with 1 <= MIN <= MAX, found {text!r}")
    return parts[0], parts[1]


def _parse_splits(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected TRAIN,VALID,TEST fractions, found {text!r}")
    return parts  # type: ignore[return-value]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render a synthetic ultrasound data set (US-365K layout)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created; must be empty unless --overwrite)")
    p.add_argument("--n", type=int, required=True, help="number of cases (each gives several images)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    p.add_argument("--size", type=parse_size, default=(256, 256),
                   help="frame size: N (square), HEIGHTxWIDTH, or auto to vary it (default 256)")
    p.add_argument("--views", type=parse_views, default=(2, 4), help="views per case MIN,MAX (default 2,4)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--splits", type=_parse_splits, default=(0.8, 0.1, 0.1),
                   help="case fractions for train,valid,test (default 0.8,0.1,0.1)")
    p.add_argument("--contact-sheet", metavar="PATH", help="also write a PNG grid of samples with their attributes")
    p.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..us365k import US365K, write_dataset

    if args.n < 1:
        raise ValueError(f"--n: expected a positive number of cases, found {args.n}")
    say = (lambda _line: None) if args.quiet else (lambda line: print(f"usclip synth: {line}", file=sys.stderr,
                                                                      flush=True))
    # the stages around the progress bar are silent otherwise: the worker pool's start (each
    # spawned process imports the engine) and the contact sheet (reads the whole data set back)
    workers = args.workers or os.cpu_count() or 1
    say(f"rendering {args.n} cases into {args.out} with {workers} worker process(es); starting them")
    try:
        s = write_dataset(args.out, args.n, args.seed, views_per_case=args.views, size=args.size,
                          workers=args.workers, splits=args.splits, progress=not args.quiet,
                          overwrite=args.overwrite)
    except FileExistsError:  # the writer's message names its keyword; say it in CLI words
        print(f"usclip synth: error: --out {args.out} is not empty; pass --overwrite to replace the "
              "data set written there (other files in it are kept)", file=sys.stderr)
        return 1
    summary = {"out": s.out_dir, "cases": s.n_cases, "images": s.n_images, "per_split": s.per_split,
               "seconds": round(s.seconds, 3), "images_per_second": round(s.images_per_second, 1),
               "workers": s.workers}
    if args.contact_sheet:
        from ..contact_sheet import contact_sheet

        say(f"drawing the contact sheet {args.contact_sheet} from the written data set")
        contact_sheet(US365K(args.out, "all"), args.contact_sheet)
        summary["contact_sheet"] = args.contact_sheet
    if args.json:
        print(json.dumps(summary))
    else:
        split = " / ".join(f"{k} {v}" for k, v in s.per_split.items())
        print(f"wrote {s.n_images} images ({split}) from {s.n_cases} cases to {s.out_dir} in "
              f"{s.seconds:.1f} s ({s.images_per_second:.1f} images/s, {s.workers} workers)")
        if args.contact_sheet:
            print(f"contact sheet: {args.contact_sheet}")
    sys.stdout.flush()
    return 0
