"""Where the normal/lesion call errs: normal frames called lesions (false alarms) and lesions
called normal, per split, per organ and per case, through ``Classifier`` (region detection and
the bundle's calibration, as a device runs it).

Frames of one case share anatomy, gain and depth, so errors cluster by case: a rate over N frames
is not a rate over N independent draws. Each split's rates come with a 95 % interval from a
bootstrap over *cases* (resampling whole cases), which is the honest width when comparing the
validation split the operating point was fitted on with a test sample.

    python bench/false_alarms.py --data DIR [--bundle B] [--splits valid,test] [--max-test 600] \
        [--json out.json] [--sheet false_alarms.png]
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from usclip_data.us365k import US365K
from usclip_sdk import Classifier, taxonomy

NORMAL = taxonomy.NORMAL
_CASE = re.compile(r"(case\d+)_v\d+")


def case_of(path: str) -> str:
    """The case a frame belongs to (``caseNNNNNN_vK.png`` -> ``caseNNNNNN``), else the file name."""
    m = _CASE.search(Path(path).name)
    return m.group(1) if m else Path(path).name


def calls(clf: Classifier, samples, batch: int = 16) -> list[dict]:
    """One row per frame with a Diagnosis tag: case, organ, truth, the Classifier's call and its
    probability of "normal appearance" (calibrated)."""
    rows = []
    tagged = [s for s in samples if s.labels.get("Diagnosis")]
    for i in range(0, len(tagged), batch):
        chunk = tagged[i:i + batch]
        for s, p in zip(chunk, clf.classify_batch([s.image_path for s in chunk])):
            dx = p.attributes["Diagnosis"]
            rows.append({
                "frame": Path(s.image_path).name, "case": case_of(s.image_path),
                "organ": (s.labels.get("Organ_level") or ["?"])[0],
                "normal": NORMAL in s.labels["Diagnosis"], "called_normal": dx.value == NORMAL,
                "p_normal": dict(dx.topk).get(NORMAL),  # None when normal is outside the top k
                "status": p.status,
            })
    return rows


def case_bootstrap(rows: list[dict], err, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``err`` over ``rows`` and its 95 % interval, resampling cases with replacement."""
    by_case = collections.defaultdict(list)
    for r in rows:
        by_case[r["case"]].append(bool(err(r)))
    cases = list(by_case.values())
    if not cases:
        return float("nan"), float("nan"), float("nan")
    hits = np.array([sum(c) for c in cases], float)
    sizes = np.array([len(c) for c in cases], float)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(cases), size=(n_boot, len(cases)))
    boot = hits[pick].sum(1) / sizes[pick].sum(1)
    return float(hits.sum() / sizes.sum()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def summarise(rows: list[dict]) -> dict:
    normal = [r for r in rows if r["normal"]]
    lesion = [r for r in rows if not r["normal"]]
    fa = [r for r in normal if not r["called_normal"]]
    by_organ = collections.Counter(r["organ"] for r in normal)
    fa_organ = collections.Counter(r["organ"] for r in fa)
    fa_cases = collections.Counter(r["case"] for r in fa)
    return {
        "frames": len(rows), "normal_frames": len(normal), "normal_cases": len({r["case"] for r in normal}),
        "lesion_frames": len(lesion),
        "normal_called_lesion": case_bootstrap(normal, lambda r: not r["called_normal"]),
        "lesion_called_normal": case_bootstrap(lesion, lambda r: r["called_normal"]),
        "false_alarms": len(fa), "false_alarm_cases": len(fa_cases),
        "false_alarms_per_case": sorted(fa_cases.values(), reverse=True),
        "false_alarm_rate_by_organ": {o: [fa_organ[o], n] for o, n in by_organ.most_common()},
        "false_alarm_frames": [r["frame"] for r in fa],
    }


def contact_sheet(data: str, rows: list[dict], path: str, n: int = 8, px: int = 192) -> None:
    """The first ``n`` test false alarms, one organ each where possible, captioned with the organ."""
    import cv2

    picked, organs = [], set()
    for r in rows:  # one frame per organ first, then fill
        if r["organ"] not in organs:
            picked.append(r)
            organs.add(r["organ"])
    picked += [r for r in rows if r not in picked]
    tiles = []
    for r in picked[:n]:
        img = cv2.imread(str(Path(data) / "images" / r["frame"]), cv2.IMREAD_GRAYSCALE)
        tile = cv2.resize(img, (px, px), interpolation=cv2.INTER_AREA)
        cv2.rectangle(tile, (0, px - 18), (px, px), 0, -1)
        cv2.putText(tile, r["organ"][:26], (3, px - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(path, np.hstack(tiles))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="US-365K-layout folder")
    ap.add_argument("--bundle", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--splits", default="valid,test")
    ap.add_argument("--max-test", type=int, default=600,
                    help="also report the first N test frames (bench/model_eval.py --max N); 0: no")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--sheet", help="write a contact sheet of test false alarms (PNG) here")
    a = ap.parse_args(argv)
    clf = Classifier(a.bundle, backend="onnxruntime", device="cpu", precision="fp32")
    out, t0 = {}, time.perf_counter()
    for split in a.splits.split(","):
        samples = list(US365K(a.data, split))
        if not samples:
            raise SystemExit(f"--splits: no samples in split {split!r} of {a.data}")
        rows = calls(clf, samples)
        out[split] = summarise(rows)
        if split == "test" and a.sheet:
            contact_sheet(a.data, [r for r in rows if r["normal"] and not r["called_normal"]], a.sheet)
        if split == "test" and a.max_test:
            head = {s.image_path for s in samples[:a.max_test]}
            out[f"test_first{a.max_test}"] = summarise(
                [r for r, s in zip(rows, [s for s in samples if s.labels.get("Diagnosis")])
                 if s.image_path in head])
    for name, r in out.items():
        m, lo, hi = r["normal_called_lesion"]
        ml, lol, hil = r["lesion_called_normal"]
        print(f"{name:14s} normal called lesion {100 * m:5.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] "
              f"({r['false_alarms']} of {r['normal_frames']} frames, {r['false_alarm_cases']} of "
              f"{r['normal_cases']} cases); lesion called normal {100 * ml:.1f} % [{100 * lol:.1f}, {100 * hil:.1f}]")
        worst = [(o, f, n) for o, (f, n) in r["false_alarm_rate_by_organ"].items() if f]
        print("    by organ (false alarms / normal frames): "
              + ", ".join(f"{o} {f}/{n}" for o, f, n in sorted(worst, key=lambda t: -t[1])))
    print(f"{time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"bundle": str(a.bundle or "shipped"), "data": a.data,
                                            "results": out}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
