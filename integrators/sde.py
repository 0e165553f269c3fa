"""Stochastic methods on products of spheres: the noisy Kuramoto flow

    dx_i = f_i(t, x) dt + sqrt(2D) Proj_{x_i} ∘ dW_i        (Stratonovich)

stepped by :func:`integrators.solve_sde`. For n = 2 the noise is one Wiener process per
oscillator along ``J x_i`` (the phase noise ``dθ_i = … + sqrt(2D) dW_i``); for n ≥ 3 an
n-vector per oscillator, projected (:func:`kuramoto.sphere_noise`).

A method's :meth:`AbstractSDESolver.step` gets the scaled increment ``dW = sqrt(2D)·ΔW``
(``None`` without noise, and then every method is exactly its deterministic namesake) and
returns the new point on the spheres. The retraction (normalising after the step) is what
makes these Stratonovich methods: the Itô correction ``−D (n − 1) x`` of Brownian motion on
the sphere is the second-order part of ``x ↦ normalize(x + Proj_x ΔW)``, so no correction term
is ever added by hand.

Orders (strong, on the time-T state; weak, on smooth functions of it), measured in
``tests/integrators/test_sde.py``:

- n = 2 (commutative noise: one Wiener process per oscillator, diagonal): every method here
  has strong order 1: the retraction of Euler–Maruyama supplies the Milstein term
  ``½ g'g ΔW²`` (``g'g = −2D x``) exactly, and the geodesic step is exact for pure noise.
- n ≥ 3: the projected noise fields do not commute (their Lie brackets are rotations), so
  without Lévy areas no method exceeds strong order 1/2.
- weak order 1 for all.

References:
    P. E. Kloeden, E. Platen, *Numerical Solution of Stochastic Differential Equations* (1992),
    §10.2–10.4 (Euler–Maruyama, Milstein), §11.1 (Heun for Stratonovich SDEs).
    K. Burrage, P. M. Burrage, T. Tian, Proc. R. Soc. A 460, 373 (2004) (Stratonovich Heun).
    E. P. Hsu, *Stochastic Analysis on Manifolds* (2002), §3.1 (Brownian motion on spheres).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import torch

from kuramoto import expmap, normalize, sphere_noise

from .base import StepResult, TimeLike, reject_unknown_options, require_attribute
from .guards import NO_IMAGINARY_SEGMENT, RK1_REAL
from .skew import expm_skew_apply, skew_from_vectors
from .tableau import HEUN, axpy, rk_stages

__all__ = ["AbstractSDESolver", "EulerMaruyama", "GeodesicEulerMaruyama", "GeodesicHeun", "LawsonEulerMaruyama",
           "LawsonHeun", "StratonovichHeun"]


class AbstractSDESolver(abc.ABC):
    """Interface of a method for the noisy flow (the deterministic one: :class:`AbstractSolver`).

    Class attributes:

    - ``name``: the registry name (``SDE_METHODS[name] is cls``).
    - ``strong_order``: strong order with the n = 2 phase noise (commutative);
      ``strong_order_sphere`` with the projected noise of n ≥ 3 (non-commutative);
      ``weak_order`` (n = 2) and ``weak_order_sphere`` (n ≥ 3).
    - ``ode_method``: the :data:`~integrators.METHODS` name the method equals without noise (bit
      for bit for the native methods, to rounding for torchsde's), ``None`` if it has none.
    - ``stays_on_sphere``, ``native``, ``stages`` (drift evaluations per step), and the stability
      attributes :func:`integrators.guards.check_stability` reads (``adaptive``,
      ``exact_rotation``, ``rotation_limit``, ``coupling_limit``), as for ODE methods.

    Nothing is stored on ``self`` between steps; the cache of a step depends on the step size
    only (the rotation ``exp(hΩ)`` of the Lawson methods).
    """

    name: ClassVar[str]
    strong_order: ClassVar[float]
    strong_order_sphere: ClassVar[float] = 0.5
    weak_order: ClassVar[float] = 1.0
    weak_order_sphere: ClassVar[float] = 1.0
    ode_method: ClassVar[str | None] = None
    stays_on_sphere: ClassVar[bool] = True
    native: ClassVar[bool] = True
    adaptive: ClassVar[bool] = False
    stages: ClassVar[int]
    exact_rotation: ClassVar[bool] = False
    rotation_limit: ClassVar[float] = NO_IMAGINARY_SEGMENT
    coupling_limit: ClassVar[float] = RK1_REAL

    def __init__(self, **options: Any) -> None:
        reject_unknown_options(self, options)

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> Any:
        """The cache for steps of size ``dt`` (``None`` for most methods)."""
        return None

    @abc.abstractmethod
    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None,
             cache: Any) -> StepResult:
        """Advance from ``(t, x)`` to ``t + dt``.

        Args:
            field: the drift ``field(t, x)`` (a :class:`kuramoto.KuramotoField`).
            t, dt: time and step size.
            x: state ``[..., n]``.
            dW: the scaled Wiener increment ``sqrt(2D)·(W(t + dt) − W(t))`` over the step, of
                shape :func:`kuramoto.noise_shape` ``(x.shape)`` (broadcastable), or ``None``
                for no noise (the step is then its deterministic method's, bit for bit).
            cache: from :meth:`init` or the previous step.

        Returns:
            :class:`~integrators.StepResult` ``(x_next, None, cache)``.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _with_noise(y: torch.Tensor, x: torch.Tensor, dW: torch.Tensor | None) -> torch.Tensor:
    return y if dW is None else y + sphere_noise(x, dW)


class EulerMaruyama(AbstractSDESolver):
    """Euler–Maruyama with retraction: ``x ← normalize(x + h f(t, x) + sqrt(2D) Proj_x ΔW)``.

    One drift evaluation. Stratonovich through the retraction (module docstring); strong order 1
    for n = 2, 1/2 for n ≥ 3; weak order 1. Without noise: ``euler_normalized``.
    """

    name = "euler_maruyama"
    strong_order = 1.0
    ode_method = "euler_normalized"
    stages = 1

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None,
             cache: Any) -> StepResult:
        y = axpy(x, dt, field(t, x))
        return StepResult(normalize(_with_noise(y, x, dW)), None, None)


class GeodesicEulerMaruyama(AbstractSDESolver):
    """The geodesic (exponential-map) step: ``x ← exp_x(h f(t, x) + sqrt(2D) Proj_x ΔW)``.

    One drift evaluation; moves along the great circle, exactly on the sphere. Exact for pure
    noise (and pure rotation) on the circle; strong order 1 for n = 2, 1/2 for n ≥ 3; weak order 1.
    Without noise: ``geodesic_euler``.
    """

    name = "geodesic_euler_maruyama"
    strong_order = 1.0
    ode_method = "geodesic_euler"
    stages = 1

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None,
             cache: Any) -> StepResult:
        u = dt * field(t, x)
        return StepResult(expmap(x, _with_noise(u, x, dW)), None, None)


