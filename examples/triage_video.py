"""Triage a video or DICOM cine: one line per processed frame, and a summary at the end.

python examples/triage_video.py CINE [--every 2] [--labels "benign cyst" "malignant mass"]
"""
from __future__ import annotations

import argparse
from collections import Counter

from usclip_sdk import Classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="video file, DICOM cine, or camera index")
    ap.add_argument("--every", type=int, default=1, help="run the model every n-th frame")
    ap.add_argument("--labels", nargs="+", help="custom zero-shot labels")
    args = ap.parse_args()
    source = int(args.source) if args.source.isdigit() else args.source
    clf = Classifier()
    if args.labels:
        clf.set_labels(args.labels)
    votes: Counter[str] = Counter()
    organs: Counter[str] = Counter()
    for i, p in enumerate(clf.stream(source, every=args.every, smoothing=0.6)):
        votes[p.label] += 1
        organs[p.organ] += 1
        print(f"{i:5d}  {p.organ:<30} {p.label:<20} {p.score:.2f}  {p.timings['total']:.1f} ms")
    if votes:
        print(f"\nmost frames: {organs.most_common(1)[0][0]} / {votes.most_common(1)[0][0]}")


if __name__ == "__main__":
    main()
