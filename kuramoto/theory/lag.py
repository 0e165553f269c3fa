"""The model with a phase lag (Kuramoto–Sakaguchi).


    dz/dt = (iω0 − Δ) z + (K/2)(e^{−iα} z − e^{iα} z̄ z²)

and its rotating stationary state ``z = r e^{iΩt}`` gives, from the real and imaginary parts of
``iΩ = iω0 − Δ + (K/2)[(1 − r²) cos α − i(1 + r²) sin α]``::

    K_c = 2Δ / cos α,   r = sqrt(1 − 2Δ/(K cos α)),   Ω = ω0 − (K/2)(1 + r²) sin α
                                                        = ω0 − K sin α + Δ tan α.

Identical oscillators lock completely (``r = 1``) at ``Ω = ω0 − K sin α``. With ``|α| ≥ π/2``
there is no synchronised state. With noise and lag together only K_c is given here,
``2(Δ + D)/cos α`` (linear stability), not r(K): the residue argument above still applies (in the
frame of the locked group ``z_k = e^{−ikα} w_k`` with ``w_k`` the lag-free moments) and gives
``r e^{iα} = I_{1+ν}(K r/D) / I_ν(K r/D)`` with the complex order ``ν = (Δ − i(ω0 − Ω))/D``, two
real equations for r and Ω that are not solved here.
"""

from __future__ import annotations

import math

import numpy as np

from .params import check_couplings, check_model, check_real
from .stationary import order_parameter, raw_critical_coupling

__all__ = ["locked_frequency"]


def locked_frequency(K, dist: str = "lorentzian", width: float = 1.0, *, noise: float = 0.0, lag: float = 0.0,
                     center: float = 0.0):
    """Angular frequency Ω of the locked group (the mean field's rotation), NaN at and below K_c.

    For symmetric densities without lag the locked group turns at the centre, ``Ω = ω0``. With a
    lag α (Ott–Antonsen, see above): ``Ω = ω0 − (K/2)(1 + r²) sin α
    = ω0 − K sin α + Δ tan α`` for the Lorentzian, ``ω0 − K sin α`` for identical oscillators.
    Sign convention: ``dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i − α)``, so a positive lag slows
    the group down.

    Args:
        K: coupling strength(s), a float or array (finite, ≥ 0).
        dist, width, noise, lag: as in :func:`order_parameter`.
        center: the centre ω0 of the frequency density (finite).

    Returns:
        A float for a scalar ``K``, else a numpy array of the same shape.

    Raises:
        ValueError, TypeError: naming the argument.

    References:
        Sakaguchi & Kuramoto (1986); Ott & Antonsen (2008).
    """
    center = check_real(center, "center", minimum=None, what="a finite centre frequency ω0")
    r = np.asarray(order_parameter(K, dist, width, noise=noise, lag=lag))
    Ks = check_couplings(K)
    kc = raw_critical_coupling(*check_model(dist, width, noise, lag, 2))
    with np.errstate(invalid="ignore"):
        omega = center - 0.5 * Ks * (1.0 + r * r) * math.sin(lag)
    omega = np.where(Ks > kc, omega, np.nan)
    return float(omega) if omega.ndim == 0 else omega
