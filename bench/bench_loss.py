"""Benchmark the Ultrasound-CLIP loss pieces (CPU) against what a user would otherwise write.

* soft labels: the vectorised builder (M blockdiag(S) M^T) vs the formula read literally
  (loops over sample pairs, dimensions and tag pairs);
* attribute graph: the dense batched module vs one graph at a time from edge lists (how a
  DGL-free port of the per-sample graph reads);
* loss: UltrasoundClipLoss (InfoNCE + lambda * L_SM) vs open_clip's ClipLoss alone,
  forward + backward - the price of the semantic term.

Same process, one case after the other, median of repeats (the CPU is shared; the loss
pair is timed twice, alternating). The fast side gets >= 20 repeats, the loops fewer.

    python bench/bench_loss.py [--json bench/results/loss_cpu.json] [--repeats 5] [--threads 1]

One torch thread by default: on a shared, oversubscribed CPU a two-thread parallel region
waits for a descheduled partner and sub-millisecond ops read as 100 ms.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from usclip_sdk import taxonomy
from usclip_train.graph import AttributeGraph
from usclip_train.loss import UltrasoundClipLoss
from usclip_train.semantic import SoftLabels, TagSimilarity

__all__ = ["naive_soft_labels", "per_sample_graph", "main"]


def naive_soft_labels(y: np.ndarray, sim: TagSimilarity) -> np.ndarray:
    """s_ij read literally: loops over pairs, dimensions and tag pairs."""
    offs, sizes, b = taxonomy.group_offsets(), taxonomy.group_sizes(), y.shape[0]
    tags = [[np.flatnonzero(y[i, o:o + n]) for o, n in zip(offs, sizes)] for i in range(b)]
    out = np.eye(b)
    for i in range(b):
        for j in range(b):
            if i == j:
                continue
            tot = 0.0
            for k, m in enumerate(sim.matrices):
                if len(tags[i][k]) and len(tags[j][k]):
                    tot += m[np.ix_(tags[i][k], tags[j][k])].mean()
            out[i, j] = tot / 9.0
    return out


def per_sample_graph(model: AttributeGraph, y: torch.Tensor) -> torch.Tensor:
    """One graph at a time: node lists, a complete bipartite edge list, index_add messages."""
    outs = []
    for row in y:
        dx = (torch.nonzero(row[:5]).flatten().tolist()) or [5]
        ds = (torch.nonzero(row[5:]).flatten().tolist()) or [88]
        src = torch.arange(len(dx)).repeat_interleave(len(ds))
        dst = torch.arange(len(ds)).repeat(len(dx))
        w = (1.0 / math.sqrt(len(dx) * len(ds)))
        h_dx = model.dx_norm(model.dx_embed.weight[dx])
        h_ds = model.ds_norm(model.ds_embed.weight[ds])
        for conv in model.convs:
            m_ds = torch.zeros_like(h_ds).index_add_(0, dst, w * h_dx[src])
            m_dx = torch.zeros_like(h_dx).index_add_(0, src, w * h_ds[dst])
            h_dx, h_ds = F.relu(conv.rev(m_dx)), F.relu(conv.fwd(m_ds))
        outs.append(F.normalize(model.proj(h_dx.mean(0) + h_ds.mean(0)), dim=-1))
    return torch.stack(outs)


def _median_ms(fn, repeats: int) -> float:
    fn()
    times: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _labels(b: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, len(taxonomy.class_names()), generator=g) < 0.06).float()


def _open_clip_loss():
    from open_clip.loss import ClipLoss
    return ClipLoss()


def run(repeats: int) -> list[dict]:
    rows = []
    sim = TagSimilarity.default(_labels(2000, 0).numpy())
    builder = SoftLabels(sim)
    for b in (64, 128):
        y = _labels(b, b)
        ours = _median_ms(lambda: builder(y), max(repeats, 20))
        base = _median_ms(lambda: naive_soft_labels(y.numpy(), sim), max(1, repeats // 2))
        rows.append({"case": f"soft labels B={b}", "ours_ms": ours, "baseline": "literal loops",
                     "baseline_ms": base})
    model = AttributeGraph(512).eval()
    for b in (64, 256):
        y = _labels(b, b + 1)
        with torch.no_grad():
            ours = _median_ms(lambda: model(y), max(repeats, 20))
            base = _median_ms(lambda: per_sample_graph(model, y), max(1, repeats // 2))
        rows.append({"case": f"graph fwd B={b}", "ours_ms": ours, "baseline": "per-sample edge lists",
                     "baseline_ms": base})
    ref_loss, ours_loss = _open_clip_loss(), UltrasoundClipLoss(sim, lambda_sm=1.0)
    for b in (128, 512):
        g = torch.Generator().manual_seed(b)
        img = torch.randn(b, 512, generator=g).requires_grad_(True)
        txt = torch.randn(b, 512, generator=g).requires_grad_(True)
        y, scale = _labels(b, b + 2), torch.tensor(14.0)

        def step(fn):
            i, t = F.normalize(img, dim=1), F.normalize(txt, dim=1)
            out = fn(i, t)
            (out["loss"] if isinstance(out, dict) else out).backward()

        for _ in range(2):  # alternate so both see the same background load
            ours = _median_ms(lambda: step(lambda i, t: ours_loss(i, t, scale, y)), max(repeats, 10))
            base = _median_ms(lambda: step(lambda i, t: ref_loss(i, t, scale)), max(repeats, 10))
        rows.append({"case": f"loss fwd+bwd B={b} D=512", "ours_ms": ours,
                     "baseline": "open_clip ClipLoss (no semantic term)", "baseline_ms": base})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="bench/results/loss_cpu.json")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args.repeats)
    print(f"{'case':32s} {'ours ms':>9s} {'baseline ms':>12s} {'ratio':>7s}  baseline")
    for r in rows:
        r["baseline_over_ours"] = r["baseline_ms"] / r["ours_ms"]
        print(f"{r['case']:32s} {r['ours_ms']:9.2f} {r['baseline_ms']:12.2f} "
              f"{r['baseline_over_ours']:7.2f}  {r['baseline']}")
    out = {"bench": "loss_cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": platform.processor() or platform.machine(), "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
