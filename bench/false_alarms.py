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
import sys
import time
from pathlib import Path

import numpy as np

from usclip_data.contact_sheet import grid, write_png
from usclip_data.sample import case_of, load_rgb
from usclip_data.us365k import US365K
from usclip_sdk import Classifier, taxonomy

NORMAL = taxonomy.NORMAL


def calls(clf: Classifier, samples, batch: int = 16) -> list[dict]:
    """One row per frame with a Diagnosis tag: case, organ, truth and the Classifier's call."""
    rows = []
    tagged = [s for s in samples if s.labels.get("Diagnosis")]
    for i in range(0, len(tagged), batch):
        chunk = tagged[i:i + batch]
        for s, p in zip(chunk, clf.classify_batch([s.image_path for s in chunk])):
            rows.append({
                "frame": Path(s.image_path).name, "path": s.image_path, "case": case_of(s.image_path),
                "organ": (s.labels.get("Organ_level") or ["?"])[0],
                "normal": NORMAL in s.labels["Diagnosis"],
                "called_normal": p.attributes["Diagnosis"].value == NORMAL,
            })
    return rows


def false_alarm(r: dict) -> bool:
    return not r["called_normal"]  # scored over normal frames


def missed(r: dict) -> bool:
    return r["called_normal"]  # scored over lesion frames


def by_truth(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(normal frames, lesion frames)."""
    return [r for r in rows if r["normal"]], [r for r in rows if not r["normal"]]


def _case_draws(rows: list[dict], err, n_boot: int, seed: int) -> tuple[float, np.ndarray] | None:
    """The rate of ``err`` over ``rows`` and ``n_boot`` bootstrap rates resampling whole cases."""
    by_case = collections.defaultdict(list)
    for r in rows:
        by_case[r["case"]].append(bool(err(r)))
    if not by_case:
        return None
    hits = np.array([sum(c) for c in by_case.values()], float)
    sizes = np.array([len(c) for c in by_case.values()], float)
    pick = np.random.default_rng(seed).integers(0, len(hits), size=(n_boot, len(hits)))
    return float(hits.sum() / sizes.sum()), hits[pick].sum(1) / sizes[pick].sum(1)


def case_bootstrap(rows: list[dict], err, n_boot: int = 2000, seed: int = 0) -> list[float | None]:
    """[rate, 2.5 %, 97.5 %] of ``err`` over ``rows``, resampling cases with replacement;
    [None, None, None] when there are no rows (JSON null, as bench/model_eval.py writes)."""
    d = _case_draws(rows, err, n_boot, seed)
    if d is None:
        return [None, None, None]
    return [d[0], float(np.percentile(d[1], 2.5)), float(np.percentile(d[1], 97.5))]


def case_bootstrap_difference(rows_a: list[dict], rows_b: list[dict], err, n_boot: int = 2000,
                              seed: int = 0) -> list[float | None]:
    """[rate_a - rate_b, 2.5 %, 97.5 %]: the two samples' cases resampled independently, so the
    interval is that of the difference itself (not whether two intervals overlap)."""
    a, b = _case_draws(rows_a, err, n_boot, seed), _case_draws(rows_b, err, n_boot, seed + 1)
    if a is None or b is None:
        return [None, None, None]
    diff = a[1] - b[1]
    return [a[0] - b[0], float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))]


def _pct(t) -> str:
    m, lo, hi = t
    return "n/a" if m is None else f"{100 * m:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def summarise(rows: list[dict]) -> dict:
    normal, lesion = by_truth(rows)
    fa = [r for r in normal if false_alarm(r)]
    by_organ = collections.Counter(r["organ"] for r in normal)
    fa_organ = collections.Counter(r["organ"] for r in fa)
    fa_cases = collections.Counter(r["case"] for r in fa)
    return {
        "frames": len(rows), "normal_frames": len(normal), "normal_cases": len({r["case"] for r in normal}),
        "lesion_frames": len(lesion),
        "normal_called_lesion": case_bootstrap(normal, false_alarm),
        "lesion_called_normal": case_bootstrap(lesion, missed),
        "false_alarms": len(fa), "false_alarm_cases": len(fa_cases),
        "false_alarms_per_case": sorted(fa_cases.values(), reverse=True),
        "false_alarm_rate_by_organ": {o: [fa_organ[o], n] for o, n in by_organ.most_common()},
        "false_alarm_frames": [r["frame"] for r in fa],
    }


def contact_sheet(rows: list[dict], path: str, n: int = 8, px: int = 192) -> None:
    """The first ``n`` test false alarms, one organ each where possible, captioned with the organ
    (usclip_data.contact_sheet's grid, one row)."""
    if not rows:  # grid() refuses an empty sheet; say so instead
        print(f"no test false alarms: no contact sheet written to {path}")
        return
    first = {}
    for r in rows:  # one frame per organ first, then fill
        first.setdefault(r["organ"], r)
    picked = (list(first.values()) + [r for r in rows if r not in first.values()])[:n]
    # the sample's own path: US365K also finds images flat in the root or inside images.zip
    write_png(grid([load_rgb(r["path"]) for r in picked], [[r["organ"]] for r in picked],
                   cols=len(picked), tile=(px, px)), path)


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
    if a.max_test < 0:
        ap.error(f"--max-test: expected N >= 0, found {a.max_test}")
    splits = [x.strip() for x in a.splits.split(",") if x.strip()]
    if a.sheet and "test" not in splits:
        ap.error("--sheet shows test false alarms: --splits must include test")
    clf = Classifier(a.bundle, backend="onnxruntime", device="cpu", precision="fp32")
    out, rows_of, t0 = {}, {}, time.perf_counter()
    for split in splits:
        samples = list(US365K(a.data, split))
        if not samples:
            raise SystemExit(f"--splits: no samples in split {split!r} of {a.data}")
        rows = rows_of[split] = calls(clf, samples)
        out[split] = summarise(rows)
        if split == "test" and a.sheet:
            contact_sheet([r for r in by_truth(rows)[0] if false_alarm(r)], a.sheet)
        if split == "test" and a.max_test:
            # rows follow the tagged samples in order, so the head's rows are a prefix (by
            # position, not by path: a split may list one image twice)
            k = sum(1 for s in samples[:a.max_test] if s.labels.get("Diagnosis"))
            out[f"test_first{a.max_test}"] = summarise(rows[:k])
    if "valid" in rows_of and "test" in rows_of:  # is test's rate really above the fitting split's?
        (normal_t, lesion_t), (normal_v, lesion_v) = by_truth(rows_of["test"]), by_truth(rows_of["valid"])
        out["test_minus_valid"] = {
            "normal_called_lesion": case_bootstrap_difference(normal_t, normal_v, false_alarm),
            "lesion_called_normal": case_bootstrap_difference(lesion_t, lesion_v, missed)}
    for name, r in out.items():
        if name == "test_minus_valid":
            print(f"test - valid   normal called lesion {_pct(r['normal_called_lesion'])} points; "
                  f"lesion called normal {_pct(r['lesion_called_normal'])} points")
            continue
        print(f"{name:14s} normal called lesion {_pct(r['normal_called_lesion'])} "
              f"({r['false_alarms']} of {r['normal_frames']} frames, {r['false_alarm_cases']} of "
              f"{r['normal_cases']} cases); lesion called normal {_pct(r['lesion_called_normal'])}")
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
