"""What the shipped model says, measured the way a device runs it: through ``Classifier``
(region detection included) on held-out cases, every accuracy beside its majority baseline.

Per dimension (frames with a tag in it; correct = the top-1 value is one of the frame's tags):
- ``acc``: the Classifier's answer (the bundle's own class embeddings: held-out prompts for
  bundles exported since the prompt sets were split, see taxonomy.Dimension);
- ``acc_raw``: the same image embeddings against the bundle's class embeddings by plain
  cosine argmax (no calibration offsets), and ``acc_seen`` against anchors built from the
  training templates with the bundle's text tower (prompt classification), for comparison;
- ``majority``: always answering the training split's most common value of that dimension.
Also normal-vs-lesion AUC (score: best lesion-diagnosis logit minus the normal one), the two
errors of the Classifier's normal/lesion call (normal frames called lesions, lesion frames called
normal) and organ accuracy over the organs the training split contains.

    python bench/model_eval.py --data DIR [--bundle B] [--split test] [--json out.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

from usclip_data.us365k import US365K
from usclip_sdk import Classifier, taxonomy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triage_eval import auroc  # noqa: E402  (one AUROC for the bench scripts)

NORMAL = taxonomy.NORMAL


def majority(samples, field: str) -> str | None:
    counts = collections.Counter(v for s in samples for v in s.labels.get(field, ()))
    return counts.most_common(1)[0][0] if counts else None


def seen_anchors(clf: Classifier) -> dict[str, np.ndarray]:
    """Per dimension C x D anchors from the training templates, through the bundle's text tower."""
    out = {}
    for d in taxonomy.DIMENSIONS:
        rows = []
        for v in d.values:
            e = clf.embed_text(taxonomy.prompts(d.field, v, prompt_set="train")).mean(0)
            rows.append(e / np.linalg.norm(e))
        out[d.field] = np.stack(rows)
    return out


def evaluate(clf: Classifier, train, test, batch: int = 16) -> dict:
    t0 = time.perf_counter()
    preds, embs = [], []
    for i in range(0, len(test), batch):
        ps = clf.classify_batch([s.image_path for s in test[i:i + batch]], return_embedding=True)
        preds += ps
        embs += [p.embedding for p in ps]
    secs = time.perf_counter() - t0
    emb = np.stack(embs)
    seen = seen_anchors(clf)
    bundle_rows = {f: clf.class_embeddings[[i for i, (ff, _) in enumerate(clf.class_names) if ff == f]]
                   for f in taxonomy.FIELDS}
    dims, trained_organs = {}, {v for s in train for v in s.labels.get("Organ_level", ())}
    for d in taxonomy.DIMENSIONS:
        idx = [i for i, s in enumerate(test) if s.labels.get(d.field)]
        if not idx:
            continue
        tags = [set(test[i].labels[d.field]) for i in idx]
        got = [preds[i].attributes[d.field].value for i in idx]
        seen_pick = np.argmax(emb[idx] @ seen[d.field].T, axis=1)
        raw_pick = np.argmax(emb[idx] @ bundle_rows[d.field].T, axis=1)
        maj = majority(train, d.field)
        dims[d.field] = {
            "n": len(idx),
            "acc": float(np.mean([g in t for g, t in zip(got, tags)])),
            "acc_raw": float(np.mean([d.values[j] in t for j, t in zip(raw_pick, tags)])),
            "acc_seen": float(np.mean([d.values[j] in t for j, t in zip(seen_pick, tags)])),
            "majority": float(np.mean([maj in t for t in tags])), "majority_value": maj,
        }
    organ_idx = [i for i, s in enumerate(test) if set(s.labels.get("Organ_level", ())) & trained_organs]
    dx = bundle_rows["Diagnosis"]
    normal_col = taxonomy.dimension("Diagnosis").index(NORMAL)
    logits = emb @ dx.T
    lesion_score = np.delete(logits, normal_col, axis=1).max(1) - logits[:, normal_col]
    is_normal = np.array([NORMAL in s.labels.get("Diagnosis", ()) for s in test])
    called_normal = np.array([p.attributes["Diagnosis"].value == NORMAL for p in preds])
    has_dx = np.array([bool(s.labels.get("Diagnosis")) for s in test])
    normal_called_lesion = float(np.mean(~called_normal[is_normal])) if is_normal.any() else None
    lesion = has_dx & ~is_normal  # frames tagged with a lesion diagnosis
    lesion_called_normal = float(np.mean(called_normal[lesion])) if lesion.any() else None
    avg = float(np.mean([r["acc"] for r in dims.values()]))
    return {
        "n_test": len(test), "n_train": len(train), "seconds": round(secs, 1),
        "AvgAcc": avg, "AvgAcc_raw": float(np.mean([r["acc_raw"] for r in dims.values()])),
        "AvgAcc_seen": float(np.mean([r["acc_seen"] for r in dims.values()])),
        "AvgMajority": float(np.mean([r["majority"] for r in dims.values()])),
        "normal_vs_lesion_auc": (auroc(lesion_score[~is_normal], lesion_score[is_normal])
                                 if is_normal.any() and (~is_normal).any() else None),
        "normal_called_lesion": normal_called_lesion,
        "lesion_called_normal": lesion_called_normal,
        "organ_acc_trained_organs": float(np.mean([preds[i].attributes["Organ_level"].value
                                                    in test[i].labels["Organ_level"] for i in organ_idx])),
        "status_ok_rate": float(np.mean([p.status == "ok" for p in preds])),
        "per_dimension": dims,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="US-365K-layout folder (train split for baselines)")
    ap.add_argument("--bundle", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--baseline-split", default="train",
                    help="split whose most common values are the majority baseline (and the trained organs)")
    ap.add_argument("--max", type=int, default=None, help="evaluate at most this many frames")
    ap.add_argument("--precision", default="fp32",
                    help="image encoder (default fp32, the reference; bench/bench_cpu_e2e.py compares variants)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    clf = Classifier(a.bundle, backend="onnxruntime", device="cpu", precision=a.precision)
    train = list(US365K(a.data, a.baseline_split))
    if not train:
        raise SystemExit(f"--baseline-split {a.baseline_split}: no samples in {a.data}")
    test = list(US365K(a.data, a.split))[:a.max]
    r = evaluate(clf, train, test)
    r.update(bundle=str(a.bundle or "shipped"), data=str(a.data), split=a.split, precision=clf.backend.precision)
    print(f"{'dimension':26s} {'n':>5s} {'acc':>6s} {'raw':>6s} {'seen':>6s} {'major':>6s}  (majority value)")
    for f, d in r["per_dimension"].items():
        print(f"{f:26s} {d['n']:5d} {100 * d['acc']:6.1f} {100 * d['acc_raw']:6.1f} {100 * d['acc_seen']:6.1f} "
              f"{100 * d['majority']:6.1f}  ({d['majority_value']})")
    print(f"AvgAcc {100 * r['AvgAcc']:.1f} (raw {100 * r['AvgAcc_raw']:.1f}, seen prompts "
          f"{100 * r['AvgAcc_seen']:.1f}, majority "
          f"{100 * r['AvgMajority']:.1f}); normal-vs-lesion AUC {r['normal_vs_lesion_auc']:.3f}; "
          f"normal frames called lesions {100 * (r['normal_called_lesion'] or 0):.1f} %, lesions called "
          f"normal {100 * (r['lesion_called_normal'] or 0):.1f} %; organ acc "
          f"(trained organs) {100 * r['organ_acc_trained_organs']:.1f}; status ok "
          f"{100 * r['status_ok_rate']:.1f} %; {r['n_test']} frames in {r['seconds']} s")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
