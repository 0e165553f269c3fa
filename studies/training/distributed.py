"""Where a process sits in a (possibly single-process) run: DDP set-up and tear-down from the
variables ``torchrun`` sets, and the helpers every rank calls.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["DistributedContext", "cleanup_distributed", "is_main_process", "setup_distributed", "unwrap"]


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 in a single process).
        local_rank: rank on this machine (selects the GPU).
        world_size: number of processes.
        backend: ``"gloo"``/``"nccl"``, or ``None`` when not distributed.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files."""
        return self.rank == 0


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"{name}: environment variable not set; launch with torchrun, which sets it")
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: environment variable must be an integer, got {raw!r}") from exc


def _current_context() -> DistributedContext:
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(rank=dist.get_rank(), local_rank=_env_int("LOCAL_RANK", 0),
                                  world_size=dist.get_world_size(), backend=str(dist.get_backend()))
    return DistributedContext()


def setup_distributed(backend: str | None = None) -> DistributedContext:
    """Initialise ``torch.distributed`` from the variables ``torchrun`` sets.

    With ``WORLD_SIZE`` unset or 1 nothing is initialised and a single-process context is
    returned. If a process group already exists it is reused.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default NCCL when CUDA is available, else gloo.

    Returns:
        The context (rank, local rank, world size, backend).

    Raises:
        ValueError: a required variable (``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
            ``MASTER_PORT``) is missing or malformed, or ``backend`` is unknown.
    """
    if dist.is_available() and dist.is_initialized():
        return _current_context()
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedContext()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"{name}: environment variable not set; launch with torchrun, which sets it")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend: must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, backend=backend)


def cleanup_distributed() -> None:
    """Destroy the default process group if one exists (safe to call in any process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 of a distributed run and in a plain single process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DDP, ``DataParallel``, ``AveragedModel`` and ``torch.compile`` wrappers."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    # A compiled module implies torch._dynamo is loaded; importing it here would cost seconds.
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel, AveragedModel)):
            model = model.module
        elif eval_frame is not None and isinstance(model, eval_frame.OptimizedModule):
            model = model._orig_mod
        else:
            return model
