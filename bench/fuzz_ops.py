"""Long fuzz run of the native ops: >= 100k seeded cases against the numpy references.

    nice -n 10 python bench/fuzz_ops.py --cases 100000 --json bench/results/fuzz_ops.json

Case ``seed`` uses generator ``seed % 6``: 0 valid preprocess, 1 valid similarity, 2 invalid
preprocess, 3 invalid similarity, 4 valid quality gate, 5 invalid quality gate
(tests/fuzz_cases.py KINDS; CI's tests/native/test_fuzz_ops.py runs the first 300 seeds of this
same stream plus hypothesis-driven cases; before the gate was added the stream was ``seed % 4``).
A valid case must match the reference within float32 rounding and leave its inputs untouched; an
invalid one must raise ValueError/TypeError/UsclipError (the gate's: the documented type, naming
the argument). A crash ends the process (faulthandler prints where); ``--start`` reruns from any
seed. Exit status 1 when any case failed.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_cases import KINDS  # noqa: E402
from fuzz_cases import run_seeded_case as run_case  # noqa: E402
from usclip_sdk import ops  # noqa: E402

__all__ = ["run_case", "main"]


def _run(start: int, cases: int, every: int) -> tuple[list[dict], list[dict]]:
    stats = [{"kind": k, "cases": 0, "failures": 0, "seconds": 0.0} for k in KINDS]
    failures = []
    t_all = time.perf_counter()
    for seed in range(start, start + cases):
        row = stats[seed % len(KINDS)]
        t0 = time.perf_counter()
        try:
            run_case(seed)
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its seed
            row["failures"] += 1
            if len(failures) < 50:
                failures.append({"seed": seed, "kind": row["kind"],
                                 "error": f"{type(e).__name__}: {str(e)[:300]}"})
        row["cases"] += 1
        row["seconds"] += time.perf_counter() - t0
        done = seed - start + 1
        if every and done % every == 0:
            print(f"  {done} cases, {sum(r['failures'] for r in stats)} failures, "
                  f"{time.perf_counter() - t_all:.0f} s", file=sys.stderr, flush=True)
    return stats, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--progress", type=int, default=10_000, help="report every n cases (0: off)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    faulthandler.enable()
    t0 = time.perf_counter()
    stats, failures = _run(args.start, args.cases, args.progress)
    seconds = time.perf_counter() - t0
    total = sum(r["failures"] for r in stats)
    print(f"{'kind':<20} {'cases':>8} {'failures':>8} {'ms/case':>8}")
    for r in stats:
        ms = 1e3 * r["seconds"] / max(r["cases"], 1)
        print(f"{r['kind']:<20} {r['cases']:>8} {r['failures']:>8} {ms:>8.2f}")
    for f in failures[:10]:
        print(f"FAIL seed {f['seed']} ({f['kind']}): {f['error']}")
    result = "PASS" if total == 0 else "FAIL"
    print(f"fuzz_ops: {args.cases} cases (seeds {args.start}..{args.start + args.cases - 1}), "
          f"{total} failures, {seconds:.0f} s: {result}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "cases": args.cases, "start_seed": args.start, "failures": total, "result": result,
            "seconds": round(seconds, 1), "per_kind": stats, "first_failures": failures,
            "cpu_kernel": ops.build_info().get("cpu_kernel", ""), "python": platform.python_version(),
            "command": "python bench/fuzz_ops.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        }, indent=1) + "\n")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
