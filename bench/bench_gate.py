"""Gate cost: quality.assess (one native pass, usclip_sdk.ops.gate) against the numpy path it
replaced (ops.gate_reference's figures + the same quality.verdict), at 480p, 720p and 1080p.

Frames: the eight synthetic scanner layouts of bench_region.py (cli.bench.synthetic_screen and
seven usclip_data.synth screens), each as rendered and twice re-speckled, with the region
detect_region finds on the rendered frame (as the Classifier's layout cache hands it on). Per
frame the two paths run interleaved --reps times (both see the same load); the figure is the
median over frames of each frame's median. Every frame's verdicts are compared too: same ok,
same failed checks, every reported figure within one step of its rounding.
Usage: python bench/bench_gate.py [--reps 50] [--json out.json]
(default JSON: bench/results/gate_<cpu>.json, <cpu> from the model name and its widest AVX)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_region import SIZES, layouts, respeckle  # noqa: E402

from usclip_sdk.cpuinfo import cpu_field, cpu_flags  # noqa: E402
from usclip_sdk.ops.gate import gate_figures  # noqa: E402
from usclip_sdk.ops.gate_reference import gate_figures_reference  # noqa: E402
from usclip_sdk.quality import assess, verdict  # noqa: E402
from usclip_sdk.region import detect_region  # noqa: E402


def old_assess(pixels, region):
    """The numpy path (quality.assess before the native kernel)."""
    return verdict(gate_figures_reference(pixels, region.mask, region.bbox), region.kind)


def same_verdict(a, b) -> bool:
    if a.ok != b.ok or [m.split(":")[0] for m in a.failed] != [m.split(":")[0] for m in b.failed]:
        return False
    if a.figures.keys() != b.figures.keys():
        return False
    return all(abs(x - y) <= 1.01e-3 if isinstance(y, float) else x == y
               for x, y in ((a.figures[k], b.figures[k]) for k in b.figures))


def frames(h: int, w: int):
    rng = np.random.default_rng(0)
    for img, mask in layouts(h, w):
        region = detect_region(img)
        for f in (img, respeckle(img, mask, rng), respeckle(img, mask, rng)):
            yield f, region


def time_size(h: int, w: int, reps: int) -> dict:
    old_ms, new_ms, fig_ms, same, oks = [], [], [], 0, 0
    for f, region in frames(h, w):
        old_assess(f, region), assess(f, region)  # warm
        o, n, g = [], [], []
        for _ in range(reps):
            t = time.perf_counter()
            old_assess(f, region)
            o.append(time.perf_counter() - t)
            t = time.perf_counter()
            assess(f, region)
            n.append(time.perf_counter() - t)
            t = time.perf_counter()
            gate_figures(f, region.mask, region.bbox)
            g.append(time.perf_counter() - t)
        old_ms.append(np.median(o) * 1e3)
        new_ms.append(np.median(n) * 1e3)
        fig_ms.append(np.median(g) * 1e3)
        a, b = assess(f, region), old_assess(f, region)
        same += same_verdict(a, b)
        oks += a.ok
    old, new = float(np.median(old_ms)), float(np.median(new_ms))
    return {"frames": len(old_ms), "numpy_ms": round(old, 4), "native_assess_ms": round(new, 4),
            "native_figures_ms": round(float(np.median(fig_ms)), 4), "speedup": round(old / new, 2),
            "numpy_ms_max": round(float(max(old_ms)), 4), "native_assess_ms_max": round(float(max(new_ms)), 4),
            "identical_verdicts": f"{same}/{len(old_ms)}", "passed_gate": oks}


def cpu_line() -> tuple[str, str]:
    """(model name + widest AVX, file-name tag)."""
    model = cpu_field("model name") or "unknown CPU"
    flags = cpu_flags() or frozenset()
    isa = "avx512" if any(f.startswith("avx512") for f in flags) else ("avx2" if "avx2" in flags else "no_avx2")
    tag = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") + "_" + isa
    return f"{model}, {'with' if isa == 'avx512' else 'without'} AVX512 ({isa})", tag


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50, help="interleaved runs of each path per frame")
    ap.add_argument("--json", help="default bench/results/gate_<cpu>.json")
    a = ap.parse_args()
    machine, tag = cpu_line()
    res = {"date": str(date.today()), "machine": machine, "cpus": os.cpu_count(),
           "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "reps": a.reps, "sizes": {}}
    for name, (h, w) in SIZES.items():
        r = time_size(h, w, a.reps)
        res["sizes"][name] = r
        print(f"{name}: numpy {r['numpy_ms']:.3f} ms, native assess {r['native_assess_ms']:.3f} ms "
              f"(figures alone {r['native_figures_ms']:.3f}), x{r['speedup']}; identical verdicts "
              f"{r['identical_verdicts']}", flush=True)
    res["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(machine, "| load average", res["load_average_at_start"], "->", res["load_average_at_end"])
    out = Path(a.json or f"bench/results/gate_{tag}.json")
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