class StratonovichHeun(AbstractSDESolver):
    """Stochastic Heun (the explicit trapezoid on drift and noise), then normalisation.

    ``x̃ = x + h f(x) + g(x)ΔW``, ``x ← normalize(x + h/2 (f(x) + f(x̃)) + ½ (g(x) + g(x̃)) ΔW)``
    with ``g(x)ΔW = sqrt(2D) Proj_x ΔW`` (the predictor is not normalised: the scaled projection
    is tangent off the sphere too). Converges to the Stratonovich solution without a
    correction term. Two drift evaluations; strong order 1 for n = 2 (commutative noise), 1/2
    for n ≥ 3; weak order 1; deterministic order 2. Without noise: ``heun_normalized``.
    """

    name = "stratonovich_heun"
    strong_order = 1.0
    ode_method = "heun_normalized"
    stages = 2

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None,
             cache: Any) -> StepResult:
        if dW is None:
            y, _ = rk_stages(field, HEUN, t, dt, x)
            return StepResult(normalize(y), None, None)
        k1 = field(t, x)
        n1 = sphere_noise(x, dW)
        x_pred = axpy(x, dt, k1) + n1
        k2 = field(t + dt, x_pred)
        n2 = sphere_noise(x_pred, dW)
        y = axpy(x, dt, torch.add(k1 * 0.5, k2, alpha=0.5))
        return StepResult(normalize(torch.add(y, n1 + n2, alpha=0.5)), None, None)


