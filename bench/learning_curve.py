"""Learning curve of a training run: every checkpoint exported and measured through ``Classifier``.

Each ``RUN/checkpoints/step-*`` is exported to a temporary bundle as the shipped one is (fp32,
held-out prompts, graph anchors when the run trained with the graph, BatchNorm re-estimated on
``--data``'s training split unless ``--no-bn``, the run's label support, no calibration) and
scored by ``bench/model_eval.py``'s ``evaluate`` on the same test frames, so the curve says
whether more samples would help. Resumable: steps already in
``--json`` are kept and skipped.

    python bench/learning_curve.py --run runs/conv128 --data data/synth-v3 --max 400 \
        --json bench/results/learning_curve_conv128.json
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_eval import evaluate  # noqa: E402

from usclip_data.us365k import US365K  # noqa: E402
from usclip_sdk import Classifier  # noqa: E402


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = []
    for p in (run / "checkpoints").glob("step-*"):
        m = re.fullmatch(r"step-(\d+)", p.name)
        if m and (p / "model.safetensors").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def point(step: int, ck: Path, train, test, batch_size: int, bn_data: str | None) -> dict:
    from usclip_train.export.bundle_writer import export_checkpoint

    with tempfile.TemporaryDirectory(prefix="usclip-curve-") as tmp:
        bundle = export_checkpoint(ck, Path(tmp) / "b", bn_data=bn_data)
        clf = Classifier(bundle, backend="onnxruntime", device="cpu", precision="fp32")
        r = evaluate(clf, train, test)
        del clf  # sessions released before the folder goes
    return {"step": step, "samples": step * batch_size,
            **{k: r[k] for k in ("AvgAcc", "AvgAcc_raw", "AvgAcc_seen", "AvgMajority", "normal_vs_lesion_auc",
                                 "normal_called_lesion", "organ_acc_trained_organs")},
            "per_dimension": {f: round(d["acc"], 4) for f, d in r["per_dimension"].items()},
            "majority": {f: round(d["majority"], 4) for f, d in r["per_dimension"].items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="a training run folder (OUT of usclip train)")
    ap.add_argument("--data", required=True, help="the run's US-365K-layout data (test split scored)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max", type=int, default=400, help="frames scored per checkpoint")
    ap.add_argument("--every", type=int, default=1, help="score every Nth checkpoint (the last always)")
    ap.add_argument("--no-bn", action="store_true",
                    help="export without re-estimating BatchNorm on --data's training split (usclip export --bn-data)")
    ap.add_argument("--json", required=True, type=Path, help="results file (read first: resumable)")
    a = ap.parse_args(argv)
    cfg = json.loads((a.run / "run_config.json").read_text())
    # samples per step of a single-process run (run_config does not record a torchrun world size)
    batch = int(cfg["batch_size"]) * int(cfg.get("grad_accum", 1))
    out = json.loads(a.json.read_text()) if a.json.is_file() else {}
    out.update(run=str(a.run), data=str(a.data), split=a.split, max_frames=a.max, run_config=cfg,
               eval=f"python bench/learning_curve.py --run {a.run} --data {a.data} --max {a.max}"
                    f"{' --no-bn' if a.no_bn else ''} "
                    "(each checkpoint exported uncalibrated, held-out prompts, scope=trained, through Classifier)")
    done = {p["step"] for p in out.get("curve", [])}
    train = list(US365K(a.data, "train"))
    test = list(US365K(a.data, a.split))[:a.max]
    cks = checkpoints(a.run)
    if not cks:
        raise SystemExit(f"{a.run}: no checkpoints/step-* folders with model.safetensors")
    chosen = [c for i, c in enumerate(cks) if i % a.every == 0 or i == len(cks) - 1]
    for step, ck in chosen:
        if step in done:
            continue
        t0 = time.perf_counter()
        p = point(step, ck, train, test, batch, None if a.no_bn else a.data)
        out.setdefault("curve", []).append(p)
        out["curve"].sort(key=lambda q: q["step"])
        a.json.write_text(json.dumps(out, indent=1) + "\n")
        auc = p["normal_vs_lesion_auc"]
        print(f"step {step:6d} ({p['samples']:,} samples): AvgAcc {100 * p['AvgAcc']:.1f} (seen "
              f"{100 * p['AvgAcc_seen']:.1f}, majority {100 * p['AvgMajority']:.1f}), AUC "
              f"{'n/a' if auc is None else f'{auc:.3f}'}, organ {100 * p['organ_acc_trained_organs']:.1f}  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
