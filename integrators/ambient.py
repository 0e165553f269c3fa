"""Ambient methods delegated to torchdiffeq, each under torchdiffeq's own name.

The field's scaled projection keeps ``|x_i|`` a first integral, so these stay on the sphere up
to their local error (they do not renormalise). :func:`integrators.solve` hands the whole
solve to ``torchdiffeq.odeint`` (or ``odeint_adjoint`` with ``adjoint=True``, with the field's
parameters and the seminorm), with two differences from calling torchdiffeq directly:

- fixed-grid methods step exactly onto every output time (each output interval is split into
  equal steps no longer than ``dt``) instead of interpolating linearly between grid points;
- options are explicit keyword arguments: a typo raises instead of warning.

``step`` takes one step: fixed-grid methods through ``odeint`` over ``[t, t + dt]``, adaptive
pairs through torchdiffeq's Runge–Kutta step (which also returns the error estimate).
Multistep (Adams) methods take their self-starting step there (RK4); their full order needs
the history that only a whole solve keeps.
"""

from __future__ import annotations

import abc
import math
import warnings
from typing import Any

import torch
from torch import nn

from .base import AbstractSolver, StepResult, TimeLike, reject_unknown_options
from .guards import (
    DEFAULT_DRIFT_TOL,
    AB4_IMAG,
    AB4_REAL,
    AM4_REAL,
    NO_IMAGINARY_SEGMENT,
    RK1_REAL,
    RK3_IMAG,
    RK3_REAL,
    RK4_IMAG,
    RK4_REAL,
    drift_of,
    step_counts,
    warn_drift,
)

__all__ = [
    "TORCHDIFFEQ_FAMILIES", "AbstractTorchdiffeqAdams", "AbstractTorchdiffeqAdaptive", "AbstractTorchdiffeqFixed",
    "AdaptiveHeun", "Bosh3", "Dopri5", "Dopri8", "Euler", "ExplicitAdams", "Fehlberg2",
    "FixedAdams", "Heun2", "Heun3", "ImplicitAdams", "Midpoint", "RK4",
]


def _torchdiffeq_solvers() -> dict[str, type]:
    try:
        from torchdiffeq._impl.odeint import SOLVERS
    except ImportError as exc:  # pragma: no cover - torchdiffeq is a dependency
        raise ImportError("torchdiffeq is needed for the ambient methods: pip install torchdiffeq") from exc
    return SOLVERS


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


def _odeint_one_step(solver: AbstractSolver, options: dict[str, Any], field: Any, t: TimeLike, dt: TimeLike,
                     x: torch.Tensor) -> StepResult:
    """One step of a fixed-grid torchdiffeq method: ``odeint`` over the grid ``[t, t + dt]``."""
    from torchdiffeq import odeint

    t0 = torch.as_tensor(t, dtype=torch.float64, device=x.device)
    tt = torch.stack([t0, t0 + dt])
    opts = dict(options, grid_constructor=lambda f, y0, tg: tg)
    y = odeint(field, x, tt, method=solver.name, options=opts, rtol=1e-6, atol=1e-8)[-1]
    return StepResult(y, None, None)


class AbstractTorchdiffeqFixed(AbstractSolver):
    """A fixed-grid torchdiffeq method without options (the grid comes from ``t`` and ``dt``)."""

    adaptive = False
    uses_tolerances = False
    native = False
    stays_on_sphere = False

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> None:
        return None

    def odeint_options(self) -> dict[str, Any]:
        """The torchdiffeq options this instance stands for (none)."""
        return {}

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        return _odeint_one_step(self, {}, field, t, dt, x)


class Euler(AbstractTorchdiffeqFixed):
    """Forward Euler (torchdiffeq ``euler``). Order 1, 1 evaluation."""

    name, order, stages = "euler", 1, 1
    rotation_limit, coupling_limit = NO_IMAGINARY_SEGMENT, RK1_REAL


class Midpoint(AbstractTorchdiffeqFixed):
    """Explicit midpoint rule (torchdiffeq ``midpoint``). Order 2, 2 evaluations."""

    name, order, stages = "midpoint", 2, 2
    rotation_limit, coupling_limit = NO_IMAGINARY_SEGMENT, RK1_REAL