class LawsonCache(NamedTuple):
    """The rotation ``exp(hΩ)`` for the step size ``dt``."""

    dt: TimeLike
    rotation: Any


def _lawson_parts(field: Any, name: str) -> tuple[Any, Any]:
    g = require_attribute(field, "coupling_term", name, "the drift without its rotation")
    omega = require_attribute(field, "omega", name, "the natural frequencies whose rotation is applied exactly")
    return g, omega


def _lawson_cache(omega: Any, dt: TimeLike, cache: Any) -> LawsonCache:
    if cache is not None and (cache.dt is dt or (not isinstance(dt, torch.Tensor) and cache.dt == dt)):
        return cache
    return LawsonCache(dt, (lambda v: v) if omega is None else omega.rotation(dt))


def _rotate_increment(R: Any, x: torch.Tensor, dW: torch.Tensor | None) -> torch.Tensor | None:
    """The rotating-frame increment seen from the step's end: ``R dW`` for vector noise (n ≥ 3);
    the scalar phase noise of n = 2 commutes with every planar rotation and stays as it is."""
    if dW is None or dW.shape[-1] == 1:
        return dW
    return R(dW.expand(x.shape) if dW.shape != x.shape else dW)


class LawsonEulerMaruyama(AbstractSDESolver):
    """Euler–Maruyama in the frame that turns with Ω (integrating factor), then normalisation:
    ``x ← normalize(R(h)(x + h g(x) + sqrt(2D) Proj_x ΔW'))``, ``R(h) = exp(hΩ)`` exact.

    ``g`` is the drift without its rotation (``field.coupling_term``): natural frequencies of any
    size neither limit the step nor turn by a wrong angle. ``ΔW'`` is the increment of the
    rotating-frame Wiener process (for n = 2 the same as ΔW: the phase noise commutes with Ω;
    for n ≥ 3 it has the same law, since ``∫ exp(−sΩ) dW(s)`` is again Brownian).
    One evaluation of ``g``; strong order 1 for n = 2, 1/2 for n ≥ 3; weak order 1.
    """

    name = "lawson_euler_maruyama"
    strong_order = 1.0
    stages = 1
    exact_rotation = True

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> LawsonCache | None:
        _, omega = _lawson_parts(field, self.name)
        return None if dt is None else _lawson_cache(omega, dt, None)

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None,
             cache: Any) -> StepResult:
        g, omega = _lawson_parts(field, self.name)
        cache = _lawson_cache(omega, dt, cache)
        y = _with_noise(axpy(x, dt, g(t, x)), x, dW)
        return StepResult(normalize(cache.rotation(y)), None, cache)


class LawsonHeun(AbstractSDESolver):
    """Stochastic Heun in the frame that turns with Ω, then normalisation. Two evaluations of ``g``.

    With ``R = exp(hΩ)`` (exact) and ``G(x) = h g(x) + sqrt(2D) Proj_x ΔW'``::

        x̃ = R(x + G(x))
        x ← normalize(R(x + ½ G(x)) + ½ (h g(x̃) + sqrt(2D) Proj_x̃ (R ΔW')))

    i.e. Heun on ``z = exp(−tΩ) x`` written back in ``x`` (``ΔW'`` as in
    :class:`LawsonEulerMaruyama`). The rotation is exact at any step, so the Lorentzian's fast
    tails cost nothing; strong order 1 for n = 2, 1/2 for n ≥ 3; weak order 1 (the ambient step
    distorts the noise's angle at O(h²) per step: for stationary statistics at n = 2 prefer
    :class:`GeodesicHeun`, weak order 2); deterministic order 2 (with Ω = 0 it is
    ``stratonovich_heun`` up to rounding).
    """

    name = "lawson_heun"
    strong_order = 1.0
    stages = 2
    exact_rotation = True

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> LawsonCache | None:
        _, omega = _lawson_parts(field, self.name)
        return None if dt is None else _lawson_cache(omega, dt, None)

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None,
             cache: Any) -> StepResult:
        g, omega = _lawson_parts(field, self.name)
        cache = _lawson_cache(omega, dt, cache)
        R = cache.rotation
        G1 = _with_noise(dt * g(t, x), x, dW)
        x_pred = R(x + G1)
        G2 = _with_noise(dt * g(t + dt, x_pred), x_pred, _rotate_increment(R, x, dW))
        return StepResult(normalize(torch.add(R(torch.add(x, G1, alpha=0.5)), G2, alpha=0.5)), None, cache)


