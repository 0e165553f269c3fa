"""Gradients through long fixed-step solves in little memory: recursive (binomial) checkpointing.

The forward pass runs every step without recording a graph and keeps only a few states
(*snapshots*). Backward walks the steps in reverse: it re-runs the steps from the nearest
snapshot (without a graph) to place new snapshots, and re-runs each *segment* of ``segment``
steps with a graph to backpropagate through it. The gradient is that of the discrete map, the
same as backprop through every step (to round-off), only the work and the memory differ:

- Segments of ``L`` steps; the default ``L = √(T / c)`` with ``c = 3 × stages`` (an RK4 step
  keeps ~12 states' worth of intermediates) balances the snapshots against one segment's
  intermediates ``L · C``.
- ``snapshots=s``: at most ``s`` states besides ``x0``; segments are reversed by the binomial
  schedule of Griewank's *revolve* (the split leaves the right part ``C(s−1+r, s−1)`` segments
  for the repetition number ``r``), which re-runs each segment at most ``r`` times with
  ``C(s + r, s) ≥ T/L``: memory O(s) at time O(r).
- ``repetitions=r`` (the default, ``r = 2``): the fewest snapshots with which no segment is
  re-run more than ``r`` times, ``s ≈ √(2T/L)`` for ``r = 2``. Time ≈ backprop + two forward
  passes without a graph. Measured at T = 200 lawson_rk4 steps, N = 2000 (W5 of issue 14):
  2.0 MB, 3.6% of backprop's 57 MB, in 1.25× its time. ``repetitions=1`` stores every segment
  boundary during the forward pass (backprop + one forward; 3.1 MB, 5.4%).

Gradients reach ``x0`` and every tensor that requires grad among the field's parameters,
buffers and tensor attributes (such as a stimulus that comes from a network). A tensor that
requires grad and reaches the field otherwise (a closure) cannot be tracked: the first
segment's backward detects it and raises instead of dropping its gradient.

References:
    Griewank, Walther, "Algorithm 799: revolve", ACM TOMS 26 (2000); Kidger, "On Neural
    Differential Equations", 2021, §5.3.2 (recursive checkpointing in diffrax).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kuramoto.checks import check_count

from .base import AbstractSolver

__all__ = ["RecursiveCheckpoint", "checkpointed_solve", "differentiable_inputs"]


@dataclass(frozen=True)
class RecursiveCheckpoint:
    """The memory/time trade-off of :func:`integrators.solve`'s ``adjoint`` for native fixed-step
    methods (``adjoint=True`` is ``RecursiveCheckpoint()``).

    Args:
        segment: steps re-run with a graph at once (``None``: ``√(T / (3 · stages))``).
        snapshots: states kept besides ``x0`` (``None``: as few as ``repetitions`` allows).
        repetitions: with ``snapshots=None``, the most times backward re-runs a segment without
            a graph (default 2; 1 keeps every segment boundary).

    Raises:
        ValueError: a non-positive ``segment`` or ``repetitions``, negative ``snapshots``, or
            both ``snapshots`` and ``repetitions`` given.
    """

    segment: int | None = None
    snapshots: int | None = None
    repetitions: int | None = None

    def __post_init__(self) -> None:
        check_count(self.segment, "segment", optional=True)
        check_count(self.snapshots, "snapshots", minimum=0, optional=True)
        check_count(self.repetitions, "repetitions", optional=True)
        if self.snapshots is not None and self.repetitions is not None:
            raise ValueError(f"snapshots, repetitions: give one of them (a snapshot budget fixes the repetitions), "
                             f"got snapshots={self.snapshots!r}, repetitions={self.repetitions!r}")

    def snapshot_budget(self, segments: int) -> int:
        """The snapshots kept besides ``x0`` for ``segments`` segments."""
        if self.snapshots is not None:
            return min(self.snapshots, max(segments - 1, 0))
        r = 2 if self.repetitions is None else self.repetitions
        s = 0
        while math.comb(s + r, s) < segments:
            s += 1
        return min(s, max(segments - 1, 0))

    def segment_length(self, steps: int, stages: int) -> int:
        if self.segment is not None:
            return self.segment
        return max(1, round(math.sqrt(steps / (3 * max(stages, 1)))))


def differentiable_inputs(field: Any) -> list[torch.Tensor]:
    """Every tensor that requires grad among the field's parameters, buffers and tensor attributes
    (the inputs the checkpointed gradient is computed for)."""
    found: dict[int, torch.Tensor] = {}
    if isinstance(field, nn.Module):
        for module in field.modules():
            for value in (*module._parameters.values(), *module._buffers.values(), *vars(module).values()):
                if isinstance(value, torch.Tensor) and value.requires_grad:
                    found.setdefault(id(value), value)
    return list(found.values())


def _repetitions(n: int, s: int) -> int:
    r = 0
    while math.comb(s + r, s) < n:
        r += 1
    return r


def _split(lo: int, hi: int, s: int) -> int:
    """Binomial split of segments ``[lo, hi)`` with ``s ≥ 1`` snapshots: the right part gets
    ``min(C(s−1+r, s−1), n−1)`` segments."""
    n = hi - lo
    r = _repetitions(n, s)
    right = min(math.comb(s - 1 + r, s - 1), n - 1)
    return hi - right


def _spine(lo: int, hi: int, s: int) -> list[int]:
    """The snapshots the first reversal of ``[lo, hi)`` places, in increasing order (the initial
    forward pass stores exactly these)."""
    n = hi - lo
    if n <= 1 or s == 0:
        return []
    if s >= n - 1:
        return list(range(lo + 1, hi))
    m = _split(lo, hi, s)
    return [m, *_spine(m, hi, s - 1)]


class _Plan:
    """One checkpointed solve: the step grid, the output steps, the segments and the budget."""

    def __init__(self, solver: AbstractSolver, grad_solver: AbstractSolver, field: Any,
                 grid: Sequence[tuple[float, float]], outputs: Sequence[int], segment: int, spec: RecursiveCheckpoint,
                 inputs: list[torch.Tensor]) -> None:
        self.solver, self.grad_solver, self.field = solver, grad_solver, field
        self.grid = grid
        self.outputs = list(outputs)          # step index after which each output is taken
        self.out_pos = {k: i for i, k in enumerate(self.outputs)}
        T = len(grid)
        self.bounds = list(range(0, T, segment)) + [T]  # segment j is steps [bounds[j], bounds[j+1])
        n = len(self.bounds) - 1
        self.budget = spec.snapshot_budget(n)
        self.inputs = inputs
        self.checked = False

    def advance(self, solver: AbstractSolver, x: torch.Tensor, first: int, last: int,
                on_step: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Steps ``first … last − 1`` from ``x`` (the state before step ``first``)."""
        cache = None
        for k in range(first, last):
            t, h = self.grid[k]
            if cache is None:
                cache = solver.init(self.field, t, x, dt=h)
            res = solver.step(self.field, t, h, x, cache)
            x, cache = res.x, res.cache
            if on_step is not None:
                on_step(k + 1, x)
        return x


