"""The whole solve of an ambient method delegated to torchdiffeq (:mod:`integrators.ambient`):
``odeint`` (or ``odeint_adjoint`` with the field's parameters and the seminorm) over the output
times, with the step grid through every output time, torchdiffeq's step statistics, its
failures turned into :class:`~integrators.SolverError` with the fix, and the drift off the
sphere watched per output (:class:`~integrators.DriftWarning`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .ambient import torchdiffeq_solvers
from .base import AbstractSolver
from .guards import DEFAULT_DRIFT_TOL, drift_of, step_counts, warn_drift

__all__ = ["adjoint_parameters", "output_grid", "solve_torchdiffeq"]


def output_grid(t: list[float], dt: float, eps: float) -> list[float]:
    """Time grid through every output time, each interval split into equal steps ``<= dt``
    (:func:`integrators.guards.step_counts`)."""
    grid = [t[0]]
    for a, b, m in zip(t[:-1], t[1:], step_counts(t, dt, eps)):
        grid.extend(a + (b - a) * j / m for j in range(1, m))
        grid.append(b)
    return grid


def _grid_constructor(dt: float, eps: float):
    def construct(func: Any, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tensor(output_grid(t.tolist(), dt, eps), dtype=t.dtype, device=t.device)
    return construct


class _Counted(nn.Module):
    """Wraps the field for torchdiffeq: counts evaluations and steps (through the step callbacks
    the torchdiffeq solver supports) and drives the progress bar."""

    def __init__(self, field: Any, callbacks: set[str], progress: Any = None) -> None:
        super().__init__()
        self.field = field
        self.nfe = 0
        self.steps = 0
        self.accepted = 0
        self.rejected = 0
        self._t: torch.Tensor | None = None
        self.last_dt: float | None = None
        self.progress = progress
        # Only the callbacks the solver declares: torchdiffeq warns about the others.
        if "callback_step" in callbacks:
            self.callback_step = self._on_step
        if "callback_accept_step" in callbacks:
            self.callback_accept_step = self._on_accept
        if "callback_reject_step" in callbacks:
            self.callback_reject_step = self._on_reject

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.field(t, x)

    @property
    def t(self) -> float:
        """Start time of the last attempted step (NaN before the first)."""
        return math.nan if self._t is None else float(self._t.detach())

    def _on_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        self.steps += 1
        self._t = t0  # converted only when needed: float() would sync the device every step
        if self.progress is not None:
            self.progress.update(float(t0.detach()))

    def _on_accept(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        self.accepted += 1
        self.last_dt = float(dt.detach())

    def _on_reject(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        self.rejected += 1


def adjoint_parameters(field: Any) -> tuple[torch.Tensor, ...]:
    """What ``odeint_adjoint`` differentiates: the field's parameters that require grad, and its
    stimulus if that requires grad (it is data, not a parameter, but may come from a network)."""
    params: list[torch.Tensor] = []
    if isinstance(field, nn.Module):
        params.extend(p for p in field.parameters() if p.requires_grad)
    stim = getattr(field, "stimulus", None)
    if isinstance(stim, torch.Tensor) and stim.requires_grad and not any(stim is p for p in params):
        params.append(stim)
    return tuple(params)


def _odeint_options(solver: AbstractSolver, dt: float | None, eps: float, t_list: list[float],
                    device: torch.device) -> dict[str, Any]:
    """The method's torchdiffeq options, and how the solve meets the output times."""
    options = dict(solver.odeint_options())
    if solver.adaptive:
        if dt is not None:
            options["first_step"] = dt
        # Land on every output time instead of stepping past it and interpolating: the dense
        # output of bosh3/dopri8/fehlberg2 is far less accurate than their steps (measured up to
        # 1000× the tolerance, and off the sphere by as much).
        options["step_t"] = torch.tensor(t_list, dtype=torch.float64, device=device)
    else:
        options["grid_constructor"] = _grid_constructor(dt, eps)
    return options


