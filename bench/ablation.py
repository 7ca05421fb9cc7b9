"""The paper's ablation on a synthetic US-365K-layout set: plain CLIP, + soft labels, + graph,
full, several seeds each, the same budget; zero-shot AvgAcc / AvgRecall and R@10 on the
validation split; mean +- std table (markdown) and JSON.

    python bench/ablation.py --data DIR --out RUNS [--seeds 0,1,2] [--set key=value ...]

Runs are sequential in one process (the frozen text tower's cache is shared when
lock_text=true).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from usclip_train.config import load_run_config, parse_overrides
from usclip_train.train import train

VARIANTS = {
    "CLIP (InfoNCE)": {"use_soft_labels": False, "use_graph": False},
    "+ soft labels": {"use_soft_labels": True, "use_graph": False},
    "+ graph": {"use_soft_labels": False, "use_graph": True},
    "full (soft labels + graph)": {"use_soft_labels": True, "use_graph": True},
}
KEYS = ("AvgAcc", "AvgRecall", "i2t_R@10", "t2i_R@10")


def _fmt(xs):
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * m:.1f} +- {100 * s:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--config")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--first-run", help="train one more run (e.g. the default model) into this "
                    "folder before the ablation, in this process (it shares the text cache)")
    ap.add_argument("--first-set", action="append", default=[], help="overrides for --first-run")
    args = ap.parse_args()
    base = load_run_config(args.config, parse_overrides(args.overrides), data=args.data)
    out = Path(args.out)
    if args.first_run:
        t0 = time.perf_counter()
        res = train(base.with_overrides(parse_overrides(args.first_set)), args.first_run)
        print(json.dumps({"first_run": args.first_run, "seconds": time.perf_counter() - t0,
                          "steps": res.steps, "metrics": res.metrics}), file=sys.stderr, flush=True)
    results = {}
    for name, switches in VARIANTS.items():
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = base.with_overrides({**switches, "seed": seed, "eval_at_end": True})
            tag = f"{name.split()[0].strip('+').strip() or 'x'}-{'sl' if cfg.use_soft_labels else 'nosl'}-{'g' if cfg.use_graph else 'nog'}-s{seed}"
            t0 = time.perf_counter()
            res = train(cfg, out / tag)
            row = {k: res.metrics.get(k) for k in KEYS}
            row.update(seconds=time.perf_counter() - t0, steps=res.steps, final_loss=res.final_loss)
            results.setdefault(name, []).append(row)
            print(json.dumps({"variant": name, "seed": seed, **row}), file=sys.stderr, flush=True)
            (out / "ablation.json").write_text(json.dumps({"config": base.to_dict(), "results": results}, indent=1))
    print("| variant | AvgAcc (%) | AvgRecall (%) | R@10 i->t (%) | R@10 t->i (%) | seeds |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        cells = [_fmt([r[k] for r in rows]) for k in KEYS]
        print(f"| {name} | " + " | ".join(cells) + f" | {len(rows)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
