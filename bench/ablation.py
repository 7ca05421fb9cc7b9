"""The paper's ablation on a synthetic US-365K-layout set: plain CLIP, + soft labels, + graph,
full (at several lambda), and full with the within-dimension Jaccard S^(k) a reader of the
release would build; several seeds each, the same budget.

Reported per variant: zero-shot AvgAcc / AvgRecall and R@10 on the validation split (mean and
sd over seeds), and the per-seed paired difference against plain CLIP (same seed, same data
order) with a 95 % confidence interval (Student t over seeds), on the average and per
dimension: whether "CLIP < + soft labels < full" holds is read off those intervals.

    python bench/ablation.py --data DIR --out RUNS [--seeds 0,1,2] [--lambdas 0.3,1,3]
                             [--variants 'NAME;NAME...'] [--set key=value ...]
    python bench/ablation.py --report RUNS/ablation.json    # the report again, no training

Runs are sequential in one process (the frozen text tower's cache is shared when
lock_text=true), seed by seed (every variant at seed 0, then at seed 1, ...); ablation.json is
rewritten after every run, and a run already in it is not trained again (the bench resumes
after an interruption; scripts/ablation.sh is the budgeted command).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

from usclip_train.config import load_run_config, parse_overrides
from usclip_train.train import train

KEYS = ("AvgAcc", "AvgRecall", "i2t_R@10", "t2i_R@10")
BASELINE = "CLIP (InfoNCE)"
SOFT, GRAPH, JACCARD, FULL = "+ soft labels", "+ graph", "full, Jaccard S", "full, lambda="
# two-sided 95 % Student t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def full_name(lam: float) -> str:
    return f"{FULL}{lam:g}"


def variants(lambdas) -> dict[str, dict]:
    out = {BASELINE: {"use_soft_labels": False, "use_graph": False},
           SOFT: {"use_soft_labels": True, "use_graph": False},
           GRAPH: {"use_soft_labels": False, "use_graph": True}}
    for lam in lambdas:
        out[full_name(lam)] = {"use_soft_labels": True, "use_graph": True, "sm_lambda": lam}
    out[JACCARD] = {"use_soft_labels": True, "use_graph": True, "similarity": "jaccard"}
    return out


def select(table: dict[str, dict], spec: str) -> dict[str, dict]:
    """The variants named in ``spec``, separated by ';' (the names contain commas), in the
    table's order; an unknown name is an error, not a silently smaller ablation."""
    keep = [v.strip() for v in spec.split(";") if v.strip()]
    unknown = [v for v in keep if v not in table]
    if unknown or not keep:
        raise ValueError(f"--variants: unknown or no variant names {unknown}; known: {list(table)}")
    return {k: v for k, v in table.items() if k in keep}


def ci95(xs) -> tuple[float, float, float]:
    """Mean and the 95 % interval of a mean over seeds (t distribution)."""
    m = statistics.mean(xs)
    if len(xs) < 2:
        return m, float("nan"), float("nan")
    h = _T95.get(len(xs) - 1, 1.96) * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, m - h, m + h


def per_dimension(run_dir: Path) -> dict[str, float]:
    """acc1 per dimension from the run's final evaluation (eval-<split>/results.json)."""
    for f in sorted(run_dir.glob("eval-*/results.json")):
        res = json.loads(f.read_text())
        dims = res.get("tasks", {}).get("zeroshot_classification", {}).get("per_dimension", {})
        return {k: v["acc1"] for k, v in dims.items() if v.get("n_samples", 0) > 0}
    return {}


def paired(results: dict, name: str, base_name: str = BASELINE) -> dict:
    """Per-seed differences name - base_name (plain CLIP by default) on AvgAcc and per dimension,
    with 95 % intervals; only seeds both variants ran are paired."""
    base = {r["seed"]: r for r in results.get(base_name, [])}
    rows = [(r, base[r["seed"]]) for r in results.get(name, []) if r["seed"] in base]
    if not rows:
        return {}
    out = {"AvgAcc": ci95([r["AvgAcc"] - b["AvgAcc"] for r, b in rows]), "seeds": len(rows)}
    for dim in rows[0][0].get("per_dimension", {}):
        diffs = [r["per_dimension"][dim] - b["per_dimension"].get(dim, float("nan")) for r, b in rows]
        out[dim] = ci95(diffs)
    return out


