"""Lawson's integrating-factor methods: the rotation Ω exactly, Runge–Kutta only on the coupling.

With ``z = exp(−tΩ) x`` the rotation drops out of ``x' = Ω x + g(t, x)``:
``z' = exp(−tΩ) g(exp(tΩ) z)``, and an explicit Runge–Kutta method steps ``z``. Written back in
``x``, every stage is rotated exactly (closed form: ``field.omega.rotation``), so natural
frequencies of any size neither limit the step's stability nor make it rotate by a wrong
angle. ``lawson_rk4`` is the classical RK4 so transformed (fixed steps); ``lawson_dopri5`` the
Dormand–Prince 5(4) pair, whose embedded estimate is the error *in the rotating frame*: the
step size follows the coupling, not the fastest oscillator's turn.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from kuramoto import normalize, planes

from .adaptive import AbstractEmbeddedRK
from .base import AbstractSolver, StepResult, TimeLike, require_attribute
from .guards import RK4_REAL
from .tableau import DOPRI5, axpy, lincomb

__all__ = ["LawsonDopri5", "LawsonRK4"]


def _identity(v: torch.Tensor) -> torch.Tensor:
    return v


class LawsonCache(NamedTuple):
    """The rotation ``exp(hΩ/2)`` of ``lawson_rk4`` for the step size ``dt`` (a fixed-step solve
    builds it once; a compiled solve takes it as an input)."""

    dt: TimeLike
    rotation: Any


def _same_step(a: TimeLike, b: TimeLike) -> bool:
    if a is b:
        return True
    return not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor) and a == b


def _parts(field: Any, name: str) -> tuple[Any, Any]:
    g = require_attribute(field, "coupling_term", name, "the field without its rotation, g(t, x)")
    omega = require_attribute(field, "omega", name, "the natural frequencies whose rotation is applied exactly")
    return g, omega


class LawsonRK4(AbstractSolver):
    """Integrating-factor (Lawson) RK4 for ``x' = Ω x + g(t, x)``, then normalisation. Order 4.

    With ``z = exp(−tΩ) x`` the rotation drops out (``z' = exp(−tΩ) g(exp(tΩ) z)``) and
    classical RK4 steps ``z``. Written back in ``x`` with ``R(τ) = exp(τΩ)`` (applied exactly by
    ``field.omega.rotate``), one step is::

        k1 = g(x)
        k2 = g(R(h/2)(x + h/2 k1))
        k3 = g(R(h/2) x + h/2 k2)
        k4 = g(R(h) x + h R(h/2) k3)
        x ← normalize(R(h) x + h/6 (R(h) k1 + 2 R(h/2)(k2 + k3) + k4))

    (evaluated with nested half-step rotations and the linearity of R: 4 rotations by ``h/2``
    per step (of x, k1, and two sums), all through one
    ``omega.rotation(h/2)`` map, whose cos/sin, or a :class:`~kuramoto.Skew`'s matrix
    exponential, is computed once per step size: the cache holds it, so a fixed-step solve
    computes it once).

    ``g`` is ``field.coupling_term`` (the field without its rotation). Natural frequencies of
    any size, e.g. the thousands in a Lorentzian's tails, are rotated exactly, with no phase
    error, and cannot destabilise the step: the stability limit is set by the coupling alone.
    Accuracy is another matter: an oscillator with ``|ω| h ≫ 1`` sees the coupling oscillate
    faster than the step resolves (in its rotating frame), so it carries an O(K h) error,
    bounded but not small (measured at ``|ω| h`` up to 15: 1e-2–4e-2 in the states and
    4e-4–5e-3 in the order parameter, where ``rk4_normalized`` is wrong by O(1)). 4 evaluations of ``g`` per step; with
    ``field.omega = None`` it is ``rk4_normalized``.

    References:
        Lawson, "Generalized Runge–Kutta processes for stable systems with large Lipschitz
        constants", SIAM J. Numer. Anal. 4 (1967); Hochbruck, Ostermann, "Exponential
        integrators", Acta Numerica 19 (2010), §2.
    """

    name = "lawson_rk4"
    order = 4
    adaptive = False
    stays_on_sphere = True
    native = True
    uses_tolerances = False
    stages = 4
    exact_rotation = True
    coupling_limit = RK4_REAL

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> LawsonCache | None:
        if dt is None:
            return None
        _, omega = _parts(field, self.name)
        return LawsonCache(dt, _identity if omega is None else omega.rotation(0.5 * dt))

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        g, omega = _parts(field, self.name)
        if cache is None or not _same_step(cache.dt, dt):
            cache = LawsonCache(dt, _identity if omega is None else omega.rotation(0.5 * dt))
        return StepResult(lawson_rk4_update(g, cache.rotation, axpy, normalize, t, dt, x), None, cache)

    def step_planes(self, field: Any, t: TimeLike, dt: TimeLike, x: planes.Planes, cache: LawsonCache) -> planes.Planes:
        """The same step on the component planes of a mean-field state (:mod:`kuramoto.planes`;
        ``planes.supports(field, x0)`` must hold and ``cache`` come from :meth:`init` with ``dt``)."""
        return lawson_rk4_update(lambda s, p: planes.coupling_term(field, p), planes.rotation(cache.rotation),
                                 planes.axpy, planes.normalize, t, dt, x)


def lawson_rk4_update(g: Any, R: Any, axpy: Any, normalize: Any, t: TimeLike, dt: TimeLike, x: Any) -> Any:
    """One ``lawson_rk4`` step in the given algebra (states or planes): ``g`` the coupling term,
    ``R`` the rotation by ``dt/2``, ``axpy(x, a, v) = x + a v``, ``normalize``."""
    half = 0.5 * dt
    k1 = g(t, x)
    # R is linear: R(x + c k1) = R x + c R k1, so two rotations serve k2's point and the end
    x_half, rk1 = R(x), R(k1)
    k2 = g(t + half, axpy(x_half, half, rk1))
    k3 = g(t + half, axpy(x_half, half, k2))
    # R(h) x + h R(h/2) k3 = R(h/2)(R(h/2) x + h k3): one rotation instead of two.
    k4 = g(t + dt, R(axpy(x_half, dt, k3)))
    # R(h) x + h/6 (R(h) k1 + 2 R(h/2)(k2 + k3) + k4) = R(R x + h/6 R k1 + h/3 (k2 + k3)) + h/6 k4
    inner = axpy(axpy(x_half, dt / 6, rk1), dt / 3, axpy(k2, 1.0, k3))
    return normalize(axpy(R(inner), dt / 6, k4))


class LawsonDopri5(AbstractEmbeddedRK):
    """Lawson-transformed Dormand–Prince 5(4), adaptive, renormalised after every step. Order 5.

    DOPRI5 applied to ``z = exp(−tΩ) x``. With ``R(τ) = exp(τΩ)``, ``c_i`` the nodes and
    everything in the frame of the step's start: stage derivatives ``K_j = R(−c_j h) g(X_j)``
    at ``X_i = R(c_i h)(x + h Σ_j a_ij K_j)``, the new point ``x' = normalize(R(h)(x + h Σ b_j K_j))``
    and the error estimate ``R(h)(h Σ e_j K_j)``, whose norm is that of the rotating-frame error:
    the controller steps at the pace of the coupling, while the rotation is exact at any step
    (W4 of issue 14: a Lorentzian population with max|ω| ≈ 160 needs a few hundred steps where
    error control on the unit vectors needs thousands).

    Six new evaluations of ``g = field.coupling_term`` per attempted step: the seventh stage
    (first-same-as-last) is ``g`` at the *normalised* new point, which the cache carries into
    the next step. Five rotation angles per step (``c h`` for the distinct nodes), each
    computed once and applied forwards and backwards. With ``field.omega = None`` it is
    ``dopri5_normalized``. Options as :class:`~integrators.AbstractEmbeddedRK`.

    References:
        Lawson (1967); Dormand, Prince, "A family of embedded Runge–Kutta formulae", J. Comp.
        Appl. Math. 6 (1980); Hochbruck, Ostermann, "Exponential integrators", Acta Numerica 19
        (2010), §2.
    """

    name = "lawson_dopri5"
    order = 5
    stays_on_sphere = True
    stages = 6
    exact_rotation = True
    rotating_frame = True
    tableau = DOPRI5

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> torch.Tensor:
        g, _ = _parts(field, self.name)
        return g(t0, x0)

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        g, omega = _parts(field, self.name)
        tab = self.tableau
        k1 = cache if cache is not None else g(t, x)
        # one rotation map per distinct node c h (c_6 = c_7 = 1), forwards and backwards
        rot: dict[float, tuple[Any, Any]] = {}
        for c in tab.c[1:]:
            if c not in rot:
                if omega is None:
                    rot[c] = (_identity, _identity)
                else:
                    R = omega.rotation(c * dt)
                    rot[c] = (R, R.inverse())
        K = [k1]
        for i in range(1, 6):
            c = tab.c[i]
            fwd, back = rot[c]
            X = fwd(axpy(x, dt, lincomb(tab.a[i], K)))
            K.append(back(g(t + c * dt, X)))
        fwd1, back1 = rot[1.0]
        x_new = normalize(fwd1(axpy(x, dt, lincomb(tab.b[:6], K))))
        k7 = g(t + dt, x_new)
        K.append(back1(k7))
        err = fwd1(lincomb(tab.b_err, K))
        return StepResult(x_new, dt * err, k7)
