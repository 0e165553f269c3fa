"""The classic model: no noise, no phase lag.

**No noise, no lag** (Kuramoto 1975/1984; Strogatz 2000). For a symmetric unimodal ``g``
centred at 0 the locked oscillators (``|ω| ≤ K r``) sit at ``sin θ = ω/(K r)`` and the drifting
ones average out, so a stationary ``r`` solves ::

    r = ∫_{|ω| < K r} g(ω) sqrt(1 − (ω / (K r))²) dω                                  (1)

(equivalently ``1 = K ∫_{−π/2}^{π/2} cos²θ g(K r sin θ) dθ`` for ``r > 0``). The incoherent
state ``r = 0`` always solves it; the partially locked branch starts at
``K_c = 2 / (π g(0))``. Per distribution (widths: Lorentzian half-width Δ, Gaussian standard
deviation σ, uniform half-width w; ``κ = K / width``):

- Lorentzian: ``K_c = 2Δ``, ``r = sqrt(1 − 2Δ/K)`` (closed form).
- Gaussian: substituting ``ω = a sin θ`` (``a = K r``) and ``sin²θ = (1 − cos 2θ)/2`` turns (1)
  into ``r = a sqrt(π/8) e^{−b} [I0(b) + I1(b)]`` with ``b = a²/(4σ²)``, so on the branch
  ``ive(0, b) + ive(1, b) = K_c/K`` with ``K_c = σ sqrt(8/π)``, and ``r = 2σ sqrt(b)/K``. The
  left side falls monotonically from 1 (b = 0) to 0, so one bracketed root in ``b`` gives r to
  full precision (``ive`` = exponentially scaled Bessel, finite for every b). For ``κ ≥ 10^4``
  the large-K series of (1), ``r = 1 − 1/(2κ²) − 7/(8κ⁴) − 47/(16κ⁶) + O(κ⁻⁸)``, is used
  instead (its remainder is below 10^-30).
- Uniform: with ``x = w/(K r) ≤ 1``, (1) reads ``arcsin x + x sqrt(1 − x²) = 2w/K`` and
  ``r = w/(K x)``: a jump from 0 to ``π/4`` at ``K_c = 4w/π`` and a monotone branch above it,
  solved as ``u + sin u cos u = 2w/K`` for ``u = arcsin x``; for ``κ ≥ 10^4`` the series
  ``r = 1 − 1/(6κ²) − 29/(360κ⁴) − 1003/(15120κ⁶) + O(κ⁻⁸)``.
- Identical oscillators (``width = 0``): ``K_c = 0`` and ``r = 1`` for every ``K > 0``.

Every branch is valid for any finite K (no quadrature of a peak that narrows as K grows; the
series take over where a root finder could no longer resolve ``1 − r``).
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import check_count
from .numerics import brentq
from .params import check_dist, check_real

__all__ = ["SQRT_8_OVER_PI", "density", "incoherent_order_parameter", "r_gaussian", "r_uniform"]

SQRT_8_OVER_PI = math.sqrt(8.0 / math.pi)
_SERIES_KAPPA = 1e4   # K/width beyond which the large-K series of (1) are exact to double precision


def density(omega, dist: str, width: float):
    """The frequency density ``g(ω)`` (numpy, vectorised), centred at 0.

    ``(Δ/π)/(ω² + Δ²)`` (Lorentzian), ``exp(−ω²/(2σ²))/(σ sqrt(2π))`` (Gaussian),
    ``1/(2w)`` on ``[−w, w]`` (uniform).

    Args:
        omega: frequencies, a float or array (finite).
        dist: ``"lorentzian"``, ``"gaussian"`` or ``"uniform"``.
        width: Δ, σ or w (> 0).

    Returns:
        A numpy array shaped like ``omega`` (inf where the density exceeds the float range).
    """
    check_dist(dist)
    width = check_real(width, "width", strict=True, what="a positive finite width")
    try:
        w = np.asarray(omega, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"omega: expected a real number or array, got {omega!r}") from None
    if not np.all(np.isfinite(w)):
        raise ValueError("omega: expected finite frequencies")
    u = w / width
    with np.errstate(over="ignore", divide="ignore"):
        if dist == "lorentzian":
            return 1.0 / (math.pi * width * (1.0 + u * u))
        if dist == "gaussian":
            return np.exp(-0.5 * u * u) / (width * math.sqrt(2 * math.pi))
        return np.where(np.abs(u) <= 1.0, 0.5 / width, 0.0)


def r_gaussian(q: float) -> float:
    """Noiseless Gaussian branch, ``q = σ/K`` (caller ensures ``K > K_c``)."""
    from scipy import special

    if q <= 1.0 / _SERIES_KAPPA:
        e2 = q * q
        return 1.0 - e2 * (0.5 + e2 * (7.0 / 8.0 + e2 * (47.0 / 16.0)))
    c = SQRT_8_OVER_PI * q

    def f(b: float) -> float:
        return float(special.ive(0, b) + special.ive(1, b)) - c

    hi = 1.0
    while f(hi) > 0:
        hi *= 4.0
    b = brentq(f, 0.0, hi)
    return 2.0 * math.sqrt(b) * q


def r_uniform(q: float) -> float:
    """Noiseless uniform branch, ``q = w/K`` (caller ensures ``K > K_c``)."""
    if q <= 1.0 / _SERIES_KAPPA:
        e2 = q * q
        return 1.0 - e2 * (1.0 / 6.0 + e2 * (29.0 / 360.0 + e2 * (1003.0 / 15120.0)))
    y = 2.0 * q

    def f(u: float) -> float:
        return u + math.sin(u) * math.cos(u) - y

    u = brentq(f, 0.5 * y, min(y, math.pi / 2))
    return q / math.sin(u)


def incoherent_order_parameter(N: int, n: int = 2) -> float:
    """Expected ``r`` of N independent uniform unit vectors in R^n, to leading order in 1/N:
    ``E r ≈ sqrt(2/(nN)) Γ((n+1)/2)/Γ(n/2)`` (``≈ 0.886/√N`` for n = 2)."""
    check_count(N, "N")
    check_count(n, "n", minimum=2)
    return math.sqrt(2.0 / (n * N)) * math.exp(math.lgamma((n + 1) / 2) - math.lgamma(n / 2))