class Heun2(AbstractTorchdiffeqFixed):
    """Heun's second-order method (torchdiffeq ``heun2``). Order 2, 2 evaluations."""

    name, order, stages = "heun2", 2, 2
    rotation_limit, coupling_limit = NO_IMAGINARY_SEGMENT, RK1_REAL


class Heun3(AbstractTorchdiffeqFixed):
    """Heun's third-order method (torchdiffeq ``heun3``). Order 3, 3 evaluations."""

    name, order, stages = "heun3", 3, 3
    rotation_limit, coupling_limit = RK3_IMAG, RK3_REAL


class RK4(AbstractTorchdiffeqFixed):
    """Runge–Kutta 4 in the 3/8-rule form torchdiffeq uses (``rk4``). Order 4, 4 evaluations."""

    name, order, stages = "rk4", 4, 4
    rotation_limit, coupling_limit = RK4_IMAG, RK4_REAL


def _check_adams(max_order: Any, lowest: int, max_iters: Any = 1) -> None:
    if isinstance(max_order, bool) or not isinstance(max_order, int) or not lowest <= max_order <= 12:
        raise ValueError(f"max_order: expected an integer in [{lowest}, 12], got {max_order!r}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"max_iters: expected a positive integer, got {max_iters!r}")


class AbstractTorchdiffeqAdams(AbstractSolver):
    """torchdiffeq's Adams methods: multistep, started with RK4, on the same fixed grid.

    ``step`` takes the self-starting (RK4) step: the method's own order needs the history that
    only a whole solve keeps.
    """

    adaptive = False
    native = False
    stays_on_sphere = False
    order = 4

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> None:
        return None

    @abc.abstractmethod
    def odeint_options(self) -> dict[str, Any]:
        """The torchdiffeq options this instance stands for."""

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        return _odeint_one_step(self, self.odeint_options(), field, t, dt, x)


class ExplicitAdams(AbstractTorchdiffeqAdams):
    """Adams–Bashforth (torchdiffeq ``explicit_adams``), started with RK4. Order 4, 1 evaluation.

    Args:
        max_order: torchdiffeq's ``max_order`` (the predictor uses ``max_order − 1`` past
            values). The default here is 5 (Adams–Bashforth 4, order 4): torchdiffeq's own
            default of 12 builds an 11-step Adams–Bashforth formula whose stability region is
            tiny; it diverged at h = 0.1 on a mildly nonlinear test problem.
    """

    name, stages = "explicit_adams", 1
    uses_tolerances = False
    rotation_limit, coupling_limit = AB4_IMAG, AB4_REAL

    def __init__(self, *, max_order: int = 5, **unknown: Any) -> None:
        reject_unknown_options(self, unknown)
        _check_adams(max_order, 5)
        self.max_order = max_order

    def odeint_options(self) -> dict[str, Any]:
        return {"max_order": self.max_order}


class ImplicitAdams(AbstractTorchdiffeqAdams):
    """Adams–Bashforth–Moulton (torchdiffeq ``implicit_adams``), started with RK4: a predictor and
    a fixed-point corrector iterated to ``rtol``/``atol``. Order 4, ~2 evaluations per step.

    Args:
        max_order: torchdiffeq's ``max_order``. The default here is 4 (3-step Adams–Bashforth
            predictor, 4th-order Adams–Moulton corrector): a clean order 4. torchdiffeq's
            default of 12 climbs to a 12th-order corrector, after which the O(h⁵) error of the
            RK4 start dominates, so the observed order wanders between 4 and 5.
        max_iters: corrector iterations per step. The default here is 10: with torchdiffeq's 4 the
            corrector did not converge to rtol = 1e-10 at h = 1/32 on the order-test problem
            (torchdiffeq then warns and drops the step's history).
    """

    name, stages = "implicit_adams", 2
    uses_tolerances = True
    rotation_limit, coupling_limit = NO_IMAGINARY_SEGMENT, AM4_REAL

    def __init__(self, *, max_order: int = 4, max_iters: int = 10, **unknown: Any) -> None:
        reject_unknown_options(self, unknown)
        _check_adams(max_order, 4, max_iters)
        self.max_order, self.max_iters = max_order, max_iters

    def odeint_options(self) -> dict[str, Any]:
        return {"max_order": self.max_order, "max_iters": self.max_iters}


class FixedAdams(ImplicitAdams):
    """torchdiffeq's older name for ``implicit_adams``: the same method, options and defaults."""

    name = "fixed_adams"


class AbstractTorchdiffeqAdaptive(AbstractSolver):
    """An embedded Runge–Kutta pair with torchdiffeq's step-size controller.

    Args:
        safety, ifactor, dfactor: torchdiffeq's controller factors.
        min_step, max_step: bounds on the step size.
        max_steps: attempted steps allowed per output interval (torchdiffeq's
            ``max_num_steps``); reaching it raises :class:`~integrators.SolverError`.
    """

    adaptive = True
    uses_tolerances = True
    native = False
    stays_on_sphere = False

    def __init__(self, *, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2, min_step: float = 0.0,
                 max_step: float = math.inf, max_steps: int = 100_000, **unknown: Any) -> None:
        reject_unknown_options(self, unknown)
        for key, value in (("safety", safety), ("ifactor", ifactor), ("dfactor", dfactor), ("max_step", max_step)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{key}: expected a positive float, got {value!r}")
        if isinstance(min_step, bool) or not isinstance(min_step, (int, float)) or not 0 <= min_step < max_step:
            raise ValueError(f"min_step: expected a float in [0, max_step), got {min_step!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps: expected a positive integer, got {max_steps!r}")
        self.safety, self.ifactor, self.dfactor = float(safety), float(ifactor), float(dfactor)
        self.min_step, self.max_step, self.max_steps = float(min_step), float(max_step), max_steps

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> None:
        return None

    def odeint_options(self) -> dict[str, Any]:
        """The torchdiffeq options this instance stands for."""
        return {"safety": self.safety, "ifactor": self.ifactor, "dfactor": self.dfactor, "min_step": self.min_step,
                "max_step": self.max_step, "max_num_steps": self.max_steps}

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        """One step of the pair (no step-size control) through torchdiffeq's Runge–Kutta step,
        which also returns the error estimate."""
        try:
            from torchdiffeq._impl.rk_common import _ButcherTableau, _runge_kutta_step
        except ImportError as exc:  # pragma: no cover - depends on torchdiffeq's internals
            raise NotImplementedError(f"method {self.name!r}: single steps need torchdiffeq's Runge–Kutta step "
                                      f"(torchdiffeq._impl.rk_common), which this torchdiffeq version lacks; use "
                                      f"solve()") from exc
        tab = _torchdiffeq_solvers()[self.name].tableau
        tab = _ButcherTableau(alpha=tab.alpha.to(x.device, x.dtype), beta=[b.to(x.device, x.dtype) for b in tab.beta],
                              c_sol=tab.c_sol.to(x.device, x.dtype), c_error=tab.c_error.to(x.device, x.dtype))
        t0 = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        dt_t = torch.as_tensor(dt, dtype=torch.float64, device=x.device) if not isinstance(dt, torch.Tensor) else dt
        f0 = field(t0, x) if cache is None else cache

        def func(tt: torch.Tensor, y: torch.Tensor, perturb: Any = None) -> torch.Tensor:
            return field(tt, y)

        y1, f1, err, _ = _runge_kutta_step(func, x, f0, t0, dt_t, t0 + dt_t, tab)
        return StepResult(y1, err.to(x.dtype), None)


TORCHDIFFEQ_FAMILIES = (AbstractTorchdiffeqFixed, AbstractTorchdiffeqAdams, AbstractTorchdiffeqAdaptive)
"""The abstract bases of the methods :func:`integrators.solve` delegates to torchdiffeq."""


class Dopri5(AbstractTorchdiffeqAdaptive):
    """Dormand–Prince 5(4) (torchdiffeq ``dopri5``). Order 5, 6 evaluations per step (FSAL)."""

    name, order, stages = "dopri5", 5, 6


class Dopri8(AbstractTorchdiffeqAdaptive):
    """Dormand–Prince 8(7) (torchdiffeq ``dopri8``). Order 8, 13 evaluations per step."""

    name, order, stages = "dopri8", 8, 13


class Bosh3(AbstractTorchdiffeqAdaptive):
    """Bogacki–Shampine 3(2) (torchdiffeq ``bosh3``). Order 3, 3 evaluations per step (FSAL)."""

    name, order, stages = "bosh3", 3, 3


class Fehlberg2(AbstractTorchdiffeqAdaptive):
    """Runge–Kutta–Fehlberg 2(1) (torchdiffeq ``fehlberg2``). Order 2, 3 evaluations per step."""

    name, order, stages = "fehlberg2", 2, 3


class AdaptiveHeun(AbstractTorchdiffeqAdaptive):
    """Heun–Euler 2(1) (torchdiffeq ``adaptive_heun``). Order 2, 2 evaluations per step."""

    name, order, stages = "adaptive_heun", 2, 2


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


def solve_torchdiffeq(solver: AbstractSolver, field: Any, x0: torch.Tensor, rec: Any, dt: float | None,
                      rtol: float, atol: float, adjoint: bool, progress: Any, eps: float = 2.2e-16,
                      drift_tol: float | None = DEFAULT_DRIFT_TOL) -> None:
    """Fill the recorder ``rec`` by delegating to ``torchdiffeq.odeint`` / ``odeint_adjoint``;
    warn (:class:`~integrators.DriftWarning`) if the states drift off their initial norms by
    more than ``drift_tol`` on a field that keeps them (``field.preserves_norm``)."""
    from torchdiffeq import odeint, odeint_adjoint

    solvers = _torchdiffeq_solvers()
    counted = _Counted(field, solvers[solver.name].valid_callbacks(), progress)
    options = dict(solver.odeint_options())
    if solver.adaptive:
        if dt is not None:
            options["first_step"] = dt
        # Land on every output time instead of stepping past it and interpolating: the dense
        # output of bosh3/dopri8/fehlberg2 is far less accurate than their steps (measured up to
        # 1000× the tolerance, and off the sphere by as much).
        options["step_t"] = torch.tensor(rec.t_list, dtype=torch.float64, device=x0.device)
    else:
        options["grid_constructor"] = _grid_constructor(dt, eps)
    t_list = rec.t_list
    tt = torch.tensor(t_list, dtype=torch.float64, device=x0.device)
    watch_drift = drift_tol is not None and bool(getattr(field, "preserves_norm", False))
    norms0 = torch.linalg.vector_norm(x0.detach(), dim=-1) if watch_drift else None
    drifts: list[torch.Tensor] = []

    def run(y: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        # torchdiffeq warns (e.g. "Functional iteration did not converge") when the state has
        # gone NaN; hold its warnings until the result is known to be finite, and raise a
        # SolverError instead when it is not.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = _odeint(y, times)
        if caught and bool(torch.isfinite(out[-1]).all()):
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return out

    def _odeint(y: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        if adjoint:
            adj_options = {k: v for k, v in options.items() if k not in ("first_step", "step_t")}
            adj_options["norm"] = "seminorm"
            return odeint_adjoint(counted, y, times, rtol=rtol, atol=atol, method=solver.name, options=options,
                                  adjoint_options=adj_options, adjoint_params=adjoint_parameters(field))
        return odeint(counted, y, times, rtol=rtol, atol=atol, method=solver.name, options=options)

    def fail(exc: AssertionError) -> None:
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

    def update_stats() -> None:
        accepted = counted.accepted if solver.adaptive else counted.steps
        rec.stats.update(nfe=counted.nfe, steps=counted.steps, accepted=accepted, rejected=counted.rejected)

    rec.record(x0)
    if len(t_list) == 1:
        return
    try:
        if rec.save_states:
            xs = run(x0, tt)
            update_stats()
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
                update_stats()
                rec.record(x)
                if watch_drift:
                    drifts.append(drift_of(x.unsqueeze(0), norms0))
                if solver.adaptive and counted.last_dt is not None:
                    options["first_step"] = counted.last_dt
            rec.check()
    except AssertionError as exc:
        fail(exc)
    update_stats()
    if drifts:
        warn_drift(torch.cat(drifts), t_list[1:], drift_tol, solver.name)