def _integrator(solver: AbstractSolver, counted: _Counted, field: Any, options: dict[str, Any], rtol: float,
                atol: float, adjoint: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``run(y, times)``: the states at ``times`` from ``y`` by ``odeint`` (``odeint_adjoint``),
    with ``options`` as they are at the call (a solve by output intervals updates the first step)."""
    from torchdiffeq import odeint, odeint_adjoint

    def integrate(y: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        if adjoint:
            adj_options = {k: v for k, v in options.items() if k not in ("first_step", "step_t")}
            adj_options["norm"] = "seminorm"
            return odeint_adjoint(counted, y, times, rtol=rtol, atol=atol, method=solver.name, options=options,
                                  adjoint_options=adj_options, adjoint_params=adjoint_parameters(field))
        return odeint(counted, y, times, rtol=rtol, atol=atol, method=solver.name, options=options)

    def run(y: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        # torchdiffeq warns (e.g. "Functional iteration did not converge") when the state has
        # gone NaN; hold its warnings until the result is known to be finite, and raise a
        # SolverError instead when it is not.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = integrate(y, times)
        if caught and bool(torch.isfinite(out[-1]).all()):
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return out

    return run


def _update_stats(rec: Any, solver: AbstractSolver, counted: _Counted) -> None:
    accepted = counted.accepted if solver.adaptive else counted.steps
    rec.stats.update(nfe=counted.nfe, steps=counted.steps, accepted=accepted, rejected=counted.rejected)


def _fail(exc: AssertionError, solver: AbstractSolver, counted: _Counted, rec: Any) -> None:
    """Raise torchdiffeq's failure (an ``AssertionError``) as a :class:`~integrators.SolverError`
    with the partial solution and the fix; re-raise anything else."""
    text = str(exc)
    t_fail = counted.t
    if "max_num_steps" in text:
        status = "max_steps_reached"
        msg = (f"method {solver.name!r} reached max_steps={solver.max_steps} attempted steps in one output "
               f"interval near t = {t_fail:g}; increase options={{'max_steps': ...}}, loosen rtol/atol, or use "
               f"'lawson_rk4' if the problem is stiff from large natural frequencies")
    elif "underflow" in text:
        status = "step_size_underflow"
        msg = f"method {solver.name!r}: the step size underflowed near t = {t_fail:g} (a singular or stiff field)"
    elif "non-finite" in text:
        status = "nonfinite"
        msg = f"method {solver.name!r}: the state became NaN or inf near t = {t_fail:g}"
    else:
        raise exc
    rec.stats.update(nfe=counted.nfe, steps=counted.steps, accepted=counted.accepted, rejected=counted.rejected)
    rec.raise_failure(status, msg, t=t_fail)


def solve_torchdiffeq(solver: AbstractSolver, field: Any, x0: torch.Tensor, rec: Any, dt: float | None,
                      rtol: float, atol: float, adjoint: bool, progress: Any, eps: float = 2.2e-16,
                      drift_tol: float | None = DEFAULT_DRIFT_TOL) -> None:
    """Fill the recorder ``rec`` by delegating to ``torchdiffeq.odeint`` / ``odeint_adjoint``;
    warn (:class:`~integrators.DriftWarning`) if the states drift off their initial norms by
    more than ``drift_tol`` on a field that keeps them (``field.preserves_norm``)."""
    counted = _Counted(field, torchdiffeq_solvers()[solver.name].valid_callbacks(), progress)
    t_list = rec.t_list
    options = _odeint_options(solver, dt, eps, t_list, x0.device)
    run = _integrator(solver, counted, field, options, rtol, atol, adjoint)
    tt = torch.tensor(t_list, dtype=torch.float64, device=x0.device)
    watch_drift = drift_tol is not None and bool(getattr(field, "preserves_norm", False))
    norms0 = torch.linalg.vector_norm(x0.detach(), dim=-1) if watch_drift else None
    drifts: list[torch.Tensor] = []
    rec.record(x0)
    if len(t_list) == 1:
        return
    try:
        if rec.save_states:
            xs = run(x0, tt)
            _update_stats(rec, solver, counted)
            for i in range(1, len(t_list)):
                rec.record(xs[i])
            rec.check()
            if watch_drift:
                drifts.append(drift_of(xs[1:], norms0))
        else:
            # Output interval by output interval, so the trajectory is never held; adaptive methods
            # continue with the last accepted step size.
            x = x0
            for i in range(len(t_list) - 1):
                x = run(x, tt[i:i + 2])[-1]
                _update_stats(rec, solver, counted)
                rec.record(x)
                if watch_drift:
                    drifts.append(drift_of(x.unsqueeze(0), norms0))
                if solver.adaptive and counted.last_dt is not None:
                    options["first_step"] = counted.last_dt
            rec.check()
    except AssertionError as exc:
        _fail(exc, solver, counted, rec)
    _update_stats(rec, solver, counted)
    if drifts:
        warn_drift(torch.cat(drifts), t_list[1:], drift_tol, solver.name)
