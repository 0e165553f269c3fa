"""Ambient methods delegated to torchdiffeq, each under torchdiffeq's own name.

The field's scaled projection keeps ``|x_i|`` a first integral of the exact flow, so these leave
the sphere only by their truncation error (they do not renormalise); :func:`integrators.solve`
warns with :class:`integrators.DriftWarning` when ``max_i ||x_i(t)|/|x_i(0)| − 1|`` exceeds
``drift_tol`` (0.05 by default; ``None`` turns the check off). :func:`integrators.solve` hands the whole
solve to ``torchdiffeq.odeint`` (or ``odeint_adjoint`` with ``adjoint=True``, with the field's
parameters and the seminorm; :mod:`integrators.delegate`), with two differences from calling
torchdiffeq directly:

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
from typing import Any

import torch

from kuramoto.checks import check_count, is_int, is_real

from .base import AbstractSolver, StepResult, TimeLike, reject_unknown_options
from .guards import AB4_IMAG, AB4_REAL, AM4_REAL, NO_IMAGINARY_SEGMENT, RK1_REAL, RK3_IMAG, RK3_REAL, RK4_IMAG, RK4_REAL

__all__ = [
    "TORCHDIFFEQ_FAMILIES", "AbstractTorchdiffeqAdams", "AbstractTorchdiffeqAdaptive", "AbstractTorchdiffeqFixed",
    "AdaptiveHeun", "Bosh3", "Dopri5", "Dopri8", "Euler", "ExplicitAdams", "Fehlberg2",
    "FixedAdams", "Heun2", "Heun3", "ImplicitAdams", "Midpoint", "RK4", "torchdiffeq_solvers",
]


def torchdiffeq_solvers() -> dict[str, type]:
    try:
        from torchdiffeq._impl.odeint import SOLVERS
    except ImportError as exc:  # pragma: no cover - torchdiffeq is a dependency
        raise ImportError("torchdiffeq is needed for the ambient methods: pip install torchdiffeq") from exc
    return SOLVERS


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

    adaptive = uses_tolerances = native = stays_on_sphere = False

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
    if not is_int(max_order) or not lowest <= max_order <= 12:
        raise ValueError(f"max_order: expected an integer in [{lowest}, 12], got {max_order!r}")
    check_count(max_iters, "max_iters")


class AbstractTorchdiffeqAdams(AbstractSolver):
    """torchdiffeq's Adams methods: multistep, started with RK4, on the same fixed grid.

    ``step`` takes the self-starting (RK4) step: the method's own order needs the history that
    only a whole solve keeps.
    """

    adaptive = native = stays_on_sphere = False
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

    adaptive = uses_tolerances = True
    native = stays_on_sphere = False

    def __init__(self, *, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2, min_step: float = 0.0,
                 max_step: float = math.inf, max_steps: int = 100_000, **unknown: Any) -> None:
        reject_unknown_options(self, unknown)
        for key, value in (("safety", safety), ("ifactor", ifactor), ("dfactor", dfactor), ("max_step", max_step)):
            if not is_real(value) or not value > 0:
                raise ValueError(f"{key}: expected a positive float, got {value!r}")
        if not is_real(min_step) or not 0 <= min_step < max_step:
            raise ValueError(f"min_step: expected a float in [0, max_step), got {min_step!r}")
        self.safety, self.ifactor, self.dfactor = float(safety), float(ifactor), float(dfactor)
        self.min_step, self.max_step = float(min_step), float(max_step)
        self.max_steps = check_count(max_steps, "max_steps")

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
        tab = torchdiffeq_solvers()[self.name].tableau
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