def _check_graph(roots: list[torch.Tensor], inputs: list[torch.Tensor], x_in: torch.Tensor) -> None:
    """Raise if the recomputed graph reaches a tensor that requires grad but is not a tracked input
    (the walk stops at the tracked inputs, leaves or not)."""
    known = {id(t) for t in inputs}
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    seen: set[int] = set()
    stop = {id(t.grad_fn) for t in inputs if t.grad_fn is not None}
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or id(node) in stop:
            continue
        seen.add(id(node))
        var = getattr(node, "variable", None)
        if var is not None:
            if id(var) not in known and var is not x_in:
                raise RuntimeError(
                    "adjoint: the field uses a tensor that requires grad but is neither x0 nor a parameter, buffer "
                    f"or tensor attribute of the field (shape {tuple(var.shape)}); the checkpointed gradient cannot "
                    "reach it. Make it an attribute of the field (e.g. field.stimulus = c) or use adjoint=False")
            continue
        stack.extend(fn for fn, _ in node.next_functions)


class _Checkpointed(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, plan: _Plan, x0: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = len(plan.bounds) - 1
        spine = set(_spine(0, n, plan.budget))
        keep = {plan.bounds[j]: j for j in spine}
        snaps: dict[int, torch.Tensor] = {}
        outs: list[torch.Tensor] = []

        def on_step(k: int, x: torch.Tensor) -> None:
            if k in keep:
                snaps[keep[k]] = x
            if k in plan.out_pos:
                outs.append(x)
        plan.advance(plan.solver, x0.detach(), 0, len(plan.grid), on_step)
        order = sorted(snaps)
        ctx.plan, ctx.snap_index = plan, order
        ctx.save_for_backward(x0, *(snaps[j] for j in order))
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, *cots: torch.Tensor) -> tuple[Any, ...]:
        plan: _Plan = ctx.plan
        saved = ctx.saved_tensors
        x0, snap_list = saved[0], saved[1:]
        pre = dict(zip(ctx.snap_index, snap_list))
        grads: list[torch.Tensor | None] = [None] * len(plan.inputs)
        n = len(plan.bounds) - 1

        def leaf(j: int, x_j: torch.Tensor, cot_end: torch.Tensor) -> torch.Tensor:
            first, last = plan.bounds[j], plan.bounds[j + 1]
            roots: list[torch.Tensor] = []
            cot_roots: list[torch.Tensor] = []
            with torch.enable_grad():
                x_in = x_j.detach().requires_grad_()

                def on_step(k: int, x: torch.Tensor) -> None:
                    if k in plan.out_pos and k != last:
                        roots.append(x)
                        cot_roots.append(cots[plan.out_pos[k]])
                x_end = plan.advance(plan.grad_solver, x_in, first, last, on_step)
                end_cot = cot_end
                if last in plan.out_pos:
                    end_cot = end_cot + cots[plan.out_pos[last]]
                roots.append(x_end)
                cot_roots.append(end_cot)
                if not plan.checked:
                    _check_graph(roots, plan.inputs, x_in)
                    plan.checked = True
                out = torch.autograd.grad(roots, [x_in, *plan.inputs], cot_roots, allow_unused=True)
            for i, g in enumerate(out[1:]):
                if g is not None:
                    grads[i] = g if grads[i] is None else grads[i] + g
            return out[0] if out[0] is not None else torch.zeros_like(x_j)

        def advance_to(j_from: int, j_to: int, x: torch.Tensor, store: set[int] | None = None) -> dict[int, torch.Tensor]:
            states: dict[int, torch.Tensor] = {}
            index = {plan.bounds[j]: j for j in (store or ())}

            def on_step(k: int, y: torch.Tensor) -> None:
                if k in index:
                    states[index[k]] = y
            with torch.no_grad():
                y = plan.advance(plan.solver, x, plan.bounds[j_from], plan.bounds[j_to], on_step)
            states[j_to] = y
            return states

        def reverse(lo: int, hi: int, x_lo: torch.Tensor, s: int, cot_hi: torch.Tensor,
                    avail: dict[int, torch.Tensor] | None) -> torch.Tensor:
            count = hi - lo
            if count == 1:
                return leaf(lo, x_lo, cot_hi)
            if s >= count - 1:
                states = avail if avail is not None and all(j in avail for j in range(lo + 1, hi)) else \
                    advance_to(lo, hi - 1, x_lo, set(range(lo + 1, hi - 1)))
                cot = cot_hi
                for j in range(hi - 1, lo, -1):
                    cot = leaf(j, states[j], cot)
                    states.pop(j, None)
                return leaf(lo, x_lo, cot)
            if s == 0:
                cot = cot_hi
                for j in range(hi - 1, lo, -1):
                    cot = leaf(j, advance_to(lo, j, x_lo)[j], cot)
                return leaf(lo, x_lo, cot)
            m = _split(lo, hi, s)
            x_m = avail[m] if avail is not None and m in avail else advance_to(lo, m, x_lo)[m]
            cot_m = reverse(m, hi, x_m, s - 1, cot_hi, avail)
            del x_m
            if avail is not None:
                avail.pop(m, None)
            return reverse(lo, m, x_lo, s, cot_m, None)

        last_cot = torch.zeros_like(x0)
        cot0 = reverse(0, n, x0.detach(), plan.budget, last_cot, pre)
        return (None, cot0, *grads)


