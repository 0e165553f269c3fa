"""Retraction methods: an explicit Runge–Kutta step in the ambient space, then back to the sphere.

``euler_normalized`` is the AKOrN layer's update ``x ← normalize(x + γ f(x))`` (Miyato et al.
2025, Eq. 4 and the official ``klayer.py``). Normalising after a step of order p keeps order p,
because the normalisation moves the point by no more than the step's own error.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from kuramoto import normalize

from .base import AbstractSolver, StepResult, TimeLike
from .guards import NO_IMAGINARY_SEGMENT, RK1_REAL, RK4_IMAG, RK4_REAL
from .tableau import EULER, HEUN, RK4, Tableau, rk_stages

__all__ = ["AbstractRetractionRK", "EulerNormalized", "HeunNormalized", "RK4Normalized"]


class AbstractRetractionRK(AbstractSolver):
    """An explicit RK tableau followed by ``kuramoto.normalize`` on the last axis.

    Intermediate stages are not normalised: the field's scaled projection is defined (and keeps
    ``|x|``) off the sphere, and only the step's result must be a point of it.
    """

    tableau: ClassVar[Tableau]
    adaptive = uses_tolerances = False
    native = stays_on_sphere = True

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> None:
        return None

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        y, _ = rk_stages(field, self.tableau, t, dt, x)
        return StepResult(normalize(y), None, None)


class EulerNormalized(AbstractRetractionRK):
    """Projected Euler, ``x ← normalize(x + h f(t, x))``: the AKOrN update. Order 1, 1 evaluation.

    References:
        Miyato, Löwe, Geiger, Welling, "Artificial Kuramoto Oscillatory Neurons", ICLR 2025, Eq. 4.
    """

    name = "euler_normalized"
    order = 1
    stages = 1
    rotation_limit = NO_IMAGINARY_SEGMENT
    coupling_limit = RK1_REAL
    tableau = EULER


class HeunNormalized(AbstractRetractionRK):
    """Heun's method (explicit trapezoid) followed by normalisation. Order 2, 2 evaluations."""

    name = "heun_normalized"
    order = 2
    stages = 2
    rotation_limit = NO_IMAGINARY_SEGMENT
    coupling_limit = RK1_REAL
    tableau = HEUN


class RK4Normalized(AbstractRetractionRK):
    """The classical Runge–Kutta method followed by normalisation. Order 4, 4 evaluations.

    References:
        Hairer, Lubich, Wanner, "Geometric Numerical Integration", 2nd ed., §IV.4 (projection methods).
    """

    name = "rk4_normalized"
    order = 4
    stages = 4
    rotation_limit = RK4_IMAG
    coupling_limit = RK4_REAL
    tableau = RK4
