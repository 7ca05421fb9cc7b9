"""Measure the triage layer (docs/triage.md): ECE before/after calibration, how often status
is "ok" on held-out synthetic scans, the gate per input kind, OOD AUROC, where real scanner
frames fall, and the gate + OOD time per frame against the whole classification.

Everything runs through Classifier (region detection included).
Usage: python bench/triage_eval.py --before BUNDLE --after CALIBRATED_BUNDLE --data DIR
           [--split test] [--photos SKIMAGE_DATA_DIR] [--json out.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triage_inputs import non_ultrasound  # noqa: E402

from usclip_sdk import Classifier  # noqa: E402
from usclip_sdk.calibrate import read_split  # noqa: E402
from usclip_sdk.calibration import ece, reliability  # noqa: E402
from usclip_sdk.inputs import iter_frames, to_frame  # noqa: E402
from usclip_sdk.quality import assess  # noqa: E402
from usclip_sdk.region import detect_region  # noqa: E402

_DICOM = ("examples_rgb_color.dcm", "examples_palette.dcm", "examples_jpeg2k.dcm", "examples_ybr_color.dcm")


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def _predict(clf: Classifier, frames: list, batch: int = 16) -> list:
    out = []
    for i in range(0, len(frames), batch):
        out += clf.classify_batch(frames[i:i + batch])
    return out


def calibration_figures(before: list, after: list, tags: list) -> dict:
    out = {}
    for field in before[0].attributes:
        rows = [i for i, t in enumerate(tags) if t.get(field)]
        res = {"n": len(rows)}
        for name, preds in (("before", before), ("after", after)):
            conf = np.array([preds[i].attributes[field].score for i in rows])
            hit = np.array([preds[i].attributes[field].value in tags[i][field] for i in rows])
            res[f"ece_{name}"] = round(100 * ece(conf, hit), 2)
            res[f"acc_{name}"] = round(100 * float(hit.mean()), 2)
            res[f"reliability_{name}"] = reliability(conf, hit)
        out[field] = res
    return out


def dicom_frames() -> list:
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError:
        return []
    out = []
    for name in _DICOM:
        for i, f in enumerate(iter_frames(pydicom.dcmread(get_testdata_file(name)))):
            out.append((f"{name}#{i}", f))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the bundle without calibration")
    ap.add_argument("--after", required=True, help="the same bundle calibrated (usclip calibrate)")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--photos", default=None, help="folder of scikit-image sample photos")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    split = read_split(args.data, args.split)
    frames = [to_frame(str(p)) for p, _ in split]
    tags = [t for _, t in split]
    clf0, clf1 = Classifier(args.before), Classifier(args.after)
    before, after = _predict(clf0, frames), _predict(clf1, frames)
    result: dict = {"data": str(args.data), "split": args.split, "frames": len(frames),
                    "calibration": calibration_figures(before, after, tags)}
    status = collections.Counter(p.status for p in after)
    result["synthetic_status"] = dict(status)
    result["ok_rate"] = round(100 * status["ok"] / len(after), 2)
    result["uncalibrated_status"] = dict(collections.Counter(p.status for p in before))

    kinds: dict[str, list] = {k: [(n, to_frame(im)) for n, im in v]
                              for k, v in non_ultrasound(args.photos).items() if v}
    kinds["dicom"] = dicom_frames()
    kinds["synthetic_cropped"] = []
    for i in range(0, len(frames), 15):  # tightly cropped scans: no screen around them
        x0, y0, x1, y1 = detect_region(frames[i].pixels).bbox
        kinds["synthetic_cropped"].append((f"crop{i}", to_frame(np.ascontiguousarray(frames[i].pixels[y0:y1, x0:x1]))))
    per_kind, ood_scores = {}, {}
    for kind, items in kinds.items():
        preds = [clf1.classify(f) for _, f in items]
        st = collections.Counter(p.status for p in preds)
        per_kind[kind] = {"n": len(preds), "status": dict(st),
                          "no_image_pct": round(100 * st["no_image"] / len(preds), 1),
                          "not_ok_pct": round(100 * (len(preds) - st["ok"]) / len(preds), 1),
                          "failed_checks": dict(collections.Counter(m.split(":")[0] for p in preds
                                                                     for m in p.reasons["failed"]))}
        if kind == "dicom":
            per_kind[kind]["frames"] = [[n, p.status, p.organ, p.reasons.get("ood", {}).get("score")]
                                        for (n, _), p in zip(items, preds)]
        ood_scores[kind] = [p.reasons["ood"]["score"] for p in preds if "ood" in p.reasons]
    result["kinds"] = per_kind
    syn = np.array([p.reasons["ood"]["score"] for p in after])
    non_us = np.concatenate([ood_scores[k] for k in ("photo", "document", "ui", "pattern", "blank") if k in ood_scores])
    thr = clf1.calibration.spec.ood.threshold
    dicom_median = np.median(ood_scores["dicom"]) if ood_scores["dicom"] else None
    result["ood"] = {"threshold": thr,
                     "auroc_non_ultrasound_vs_synthetic": round(auroc(non_us, syn), 4),
                     "synthetic_accepted_pct": round(100 * float(np.mean(syn <= thr)), 2),
                     "dicom_median_percentile_of_synthetic":
                         None if dicom_median is None else round(100 * float(np.mean(syn < dicom_median)), 1)}
    # Gate + OOD time per frame, against the whole classification of the same frames.
    regions = [detect_region(f.pixels) for f in frames[:300]]
    emb = clf1.embed_image(frames[:16])[0]
    t_gate = []
    for f, r in zip(frames[:300], regions):
        t = time.perf_counter()
        assess(f.pixels, r)
        clf1.calibration.ood(emb)
        t_gate.append((time.perf_counter() - t) * 1e3)
    total = np.median([p.timings["total"] for p in after])
    result["timing_ms"] = {"gate_plus_ood_median": round(float(np.median(t_gate)), 4),
                           "gate_plus_ood_p95": round(float(np.percentile(t_gate, 95)), 4),
                           "classify_total_median": round(float(total), 3),
                           "share_of_classify": round(float(np.median(t_gate) / total), 4)}
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    summary = {k: v for k, v in result.items() if k not in ("calibration", "kinds")}
    print(json.dumps(summary, indent=1))
    for f, c in result["calibration"].items():
        print(f"{f:26s} n={c['n']:5d} ECE {c['ece_before']:5.1f} -> {c['ece_after']:5.1f}  "
              f"acc {c['acc_before']:5.1f} -> {c['acc_after']:5.1f}")
    for k, v in per_kind.items():
        print(f"{k:18s} n={v['n']:4d} no_image {v['no_image_pct']:5.1f}%  "
              f"not ok {v['not_ok_pct']:5.1f}%  {v['status']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
