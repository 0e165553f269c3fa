"""Fixed-step solves of native methods: the step grid through the output times, the eager loop,
the compiled program on a uniform grid, the checkpointed (exact-discrete adjoint) solve, and the
segments of :func:`integrators.step_fixed`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from .base import AbstractSolver, TimeLike
from .checkpoint import RecursiveCheckpoint, checkpointed_solve
from .compiled import Compiled, inner_method, uses_planes
from .guards import step_counts
from .solution import Progress, Recorder

__all__ = ["Grid", "fixed_grid", "run_steps", "solve_fixed"]


@dataclass(frozen=True)
class Grid:
    """The steps of a fixed-step solve: ``counts[i]`` equal steps of size ``steps[i]`` in output
    interval ``i``; ``uniform`` is the common step when every interval has the same count and
    the same step up to the rounding of the output times (then every step is exactly that)."""

    counts: list[int]
    steps: list[float]
    uniform: float | None

    @property
    def total(self) -> int:
        return sum(self.counts)

    def flat(self, t_list: list[float], substeps: int = 1) -> list[tuple[float, float]]:
        """``(t_k, h_k)`` of every step (each step split into ``substeps``)."""
        out = []
        for a, m, h in zip(t_list, self.counts, self.steps):
            hi = h / substeps
            out.extend((a + j * hi, hi) for j in range(m * substeps))
        return out


def fixed_grid(t_list: list[float], dt: float, eps: float) -> Grid:
    """The grid of equal steps no longer than ``dt`` through the output times ``t_list`` (given in
    a dtype of machine epsilon ``eps``; see :func:`integrators.guards.step_counts`)."""
    counts = step_counts(t_list, dt, eps)
    steps = [(b - a) / m for a, b, m in zip(t_list[:-1], t_list[1:], counts)]
    uniform = None
    if steps and len(set(counts)) == 1:
        mean = (t_list[-1] - t_list[0]) / sum(counts)
        tol = max(1e-12 * abs(mean), 4 * eps * max(abs(t_list[0]), abs(t_list[-1])) / counts[0])
        if all(abs(h - mean) <= tol for h in steps):
            uniform = mean
            steps = [mean] * len(steps)
    return Grid(counts, steps, uniform)


def _update_stats(rec: Recorder, solver: AbstractSolver, steps: int) -> None:
    inner, _ = inner_method(solver)
    rec.stats.update(steps=steps, accepted=steps, nfe=steps * inner.stages)


def solve_fixed(solver: AbstractSolver, field: Any, x0: torch.Tensor, rec: Recorder, grid: Grid,
                adjoint: RecursiveCheckpoint | None, progress: Progress | None) -> None:
    """Fill ``rec`` with a fixed-step solve on ``grid``: checkpointed when ``adjoint`` is given and
    gradients are on, one compiled program per step on a uniform grid, else eagerly."""
    t_list = rec.t_list
    rec.record(x0)
    if len(t_list) == 1:
        return
    inner, fuse = inner_method(solver)
    if adjoint is not None and torch.is_grad_enabled():
        outputs = [int(k) for k in np.cumsum([m * fuse for m in grid.counts])]
        for x in checkpointed_solve(inner, inner, field, x0, grid.flat(t_list, fuse), outputs, adjoint):
            rec.record(x)
        _update_stats(rec, solver, outputs[-1])
        if progress is not None:
            progress.update(t_list[-1])
        return
    if isinstance(solver, Compiled) and grid.uniform is not None:
        _solve_compiled(solver, field, x0, rec, grid, progress)
        return
    x, cache, h_cache, steps = x0, None, None, 0
    for a, b, m, h in zip(t_list[:-1], t_list[1:], grid.counts, grid.steps):
        if h != h_cache:  # the step cache (e.g. exp(hΩ/2)) depends on the step size only
            cache, h_cache = solver.init(field, a, x, dt=h), h
        for j in range(m):
            res = solver.step(field, a + j * h, h, x, cache)
            x, cache = res.x, res.cache
        steps += m * fuse
        _update_stats(rec, solver, steps)
        rec.record(x)
        if progress is not None:
            progress.update(b)


def _solve_compiled(solver: Compiled, field: Any, x0: torch.Tensor, rec: Recorder, grid: Grid,
                    progress: Progress | None) -> None:
    """A uniform grid as calls of the compiled solve program (one step and the observables per
    call), with the step cache built once and the times passed as tensors."""
    t_list = rec.t_list
    m, fuse = grid.counts[0], solver.fuse
    hi_value = grid.uniform / fuse
    device = x0.device
    hi = torch.tensor(hi_value, dtype=torch.float64, device=device)
    cache = solver.inner.init(field, t_list[0], x0, dt=hi)
    program = solver.program()
    # an autonomous field ignores t: one time tensor serves every call
    fixed_t = torch.tensor(t_list[0], dtype=torch.float64, device=device) if getattr(field, "autonomous", False) \
        else None
    x, observe = x0, rec.observe
    on_planes = uses_planes(solver.inner, field, x0)
    for i, a in enumerate(t_list[:-1]):
        for j in range(m):
            t = fixed_t if fixed_t is not None else \
                torch.tensor(a + j * fuse * hi_value, dtype=torch.float64, device=device)
            x, obs, total = program(solver.inner, fuse, field, t, hi, x, cache, observe, on_planes)
        rec.record_computed(x, obs, total)
        _update_stats(rec, solver, (i + 1) * m * fuse)
        if progress is not None:
            progress.update(t_list[i + 1])


def run_steps(solver: AbstractSolver, field: Any, t0: float, dt: TimeLike, first: int, count: int, x: torch.Tensor,
              cache: Any, observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], keep_states: bool,
              checkpoint: bool) -> tuple[torch.Tensor, Any, list[torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Steps ``first … first + count − 1``: the final state and cache, and the states and
    observations asked for after each step. With ``checkpoint``, the steps run under one
    non-reentrant checkpoint: only the segment's input and these outputs are kept, and backward
    recomputes the segment's intermediates."""
    def run(x_in: torch.Tensor, cache_in: Any) -> tuple[Any, ...]:
        xs, obs = [], {key: [] for key in observe}
        for k in range(first, first + count):
            res = solver.step(field, t0 + k * dt, dt, x_in, cache_in)
            x_in, cache_in = res.x, res.cache
            if keep_states:
                xs.append(x_in)
            for key, fn in observe.items():
                obs[key].append(fn(x_in))
        return x_in, cache_in, xs, obs
    return _checkpoint(run, x, cache, use_reentrant=False) if checkpoint else run(x, cache)
