"""What a solve returns, and the recorder that fills it at the output times."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .base import SolverError

__all__ = ["Solution"]


@dataclass
class Solution:
    """The result of :func:`integrators.solve`.

    Attributes:
        ts: the output times ``[T]`` (as given, on the state's device).
        xs: states ``[T, *x0.shape]``, or ``None`` with ``save_states=False``.
        observed: ``name -> [T, ...]``, each ``observe[name](x)`` stacked over the output times.
        stats: ``{"nfe", "steps", "accepted", "rejected"}``: field evaluations, attempted steps,
            accepted and rejected steps (``steps = accepted + rejected``).
        status: ``"success"``, or on a failure (carried by :class:`SolverError.solution`)
            ``"nonfinite"``, ``"max_steps_reached"`` or ``"step_size_underflow"``.
        message: what went wrong and how to fix it (empty on success).
        method: the method's registry name.
        x_final: the state at ``ts[-1]`` (also with ``save_states=False``), so a long run can be
            continued without keeping its trajectory.
    """

    ts: torch.Tensor
    xs: torch.Tensor | None
    observed: dict[str, torch.Tensor]
    stats: dict[str, int]
    status: str = "success"
    message: str = ""
    method: str = ""
    x_final: torch.Tensor | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        xs = None if self.xs is None else tuple(self.xs.shape)
        obs = {k: tuple(v.shape) for k, v in self.observed.items()}
        return (f"Solution(method={self.method!r}, status={self.status!r}, ts=[{len(self.ts)}], xs={xs}, "
                f"observed={obs}, stats={self.stats})")


def check_observe(observe: Any) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Validate ``observe``: ``None`` or a mapping of names to callables ``fn(x) -> Tensor``."""
    if observe is None:
        return {}
    if not isinstance(observe, Mapping):
        raise TypeError(f"observe: expected a dict name -> fn(x), got {type(observe).__name__}")
    for key, fn in observe.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"observe: keys must be non-empty strings, got {key!r}")
        if not callable(fn):
            raise TypeError(f"observe[{key!r}]: expected a callable fn(x) -> Tensor, got {type(fn).__name__}")
    return dict(observe)


class Recorder:
    """Collects states and observations at the output times of one solve."""

    def __init__(self, ts: torch.Tensor, t_list: list[float], method: str, save_states: bool,
                 observe: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.ts = ts
        self.t_list = t_list
        self.method = method
        self.save_states = save_states
        self.observe = observe
        self.xs: list[torch.Tensor] = []
        self.obs: dict[str, list[torch.Tensor]] = {k: [] for k in observe}
        self.last: torch.Tensor | None = None
        self.count = 0
        self.stats = {"nfe": 0, "steps": 0, "accepted": 0, "rejected": 0}

    def record(self, x: torch.Tensor) -> None:
        """Record the state at the next output time (after a finiteness check: one sync).

        The check is on the sum of the state (one reduction; a NaN or inf anywhere makes it
        non-finite, and so does a state large enough to overflow the sum, which is a blow-up too).
        """
        i = self.count
        total = x.sum() if x.dtype in (torch.float32, torch.float64) else x.sum(dtype=torch.float32)
        if not bool(torch.isfinite(total)):
            self.raise_failure("nonfinite", f"method {self.method!r}: the state became NaN or inf by t = "
                                            f"{self.t_list[i]:g} (output {i}). Reduce dt (or rtol), or use a method "
                                            f"suited to the problem (e.g. 'lawson_rk4' for large natural "
                                            f"frequencies)", t=self.t_list[i])
        self.store(x)

    def store(self, x: torch.Tensor) -> None:
        """Record without the finiteness check (the caller has checked)."""
        if self.save_states:
            self.xs.append(x)
        for k, fn in self.observe.items():
            value = fn(x)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"observe[{k!r}]: expected fn(x) to return a torch.Tensor, got "
                                f"{type(value).__name__}")
            self.obs[k].append(value)
        self.last = x
        self.count += 1

    def _stack(self, items: list[torch.Tensor], total: int) -> torch.Tensor:
        out = torch.stack(items)
        if len(items) < total:
            pad = torch.full((total - len(items), *out.shape[1:]), math.nan, dtype=out.dtype, device=out.device)
            out = torch.cat([out, pad])
        return out

    def solution(self, status: str = "success", message: str = "") -> Solution:
        stats = self.stats
        total = len(self.t_list)
        xs = self._stack(self.xs, total) if self.save_states and self.xs else None
        observed = {k: self._stack(v, total) for k, v in self.obs.items() if v}
        return Solution(ts=self.ts, xs=xs, observed=observed, stats=dict(stats), status=status, message=message,
                        method=self.method, x_final=self.last)

    def raise_failure(self, status: str, message: str, t: float | None = None) -> None:
        sol = self.solution(status=status, message=message)
        raise SolverError(message, method=self.method, t=t, solution=sol)
