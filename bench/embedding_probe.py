"""Does a bundle's image embedding carry each label? A linear probe on it, beside zero-shot.

The image embeddings come from ``Classifier`` (region detection included, fp32 encoder), the
same as ``bench/model_eval.py``. Per dimension a multinomial logistic regression
(``usclip_train.evaluate.linear_probe``: standardised features, C swept on a held-out fifth)
is fitted on ``--fit-split`` embeddings and scored on the first ``--max`` frames of ``--split``.
Where the probe is far above zero-shot, the image side carries the label and the text anchors
(or the prompts) lose it; where the probe is near zero-shot, the image embedding itself is the
limit (compare with the supervised ceiling in docs/data.md). ``--fit-split train --fit-max N``
fits on frames the tower was trained on: whether a read-out fitted on memorised frames (what
the text side is trained on) transfers as well as one fitted on unseen frames.

    python bench/embedding_probe.py --data data/synth-v4 [--bundle B] --max 600 \
        --json bench/results/embedding_probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_eval import evaluate  # noqa: E402

from usclip_data.us365k import US365K  # noqa: E402
from usclip_sdk import Classifier, taxonomy  # noqa: E402
from usclip_train.evaluate.linear_probe import linear_probe  # noqa: E402


def embed(clf: Classifier, samples, batch: int = 16) -> np.ndarray:
    out = [clf.embed_image([s.image_path for s in samples[i:i + batch]]) for i in range(0, len(samples), batch)]
    return np.concatenate(out).astype(np.float32)


def targets(samples) -> dict[str, np.ndarray]:
    out = {}
    for d in taxonomy.DIMENSIONS:
        m = np.zeros((len(samples), len(d.values)), bool)
        for i, s in enumerate(samples):
            for v in s.labels.get(d.field, ()):
                m[i, d.index(v)] = True
        out[d.field] = m
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--bundle", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--fit-split", default="valid", help="split the probe is fitted on (default valid)")
    ap.add_argument("--fit-max", type=int, default=None,
                    help="fit on the first N frames of --fit-split (e.g. as many training frames as validation has)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max", type=int, default=600, help="test frames (the first N, as model_eval)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    clf = Classifier(a.bundle, backend="onnxruntime", device="cpu", precision="fp32")
    fit = list(US365K(a.data, a.fit_split))[:a.fit_max]
    test = list(US365K(a.data, a.split))[:a.max]
    t0 = time.perf_counter()
    probe = linear_probe(embed(clf, fit), targets(fit), embed(clf, test), targets(test))
    zs = evaluate(clf, list(US365K(a.data, "train")), test)
    print(f"{'dimension':26s} {'zero-shot':>9s} {'probe':>6s} {'majority':>8s}   "
          f"({len(fit)} fit / {len(test)} test frames)")
    rows = {}
    for f, z in zs["per_dimension"].items():
        p = probe["per_dimension"][f].get("acc1")
        rows[f] = {"zero_shot": z["acc"], "probe": p, "majority": z["majority"]}
        print(f"{f:26s} {100 * z['acc']:9.1f} {100 * (p or 0):6.1f} {100 * z['majority']:8.1f}")
    print(f"AvgAcc: zero-shot {100 * zs['AvgAcc']:.1f}, probe {100 * probe['AvgAcc']:.1f}  "
          f"[{time.perf_counter() - t0:.0f} s]")
    if a.json:
        Path(a.json).write_text(json.dumps({"bundle": str(a.bundle or "shipped"), "data": a.data,
                                            "fit_split": a.fit_split, "fit_max": a.fit_max, "split": a.split,
                                            "n_fit": len(fit),
                                            "n_test": len(test), "per_dimension": rows,
                                            "AvgAcc_zero_shot": zs["AvgAcc"], "AvgAcc_probe": probe["AvgAcc"]},
                                           indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
