"""GPU timing of the CUDA similarity op (CUDA events, warm-up, median) against torch
(F.normalize + matmul + softmax + topk) and against the memory-bandwidth floor.

Inputs live on the device (torch tensors, zero-copy through __cuda_array_interface__). The op
returns host numpy arrays and synchronises its stream (that is its contract: bad inputs are
reported, never returned), so two torch columns are given:
  torch_dev   the torch kernels alone, results left on the device (torch's best case);
  torch_host  the same plus copying logits, probs and the top-k to the host (like for like).
Floor = (embedding bytes read + logits/probs written) / measured device-to-device copy rate.
Run by bench/gpu_check.sh on a lent GPU machine; needs torch. Writes JSON (--json).
"""
from __future__ import annotations

import argparse
import json

import torch

from gpu_timing import copy_rate, events_ms
import torch.nn.functional as F

from usclip_sdk import taxonomy
from usclip_sdk.ops.similarity import similarity

__all__ = ["main"]


def torch_similarity(x, c, groups=None, k=5, to_host=False):
    logits = 100.0 * F.normalize(x.float(), dim=-1) @ F.normalize(c.float(), dim=-1).T
    if groups is None:
        probs = logits.softmax(-1)
    else:
        probs = torch.cat([p.softmax(-1) for p in logits.split(list(groups), -1)], -1)
    vals, idx = logits.topk(min(k, c.shape[0]), dim=-1)
    if to_host:
        return logits.cpu(), probs.cpu(), idx.cpu(), vals.cpu()
    return logits, probs, idx, vals


def _cases():
    for n in (1, 32, 256):
        for k in (2, 93, 1000):
            yield n, k, torch.float32, None
    yield 1, 93, torch.float32, taxonomy.group_sizes()
    yield 1, 1000, torch.float16, None
    yield 256, 1000, torch.float16, None


def run() -> tuple[list, float]:
    rate = copy_rate()
    gen = torch.Generator(device="cuda").manual_seed(0)
    stream = torch.cuda.current_stream()
    rows = []
    for n, k, dt, groups in _cases():
        x = torch.randn(n, 512, device="cuda", generator=gen).to(dt)
        c = torch.randn(k, 512, device="cuda", generator=gen).to(dt)
        xin = x[0] if n == 1 else x
        ours = events_ms(lambda: similarity(xin, c, groups=groups, device="cuda", stream=stream))
        t_dev = events_ms(lambda: torch_similarity(xin, c, groups))
        t_host = events_ms(lambda: torch_similarity(xin, c, groups, to_host=True))
        moved = (n + k) * 512 * x.element_size() + 2 * n * k * 4
        floor_ms = moved / rate * 1e3
        rows.append({"N": n, "K": k, "D": 512, "dtype": str(dt).split(".")[-1],
                     "groups": groups is not None, "usclip_ms": ours, "torch_dev_ms": t_dev,
                     "torch_host_ms": t_host, "floor_ms": floor_ms,
                     "speedup_vs_torch_dev": t_dev / ours, "speedup_vs_torch_host": t_host / ours})
    return rows, rate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="gpu_similarity.json")
    args = ap.parse_args(argv)
    rows, rate = run()
    with open(args.json, "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "copy_rate_GBps": rate / 1e9,
                   "rows": rows}, f, indent=1)
    print(f"similarity on {torch.cuda.get_device_name()} (copy {rate / 1e9:.0f} GB/s); "
          "usclip returns host arrays")
    print(f"{'N':>4} {'K':>5} {'dtype':>8} {'grp':>4} {'usclip us':>10} {'torch dev':>10} "
          f"{'torch host':>10} {'floor us':>9} {'vs dev':>7} {'vs host':>8}")
    for r in rows:
        print(f"{r['N']:>4} {r['K']:>5} {r['dtype']:>8} {'y' if r['groups'] else '-':>4} "
              f"{r['usclip_ms'] * 1e3:>10.1f} {r['torch_dev_ms'] * 1e3:>10.1f} "
              f"{r['torch_host_ms'] * 1e3:>10.1f} {r['floor_ms'] * 1e3:>9.2f} "
              f"{r['speedup_vs_torch_dev']:>6.2f}x {r['speedup_vs_torch_host']:>7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
