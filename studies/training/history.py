"""What a run logs: running sums of the per-step metrics (averaged over DDP ranks) and the
history Dataset with CF attributes; the EMA update rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import xarray as xr
from torch.optim.swa_utils import get_ema_multi_avg_fn

from studies.training.distributed import (
    DistributedContext,
)

__all__ = []

_RESERVED = frozenset({"loss", "lr", "grad_norm", "step", "epoch", "epoch_seconds"})


_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


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
