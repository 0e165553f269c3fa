"""The argument checks of :func:`integrators.solve` and :func:`integrators.step_fixed`, run once at
their entry (never per step): the field, the output times, tolerances, step sizes, the adjoint
and checkpoint requests, and the initial state's values. Which *method* may be paired with which
of these is :func:`integrators.check_pairing`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from kuramoto.checks import check_count, is_real

from .base import AbstractSolver, TimeLike, check_dt
from .checkpoint import RecursiveCheckpoint
from .registry import get_solver

__all__ = [
    "check_adjoint", "check_drift_tol", "check_field", "check_finite", "check_first_step", "check_segment",
    "check_solve_dt", "check_step_fixed_args", "check_times", "check_tolerances", "solver_with_options",
]


def check_field(field: Any) -> None:
    if not callable(field):
        raise TypeError(f"field: expected a vector field field(t, x) -> dx/dt (e.g. a kuramoto.KuramotoField), got "
                        f"{type(field).__name__}")


def solver_with_options(method: str | AbstractSolver, options: Any) -> AbstractSolver:
    """The solver for ``method``, built with ``options`` (a dict of its keyword options, or ``None``)."""
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options: expected a dict of the method's keyword options, got {type(options).__name__}")
    if isinstance(method, AbstractSolver) and options:
        raise ValueError(f"options: given together with a solver instance ({type(method).__name__}); pass them to its "
                         f"constructor instead")
    return get_solver(method, **dict(options or {}))


def check_times(t: Any, x0: torch.Tensor) -> tuple[torch.Tensor, list[float], float]:
    """The output times as a tensor on the state's device, as floats, and the machine epsilon of
    the dtype they were given in (their rounding, which the step grid tolerates)."""
    if isinstance(t, (str, bytes)):
        raise TypeError(f"t: expected a 1-D tensor or sequence of output times (floats), got a string {t!r}")
    if isinstance(t, torch.Tensor):
        if t.dim() != 1 or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"t: expected a 1-D tensor of output times, got shape {tuple(t.shape)} and dtype {t.dtype}")
        ts = t.detach().to(x0.device)
        t_list = t.detach().double().cpu().tolist()
        eps = torch.finfo(t.dtype).eps if t.is_floating_point() else 0.0
    elif isinstance(t, (Sequence, np.ndarray)):
        if isinstance(t, np.ndarray) and t.ndim != 1:
            raise ValueError(f"t: expected a 1-D array of output times, got shape {t.shape}")
        try:
            t_list = [float(v) for v in t]
        except (TypeError, ValueError):
            raise TypeError("t: expected a 1-D tensor or sequence of output times (floats)") from None
        if any(isinstance(v, (str, bytes)) for v in t):
            raise TypeError("t: expected a 1-D tensor or sequence of output times (floats), got strings")
        ts = torch.tensor(t_list, dtype=torch.float64, device=x0.device)
        eps = float(np.finfo(t.dtype).eps) if isinstance(t, np.ndarray) and t.dtype.kind == "f" else \
            float(np.finfo(np.float64).eps)
    else:
        raise TypeError(f"t: expected a 1-D tensor or sequence of output times, got {type(t).__name__}")
    if not t_list:
        raise ValueError("t: expected at least one output time (the first is the initial time)")
    if not all(math.isfinite(v) for v in t_list):
        raise ValueError(f"t: output times must be finite, got {t_list[:5]}{'...' if len(t_list) > 5 else ''}")
    diffs = [b - a for a, b in zip(t_list[:-1], t_list[1:])]
    if diffs and not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        raise ValueError("t: output times must be strictly increasing or strictly decreasing")
    return ts, t_list, eps


def check_tolerances(rtol: Any, atol: Any) -> tuple[float, float]:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not is_real(value) or not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name}: expected a non-negative finite float, got {value!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol, atol: at least one tolerance must be positive")
    return float(rtol), float(atol)


def check_drift_tol(drift_tol: Any) -> float | None:
    if drift_tol is not None and (not is_real(drift_tol) or not drift_tol > 0):
        raise ValueError(f"drift_tol: expected a positive float or None, got {drift_tol!r}")
    return drift_tol


def check_solve_dt(dt: Any) -> float | None:
    """``solve``'s ``dt`` as a positive float (or ``None``): a step that requires grad belongs to
    :func:`~integrators.step_fixed`, and the direction of the solve comes from ``t``."""
    if dt is None:
        return None
    if isinstance(dt, torch.Tensor):
        if dt.requires_grad:
            raise ValueError("dt: solve() does not differentiate through the step size; use step_fixed(..., dt=gamma) "
                             "for a learnable step")
        dt = float(dt)
    dt = check_dt(dt)
    if dt < 0:
        raise ValueError(f"dt: expected a positive step size (the direction comes from t), got {dt}")
    return dt


def check_first_step(dt: float | None, t_list: list[float], solver: AbstractSolver) -> None:
    """An adaptive method's first step must be one it can take at these times."""
    if not solver.adaptive or dt is None or len(t_list) < 2:
        return
    floor = 1e-14 * max(1.0, abs(t_list[0]), abs(t_list[-1]))
    if dt <= floor:
        raise ValueError(f"dt: the first step {dt:g} of adaptive method {solver.name!r} is below the smallest step it "
                         f"can take at these times ({floor:.1g}); pass a larger dt or None (chosen automatically)")


def check_adjoint(adjoint: Any, solver: AbstractSolver) -> RecursiveCheckpoint | bool:
    """``adjoint`` as given, with ``True`` for a native fixed-step method made the default
    :class:`~integrators.RecursiveCheckpoint` (its method pairings: :func:`~integrators.check_pairing`)."""
    if isinstance(adjoint, RecursiveCheckpoint):
        return adjoint
    if not isinstance(adjoint, bool):
        raise TypeError(f"adjoint: expected a bool or an integrators.RecursiveCheckpoint, got {type(adjoint).__name__}")
    if adjoint and solver.native and not solver.adaptive:
        return RecursiveCheckpoint()
    return adjoint


def check_segment(checkpoint: Any) -> int:
    """``step_fixed``'s ``checkpoint`` as a segment length (0: no checkpointing)."""
    if isinstance(checkpoint, bool):
        return int(checkpoint)
    if not isinstance(checkpoint, int) or checkpoint < 0:
        raise ValueError(f"checkpoint: expected a bool or a non-negative integer (steps per checkpoint segment), "
                         f"got {checkpoint!r}")
    return checkpoint


def check_finite(x0: torch.Tensor) -> None:
    """A NaN/inf initial state is bad input (one sync), not a solver failure at t0."""
    if x0.numel() and not bool(torch.isfinite(x0.detach()).all()):
        bad = tuple(torch.nonzero(~torch.isfinite(x0.detach()))[0].tolist())
        raise ValueError(f"x0: contains NaN or inf (first at index {bad}); the initial state must be finite")


def check_step_fixed_args(x0: torch.Tensor, dt: Any, steps: Any, t0: Any) -> TimeLike:
    """``step_fixed``'s ``dt`` (float or 0-d tensor on the state's device), ``steps`` and ``t0``."""
    check_count(steps, "steps", minimum=0)
    dt = check_dt(dt)
    if isinstance(dt, torch.Tensor) and dt.device != x0.device:
        raise ValueError(f"dt: a tensor step size must live on the state's device {x0.device}, got {dt.device}")
    if not is_real(t0):
        raise TypeError(f"t0: expected a float, got {type(t0).__name__}")
    return dt
