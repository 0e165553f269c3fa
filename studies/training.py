"""One training loop for every study: Adam, gradient clipping, EMA, checkpoints, DDP.

A study supplies its model, a ``torch.utils.data.Dataset`` and an objective
``loss_fn(model, batch) -> (loss, metrics)``; :class:`Trainer` does the rest::

    cfg = TrainConfig(epochs=100, batch_size=100, lr=1e-3, grad_clip=1.0,
                      ema_decay=0.995, ema_every=10, ema_after=100, seed=0)
    trainer = Trainer(model, sudoku_loss, train_set, cfg, out_dir="runs/sudoku",
                      eval_fn=board_accuracy, eval_every=10)
    history = trainer.fit()                          # xarray.Dataset, also runs/sudoku/train.h5
    load_model_weights("runs/sudoku", model, ema=True)   # the weights the paper evaluates

**EMA.** The average is kept by :class:`torch.optim.swa_utils.AveragedModel` with an
update rule built on :func:`torch.optim.swa_utils.get_ema_multi_avg_fn`. Its parameters *and*
buffers are averaged (``use_buffers=True``); integer buffers (BatchNorm's
``num_batches_tracked``) are copied, because a lerp on integers would truncate. After
optimizer step ``s`` (1-based):

- ``s <= ema_after``: the copy is set to the weights (it tracks them during the warm-up);
- ``s > ema_after`` and ``s % ema_every == 0``: ``ema <- b * ema + (1 - b) * w``, with
  ``b = ema_decay``, or ``b = min(ema_decay, 1 - (s - ema_after) ** -ema_warmup_power)`` when
  ``ema_warmup_power`` is set.

The official AKOrN scripts use the ``ema_pytorch`` package, whose default decay warm-up is
this schedule with power 2/3 (inverse gamma 1); set ``ema_warmup_power=2/3`` to follow it
(up to off-by-one details: that package counts its calls from 0 and, during the warm-up,
copies the weights only on every ``k``-th call).
With ``ema_decay=0.995`` it reaches the cap about 2,800 steps after the warm-up, a third of
a 100-epoch Sudoku run, so the two settings give different EMA weights.

**Data order.** Batches come from a ``DistributedSampler`` also in a single process (one
replica), so the order of epoch ``e`` depends only on ``(seed, e)``: it survives a resume,
and a ``K``-process run sees, at every step, exactly the union of samples that a
1-process run sees with the same global batch size. An explicit ``torch.Generator`` feeds the
``DataLoader`` (it seeds the worker processes) and is checkpointed with the other RNGs.
Workers are started afresh every epoch (no ``persistent_workers``) so that their seeds come
from that checkpointed generator and a resume stays exact with ``num_workers > 0``.

**Resume.** A checkpoint is written atomically (:func:`studies.cache.atomic_path`) at the
end of every ``checkpoint_every``-th epoch and of the last one. It holds the model, EMA,
optimizer and scheduler state, every RNG (torch CPU and CUDA, numpy, Python, the data
generator; one set per rank), the counters, the config and the history, so a run resumed
from it continues bit for bit like one that was never stopped (same world size and
hardware). Evaluation runs inside a forked RNG state, so evaluating or not does not change
the training trajectory.

**DDP.** Under ``torchrun --nproc_per_node=K`` the same code runs ``K`` processes:
:func:`setup_distributed` reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, uses gloo on CPU and
NCCL on CUDA; the model is wrapped in ``DistributedDataParallel``; each rank gets
``batch_size / K`` samples per step; logged metrics are averaged over ranks; only rank 0
writes files and shows progress bars. The objective is evaluated per rank, so an objective
that couples the samples of a batch (SimCLR's InfoNCE) must gather them across ranks itself
(``torch.distributed.nn.all_gather``) to match a single-process run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import xarray as xr
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset
from tqdm import tqdm

from studies.cache import atomic_path

__all__ = [
    "CHECKPOINT_NAME",
    "DistributedContext",
    "TrainConfig",
    "Trainer",
    "cleanup_distributed",
    "is_main_process",
    "load_model_weights",
    "seed_everything",
    "setup_distributed",
    "train",
    "unwrap",
]

CHECKPOINT_NAME = "checkpoint.pt"
_FORMAT = "akorn-training-checkpoint"
_VERSION = 1
_OPTIMIZERS = ("adam", "riemannian_adam")
_DEVICES = ("cpu", "cuda", "auto")
# Fields that may differ between a checkpoint and the run resuming it: they do not change
# the trajectory (``device`` changes round-off only, which is the user's call).
_RESUMABLE_FIELDS = frozenset({"epochs", "checkpoint_every", "device", "find_unused_parameters"})
_RESERVED = frozenset({"loss", "lr", "grad_norm", "step", "epoch", "epoch_seconds"})
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")


def _check_float(name: str, value: Any, *, low: float, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} ({value!r})")
    v = float(value)
    bad_low = v <= low if low_open else v < low
    bad_high = v >= high if high_open else v > high
    if not math.isfinite(v) or bad_low or bad_high:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name}: must be a finite number in {lo}{low}, {high}{hi}, got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} ({value!r})")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (validated when built).

    The paper's recipes (AKORN.md §6): Sudoku ``lr=1e-3, batch_size=100, epochs=100,
    grad_clip=1.0, ema_decay=0.995, ema_every=10, ema_after=100``; CIFAR-10 ``lr=1e-4,
    batch_size=128, epochs=400, ema_decay=0.99, ema_every=10, ema_after=200``; CLEVRTex
    ``lr=1e-3, batch_size=256, epochs=500, ema_decay=0.998, ema_every=10, ema_after=200``.

    Attributes:
        epochs: number of passes over the training set.
        batch_size: global batch size (divided by the number of DDP processes).
        lr: learning rate of Adam.
        weight_decay: Adam's L2 penalty (not decoupled; 0 in the paper).
        grad_clip: max global L2 norm of the gradient, or ``None`` for no clipping.
        ema_decay: EMA factor β in [0, 1), or ``None`` for no EMA copy.
        ema_every: the EMA is updated every this many optimizer steps.
        ema_after: optimizer steps of warm-up during which the EMA copy equals the weights.
        ema_warmup_power: ``None`` for a constant β, or ``p`` for the ``ema_pytorch``
            decay warm-up ``min(β, 1 - (s - ema_after) ** -p)`` (the package default is 2/3).
        seed: seeds every RNG at the start of a fresh run (rank ``r`` uses ``seed + r`` for
            the global RNGs; the data order uses ``seed`` on every rank).
        num_workers: DataLoader worker processes.
        log_every: a row of the per-step history every this many steps (means over the
            steps since the previous row).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available). Under DDP on
            CUDA, each process uses ``cuda:LOCAL_RANK``.
        checkpoint_every: write a checkpoint every this many epochs (and after the last).
        optimizer: ``"adam"`` (``torch.optim.Adam``) or ``"riemannian_adam"``
            (``geoopt.optim.RiemannianAdam``; needed for ``ManifoldParameter``s, plain
            parameters are treated as Euclidean).
        drop_last: drop the last incomplete batch of each epoch.
        find_unused_parameters: passed to ``DistributedDataParallel`` (needed when some
            parameters get no gradient).
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    ema_decay: float | None = None
    ema_every: int = 1
    ema_after: int = 0
    ema_warmup_power: float | None = None
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    device: str = "auto"
    checkpoint_every: int = 1
    optimizer: str = "adam"
    drop_last: bool = False
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_float("lr", self.lr, low=0.0, low_open=True)
        _check_float("weight_decay", self.weight_decay, low=0.0)
        if self.grad_clip is not None:
            _check_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
        if self.ema_decay is not None:
            _check_float("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        _check_int("ema_every", self.ema_every, 1)
        _check_int("ema_after", self.ema_after, 0)
        if self.ema_warmup_power is not None:
            _check_float("ema_warmup_power", self.ema_warmup_power, low=0.0, low_open=True)
        _check_int("seed", self.seed, 0)
        if self.seed >= 2**32 - 1024:  # numpy accepts seeds < 2**32; ranks add their index
            raise ValueError(f"seed: must be < 2**32 - 1024, got {self.seed}")
        _check_int("num_workers", self.num_workers, 0)
        _check_int("log_every", self.log_every, 1)
        if not isinstance(self.device, str) or self.device not in _DEVICES:
            raise ValueError(f"device: must be one of {_DEVICES}, got {self.device!r}")
        _check_int("checkpoint_every", self.checkpoint_every, 1)
        if not isinstance(self.optimizer, str) or self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer: must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        _check_bool("drop_last", self.drop_last)
        _check_bool("find_unused_parameters", self.find_unused_parameters)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (stored in checkpoints and metric files)."""
        return dataclasses.asdict(self)


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


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global RNG and Python's ``random``.

    Call it before building a model so its initial weights are reproducible.
    """
    _check_int("seed", seed, 0)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    # numpy's state holds an ndarray, which torch.load(weights_only=True) refuses: store a tensor.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
        "loader": generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    return state


def _set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    random.setstate(state["python"])
    generator.set_state(state["loader"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _seed_all(seed: int, generator: torch.Generator) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    generator.manual_seed(seed)


@contextlib.contextmanager
def _isolated_rng(device: torch.device) -> Iterator[None]:
    """Run a block (evaluation) without consuming the training RNG streams."""
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """Load and identify a checkpoint; a damaged one raises ValueError and is left untouched."""
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint at {str(path)!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    # A truncated or foreign file fails anywhere inside zip reading or unpickling, with
    # RuntimeError, EOFError, UnpicklingError, KeyError, ...; all mean "unreadable" here.
    except Exception as exc:
        raise ValueError(
            f"checkpoint {str(path)!r} cannot be read (truncated or corrupt?): {type(exc).__name__}: {exc}. "
            "It was left in place; delete it to start the run over, or restore a good copy.") from exc
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} is not an akorn training checkpoint "
                         f"(expected format {_FORMAT!r}); it was left in place")
    if obj.get("version") != _VERSION:
        raise ValueError(f"checkpoint {str(path)!r} has version {obj.get('version')!r}; "
                         f"this code reads version {_VERSION}")
    return obj


def _state_dict_differences(saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]) -> list[str]:
    diffs = []
    for key in sorted(saved.keys() - current.keys()):
        diffs.append(f"{key}: in the checkpoint, not in the model")
    for key in sorted(current.keys() - saved.keys()):
        diffs.append(f"{key}: in the model, not in the checkpoint")
    for key in saved.keys() & current.keys():
        a, b = saved[key], current[key]
        if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
            diffs.append(f"{key}: checkpoint {tuple(a.shape)} {a.dtype} vs model {tuple(b.shape)} {b.dtype}")
    return diffs


def _format_diffs(diffs: list[str], limit: int = 6) -> str:
    shown = "; ".join(diffs[:limit])
    return shown + (f"; ... ({len(diffs) - limit} more)" if len(diffs) > limit else "")


def load_model_weights(path: str | os.PathLike, model: nn.Module, ema: bool = True) -> nn.Module:
    """Load the weights of a training checkpoint into ``model`` for evaluation.

    Args:
        path: a checkpoint file, or the run's ``out_dir`` (then ``out_dir/checkpoint.pt``).
        model: a module of the same architecture (wrappers such as DDP are unwrapped).
        ema: load the EMA copy (what the paper evaluates) instead of the raw weights.

    Returns:
        ``model``, with its weights replaced (device and dtype of ``model`` are kept).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: the checkpoint is unreadable, has no EMA copy while ``ema=True``, or
            does not match the model's parameter names/shapes/dtypes.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    ckpt = _read_checkpoint(path)
    state = ckpt["ema"] if ema else ckpt["model"]
    if state is None:
        raise ValueError(f"ema: checkpoint {str(path)!r} was trained without EMA (ema_decay=None); pass ema=False")
    target = unwrap(model)
    diffs = _state_dict_differences(state, target.state_dict())
    if diffs:
        raise ValueError(f"model: does not match checkpoint {str(path)!r}: {_format_diffs(diffs)}")
    target.load_state_dict(state)
    return model


