"""Markdown table of learnability ceilings, before vs after (for docs/data.md).

    python bench/ceiling_table.py bench/results/ceiling_before.json bench/results/ceiling_after.json

One row per dimension: majority baseline (after set), ceiling at each input size before and
after, and the mean per-class recall after (what a constant answer cannot fake).
"""
from __future__ import annotations

import json
import sys


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(before: dict, after: dict) -> str:
    sizes = sorted(set(before["sizes"]) | set(after["sizes"]), key=int)
    head = ["dimension", "majority (before / after)"]
    for s in sizes:
        head += [f"ceiling {s} px before", f"ceiling {s} px after"]
    head += [f"class recall {sizes[0]} px after", "n test after"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    dims = after["sizes"][sizes[0]]["dimensions"]
    for f, r in dims.items():
        b0 = before["sizes"].get(sizes[0], {}).get("dimensions", {}).get(f, {})
        row = [f, f"{_pct(b0.get('majority_baseline'))} / {_pct(r['majority_baseline'])}"]
        for s in sizes:
            b = before["sizes"].get(s, {}).get("dimensions", {}).get(f, {})
            a = after["sizes"].get(s, {}).get("dimensions", {}).get(f, {})
            row += [_pct(b.get("accuracy")), _pct(a.get("accuracy"))]
        row += [_pct(r["mean_class_recall"]), str(r["n_test"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as fb, open(sys.argv[2]) as fa:
        print(table(json.load(fb), json.load(fa)))
