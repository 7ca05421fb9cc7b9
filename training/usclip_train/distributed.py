"""torchrun DDP: process-group setup, rank facts, and small collective helpers.

``torchrun --nproc_per_node N -m usclip_train.train ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK; ``init_distributed`` reads them and joins the group: gloo on CPU, NCCL on CUDA.
Without those variables it is a single process (world size 1) and nothing is initialised.
Rank 0 alone logs, shows progress and writes checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup", "barrier", "all_reduce_mean",
           "pick_device"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(requested: str, local_rank: int = 0) -> str:
    """"auto" -> cuda:<local_rank> when CUDA is usable, else cpu; explicit values are checked."""
    if requested == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device: {requested!r} requested but CUDA is not available here")
        return f"cuda:{local_rank}" if requested == "cuda" else requested
    if requested != "cpu":
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, found {requested!r}")
    return "cpu"


def init_distributed(device: str = "auto", timeout_s: int = 600) -> DistInfo:
    """Join the torchrun process group if launched by torchrun; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world <= 1:
        return DistInfo(device=dev)
    backend = "nccl" if dev.startswith("cuda") else "gloo"
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=local_rank, device=dev, backend=backend)


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is untouched)."""
    if not info.distributed:
        return value.detach().clone()
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size