class _EMAUpdate:
    """``multi_avg_fn`` for AveragedModel: torch's EMA lerp for floats, a copy for integers.

    ``decay`` is an attribute so that a decay schedule can change it between updates.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay

    @torch.no_grad()
    def __call__(self, ema_tensors: list[torch.Tensor], model_tensors: list[torch.Tensor], n_averaged: Any) -> None:
        if ema_tensors[0].is_floating_point() or ema_tensors[0].is_complex():
            get_ema_multi_avg_fn(self.decay)(ema_tensors, model_tensors, n_averaged)
        else:
            for e, m in zip(ema_tensors, model_tensors, strict=True):
                e.copy_(m)


class _RunningSum:
    """Sums of named scalars over steps, kept on the device to avoid a host sync per step."""

    def __init__(self) -> None:
        self.names: list[str] | None = None
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, names: list[str], values: torch.Tensor) -> None:
        if self.names is None:
            self.names, self.total = list(names), values.clone()
        elif names != self.names:
            raise ValueError(f"loss_fn: returned metrics {names[2:]} but earlier steps returned {self.names[2:]}; "
                             "return the same metric names at every step")
        else:
            self.total += values
        self.count += 1

    def means(self, ctx: DistributedContext) -> dict[str, float]:
        """Means over steps and ranks (a collective under DDP: every rank must call it)."""
        if self.names is None or self.total is None or self.count == 0:
            return {}
        total = self.total.clone()
        if ctx.distributed:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
        values = (total / (self.count * ctx.world_size)).tolist()
        return dict(zip(self.names, values, strict=True))

    def reset(self) -> None:
        self.names, self.total, self.count = None, None, 0

    def state(self) -> dict[str, Any]:
        return {"names": self.names, "total": None if self.total is None else self.total.tolist(), "count": self.count}

    def load(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.names = None if state["names"] is None else list(state["names"])
        self.total = None if state["total"] is None else torch.tensor(state["total"], dtype=torch.float64,
                                                                      device=device)
        self.count = int(state["count"])


def _to_device(obj: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_to_device(v, device, non_blocking) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device, non_blocking) for v in obj)
    return obj


def _check_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{where}: metric names must be strings like 'acc' or 'board_acc' "
                         f"(letter, then letters/digits/_.-), got {name!r}")
    return name


def _scalar(where: str, value: Any, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{where}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
        return value.detach().reshape(()).to(device=device, dtype=torch.float64)
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return torch.tensor(float(value), dtype=torch.float64, device=device)
    raise TypeError(f"{where}: expected a float or a 0-d tensor, got {type(value).__name__}")


def _history_dataset(step_rows: list[dict[str, float]], epoch_rows: list[dict[str, float]],
                     attrs: Mapping[str, Any], units: Mapping[str, str]) -> xr.Dataset:
    def columns(rows: list[dict[str, float]], dim: str) -> dict[str, np.ndarray]:
        names: list[str] = []
        for row in rows:
            names += [k for k in row if k != dim and k not in names]
        return {k: np.array([row.get(k, math.nan) for row in rows], dtype=np.float64) for k in names}

    data_vars = {}
    for dim, rows in (("step", step_rows), ("epoch", epoch_rows)):
        for name, values in columns(rows, dim).items():
            data_vars[name] = xr.Variable((dim,), values, attrs=_variable_attrs(name, units))
    coords = {
        "step": xr.Variable(("step",), np.array([r["step"] for r in step_rows], dtype=np.int64),
                            attrs={"long_name": "optimizer steps completed", "units": "1"}),
        "epoch": xr.Variable(("epoch",), np.array([r["epoch"] for r in epoch_rows], dtype=np.int64),
                             attrs={"long_name": "epochs completed", "units": "1"}),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))


def _variable_attrs(name: str, units: Mapping[str, str]) -> dict[str, str]:
    fixed = {
        "loss": "training loss, mean over the steps since the previous row and over ranks",
        "grad_norm": "global L2 norm of the gradient before clipping, mean since the previous row",
        "lr": "learning rate at this step",
        "epoch_loss": "training loss, mean over the epoch",
        "epoch_grad_norm": "global L2 norm of the gradient before clipping, mean over the epoch",
        "epoch_seconds": "wall-clock time of the epoch including evaluation",
    }
    if name in fixed:
        return {"long_name": fixed[name], "units": "s" if name == "epoch_seconds" else "1"}
    for prefix, what in (("eval_ema_", "evaluation of the EMA weights"), ("eval_", "evaluation of the raw weights"),
                         ("epoch_", "training, mean over the epoch")):
        if name.startswith(prefix):
            base = name[len(prefix):]
            return {"long_name": f"{base} ({what})", "units": units.get(base, "1")}
    return {"long_name": f"{name} (training, mean since the previous row)", "units": units.get(name, "1")}


LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, Mapping[str, Any]] | torch.Tensor"]
EvalFn = Callable[[nn.Module], Mapping[str, Any]]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class Trainer:
    """Train a model on a map-style dataset with Adam, clipping, EMA, checkpoints and DDP.

    Everything is set up (and a checkpoint, if any, loaded and checked) in the constructor;
    :meth:`fit` runs the remaining epochs.

    Args:
        model: the network; it is moved to the configured device (its dtype is kept). The
            trainer holds the same object, so after :meth:`fit` it carries the trained weights.
        loss_fn: ``loss_fn(model, batch) -> (loss, metrics)``; ``loss`` is a scalar tensor to
            minimise, ``metrics`` maps names to scalars (floats or 0-d tensors) logged as
            batch means; returning the loss alone means no metrics. ``model`` is the DDP
            wrapper under DDP (call it, don't reach into it); ``batch`` is what the DataLoader
            yields, with every tensor moved to the training device (dtypes unchanged).
        train_data: a map-style ``torch.utils.data.Dataset``.
        config: the run's :class:`TrainConfig`.
        eval_fn: optional ``eval_fn(model) -> {name: scalar}``, called in eval mode on rank 0
            every ``eval_every`` epochs with the raw weights and, with EMA, the EMA weights
            (logged as ``eval_<name>`` and ``eval_ema_<name>``). It runs under a forked RNG
            and without ``torch.no_grad`` (attacks need gradients): add it yourself if wanted.
            Under DDP the other ranks wait in a collective meanwhile, so keep it within the
            process-group timeout (10 min for NCCL by default); run long evaluations (full
            test sets, AutoAttack) after training with :func:`load_model_weights`.
        eval_every: evaluate after epochs ``eval_every, 2 * eval_every, ...``; required
            exactly when ``eval_fn`` is given.
        out_dir: directory of ``checkpoint.pt`` and ``<metrics_name>.h5``.
        metrics_name: file name (without ``.h5``) of the metrics file.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists. With ``False`` an
            existing checkpoint is an error (it is never overwritten by a fresh run).
        progress: show a tqdm bar per epoch (rank 0 only).
        scheduler: optional ``factory(optimizer) -> LR scheduler``, stepped after every
            optimizer step and checkpointed.
        collate_fn: passed to the DataLoader.
        metric_units: CF ``units`` of metrics (default ``"1"``, dimensionless).

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
        FileExistsError: ``resume=False`` and a checkpoint exists in ``out_dir``.
        ValueError: the checkpoint is unreadable, or was made with a different config
            (fields other than ``epochs``, ``checkpoint_every``, ``device``,
            ``find_unused_parameters``) or model (names, shapes, dtypes), or is already
            past ``config.epochs``.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, train_data: Dataset, config: TrainConfig, *,
                 out_dir: str | os.PathLike, eval_fn: EvalFn | None = None, eval_every: int | None = None,
                 metrics_name: str = "train", resume: bool = True, progress: bool = True,
                 scheduler: SchedulerFactory | None = None, collate_fn: Callable[[list[Any]], Any] | None = None,
                 metric_units: Mapping[str, str] | None = None) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn: expected a callable loss_fn(model, batch), got {type(loss_fn).__name__}")
        if not isinstance(train_data, Dataset) or isinstance(train_data, IterableDataset):
            raise TypeError(f"train_data: expected a map-style torch Dataset, got {type(train_data).__name__}")
        if eval_fn is not None and not callable(eval_fn):
            raise TypeError(f"eval_fn: expected a callable eval_fn(model), got {type(eval_fn).__name__}")
        if (eval_fn is None) != (eval_every is None):
            raise ValueError("eval_fn, eval_every: give both (evaluate every eval_every epochs) or neither; "
                             f"got eval_fn={'set' if eval_fn is not None else None}, eval_every={eval_every!r}")
        if eval_every is not None:
            _check_int("eval_every", eval_every, 1)
        if not isinstance(metrics_name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", metrics_name):
            raise ValueError(f"metrics_name: expected a file-name-safe string like 'train', got {metrics_name!r}")
        _check_bool("resume", resume)
        _check_bool("progress", progress)
        if scheduler is not None and not callable(scheduler):
            raise TypeError(f"scheduler: expected a factory scheduler(optimizer), got {type(scheduler).__name__}")
        units = dict(metric_units or {})
        for key, value in units.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"metric_units: expected str -> str, got {key!r}: {value!r}")

        self.config = config
        self.loss_fn, self.eval_fn, self.eval_every = loss_fn, eval_fn, eval_every
        self.out_dir = Path(out_dir)
        self.checkpoint_path = self.out_dir / CHECKPOINT_NAME
        self.metrics_path = self.out_dir / f"{metrics_name}.h5"
        self.progress = progress
        self._units = units

        self.device = self._resolve_device(config.device)
        ctx = _current_context()
        if not ctx.distributed and _env_int("WORLD_SIZE", 1) > 1:
            ctx = setup_distributed("nccl" if self.device.type == "cuda" else "gloo")
        self.ctx = ctx
        if ctx.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", ctx.local_rank)
        if config.batch_size % ctx.world_size:
            raise ValueError(f"batch_size: the global batch {config.batch_size} must be divisible by the number of "
                             f"processes ({ctx.world_size})")

        self.model = unwrap(model).to(self.device)
        self.optimizer = self._build_optimizer()
        self.scheduler = scheduler(self.optimizer) if scheduler is not None else None
        self._ema_update: _EMAUpdate | None = None
        self.ema: AveragedModel | None = None
        if config.ema_decay is not None:
            self._ema_update = _EMAUpdate(float(config.ema_decay))
            self.ema = AveragedModel(self.model, multi_avg_fn=self._ema_update, use_buffers=True)

        self.generator = torch.Generator()
        self.sampler = DistributedSampler(train_data, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=config.seed, drop_last=False)
        self.loader = DataLoader(train_data, batch_size=config.batch_size // ctx.world_size, sampler=self.sampler,
                                 num_workers=config.num_workers, collate_fn=collate_fn, drop_last=config.drop_last,
                                 generator=self.generator, pin_memory=self.device.type == "cuda")
        if len(self.loader) == 0:
            raise ValueError(f"train_data: {len(train_data)} samples give no batch of "
                             f"{config.batch_size // ctx.world_size} per process with drop_last=True")

        self.epoch = 0
        self.step = 0
        self._step_rows: list[dict[str, float]] = []
        self._epoch_rows: list[dict[str, float]] = []
        self._window = _RunningSum()

        if self.checkpoint_path.exists() and not resume:
            raise FileExistsError(f"resume=False but {str(self.checkpoint_path)!r} exists; pass resume=True to "
                                  "continue that run, or use another out_dir (a checkpoint is never overwritten "
                                  "by a fresh run)")
        if resume and self.checkpoint_path.exists():
            self._restore(_read_checkpoint(self.checkpoint_path))
        else:
            _seed_all(config.seed + ctx.rank, self.generator)
            if self.ema is not None:
                self.ema.update_parameters(self.model)  # first call copies: EMA starts at the initial weights

        self._train_model: nn.Module = self.model
        if ctx.distributed:
            kwargs: dict[str, Any] = {"find_unused_parameters": config.find_unused_parameters}
            if self.device.type == "cuda":
                kwargs["device_ids"] = [self.device.index]
            self._train_model = nn.parallel.DistributedDataParallel(self.model, **kwargs)

    @staticmethod
    def _resolve_device(name: str) -> torch.device:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: 'cuda' requested but CUDA is not available; use 'cpu' or 'auto'")
        return torch.device(name)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model: has no parameters with requires_grad=True")
        if cfg.optimizer == "riemannian_adam":
            import geoopt

            return geoopt.optim.RiemannianAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        geoopt_mod = sys.modules.get("geoopt")  # no geoopt imported => no ManifoldParameter can exist
        if geoopt_mod is not None and any(isinstance(p, geoopt_mod.ManifoldParameter) for p in params):
            raise ValueError("optimizer: the model has geoopt ManifoldParameters, which plain Adam would move off "
                             "their manifold; use optimizer='riemannian_adam'")
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        path = str(self.checkpoint_path)
        saved_cfg = ckpt["config"]
        current = self.config.to_dict()
        changed = [f"{k}: checkpoint {saved_cfg.get(k, '<missing>')!r} vs now {current.get(k, '<missing>')!r}"
                   for k in sorted(set(saved_cfg) | set(current))
                   if k not in _RESUMABLE_FIELDS and saved_cfg.get(k, "<missing>") != current.get(k, "<missing>")]
        if changed:
            raise ValueError(f"config: differs from the checkpoint {path!r} ({'; '.join(changed)}); only "
                             f"{sorted(_RESUMABLE_FIELDS)} may change on resume. Use another out_dir for a new run.")
        diffs = _state_dict_differences(ckpt["model"], self.model.state_dict())
        if diffs:
            raise ValueError(f"model: does not match the checkpoint {path!r}: {_format_diffs(diffs)}. "
                             "Use another out_dir for a different model.")
        if (ckpt["scheduler"] is None) != (self.scheduler is None):
            raise ValueError(f"scheduler: the checkpoint {path!r} was made "
                             f"{'without' if ckpt['scheduler'] is None else 'with'} an LR scheduler, this run "
                             f"{'has' if self.scheduler is not None else 'has none'}")
        if ckpt["epoch"] > self.config.epochs:
            raise ValueError(f"epochs: the checkpoint {path!r} is already at epoch {ckpt['epoch']}, past "
                             f"epochs={self.config.epochs}")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.ema is not None:
            self.ema.module.load_state_dict(ckpt["ema"])
            self.ema.n_averaged.fill_(int(ckpt["ema_n_averaged"]))
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self._step_rows = [dict(r) for r in ckpt["history"]["step"]]
        self._epoch_rows = [dict(r) for r in ckpt["history"]["epoch"]]
        rank_states = ckpt["rank_states"]
        if self.ctx.rank < len(rank_states) and len(rank_states) == self.ctx.world_size:
            _set_rng_state(rank_states[self.ctx.rank]["rng"], self.generator)
            self._window.load(rank_states[self.ctx.rank]["window"], self.device)
        else:
            # A different world size cannot continue bit for bit; reseed so ranks still differ.
            _seed_all((self.config.seed + self.ctx.rank + 7919 * self.step) % (2**32 - 1), self.generator)

    @property
    def ema_model(self) -> nn.Module | None:
        """The EMA copy of the model (a plain module), or ``None`` without EMA."""
        return None if self.ema is None else self.ema.module

    @property
    def history(self) -> xr.Dataset:
        """Per-step (dim ``step``) and per-epoch (dim ``epoch``) metrics so far.

        Variables on ``step`` (every ``log_every`` steps, means since the previous row):
        ``loss``, ``grad_norm`` (before clipping), ``lr``, and each metric of ``loss_fn``.
        On ``epoch``: ``epoch_loss``, ``epoch_grad_norm``, ``epoch_<metric>`` (epoch means),
        ``eval_<name>``/``eval_ema_<name>`` (NaN where not evaluated), ``epoch_seconds``
        (wall clock: the only variable that is not reproducible). Every variable has CF
        ``long_name`` and ``units``; the config is in the ``config`` attribute as JSON.
        """
        attrs = {
            "title": "AKOrN training history",
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "world_size": self.ctx.world_size,
            "torch_version": str(torch.__version__),
            "history_format": "akorn-training-history/1",
        }
        return _history_dataset(self._step_rows, self._epoch_rows, attrs, self._units)

    def fit(self) -> xr.Dataset:
        """Run the epochs left until ``config.epochs`` and return the history.

        Checkpoint and metrics file are written after every ``checkpoint_every``-th epoch and
        after the last one.

        Returns:
            :attr:`history`.

        Raises:
            FloatingPointError: an epoch's mean loss is not finite (the last checkpoint is kept).
        """
        cfg = self.config
        while self.epoch < cfg.epochs:
            started = time.perf_counter()
            epoch_means = self._run_epoch()
            self.epoch += 1
            if not math.isfinite(epoch_means["loss"]):
                raise FloatingPointError(f"loss_fn: the mean loss of epoch {self.epoch} is {epoch_means['loss']}; "
                                         f"the last checkpoint in {str(self.out_dir)!r} is kept")
            row: dict[str, float] = {"epoch": self.epoch}
            row.update({f"epoch_{k}": v for k, v in epoch_means.items()})
            if self.eval_every is not None and self.epoch % self.eval_every == 0:
                row.update(self._evaluate())
            row["epoch_seconds"] = time.perf_counter() - started
            self._epoch_rows.append(row)
            if self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs:
                self._save_checkpoint()
        return self.history

    def _save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` and the metrics file atomically (rank 0), then a barrier under DDP.

        Only valid at the end of an epoch (that is where a resume restarts). Every rank must
        call it: the per-rank RNG states are gathered.
        """
        rank_state = {"rng": _rng_state(self.generator), "window": self._window.state()}
        if self.ctx.distributed:
            states: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(states, rank_state)
        else:
            states = [rank_state]
        if self.ctx.is_main:
            payload = {
                "format": _FORMAT,
                "version": _VERSION,
                "epoch": self.epoch,
                "step": self.step,
                "config": self.config.to_dict(),
                "world_size": self.ctx.world_size,
                "torch_version": str(torch.__version__),
                "model": self.model.state_dict(),
                "ema": None if self.ema is None else self.ema.module.state_dict(),
                "ema_n_averaged": 0 if self.ema is None else int(self.ema.n_averaged),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "rank_states": states,
                "history": {"step": self._step_rows, "epoch": self._epoch_rows},
            }
            with atomic_path(self.checkpoint_path) as tmp:
                torch.save(payload, tmp)
            with atomic_path(self.metrics_path) as tmp:
                self.history.to_netcdf(tmp, engine="h5netcdf")
        if self.ctx.distributed:
            dist.barrier()

    def _run_epoch(self) -> dict[str, float]:
        cfg = self.config
        self.sampler.set_epoch(self.epoch)
        self._train_model.train()
        epoch_sum = _RunningSum()
        bar = tqdm(self.loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (self.progress and self.ctx.is_main), dynamic_ncols=True)
        non_blocking = self.device.type == "cuda"
        try:
            for batch in bar:
                names, values, lr = self._train_step(_to_device(batch, self.device, non_blocking))
                self._window.add(names, values)
                epoch_sum.add(names, values)
                if self.step % cfg.log_every == 0:
                    row: dict[str, float] = {"step": self.step, **self._window.means(self.ctx), "lr": lr}
                    self._window.reset()
                    self._step_rows.append(row)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
            means = epoch_sum.means(self.ctx)
            bar.set_postfix(epoch_loss=f"{means['loss']:.4g}")  # the line left on screen
        finally:
            bar.close()
        return means

    def _train_step(self, batch: Any) -> tuple[list[str], torch.Tensor, float]:
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        out = self.loss_fn(self._train_model, batch)
        if isinstance(out, torch.Tensor):
            loss, metrics = out, {}
        elif isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
            loss, metrics = out
        else:
            raise TypeError(f"loss_fn: must return (loss, metrics dict) or a loss tensor, got {type(out).__name__}")
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise TypeError("loss_fn: the loss must be a scalar tensor that requires grad, got "
                            f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if cfg.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        self._update_ema()

        names = ["loss", "grad_norm"]
        values = [loss.detach().reshape(()).to(torch.float64), grad_norm.detach().to(self.device, torch.float64)]
        for key, value in metrics.items():
            _check_name("loss_fn", key)
            if key in _RESERVED or key.startswith(("eval_", "epoch_")):
                raise ValueError(f"loss_fn: metric name {key!r} is reserved (also names starting with eval_/epoch_)")
            names.append(key)
            values.append(_scalar(f"loss_fn: metric {key!r}", value, self.device))
        return names, torch.stack(values), lr

    def _update_ema(self) -> None:
        if self.ema is None or self._ema_update is None:
            return
        cfg, s = self.config, self.step
        if s <= cfg.ema_after:
            self.ema.n_averaged.zero_()  # AveragedModel copies the weights when n_averaged == 0
            self.ema.update_parameters(self.model)
        elif s % cfg.ema_every == 0:
            decay = float(cfg.ema_decay)  # type: ignore[arg-type]
            if cfg.ema_warmup_power is not None:
                decay = min(decay, 1.0 - (s - cfg.ema_after) ** -cfg.ema_warmup_power)
            self._ema_update.decay = decay
            self.ema.update_parameters(self.model)

    def _evaluate(self) -> dict[str, float]:
        results: dict[str, float] = {}
        if self.ctx.is_main and self.eval_fn is not None:
            with _isolated_rng(self.device):
                results.update({f"eval_{k}": v for k, v in self._call_eval(self.model).items()})
                if self.ema is not None:
                    results.update({f"eval_ema_{k}": v for k, v in self._call_eval(self.ema.module).items()})
        if self.ctx.distributed:
            box: list[Any] = [results]
            dist.broadcast_object_list(box, src=0)
            results = box[0]
        return results

    def _call_eval(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            out = self.eval_fn(model)  # type: ignore[misc]
        finally:
            model.train(was_training)
        if not isinstance(out, Mapping):
            raise TypeError(f"eval_fn: must return a mapping name -> scalar, got {type(out).__name__}")
        return {_check_name("eval_fn", k): float(_scalar(f"eval_fn: metric {k!r}", v, torch.device("cpu")))
                for k, v in out.items()}


def train(model: nn.Module, loss_fn: LossFn, train_data: Dataset, config: TrainConfig, **kwargs: Any) -> xr.Dataset:
    """``Trainer(model, loss_fn, train_data, config, **kwargs).fit()``: train and return the history."""
    return Trainer(model, loss_fn, train_data, config, **kwargs).fit()
