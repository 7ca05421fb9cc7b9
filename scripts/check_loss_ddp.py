"""Check the local-loss DDP semantics of UltrasoundClipLoss with real gloo processes (CPU).

Each of --world processes computes the loss on its slice with ``all_gather_with_grad``; the
parameter gradient is all-reduced and averaged as DDP does. Rank 0 compares the mean rank loss
and that gradient with the single-process full-batch loss and gradient. ~10 s; not in CI (the
same algebra is tested with a simulated gather in tests/test_loss_terms.py).

    python scripts/check_loss_ddp.py [--world 2] [--port 29533]
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["main"]

B, D_IN, D = 4, 16, 8


def _problem(world: int):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(D_IN, D, generator=g)
    x, z = torch.randn(B * world, D_IN, generator=g), torch.randn(B * world, D_IN, generator=g)
    y = (torch.rand(B * world, 93, generator=g) < 0.1).float()
    return w, x, z, y


def _loss(w, x, z, y, **kw):
    from usclip_train.loss import UltrasoundClipLoss
    from usclip_train.semantic import TagSimilarity

    f = lambda a: torch.nn.functional.normalize(a @ w, dim=1)  # noqa: E731
    return UltrasoundClipLoss(TagSimilarity.prior(), 1.0, **kw)(f(x), f(z), 5.0, y)["loss"]


def _worker(rank: int, world: int, port: int, q) -> None:
    from usclip_train.loss import all_gather_with_grad

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    w, x, z, y = _problem(world)
    w.requires_grad_(True)
    sl = slice(rank * B, (rank + 1) * B)
    loss = _loss(w, x[sl], z[sl], y[sl], gather=all_gather_with_grad, rank=rank)
    loss.backward()
    grad, mean_loss = w.grad.clone(), loss.detach().clone()
    for t in (grad, mean_loss):
        dist.all_reduce(t)
        t /= world
    if rank == 0:
        w_full = w.detach().clone().requires_grad_(True)
        full = _loss(w_full, x, z, y)
        full.backward()
        q.put((mean_loss.item(), full.item(), (grad - w_full.grad).abs().max().item(),
               w_full.grad.abs().max().item()))
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--port", type=int, default=29533)
    args = ap.parse_args(argv)
    q = mp.get_context("spawn").Queue()
    mp.spawn(_worker, args=(args.world, args.port, q), nprocs=args.world)
    mean_loss, full, diff, scale = q.get()
    print(f"mean rank loss {mean_loss:.6f}  full-batch loss {full:.6f}  "
          f"max |grad diff| {diff:.2e} (largest grad {scale:.3f})")
    return 0 if abs(mean_loss - full) < 1e-5 and diff < 1e-5 * max(1.0, scale) else 1


if __name__ == "__main__":
    raise SystemExit(main())
