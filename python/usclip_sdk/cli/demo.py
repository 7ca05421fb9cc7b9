"""`usclip demo`: the shipped model on the shipped example frames and synthetic cine.

Works right after `pip install .`: no torch, no network. The examples are synthetic B-mode
frames rendered by the project's data engine, with their true labels in examples/labels.json,
so the demo can say how often the model agreed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._runtime import add_runtime_options, open_classifier

__all__ = ["register", "run", "examples_dir"]


def examples_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the shipped model on the shipped example frames and cine")
    add_runtime_options(p, engine_batch=False)
    p.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import BundleError
    from ._table import print_table

    ex = examples_dir()
    images = sorted(ex.glob("*.png"))
    cines = sorted(ex.glob("*.avi"))
    if not images and not cines:
        raise BundleError(f"no example frames found in {ex}")
    truth = json.loads((ex / "labels.json").read_text()) if (ex / "labels.json").exists() else {}
    clf = open_classifier(args)
    print(f"usclip demo: model {clf.bundle.manifest.model.name} on {clf.backend.name}",
          file=sys.stderr)
    rows, agree = [], {"Organ_level": [0, 0], "Diagnosis": [0, 0]}
    for img in images:
        p = clf.classify(img)
        rows.append((img.name, p))
        for field, (hit, n) in agree.items():
            want = truth.get(img.name, {}).get(field)
            if want:
                agree[field] = [hit + int(p.attributes[field].value in want), n + 1]
    for cine in cines:
        for i, p in enumerate(clf.stream(cine, smoothing=0.6)):
            rows.append((f"{cine.name}[{i}]", p))
    if args.json:
        for name, p in rows:
            print(json.dumps({"file": name} | p.to_dict()))
    else:
        print_table(rows, sys.stdout, truth=truth)
        for field, (hit, n) in agree.items():
            if n:
                print(f"{field}: {hit}/{n} example frames agree with the synthetic ground truth",
                      file=sys.stderr)
    return 0
