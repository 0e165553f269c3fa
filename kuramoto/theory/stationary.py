"""The stationary state of the mean field: the critical coupling K_c and the order parameter r(K)
of every model (:mod:`~kuramoto.theory.classic`, :mod:`~kuramoto.theory.noise`,
:mod:`~kuramoto.theory.lag`)."""

from __future__ import annotations

import math

import numpy as np

from .classic import SQRT_8_OVER_PI, r_gaussian, r_uniform
from .noise import r_noisy
from .params import check_couplings, check_model

__all__ = ["critical_coupling", "order_parameter", "raw_critical_coupling"]


def raw_critical_coupling(dist: str, width: float, noise: float, lag: float, n: int) -> float:
    """K_c without validation (may be inf when it exceeds the float range)."""
    from scipy import special

    D = noise
    with np.errstate(over="ignore"):
        if width == 0:
            base = n * D
        elif dist == "lorentzian":
            base = 2.0 * (width + D)
        elif D == 0:
            base = (SQRT_8_OVER_PI if dist == "gaussian" else 4.0 / math.pi) * width
        elif dist == "gaussian":
            y = D / (width * math.sqrt(2.0))
            # ∫ g D/(D² + ω²) dω = sqrt(π/2)/σ · erfcx(y); for y = inf (σ ≪ D) the limit is 2D.
            base = 2.0 * D if math.isinf(y) else float(2.0 * width * math.sqrt(2.0 / math.pi) / special.erfcx(y))
        else:
            y = width / D
            # ∫ g D/(D² + ω²) dω = arctan(w/D)/w; small w/D: 2w/arctan(w/D) = 2D(1 + y²/3 + …)
            base = 2.0 * D * (1.0 + y * y / 3.0) if y < 1e-8 else 2.0 * width / math.atan(y)
        return float(np.float64(base) / math.cos(lag))


def critical_coupling(dist: str, width: float, *, noise: float = 0.0, lag: float = 0.0, n: int = 2) -> float:
    """The critical coupling K_c where the incoherent state loses stability (:mod:`kuramoto.theory`).

    ``K_c = 2 / (π g(0))`` without noise or lag: ``2Δ`` (Lorentzian), ``σ sqrt(8/π)``
    (Gaussian), ``4w/π`` (uniform), 0 (identical). With noise D: ``2 / ∫ g D/(D² + ω²) dω``,
    i.e. ``2(Δ + D)``, ``2σ sqrt(2/π)/erfcx(D/(σ√2))``, ``2w/arctan(w/D)``, ``nD`` (identical on
    S^{n−1}). With a lag α (Lorentzian or identical): divided by ``cos α``.

    Args:
        dist: ``"lorentzian"``, ``"gaussian"`` or ``"uniform"``.
        width: Δ, σ or w (≥ 0; 0 = identical oscillators).
        noise: noise strength D ≥ 0 (``sqrt(2D) dW`` per phase).
        lag: phase lag α with ``|α| < π/2`` (Lorentzian or identical oscillators only).
        n: sphere dimension; ``n > 2`` only for identical oscillators (``width=0``).

    Returns:
        K_c as a float.

    Raises:
        ValueError, TypeError: naming the argument (NaN/inf/negative values, ``|lag| ≥ π/2``,
            a lag with a Gaussian or uniform density, ``n > 2`` with ``width > 0``, or a K_c
            beyond the float range).

    References:
        Kuramoto (1984); Strogatz & Mirollo (1991); Sakaguchi & Kuramoto (1986); Ott & Antonsen (2008).
    """
    dist, width, noise, lag, n = check_model(dist, width, noise, lag, n)
    kc = raw_critical_coupling(dist, width, noise, lag, n)
    if not math.isfinite(kc):
        name = "width" if width >= noise else "noise"
        raise ValueError(f"{name}: K_c for width={width!r}, noise={noise!r}, lag={lag!r} exceeds the float64 range")
    return kc


def order_parameter(K, dist: str = "lorentzian", width: float = 1.0, *, noise: float = 0.0, lag: float = 0.0,
                    n: int = 2):
    """Stationary order parameter r(K) on the partially locked branch (0 at and below K_c).

    The cases and their formulas are in :mod:`kuramoto.theory`: the self-consistency (1) for the
    noiseless Lorentzian (closed form), Gaussian (Bessel form) and uniform densities; identical
    oscillators with noise ``r = I1(K r/D)/I0(K r/D)`` (on S^{n−1}: ``I_{n/2}/I_{n/2−1}``); the
    Lorentzian with noise ``r = I_{1+Δ/D}(K r/D)/I_{Δ/D}(K r/D)`` (2); the Lorentzian with lag
    ``sqrt(1 − 2Δ/(K cos α))`` (Ott–Antonsen). Accurate to a few ulp for every finite K ≥ 0
    (condition-limited only next to K_c, where r ∝ sqrt(K − K_c)).

    Args:
        K: coupling strength(s), a float or array (finite, ≥ 0).
        dist: ``"lorentzian"``, ``"gaussian"`` or ``"uniform"``.
        width: Lorentzian half-width Δ, Gaussian σ, or uniform half-width w (≥ 0; 0 = identical
            oscillators, ``r = 1`` for every K > 0 without noise).
        noise: noise strength D ≥ 0 (Lorentzian or identical oscillators when ``D > 0``).
        lag: phase lag α, ``|α| < π/2`` (Lorentzian or identical oscillators, without noise).
        n: sphere dimension; ``n > 2`` only for identical oscillators.

    Returns:
        A float for a scalar ``K``, else a numpy array of the same shape.

    Raises:
        ValueError, TypeError: naming the argument (bad values, or a combination without a
            theory here: Gaussian/uniform with noise, noise together with a lag).

    References:
        See :mod:`kuramoto.theory` and its modules per model.
    """
    dist, width, noise, lag, n = check_model(dist, width, noise, lag, n)
    if noise > 0 and lag != 0:
        raise ValueError(f"lag: r(K) with both noise and lag is not available (the Ott–Antonsen reduction fails with "
                         f"noise); critical_coupling gives K_c = 2(Δ + D)/cos α. Got noise={noise!r}, lag={lag!r}")
    if noise > 0 and width > 0 and dist != "lorentzian":
        raise ValueError(f"noise: r(K) with noise is given for the Lorentzian (exact Bessel self-consistency) and for "
                         f"identical oscillators (width=0); for dist={dist!r} only critical_coupling(..., noise=D) "
                         f"is available")
    Ks = check_couplings(K)
    kc = raw_critical_coupling(dist, width, noise, lag, n)
    out = np.zeros_like(Ks)
    cos_a = math.cos(lag)
    for idx, k in np.ndenumerate(Ks):  # a handful of scalar root-finds, not a loop over oscillators
        if not k > kc:
            continue
        if noise > 0:
            nu = (width / noise) if width > 0 else n / 2 - 1
            out[idx] = r_noisy(k, width, noise, nu)
            continue
        q = width / k  # 1/κ; K > K_c ≥ 0 so k > 0
        if width == 0:
            out[idx] = 1.0
        elif dist == "lorentzian":
            out[idx] = math.sqrt(max(0.0, 1.0 - 2.0 * q / cos_a))
        elif dist == "gaussian":
            out[idx] = r_gaussian(q)
        else:
            out[idx] = r_uniform(q)
    return float(out) if out.ndim == 0 else out
