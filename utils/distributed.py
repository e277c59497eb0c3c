"""Running a training session under `torchrun`: where this process stands, DDP, agreeing ranks.

Plain runs (no `WORLD_SIZE`) get a `Dist` of one process and every helper is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from utils.locks import OUTPUT_LOCK, FolderBusyError, acquire, release
from utils.runtime import pick_device

# Stop reasons, in the order distributed ranks agree on them (the highest code wins).
STOP_REASONS = ("iterations", "epochs", "minutes", "callback", "interrupted", "terminated")

# Set by torchrun in every worker: its agent forwards a Ctrl-C or SIGTERM to the workers itself.
UNDER_TORCHRUN = "TORCHELASTIC_RUN_ID"


@dataclass
class Dist:
    """Where this process stands in a `torchrun` job (world_size 1 when run plainly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def setup_distributed(preference: str | None) -> tuple[Dist, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(), pick_device(preference)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), local_rank, dist.get_world_size(), owns), device


def wrap_distributed(nets: dict[str, nn.Module], ctx: Dist, device: torch.device
                      ) -> dict[str, nn.Module]:
    """DDP around each network. `train_step` freezes the discriminators during the
    generators' step: their DDP reducers then simply see no gradients in that backward,
    and the generators' outputs of the discriminator step feed the generators' backward,
    so every parameter still gets exactly one gradient per backward that uses it."""
    if not ctx.enabled:
        return nets
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return {name: DDP(net, device_ids=ids) for name, net in nets.items()}


def agree(stop: str | None, ctx: Dist, device: torch.device) -> str | None:
    """All ranks stop together, for the most urgent reason any of them has."""
    if not ctx.enabled:
        return stop
    code = torch.tensor(STOP_REASONS.index(stop) + 1 if stop else 0, device=device)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    return STOP_REASONS[int(code) - 1] if int(code) else None


def gather(obj: Any, ctx: Dist) -> list[Any]:
    """`obj` of every rank, in rank order, on rank 0 (others get an empty list)."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] | None = [None] * ctx.world_size if ctx.main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered or []


@contextlib.contextmanager
def main_rank_lock(folder: Path, ctx: Dist, device: torch.device, *, advice: str) -> Iterator[None]:
    """The folder's output lock (`utils.locks`), held by rank 0 for the whole session; every rank
    learns whether rank 0 got it, so that all stop together with one clear line instead of the
    others waiting forever at the next collective."""
    path, error = None, None
    if ctx.main:
        try:
            path = acquire(folder, OUTPUT_LOCK, advice=advice)
        except FolderBusyError as busy:
            error = busy
    if ctx.enabled:
        got = torch.tensor(0 if error else 1, device=device)
        dist.all_reduce(got, op=dist.ReduceOp.MIN)
        if not int(got) and error is None:
            raise FolderBusyError(f"{folder} is in use by another process (rank 0 names it): {advice}.")
    if error is not None:
        raise error
    try:
        yield
    finally:
        if path is not None:
            release(path)
