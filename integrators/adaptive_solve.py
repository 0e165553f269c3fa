"""Adaptive solves of native embedded pairs: the step-size control loop of
:func:`integrators.solve` (PI controller, output times hit exactly, failures named with the fix)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from .adaptive import AbstractEmbeddedRK
from .base import AbstractSolver, TimeLike
from .compiled import inner_method
from .solution import Progress, Recorder

__all__ = ["solve_adaptive"]


def _checkpointed_step(solver: AbstractSolver, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor,
                       cache: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """One step under non-reentrant activation checkpointing: only ``x`` (and the cache) is kept;
    the step's intermediates are recomputed in backward. Gradients reach ``x``, ``dt``, the
    field's parameters and any tensor the field uses (such as a stimulus that requires grad)."""
    def run(x_in: torch.Tensor, cache_in: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        res = solver.step(field, t, dt, x_in, cache_in)
        return res.x, res.error, res.cache
    return _checkpoint(run, x, cache, use_reentrant=False)


def solve_adaptive(solver: AbstractEmbeddedRK, field: Any, x0: torch.Tensor, rec: Recorder, dt: float | None,
                    rtol: float, atol: float, adjoint: bool, progress: Progress | None) -> None:
    """Fill ``rec`` by stepping a native embedded pair under its controller, landing on every
    output time; with ``adjoint`` (and gradients on) each step is recomputed in backward."""
    controller = solver.controller
    t_list = rec.t_list
    stats = rec.stats
    use_ckpt = adjoint and torch.is_grad_enabled()
    direction = 1.0 if len(t_list) < 2 or t_list[-1] > t_list[0] else -1.0
    t = t_list[0]
    x = x0
    cache = solver.init(field, t, x0)
    stats["nfe"] = 1
    rec.record(x0)
    if len(t_list) == 1:
        return
    if dt is None:
        # a method in the rotating frame steps the coupling term: size the first step by it
        inner, _ = inner_method(solver)
        rhs = field.coupling_term if getattr(inner, "rotating_frame", False) else field
        h = controller.initial_step(rhs, t, x0, cache, solver.order - 1, rtol, atol, direction)
        stats["nfe"] += 1
    else:
        h = direction * min(dt, controller.max_step)
    prev_ratio = 1e-4
    last_rejected = False
    for target in t_list[1:]:
        while direction * (target - t) > 0:
            if stats["steps"] >= solver.max_steps:
                rec.raise_failure("max_steps_reached", f"method {solver.name!r} reached max_steps={solver.max_steps} "
                                  f"attempted steps at t = {t:g} (target {target:g}); increase "
                                  f"options={{'max_steps': ...}} or loosen rtol/atol", t=t)
            remaining = target - t
            clamped = abs(h) >= abs(remaining) * (1 - 1e-12)
            h_try = remaining if clamped else h
            if abs(h_try) <= 1e-14 * max(1.0, abs(t)):
                rec.raise_failure("step_size_underflow", f"method {solver.name!r}: the step size underflowed "
                                  f"(h = {h_try:.3g}) at t = {t:g}; the field may be singular, non-finite or very stiff",
                                  t=t)
            if use_ckpt:
                x_new, err, cache_new = _checkpointed_step(solver, field, t, h_try, x, cache)
            else:
                x_new, err, cache_new = solver.step(field, t, h_try, x, cache)
            stats["steps"] += 1
            stats["nfe"] += solver.stages
            ratio = controller.error_ratio(err, x, x_new, rtol, atol)
            accepted = ratio <= 1.0
            h_next = controller.next_step(h_try, ratio, prev_ratio, solver.order - 1, accepted)
            if accepted:
                stats["accepted"] += 1
                x, cache = x_new, cache_new
                t = target if clamped else t + h_try
                prev_ratio = max(ratio, 1e-4)
                if last_rejected:
                    h_next = math.copysign(min(abs(h_next), abs(h_try)), h_next)
                # A step shortened to land on an output time says little about the step size.
                h = math.copysign(max(abs(h_next), abs(h)), h) if clamped else h_next
                last_rejected = False
            else:
                stats["rejected"] += 1
                h = h_next
                last_rejected = True
        rec.record(x)
        if progress is not None:
            progress.update(target)