def ordering_steps(results: dict) -> list[tuple[str, str]]:
    """The paper's ordering read one step at a time: (variant, the variant it should beat) for
    every full model against + soft labels and against + graph, every other lambda against
    lambda 1 (the sweep's question: is 1 the best weight), and the Jaccard S^(k) against the
    default S^(k) at lambda 1, where both sides ran."""
    full = [n for n in results if n.startswith(FULL)]
    steps = [(n, b) for n in full for b in (SOFT, GRAPH)]
    steps += [(n, full_name(1)) for n in full if n != full_name(1)]
    steps.append((JACCARD, full_name(1)))
    return [(n, b) for n, b in steps if n in results and b in results]


def _pct(t) -> str:
    m, lo, hi = t
    return f"{100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" if not math.isnan(lo) else f"{100 * m:+.1f}"


def report(results: dict) -> str:
    lines = ["| variant | AvgAcc (%) | AvgRecall (%) | R@10 i->t | R@10 t->i "
             "| AvgAcc - CLIP, 95 % CI (points) | seeds |", "|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        cells = []
        for k in KEYS:
            xs = [r[k] for r in rows if r.get(k) is not None]
            cells.append(f"{100 * statistics.mean(xs):.1f} +- {100 * (statistics.stdev(xs) if len(xs) > 1 else 0):.1f}"
                         if xs else "-")
        p = paired(results, name) if name != BASELINE else {}
        diff = _pct(p["AvgAcc"]) if p else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {diff} | {len(rows)} |")
    dims = list(next(iter(results.values()))[0].get("per_dimension", {})) if results else []
    if dims:
        lines += ["", "Per dimension, difference to CLIP in points (mean [95 % CI]):", "",
                  "| variant | " + " | ".join(dims) + " |", "|---" * (len(dims) + 1) + "|"]
        for name in results:
            if name == BASELINE:
                continue
            p = paired(results, name)
            lines.append(f"| {name} | " + " | ".join(_pct(p[d]) if d in p else "-" for d in dims) + " |")
    steps = [(n, b, paired(results, n, b)) for n, b in ordering_steps(results)]
    if any(p for _, _, p in steps):
        lines += ["", "The ordering one step at a time (paired by seed, mean [95 % CI], points):", "",
                  "| difference | AvgAcc | seeds | " + " | ".join(dims) + " |",
                  "|---" * (len(dims) + 3) + "|"]
        for n, b, p in steps:
            if p:
                lines.append(f"| {n} - {b} | {_pct(p['AvgAcc'])} | {p['seeds']} | "
                             + " | ".join(_pct(p[d]) if d in p else "-" for d in dims) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="data set folder (required unless --report)")
    ap.add_argument("--out", help="runs folder; its ablation.json makes the bench resumable")
    ap.add_argument("--report", metavar="JSON",
                    help="print the report of a finished ablation.json (or bench/results copy) and exit")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lambdas", default="0.3,1,3", help="lambda values of the full model")
    ap.add_argument("--variants", default=None,
                    help="semicolon-separated subset of the variant names (names contain commas)")
    ap.add_argument("--config")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    if args.report:
        try:
            results = json.loads(Path(args.report).read_text())["results"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            ap.error(f"--report {args.report}: not a readable ablation.json ({type(e).__name__}: {e})")
        print(report(results))
        return 0
    if not (args.data and args.out):
        ap.error("--data and --out are required (or --report to print a finished one)")
    base = load_run_config(args.config, parse_overrides(args.overrides), data=args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = variants([float(x) for x in args.lambdas.split(",")])
    if args.variants:
        try:
            table = select(table, args.variants)
        except ValueError as e:
            ap.error(str(e))
    state = out / "ablation.json"
    results = json.loads(state.read_text())["results"] if state.is_file() else {}
    # Seeds outer, variants inner: an interrupted bench has every variant at the first seeds
    # (paired differences need the same seeds), not every seed of the first variants.
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, switches in table.items():
            if any(r["seed"] == seed for r in results.get(name, [])):
                continue  # done in an earlier invocation
            cfg = base.with_overrides({**switches, "seed": seed, "eval_at_end": True})
            tag = "".join(c if c.isalnum() else "-" for c in name).strip("-") + f"-s{seed}"
            t0 = time.perf_counter()
            # an interrupted run resumes from its last checkpoint (exactly: see test_train_loop)
            res = train(cfg, out / tag, resume=(out / tag / "checkpoints" / "latest").is_file())
            row = {k: res.metrics.get(k) for k in KEYS}
            row.update(seed=seed, seconds=time.perf_counter() - t0, steps=res.steps,
                       final_loss=res.final_loss, per_dimension=per_dimension(out / tag))
            results.setdefault(name, []).append(row)
            print(json.dumps({"variant": name, **row}), file=sys.stderr, flush=True)
            state.write_text(json.dumps({"config": base.to_dict(), "results": results}, indent=1))
    text = report(results)
    (out / "ablation.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
