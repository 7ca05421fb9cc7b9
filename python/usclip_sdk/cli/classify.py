"""`usclip classify PATH... [--json] [--labels ...]`: images, videos and DICOM files, or folders
of them (each folder's files classified in name order, not recursing)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..inputs import DICOM_SUFFIXES, VIDEO_SUFFIXES
from ._runtime import add_runtime_options, open_classifier

__all__ = ["register", "run", "expand_paths"]

# What a folder argument contributes: files OpenCV, the video reader or pydicom open.
MEDIA_SUFFIXES = ({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
                  | VIDEO_SUFFIXES | DICOM_SUFFIXES)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; a folder becomes its media files (by suffix), sorted by name."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in MEDIA_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path}: a folder with no image, video or DICOM files "
                                        f"(looked for {', '.join(sorted(MEDIA_SUFFIXES))})")
            out += found
        else:
            out.append(path)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify images, videos and DICOM files")
    p.add_argument("paths", nargs="+", help="image, video or DICOM files, or folders of them")
    add_runtime_options(p)
    p.add_argument("--labels", nargs="+", help="custom zero-shot labels (free text)")
    p.add_argument("--every", type=int, default=1, help="videos: run the model every n-th frame")
    p.add_argument("--json", action="store_true", help="one JSON object per frame (JSON lines)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from ..inputs import is_video_path, read_dicom
    from ._table import print_table

    paths = expand_paths(args.paths)  # an empty folder fails before the model loads
    clf = open_classifier(args)
    if args.labels:
        clf.set_labels(args.labels)
    print(f"model {clf.bundle.manifest.model.name} on {clf.backend.name}", file=sys.stderr)
    failures = 0
    rows = []
    for p in paths:
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

