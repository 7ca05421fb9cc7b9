"""`usclip calibrate BUNDLE --data DIR [--split valid] --out NEW_BUNDLE`: fit the triage layer.

Runs the Classifier (region detection included) over a labelled split in the US-365K layout
and writes a new bundle with the fitted calibration section: a temperature per taxonomy
dimension, the out-of-distribution reference and threshold (95 % of the split's frames
accepted), the per-dimension confidence thresholds and the normal operating point: where the
SDK draws the line between "normal appearance" and a lesion (docs/triage.md). The model files
are copied unchanged. Re-sign the result if your devices require signed bundles.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit temperatures, OOD score and thresholds on a validation split",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle folder or .zip to calibrate")
    p.add_argument("--data", required=True, type=Path, help="data set folder (US-365K layout)")
    p.add_argument("--split", default="valid", help="split to fit on (default valid)")
    p.add_argument("--out", required=True, type=Path, help="new bundle (folder, or .zip)")
    p.add_argument("--backend", default="auto", help="inference backend (default auto)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--normal-point", default="youden", choices=("youden", "sensitivity", "none"),
                   help="normal-vs-lesion operating point: youden (default: most sensitivity + "
                        "specificity), sensitivity (fewest false alarms at --lesion-sensitivity), none")
    p.add_argument("--lesion-sensitivity", type=float, default=0.95,
                   help="with --normal-point sensitivity: the fraction of validation lesions that must "
                        "still be called lesions (default 0.95)")
    p.add_argument("--json", action="store_true", help="print the fit's figures as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..calibrate import calibrate_bundle

    if args.out.exists() and not args.overwrite:
        raise ValueError(f"--out: {args.out} exists (pass --overwrite to replace it)")

    def progress(done: int, total: int) -> None:
        print(f"\rembedding {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    path, fig = calibrate_bundle(args.bundle, args.data, args.out, split=args.split,
                                 backend=args.backend, overwrite=args.overwrite, progress=progress,
                                 normal_point=args.normal_point, lesion_sensitivity=args.lesion_sensitivity)
    if args.json:
        print(json.dumps({"bundle": str(path)} | fig, indent=1))
        return 0
    print(f"{path}: calibrated on {fig['frames']} frames of {args.data} ({args.split}); "
          f"OOD threshold {fig['ood_threshold']:.2f}")
    print(f"{'dimension':26s} {'n':>5s} {'T':>7s} {'ECE before':>11s} {'ECE after':>10s}")
    for f, d in fig["dimensions"].items():
        print(f"{f:26s} {d['n']:5d} {d['temperature']:7.3f} {100 * d['ece_before']:10.1f}% "
              f"{100 * d['ece_after']:9.1f}%")
    point = fig["dimensions"].get("Diagnosis", {}).get("normal_operating_point")
    if point and point["fitted"]:
        print(f"normal operating point ({point['rule']}): offset {point['offset']:+.3f}; normal frames "
              f"called lesions {100 * point['normal_called_lesion_before']:.1f} -> "
              f"{100 * point['normal_called_lesion_after']:.1f} %, lesions called normal "
              f"{100 * point['lesion_called_normal_before']:.1f} -> {100 * point['lesion_called_normal_after']:.1f} %")
    return 0
