"""`usclip classify PATH... [--json] [--labels ...]`: images, videos and DICOM files."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify images, videos and DICOM files")
    p.add_argument("paths", nargs="+", help="image, video or DICOM files")
    p.add_argument("--bundle", help="bundle folder or .zip (default: the shipped model)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--engine-batch", default="1,1,8", metavar="MIN,OPT,MAX",
                   help="TensorRT engine batch profile, as given to build-engine --batch")
    p.add_argument("--labels", nargs="+", help="custom zero-shot labels (free text)")
    p.add_argument("--every", type=int, default=1, help="videos: run the model every n-th frame")
    p.add_argument("--json", action="store_true", help="one JSON object per frame (JSON lines)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..classifier import Classifier
    from ..errors import InvalidInputError
    from ..inputs import is_video_path, read_dicom
    from ._table import print_table

    clf = Classifier(args.bundle, backend=args.backend, device=args.device,
                     engine_batch=args.engine_batch)
    if args.labels:
        clf.set_labels(args.labels)
    print(f"model {clf.bundle.manifest.model.name} on {clf.backend.name}", file=sys.stderr)
    failures = 0
    rows = []
    for path in args.paths:
        p = Path(path)
        try:
            if p.suffix.lower() in (".dcm", ".dicom"):
                frames = read_dicom(p)  # decoded once; a cine goes through the stream path
                preds = (list(clf.stream(frames, every=args.every, smoothing=0.0))
                         if len(frames) > 1 else [clf.classify(frames[0])])
            elif is_video_path(p):
                preds = list(clf.stream(p, every=args.every, smoothing=0.0))
            else:
                preds = [clf.classify(p)]
        except InvalidInputError as e:  # one bad file must not stop the others
            print(f"usclip classify: {p.name}: {e}", file=sys.stderr)
            failures += 1
            continue
        for i, pred in enumerate(preds):
            name = p.name if len(preds) == 1 else f"{p.name}[{i}]"
            if args.json:
                print(json.dumps({"file": name} | pred.to_dict()), flush=True)
            else:
                rows.append((name, pred))
    if rows:
        print_table(rows, sys.stdout, custom=bool(args.labels))
    return 1 if failures else 0

