"""Prompt separability: how far apart a model's text anchors of one dimension's values are.

Zero-shot classification can only tell two values apart when their class embeddings (prompt
ensembles) point in different directions. Per dimension this reports the mean and the
largest cosine between the anchors of two different values, and the closest pair, for each
bundle given (its shipped ``class_embeddings.npy``) - e.g. before and after unlocking text
layers. A cosine near 1 (the shipped model: "well-defined" vs "ill-defined" margins 0.986)
means the text side has collapsed the values. A training checkpoint folder (``RUN/checkpoints/
step-N``, with a model trained without the attribute graph) is measured too: its anchors are
computed as export computes a bundle's (``bundle_class_embeddings``, held-out prompts; needs
the [train] extra), so a run need not be exported to be compared.

    python bench/prompt_separability.py [BUNDLE | CHECKPOINT ...] [--json bench/results/prompt_separability.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from usclip_sdk.bundle import Bundle
from usclip_sdk.models import default_bundle_path


def separability(bundle: Bundle) -> dict:
    return separability_of(bundle.class_embeddings(), bundle.class_names, bundle.group_sizes)


def checkpoint_anchors(path: Path) -> np.ndarray:
    """93 x D anchors of a checkpoint as export would write them (held-out prompts)."""
    from usclip_train import factory
    from usclip_train.export.bundle_writer import bundle_class_embeddings

    cfg = json.loads((path / "config.json").read_text())
    if cfg.get("run_config", {}).get("use_graph"):
        raise SystemExit(f"{path}: trained with the attribute graph; export it and pass the bundle")
    model, _, tokenizer = factory.create_model(cfg["model"]["name"], checkpoint=path)
    return bundle_class_embeddings(model.eval(), tokenizer)


def separability_of(emb, names, group_sizes) -> dict:
    emb = np.asarray(emb, np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    out, off = {}, 0
    for size in group_sizes:
        field = names[off][0]
        e = emb[off:off + size]
        c = e @ e.T
        iu = np.triu_indices(size, 1)
        pair = int(np.argmax(c[iu]))
        i, j = iu[0][pair], iu[1][pair]
        out[field] = {"values": size, "mean_cos": round(float(c[iu].mean()), 4),
                      "max_cos": round(float(c[iu].max()), 4),
                      "closest": [names[off + i][1], names[off + j][1]]}
        off += size
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="*", help="bundle folders, .zip files or training checkpoint folders "
                                               "(default: the shipped bundle)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    paths = a.bundles or [str(default_bundle_path())]
    results = {}
    for p in paths:
        if (Path(p) / "model.safetensors").is_file():  # a training checkpoint
            from usclip_sdk import taxonomy

            results[str(p)] = separability_of(checkpoint_anchors(Path(p)), taxonomy.class_names(),
                                              taxonomy.group_sizes())
            continue
        with Bundle.open(p) as b:
            results[str(p)] = separability(b)
    for p, dims in results.items():
        print(p)
        print(f"  {'dimension':28s} {'values':>6s} {'mean cos':>9s} {'max cos':>8s}  closest pair")
        for f, r in dims.items():
            print(f"  {f:28s} {r['values']:6d} {r['mean_cos']:9.3f} {r['max_cos']:8.3f}  "
                  f"{r['closest'][0]} / {r['closest'][1]}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
