"""Peak resident memory of the SDK on the CPU: what a small board (Jetson Orin Nano: 8 GB shared
by CPU and GPU) must leave free for it.

    nice -n 10 python bench/memory.py --json bench/results/memory.json

Each scenario runs in a fresh interpreter (peak RSS is a process high-water mark and cannot be
reset), ``--repeat`` times; the figure is the kernel's VmHWM (peak resident set) at the end.

- ``import``: ``import usclip_sdk`` and numpy only (the floor every scenario includes);
- ``classify``: ``Classifier()`` (the shipped bundle unless ``--bundle``) + one classify of a
  480 x 640 scanner-like frame: what a device keeps resident to triage;
- ``labels``: the same, then ``set_labels`` with ``--labels`` (1,000) distinct free-text labels
  (each a prompt ensemble through the text tower, one label at a time) and one classify.
tests/sdk/test_memory.py runs the same scenarios with a generous bound that catches a doubling
(with 50 labels: the text tower's session, not the label count, sets the peak; see
docs/reliability.md for both counts).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

__all__ = ["SCENARIOS", "measure", "labels", "main"]

SCENARIOS = ("import", "classify", "labels")
ROOT = Path(__file__).resolve().parents[1]

ORGANS = ("thyroid", "liver", "kidney", "breast", "gallbladder", "spleen", "pancreas", "bladder",
          "ovary", "testis")
FINDINGS = ("nodule", "cyst", "mass", "calcification", "lesion", "effusion", "stone", "polyp",
            "abscess", "hematoma")
QUALIFIERS = ("hypoechoic", "hyperechoic", "anechoic", "isoechoic", "heterogeneous", "well defined",
              "irregular", "lobulated", "small", "large")


def labels(n: int = 1000) -> list[str]:
    """n distinct clinical-sounding free-text labels (organ x finding x qualifier)."""
    out = [f"{q} {f} of the {o}" for o in ORGANS for f in FINDINGS for q in QUALIFIERS]
    if n > len(out):
        raise ValueError(f"labels: at most {len(out)}, asked for {n}")
    return out[:n]


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _child(scenario: str, bundle: str | None, n_labels: int) -> dict:
    import time

    import numpy as np

    import usclip_sdk  # noqa: F401

    t0 = time.perf_counter()
    if scenario != "import":
        from usclip_sdk import Classifier

        clf = Classifier(bundle) if bundle else Classifier()
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 60, (480, 640, 3), np.uint8)
        frame[60:420, 120:520] += rng.integers(0, 120, (360, 400, 3), np.uint8)  # an imaging region
        if scenario == "labels":
            clf.set_labels(labels(n_labels))
        clf.classify(frame)
    return {"scenario": scenario, "labels": n_labels if scenario == "labels" else 0,
            "peak_rss_mb": round(_peak_mb(), 1),
            "seconds": round(time.perf_counter() - t0, 2)}


def measure(scenario: str, bundle: str | None = None, n_labels: int = 1000, timeout: float = 900) -> dict:
    """One fresh-process run of ``scenario``: {"scenario", "labels", "peak_rss_mb", "seconds"}."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario: expected one of {list(SCENARIOS)}, found {scenario!r}")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", scenario, "--labels", str(n_labels)]
    if bundle:
        cmd += ["--bundle", str(bundle)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"memory scenario {scenario} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", help="bundle folder or .zip (default: the shipped model)")
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per scenario")
    ap.add_argument("--labels", type=int, default=1000, help="free-text labels in the labels scenario")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.bundle, args.labels)))
        return 0
    rows = {}
    for sc in SCENARIOS:
        runs = [measure(sc, args.bundle, args.labels) for _ in range(args.repeat)]
        peaks = [r["peak_rss_mb"] for r in runs]
        rows[sc] = {"peak_rss_mb_median": statistics.median(peaks), "peak_rss_mb_max": max(peaks),
                    "runs": runs}
        print(f"{sc:11s} peak RSS median {statistics.median(peaks):7.1f} MB  max {max(peaks):7.1f} MB  "
              f"({', '.join(f'{p:.1f}' for p in peaks)}; {runs[-1]['seconds']} s)")
    base = rows["import"]["peak_rss_mb_median"]
    for sc in ("classify", "labels"):
        rows[sc]["above_import_mb"] = round(rows[sc]["peak_rss_mb_median"] - base, 1)
    result = {"bundle": args.bundle or "shipped (usclip_sdk.models.default_bundle_path)",
              "machine": platform.platform(), "python": platform.python_version(),
              "repeat": args.repeat, "labels": args.labels, "scenarios": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