def _rotate_plane(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """``cos a · x + sin a · J x`` for n = 2 (``angle`` ``[..., 1]``), in x's memory order."""
    s = torch.sin(angle)
    return torch.addcmul(x * torch.cos(angle), x.flip(-1), torch.cat((-s, s), dim=-1))


class GeodesicHeun(AbstractSDESolver):
    """Stochastic Heun on the rotation group: every stage and the step are exact rotations.

    With ``Θ(x) = h A(x) + sqrt(2D)(ΔW xᵀ − x ΔWᵀ)`` the skew generator of drift and noise
    (``A`` from ``field.generator``, ``f = A(x) x``)::

        x̃ = exp(Θ(x)) x,      x ← exp(½ Θ(x̃)) exp(½ Θ(x)) x

    (the commutator-free Lie-group trapezoid, order 2 without noise). For n = 2 the rotations
    commute and the step is Heun's method on the phase, ``θ ← θ + ½(a(θ) + a(θ̃))`` with
    ``a(θ) = h θ'(θ) + sqrt(2D) ΔW``: the natural frequencies are turned exactly at any step
    (it needs only ``field(t, x)`` there), the phase noise is additive, and the scheme has strong
    order 1 and **weak order 2** — which is what a stationary r needs: with ``stratonovich_heun``
    the error of r is O(h D) (0.02 at h = 0.125, D = 0.5, identical oscillators). For n ≥ 3:
    strong order 1/2, weak order 1. Two drift evaluations and three exponentials per step.

    References:
        Celledoni, Marthinsen, Owren, Future Gener. Comput. Syst. 19 (2003) (commutator-free
        methods); Kloeden, Platen (1992), §15.1 (weak order 2 of Heun's method for additive noise).
    """

    name = "geodesic_heun"
    strong_order = 1.0
    weak_order = 2.0
    stages = 2
    exact_rotation = True

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None,
             cache: Any) -> StepResult:
        if x.shape[-1] == 2:
            a1 = self._angle(field, t, dt, x, dW)
            a2 = self._angle(field, t + dt, dt, _rotate_plane(x, a1), dW)
            return StepResult(normalize(_rotate_plane(x, 0.5 * (a1 + a2))), None, None)
        A = require_attribute(field, "generator", self.name, "the skew matrices A(x) with f(t, x) = A(x) x")
        theta1 = self._generator(A, t, dt, x, dW)
        x_pred = expm_skew_apply(theta1, x)
        theta2 = self._generator(A, t + dt, dt, x_pred, dW)
        out = expm_skew_apply(0.5 * theta2, expm_skew_apply(0.5 * theta1, x))
        return StepResult(normalize(out), None, None)

    @staticmethod
    def _angle(field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None) -> torch.Tensor:
        """``h θ'(x) + sqrt(2D) ΔW``: the phase velocity is the drift's component along ``J x``."""
        v = field(t, x)
        speed = (x[..., :1] * v[..., 1:] - x[..., 1:] * v[..., :1]) / (x * x).sum(-1, keepdim=True)
        return dt * speed if dW is None else dt * speed + dW

    @staticmethod
    def _generator(A: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, dW: torch.Tensor | None) -> torch.Tensor:
        theta = dt * A(t, x)
        if dW is None:
            return theta
        return theta + skew_from_vectors(dW.expand(x.shape), x) / (x * x).sum(-1, keepdim=True).unsqueeze(-1)
