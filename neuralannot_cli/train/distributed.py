"""Distributed data parallel set-up from the environment variables ``torchrun`` sets.

``torchrun --nproc-per-node N -m neuralannot_cli train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`setup_distributed` reads them,
initialises the process group (``gloo`` on CPU, ``nccl`` on CUDA) and picks the device (``cuda:LOCAL_RANK``
when the requested device is CUDA). Without those variables it returns a single-process context and does
nothing. Conventions of the training code: every rank builds the same datasets and models from the same
seed; batches are split by rank (:class:`~neuralannot_cli.data.sampler.MixedBatchSampler` and a
``DistributedSampler``); gradients are averaged by ``DistributedDataParallel``; only rank 0 writes files;
:meth:`DistContext.barrier` precedes reading a file another rank wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "setup_distributed", "cleanup_distributed", "wrap_ddp", "unwrap"]


@dataclass(frozen=True)
class DistContext:
    """Rank information of this process.

    Attributes:
        rank, world_size, local_rank: as torchrun sets them (0, 1, 0 without torchrun).
        device: the device this process trains on.
        enabled: a process group was initialised (``world_size > 1``).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    enabled: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}: expected an integer, got {value!r}") from None


def setup_distributed(device: str | torch.device = "cpu") -> DistContext:
    """Initialise the process group from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` when ``WORLD_SIZE > 1``.

    Args:
        device: requested device; ``'cuda'`` (any index) becomes ``cuda:LOCAL_RANK`` under torchrun.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = torch.device(device)
    if world_size <= 1:
        return DistContext(0, 1, 0, dev, False)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, dev, True)


def cleanup_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` (parameters must be on ctx.device).

    ``find_unused_parameters=True``: stage-1 camera outputs and some heads get no gradient in some steps.
    """
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and isinstance(getattr(model, "module"), torch.nn.Module) else model
