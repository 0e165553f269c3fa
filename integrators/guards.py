"""What :func:`integrators.solve` checks before and while it steps, so that a run that cannot be
right fails with one clear line instead of returning a wrong answer.

- **Step grid.** Each output interval is split into equal steps no longer than ``dt`` (up to
  the rounding of the output times in their own dtype, and one part in 10^6): ``t =
  torch.linspace(0, 50, 501)`` with ``dt = 0.01`` is exactly 5000 steps. A grid beyond
  :data:`MAX_FIXED_STEPS` steps (``dt = 1e-300``) is refused before anything runs.
- **Stability.** A fixed-step method that does not rotate Ω exactly is stable for a pure
  rotation only while ``h · max|Ω|`` stays within its stability boundary on the imaginary axis;
  beyond it RK4 amplifies the fast oscillators and, renormalised, turns them by wrong angles,
  which can lock a Lorentzian population falsely. Likewise ``h · L`` for ``L`` the coupling's
  Lipschitz constant against the boundary on the real axis: a stiff coupling stepped by a
  method that stays on the sphere cannot blow up, so it would return a wrong ``r`` silently.
  Both raise ``ValueError`` naming the fix; ``check_stability=False`` opts out.
- **Drift.** Ambient methods (torchdiffeq's) do not renormalise; the Kuramoto field keeps every
  ``|x_i|``, so their drift of ``|x_i|`` is their own error. It is measured per chunk of
  outputs (no sync per step) and beyond ``drift_tol`` a :class:`~integrators.DriftWarning` is
  issued; the states are returned as computed, never silently renormalised.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from .base import AbstractSolver, DriftWarning

__all__ = [
    "AB4_IMAG", "AB4_REAL", "AM4_REAL", "DEFAULT_DRIFT_TOL", "MAX_FIXED_STEPS", "NO_IMAGINARY_SEGMENT", "RK1_REAL",
    "RK3_IMAG", "RK3_REAL", "RK4_IMAG", "RK4_REAL", "check_stability", "drift_of", "step_counts", "warn_drift",
]

# Stability boundaries of the explicit methods' stability polynomials R(z) = Σ_{k≤p} z^k/k!
# (p = stages ≤ 4) on the imaginary axis (|R(iθ)| ≤ 1 for θ ≤ limit) and on the negative real
# axis, and of the Adams methods (boundary locus of their characteristic polynomials).
RK4_IMAG = 2.0 * math.sqrt(2.0)
RK3_IMAG = math.sqrt(3.0)
RK1_REAL = 2.0          # Euler and every 2-stage order-2 method
RK3_REAL = 2.5127
RK4_REAL = 2.7852
AB4_IMAG = 0.43         # 4-step Adams–Bashforth (explicit_adams with max_order 5)
AB4_REAL = 0.3
AM4_REAL = 2.6          # 3-step Adams–Moulton (3.0), and its fixed-point corrector needs h L · 9/24 < 1
# Methods whose stability region meets the imaginary axis only at 0 (Euler, Heun, midpoint,
# Adams–Moulton) amplify every rotation a little (ambient) or lag it (normalised): 1 rad per step
# is the bound the synchronisation study has used for them.
NO_IMAGINARY_SEGMENT = 1.0

MAX_FIXED_STEPS = 10**9
"""More steps than a fixed-step solve can finish (at ≥ 1 µs per step, over a quarter of an hour
of pure overhead); beyond it ``solve`` refuses before stepping."""

DEFAULT_DRIFT_TOL = 0.05
"""Default ``drift_tol`` of :func:`integrators.solve`: largest ``| |x_i(t)| / |x_i(t0)| − 1 |``
an ambient method may reach before a :class:`~integrators.DriftWarning`. 5% off the sphere is
a wrong state, not a rounding matter (issue 19 met 0.7–5.9 inside layers); smaller drifts are
the method's ordinary error, of the order of its phase error, and the step size or tolerance
controls them (pass a smaller ``drift_tol`` to be told about them too)."""


def step_counts(t_list: list[float], dt: float, eps: float) -> list[int]:
    """Steps per output interval: equal steps no longer than ``dt``.

    A step may exceed ``dt`` by the rounding of the output times in their dtype (``eps``, its
    machine epsilon: ``torch.linspace(0, 50, 501)`` in float32 has intervals of 0.1 ± 4e-6) or by
    one part in 10^6, so that such grids do not get an extra step.

    Raises:
        ValueError: ``dt`` so small that the grid has more than :data:`MAX_FIXED_STEPS` steps.
    """
    counts = []
    total = 0
    for a, b in zip(t_list[:-1], t_list[1:]):
        length = abs(b - a)
        ratio = length / dt
        if not math.isfinite(ratio) or ratio > MAX_FIXED_STEPS:
            raise ValueError(f"dt: a fixed-step solve over [{t_list[0]:g}, {t_list[-1]:g}] with dt={dt:g} needs "
                             f"{'more than 1e308' if not math.isfinite(ratio) else f'~{ratio:.3g}'} steps in one output "
                             f"interval alone, beyond {MAX_FIXED_STEPS:.0e}; it could not finish. Use a larger dt")
        slack = max(1e-6 * ratio, 4.0 * eps * max(abs(a), abs(b)) / dt)
        m = max(1, math.ceil(ratio - slack))
        counts.append(m)
        total += m
        if total > MAX_FIXED_STEPS:
            raise ValueError(f"dt: a fixed-step solve over [{t_list[0]:g}, {t_list[-1]:g}] with dt={dt:g} needs more "
                             f"than {MAX_FIXED_STEPS:.0e} steps; it could not finish. Use a larger dt")
    return counts


def _rate(field: Any) -> float | None:
    omega = getattr(field, "omega", None)
    rate = getattr(omega, "max_rate", None)
    return None if rate is None else rate()


def _lipschitz(field: Any) -> tuple[float, str] | None:
    coupling = getattr(field, "coupling", None)
    fn = getattr(coupling, "lipschitz_constant", None)
    if fn is None:
        return None
    try:
        return fn(), type(coupling).__name__
    except NotImplementedError:
        return None


def check_stability(solver: AbstractSolver, field: Any, h: float) -> None:
    """Refuse a fixed-step solve whose step ``h`` is beyond the method's stability limits for the
    field's fastest rotation (``h · max|Ω|``, unless the method rotates exactly) or for its
    coupling (``h · L``). Fields without ``omega.max_rate()`` / ``coupling.lipschitz_constant()``
    are not checked. One or two device syncs.

    Raises:
        ValueError: naming ``dt``, the product, the limit and the fix.
    """
    if solver.adaptive:
        return
    name = solver.name
    if not solver.exact_rotation:
        rate = _rate(field)
        limit = solver.rotation_limit
        if rate is not None and h * rate > limit:
            raise ValueError(
                f"dt: with method {name!r} the fastest natural frequency (max|ω| = {rate:.4g}) turns h·max|ω| = "
                f"{h * rate:.3g} rad per step, beyond the method's stability limit {limit:.3g} for a rotation (explicit "
                f"steps then mis-rotate the fast oscillators, which can lock a population falsely). Use "
                f"method='lawson_rk4', which rotates Ω exactly, or dt <= {limit / rate:.3g}; pass check_stability=False "
                f"to run anyway")
    stiff = _lipschitz(field)
    if stiff is not None:
        L, who = stiff
        limit = solver.coupling_limit
        if h * L > limit:
            raise ValueError(
                f"dt: the coupling is stiff for method {name!r}: h·L = {h * L:.3g} with L = {L:.4g} the {who} coupling's "
                f"Lipschitz constant, beyond the method's stability limit {limit:.3g} (a method that stays on the sphere "
                f"cannot blow up, so it would return a wrong answer without an error). Use dt <= {limit / L:.3g}, or an "
                f"adaptive method ('lawson_dopri5'); pass check_stability=False to run anyway")


def drift_of(xs: torch.Tensor, norms0: torch.Tensor) -> torch.Tensor:
    """Per output, ``max_i | |x_i| / |x_i(t0)| − 1 |`` over a stack of states ``[T, ...]`` (no sync)."""
    with torch.no_grad():
        dev = (torch.linalg.vector_norm(xs, dim=-1) / norms0 - 1).abs()
        return dev.reshape(dev.shape[0], -1).amax(dim=1)


def warn_drift(drift: torch.Tensor, times: list[float], tol: float, method: str) -> bool:
    """Warn (once) if a per-output drift exceeds ``tol``; one sync. Returns whether it warned."""
    bad = drift > tol
    if not bool(bad.any()):
        return False
    i = int(bad.nonzero()[0, 0])
    worst = float(drift.max())
    warnings.warn(f"method {method!r} left the sphere: | |x_i| / |x_i(t0)| - 1 | reached {float(drift[i]):.2g} by "
                  f"t = {times[i]:g} (max {worst:.2g}; drift_tol={tol:g}). The states are returned as computed; use a "
                  f"smaller dt (or rtol/atol), or a method that stays on the sphere ('lawson_rk4', 'rk4_normalized', "
                  f"'lawson_dopri5')", DriftWarning, stacklevel=4)
    return True
