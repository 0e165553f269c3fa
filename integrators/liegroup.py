"""Lie-group methods: every step is a rotation of each oscillator, so the state stays on the sphere.

The Kuramoto field is ``f(x) = A(x) x`` with ``A(x) = Ω + (y xᵀ − x yᵀ)/|x|²`` skew-symmetric
(``y = c + Jx``; :meth:`kuramoto.KuramotoField.generator`), so SO(n) acts on each sphere and the
methods below advance ``x`` by ``exp(Θ) x`` for skew ``Θ`` built from evaluations of ``A``.
The exponentials are the closed forms of :mod:`integrators.skew`. The result is renormalised,
which removes only round-off (the exact update is a rotation).
"""

from __future__ import annotations

from typing import Any

import torch

from kuramoto import expmap, normalize

from .base import AbstractSolver, StepResult, TimeLike, require_attribute
from .guards import NO_IMAGINARY_SEGMENT, RK1_REAL, RK4_REAL
from .skew import commutator, expm_skew_apply

__all__ = ["CF4", "RKMK4", "AbstractLieGroup", "GeodesicEuler"]


def _generator(field: Any, method: str):
    return require_attribute(field, "generator", method,
                             "the skew matrices A(x) with f(t, x) = A(x) x that a Lie-group method exponentiates")


class AbstractLieGroup(AbstractSolver):
    """A Lie-group method: native, fixed-step, every step a rotation (so exactly on the sphere),
    no cache."""

    adaptive = uses_tolerances = False
    native = stays_on_sphere = True

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> None:
        return None


class GeodesicEuler(AbstractLieGroup):
    """Exponential-map Euler: ``x ← exp_x(h f(t, x))`` along the great circle. Order 1, 1 evaluation.

    The same as rotating by ``exp(h (f xᵀ − x fᵀ))``; works with any tangent field (no generator
    needed). Gradients are finite at ``f = 0`` (:func:`kuramoto.expmap` guards the sinc).

    References:
        Absil, Mahony, Sepulchre, "Optimization Algorithms on Matrix Manifolds", 2008, Example 5.4.1.
    """

    name, order, stages = "geodesic_euler", 1, 1
    rotation_limit, coupling_limit = NO_IMAGINARY_SEGMENT, RK1_REAL

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        return StepResult(expmap(x, dt * field(t, x)), None, None)


def _dexpinv(u: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``dexp_u^{-1}(A) ≈ A − ½[u, A] + 1/12 [u, [u, A]]``; the next term is O(|u|⁴), beyond order 4."""
    c1 = commutator(u, A)
    return A - 0.5 * c1 + (1.0 / 12.0) * commutator(u, c1)


class RKMK4(AbstractLieGroup):
    """Runge–Kutta–Munthe-Kaas with the classical RK4 coefficients. Order 4, 4 generator evaluations.

    Stages ``k_i = h dexp⁻¹_{u_i}(A(exp(u_i) x))`` with ``u = (0, k1/2, k2/2, k3)``, then
    ``x ← exp((k1 + 2k2 + 2k3 + k4)/6) x``. The ``dexp⁻¹`` series is truncated after the
    ``[u,[u,A]]/12`` term, which keeps order 4 for a non-commutative algebra (``n ≥ 3``).

    References:
        Munthe-Kaas, "High order Runge–Kutta methods on manifolds", Appl. Numer. Math. 29 (1999);
        Iserles, Munthe-Kaas, Nørsett, Zanna, "Lie-group methods", Acta Numerica 9 (2000), §5.
    """

    name, order, stages = "rkmk4", 4, 4
    exact_rotation, coupling_limit = True, RK4_REAL

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        A = _generator(field, self.name)
        k1 = dt * A(t, x)
        u = 0.5 * k1
        k2 = dt * _dexpinv(u, A(t + 0.5 * dt, expm_skew_apply(u, x)))
        u = 0.5 * k2
        k3 = dt * _dexpinv(u, A(t + 0.5 * dt, expm_skew_apply(u, x)))
        k4 = dt * _dexpinv(k3, A(t + dt, expm_skew_apply(k3, x)))
        theta = (k1 + 2 * (k2 + k3) + k4) / 6
        return StepResult(normalize(expm_skew_apply(theta, x)), None, None)


class CF4(AbstractLieGroup):
    """Commutator-free Lie-group method of order 4 (Celledoni–Marthinsen–Owren). 4 generator
    evaluations and 5 exponentials, no commutators.

    With ``F_i = h A(Y_i)``: ``Y2 = exp(F1/2) x``, ``Y3 = exp(F2/2) x``,
    ``Y4 = exp(F3 − F1/2) Y2``, and
    ``x ← exp(−F1/12 + F2/6 + F3/6 + F4/4) exp(F1/4 + F2/6 + F3/6 − F4/12) x``.

    References:
        Celledoni, Marthinsen, Owren, "Commutator-free Lie group methods", Future Generation
        Computer Systems 19 (2003), the 4th-order scheme of §3.
    """

    name, order, stages = "cf4", 4, 4
    exact_rotation, coupling_limit = True, RK4_REAL

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        A = _generator(field, self.name)
        F1 = dt * A(t, x)
        Y2 = expm_skew_apply(0.5 * F1, x)
        F2 = dt * A(t + 0.5 * dt, Y2)
        Y3 = expm_skew_apply(0.5 * F2, x)
        F3 = dt * A(t + 0.5 * dt, Y3)
        Y4 = expm_skew_apply(F3 - 0.5 * F1, Y2)
        F4 = dt * A(t + dt, Y4)
        mid = (F2 + F3) / 6
        first = expm_skew_apply(0.25 * F1 + mid - F4 / 12, x)
        out = expm_skew_apply(-F1 / 12 + mid + 0.25 * F4, first)
        return StepResult(normalize(out), None, None)
