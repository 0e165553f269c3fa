"""What a solve returns, and the recorder that fills it at the output times."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .base import SolverError

__all__ = ["Progress", "Recorder", "Solution", "check_observe"]


@dataclass
class Solution:
    """The result of :func:`integrators.solve`.

    Attributes:
        ts: the output times ``[T]`` (as given, on the state's device).
        xs: states ``[T, *x0.shape]`` (contiguous), or ``None`` with ``save_states=False``.
        observed: ``name -> [T, ...]``, each ``observe[name](x)`` stacked over the output times.
        stats: ``{"nfe", "steps", "accepted", "rejected"}``: field evaluations, attempted steps,
            accepted and rejected steps (``steps = accepted + rejected``). Steps are the method's
            own steps (a :class:`~integrators.Compiled` method with ``fuse = k`` counts ``k`` per
            call), so ``nfe = steps × stages`` for fixed-step methods.
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


CHECK_EVERY = 64
"""Outputs between two host-side finiteness checks of a solve (one sync per chunk, not per output)."""


class Recorder:
    """Collects states and observations at the output times of one solve.

    Finiteness is tracked per output by the sum of the state (one reduction; a NaN or inf
    anywhere makes it non-finite, and so does a state large enough to overflow the sum, which
    is a blow-up too) and checked on the host once per :data:`CHECK_EVERY` outputs and at the
    end, so recording an output never waits for the device.
    """

    def __init__(self, ts: torch.Tensor, t_list: list[float], method: str, save_states: bool,
                 observe: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.ts = ts
        self.t_list = t_list
        self.method = method
        self.save_states = save_states
        self.observe = observe
        self.xs: list[torch.Tensor] = []                 # chunks [k, ...]
        self.obs: dict[str, list[torch.Tensor]] = {k: [] for k in observe}
        self.pending: list[torch.Tensor] = []            # per-output sums not yet checked
        self.unchecked = 0
        self.last: torch.Tensor | None = None
        self.count = 0
        self.stats = {"nfe": 0, "steps": 0, "accepted": 0, "rejected": 0}

    @staticmethod
    def _witness(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            total = x.sum() if x.dtype in (torch.float32, torch.float64) else x.sum(dtype=torch.float32)
        return total.reshape(1)

    def record(self, x: torch.Tensor) -> None:
        """Record the state at the next output time (no device sync; see the class docstring)."""
        self.pending.append(self._witness(x))
        if self.save_states:
            self.xs.append(x.unsqueeze(0))
        for k, fn in self.observe.items():
            value = fn(x)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"observe[{k!r}]: expected fn(x) to return a torch.Tensor, got "
                                f"{type(value).__name__}")
            self.obs[k].append(value.unsqueeze(0))
        self.last = x
        self._advance(1)

    def record_computed(self, x: torch.Tensor, obs: dict[str, torch.Tensor], total: torch.Tensor) -> None:
        """Record an output whose observations ``obs`` and sum ``total`` were computed already
        (in a compiled program)."""
        self.pending.append(total.reshape(1))
        if self.save_states:
            self.xs.append(x.unsqueeze(0))
        for name in self.observe:
            self.obs[name].append(obs[name].unsqueeze(0))
        self.last = x
        self._advance(1)

    def _advance(self, count: int) -> None:
        self.count += count
        self.unchecked += count
        if self.unchecked >= CHECK_EVERY:
            self.check()

    def check(self) -> None:
        """Raise :class:`SolverError` naming the first output whose state is NaN or inf (one sync)."""
        if not self.pending:
            return
        sums = torch.cat(self.pending) if len(self.pending) > 1 else self.pending[0]
        first = self.count - self.unchecked
        self.pending, self.unchecked = [], 0
        bad = ~torch.isfinite(sums)
        if not bool(bad.any()):
            return
        i = first + int(bad.nonzero()[0, 0])
        self._truncate(i)
        self.raise_failure("nonfinite", f"method {self.method!r}: the state became NaN or inf by t = "
                                        f"{self.t_list[i]:g} (output {i}). Reduce dt (or rtol), or use a method "
                                        f"suited to the problem (e.g. 'lawson_rk4' for large natural "
                                        f"frequencies)", t=self.t_list[i])

    def _truncate(self, count: int) -> None:
        """Keep the first ``count`` outputs only (the later ones were computed after a blow-up)."""
        if self.xs:
            xs = torch.cat(self.xs)
            self.last = xs[count - 1] if count else None
            self.xs = [xs[:count]]
        for k, v in self.obs.items():
            if v:
                self.obs[k] = [torch.cat(v)[:count]]
        self.count = count

    def _stack(self, items: list[torch.Tensor], total: int) -> torch.Tensor:
        out = torch.cat(items) if len(items) > 1 else items[0]
        if out.shape[0] < total:
            pad = torch.full((total - out.shape[0], *out.shape[1:]), math.nan, dtype=out.dtype, device=out.device)
            out = torch.cat([out, pad])
        return out

    def finish(self) -> Solution:
        """Check the outputs not yet checked and return the :class:`Solution`."""
        self.check()
        return self.solution()

    def solution(self, status: str = "success", message: str = "") -> Solution:
        stats = self.stats
        total = len(self.t_list)
        # states come back in the usual (row-major) memory order, whatever order the solve stepped in
        xs = self._stack(self.xs, total).contiguous() if self.save_states and self.xs else None
        observed = {k: self._stack(v, total) for k, v in self.obs.items() if v}
        last = None if self.last is None else self.last.contiguous()
        return Solution(ts=self.ts, xs=xs, observed=observed, stats=dict(stats), status=status, message=message,
                        method=self.method, x_final=last)

    def raise_failure(self, status: str, message: str, t: float | None = None) -> None:
        sol = self.solution(status=status, message=message)
        raise SolverError(message, method=self.method, t=t, solution=sol)


class Progress:
    """A tqdm bar over the integration time (created only when asked for)."""

    def __init__(self, t0: float, t1: float, method: str) -> None:
        from tqdm.auto import tqdm

        self.t0, self.total = t0, abs(t1 - t0)
        self.bar = tqdm(total=self.total, desc=f"solve[{method}]", unit="t", bar_format="{l_bar}{bar}| {n:.3g}/{total:.3g} [{elapsed}<{remaining}]")

    def update(self, t: float) -> None:
        done = min(abs(t - self.t0), self.total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()
