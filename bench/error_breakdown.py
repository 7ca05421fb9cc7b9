"""Where the shipped model errs on synthetic frames: accuracy per rendering factor, beside the prior.

For each dimension asked for (default: the descriptors the model issue's goals still miss),
the Classifier's accuracy on held-out frames is split by what the renderer recorded about each
frame (cases.jsonl ``params``): diagnosis, probe, transmit frequency, the lesion's size in model
input pixels, its depth in the field, its echogenicity, and whether a colour box is shown. Next
to every cell stands the **bin prior**: the training split's most common value among training
frames in the same bin, scored on the test frames of that bin - what a model that read only
that factor would get (for Margins per diagnosis: the diagnosis-conditional majority); their
mean over the bins is the accuracy of a model that knew only that factor. A
dimension whose accuracy sits at its bin priors is being read from context, not from the pixels
that show it. Also a confusion matrix per dimension (rows: labelled value, columns: answer).

    python bench/error_breakdown.py --data data/synth-v4 --max 600 \
        --json bench/results/error_breakdown_zoom128.json [--bundle B] [--dims Margins,Shape]

Synthetic data only (it needs the renderer's ``params``).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from usclip_data.synth.lesion_box import read_render_params
from usclip_data.us365k import US365K
from usclip_sdk import Classifier, taxonomy

DEFAULT_DIMS = "Margins,Shape,Echogenicity"
INPUT_PX = 128  # lesion sizes are reported in pixels of a 128 px model input (the shipped size)


def _bin(x: float, edges: tuple[float, ...], unit: str = "") -> str:
    """'<a', 'a-b', ..., '>=z' for the bin that holds x."""
    for k, e in enumerate(edges):
        if x < e:
            return f"<{e:g}{unit}" if k == 0 else f"{edges[k - 1]:g}-{e:g}{unit}"
    return f">={edges[-1]:g}{unit}"


def lesion_input_px(p: dict, size: int = INPUT_PX) -> float | None:
    """Long side of the lesion's bounding box in model-input pixels (the region box stretched)."""
    les = p.get("lesion")
    if not les:
        return None
    x0, x1, y0, y1 = les["bbox_mm"]
    rx0, ry0, rx1, ry1 = p["region_box"]
    mm = p["mm_per_px"]
    return max((x1 - x0) / mm * size / (rx1 - rx0), (y1 - y0) / mm * size / (ry1 - ry0))


# factor name -> params -> bin label (None: the frame has no value for this factor)
FACTORS: dict[str, Callable[[dict], str | None]] = {
    "diagnosis": lambda p: p.get("diagnosis"),
    "probe": lambda p: p.get("probe"),
    "f0": lambda p: _bin(p["f0_mhz"], (4.0, 8.0), " MHz"),
    "lesion size": lambda p: None if (px := lesion_input_px(p)) is None else _bin(px, (24, 36, 48), " px"),
    "lesion depth": lambda p: None if not p.get("lesion") else
    _bin(p["lesion"]["center_mm"][1] / p["settings"]["depth_mm"], (0.4, 0.6), " of depth"),
    "echogenicity": lambda p: (p.get("lesion") or {}).get("echogenicity"),
    "colour box": lambda p: None if not p.get("lesion") else ("shown" if p.get("doppler") else "none"),
}


def breakdown(field: str, test, answers: list[str], train, params: dict[str, dict]) -> dict:
    """Per factor, per bin: n, accuracy, bin prior, and the prior's value."""
    name = lambda s: Path(s.image_path).name  # noqa: E731
    out = {}
    for factor, fn in FACTORS.items():
        prior_counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for s in train:
            b = fn(params[name(s)]) if s.labels.get(field) else None
            if b is not None:
                prior_counts[b].update(s.labels[field])
        cells: dict[str, list] = collections.defaultdict(list)
        for s, ans in zip(test, answers):
            b = fn(params[name(s)]) if s.labels.get(field) else None
            if b is not None:
                cells[b].append((ans in s.labels[field], s.labels[field]))
        rows = {}
        for b in sorted(cells):
            prior = prior_counts[b].most_common(1)[0][0] if prior_counts[b] else None
            hits = [h for h, _ in cells[b]]
            rows[b] = {"n": len(hits), "acc": float(np.mean(hits)), "prior_value": prior,
                       "prior": float(np.mean([prior in t for _, t in cells[b]]))}
        n = sum(r["n"] for r in rows.values())
        # a model that knew only this factor (and the training split's prior in each bin)
        only = sum(r["n"] * r["prior"] for r in rows.values()) / n if n else None
        out[factor] = {"bins": rows, "factor_only": only}
    return out


def confusion(field: str, test, answers: list[str]) -> dict[str, dict[str, int]]:
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for s, ans in zip(test, answers):
        for v in s.labels.get(field, ())[:1]:  # the first tag (multi-tag frames are rare)
            rows[v][ans] += 1
    return {v: dict(c) for v, c in sorted(rows.items())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a `usclip synth` folder (needs cases.jsonl)")
    ap.add_argument("--bundle", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max", type=int, default=None, help="evaluate at most this many frames")
    ap.add_argument("--dims", default=DEFAULT_DIMS, help="comma-separated label fields")
    ap.add_argument("--precision", default="fp32", help="image encoder (fp32: as bench/model_eval.py)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    root = Path(a.data)
    if not (root / "cases.jsonl").is_file():
        raise SystemExit(f"--data {root}: no cases.jsonl (this bench needs a `usclip synth` folder)")
    dims = [d.strip() for d in a.dims.split(",") if d.strip()]
    for d in dims:
        taxonomy.dimension(d)  # KeyError names an unknown field
    params = read_render_params(root)
    train, test = list(US365K(root, "train")), list(US365K(root, a.split))[:a.max]
    missing = [s.image_path for s in train + test if Path(s.image_path).name not in params]
    if missing:
        raise SystemExit(f"--data {root}: {len(missing)} frames have no cases.jsonl record, e.g. {missing[0]}")
    clf = Classifier(a.bundle, backend="onnxruntime", device="cpu", precision=a.precision)
    t0 = time.perf_counter()
    preds = []
    for i in range(0, len(test), 16):
        preds += clf.classify_batch([s.image_path for s in test[i:i + 16]])
    out = {"bundle": str(a.bundle or "shipped"), "data": str(root), "split": a.split, "n_test": len(test),
           "precision": clf.backend.precision,
           "seconds": round(time.perf_counter() - t0, 1), "dimensions": {}}
    for field in dims:
        answers = [p.attributes[field].value for p in preds]
        tagged = [(s, ans) for s, ans in zip(test, answers) if s.labels.get(field)]
        acc = float(np.mean([ans in s.labels[field] for s, ans in tagged])) if tagged else None
        out["dimensions"][field] = {"n": len(tagged), "acc": acc,
                                    "by_factor": breakdown(field, test, answers, train, params),
                                    "confusion": confusion(field, test, answers)}
        print(f"\n{field}: accuracy {100 * (acc or 0):.1f} on {len(tagged)} frames")
        for factor, f in out["dimensions"][field]["by_factor"].items():
            cells = "; ".join(f"{b} {100 * r['acc']:.0f} (prior {100 * r['prior']:.0f}, n {r['n']})"
                              for b, r in f["bins"].items())
            print(f"  {factor:13s} [this factor alone {100 * (f['factor_only'] or 0):.1f}] {cells}")
        print("  confusion (labelled -> answered):", json.dumps(out["dimensions"][field]["confusion"]))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
