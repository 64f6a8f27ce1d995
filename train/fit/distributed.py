"""torchrun / DistributedDataParallel: the process group, who is rank 0, and collectives that are no-ops alone."""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os

import pandas as pd
import torch
import torch.distributed as dist

from train.model import resolve_device

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_context() -> Context:
    """What torchrun (or Slurm via torchrun) put in the environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Context(rank=int(os.environ.get("RANK", "0")), world_size=world,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                   local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))


def init(device: str = "auto") -> Context:
    """Join the process group when launched by torchrun: NCCL on GPUs, gloo on the CPU."""
    ctx = env_context()
    if not ctx.distributed or dist.is_initialized():
        return ctx
    use_cuda = resolve_device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30))
    log.info("rank %d of %d (local %d) joined the %s process group", ctx.rank, ctx.world_size, ctx.local_rank,
             dist.get_backend())
    return ctx


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    return not active() or dist.get_rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(obj):
    """Rank 0's object on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every rank's rows, concatenated in rank order, on every rank."""
    if not active():
        return frame
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, frame)
    return pd.concat(parts, ignore_index=True)


def weighted_mean(value: float, weight: float) -> float:
    """The mean of `value` over ranks, each weighted by `weight` (e.g. a loss by its number of images)."""
    if not active():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([value * weight, weight], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t[0] / t[1]) if t[1] else 0.0


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
