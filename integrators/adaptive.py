"""Native adaptive methods: an embedded Runge–Kutta pair that renormalises every step."""

from __future__ import annotations

import math
from typing import Any

import torch

from kuramoto import normalize
from kuramoto.checks import check_count

from .base import AbstractSolver, StepResult, TimeLike, reject_unknown_options
from .controller import PIController
from .tableau import DOPRI5, lincomb, rk_stages

__all__ = ["AbstractEmbeddedRK", "Dopri5Normalized"]


class AbstractEmbeddedRK(AbstractSolver):
    """A native adaptive method: ``step`` returns an error estimate, and :func:`integrators.solve`
    chooses the step sizes with the instance's ``controller`` within ``max_steps`` attempts.

    Args (of every such method):
        safety, ifactor, dfactor, beta, max_step: the step-size controller
            (:class:`~integrators.controller.PIController`).
        max_steps: attempted steps allowed per solve; reaching it raises
            :class:`~integrators.SolverError` (``status="max_steps_reached"``).
    """

    adaptive = True
    native = True
    uses_tolerances = True
    rotating_frame: bool = False
    """Whether the method steps the coupling term in the frame rotating with Ω (its cache is
    then ``field.coupling_term``, and the first step is sized by it)."""
    controller: PIController
    max_steps: int

    def __init__(self, *, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2, beta: float = 0.04,
                 max_step: float = math.inf, max_steps: int = 100_000, **unknown: Any) -> None:
        reject_unknown_options(self, unknown)
        self.controller = PIController(safety=safety, ifactor=ifactor, dfactor=dfactor, beta=beta, max_step=max_step)
        self.safety, self.ifactor, self.dfactor, self.beta, self.max_step = safety, ifactor, dfactor, beta, max_step
        self.max_steps = check_count(max_steps, "max_steps")


class Dopri5Normalized(AbstractEmbeddedRK):
    """Dormand–Prince 5(4) with a PI controller, renormalised after every step. Order 5.

    Six new field evaluations per attempted step: the seventh stage (first-same-as-last) is
    evaluated at the *normalised* new point, so it is exactly the next step's first stage and
    the error estimate changes only at O(h^7). The cache holds that stage. Options as
    :class:`AbstractEmbeddedRK`.

    References:
        Dormand, Prince, "A family of embedded Runge–Kutta formulae", J. Comp. Appl. Math. 6 (1980).
    """

    name = "dopri5_normalized"
    order = 5
    stays_on_sphere = True
    stages = 6
    tableau = DOPRI5

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> torch.Tensor:
        return field(t0, x0)

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        k1 = cache if cache is not None else field(t, x)
        y, ks = rk_stages(field, self.tableau, t, dt, x, k1=k1, stages=6)
        x_new = normalize(y)
        k7 = field(t + dt, x_new)
        err = lincomb(self.tableau.b_err, [*ks, k7])
        return StepResult(x_new, dt * err, k7)