def checkpointed_solve(solver: AbstractSolver, grad_solver: AbstractSolver, field: Any, x0: torch.Tensor,
                       grid: Sequence[tuple[float, float]], outputs: Sequence[int],
                       spec: RecursiveCheckpoint) -> tuple[torch.Tensor, ...]:
    """The states after the steps ``outputs`` (increasing step counts ≥ 1) of a fixed-step solve
    over ``grid`` (``(t_k, h_k)`` per step), differentiable by recursive checkpointing.

    ``solver`` runs the steps without a graph (it may be compiled); ``grad_solver`` re-runs
    segments with one (the eager method).
    """
    inputs = differentiable_inputs(field)
    segment = spec.segment_length(len(grid), grad_solver.stages)
    plan = _Plan(solver, grad_solver, field, grid, outputs, segment, spec, inputs)
    # One step with a graph, to find now (not in backward) a tensor that requires grad and
    # reaches the field other than through its attributes.
    with torch.enable_grad():
        probe_in = x0.detach().requires_grad_()
        probe = plan.advance(grad_solver, probe_in, 0, 1)
        if probe.requires_grad:
            _check_graph([probe], inputs, probe_in)
    plan.checked = True
    if not inputs and not x0.requires_grad:  # nothing to differentiate: a plain forward
        states: list[torch.Tensor] = []
        with torch.no_grad():
            plan.advance(solver, x0, 0, len(grid), lambda k, x: states.append(x) if k in plan.out_pos else None)
        return tuple(states)
    return _Checkpointed.apply(plan, x0, *inputs)
