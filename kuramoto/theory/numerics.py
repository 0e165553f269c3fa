"""Numerics of the theory: the Bessel-function ratio ``I_{ν+1}(x)/I_ν(x)`` to a few ulp at any
order and argument (uniform Debye expansion, DLMF §10.41, with the backward recurrence), and
the bracketed root finder the branches of r(K) use."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EPS", "bessel_ratio", "brentq"]

EPS = np.finfo(float).eps


# Debye polynomials of the uniform expansion of I_ν(νz) (DLMF 10.41.10): U_k(p), and
# W_k(p) = (V_k(p) − U_k(p))/(1 − p²) for the derivative's V_k (DLMF 10.41.12), p = (1 + z²)^{-1/2}.
_U = (
    (1, 3 / 24, -5 / 24),
    (2, 81 / 1152, -462 / 1152, 385 / 1152),
    (3, 30375 / 414720, -369603 / 414720, 765765 / 414720, -425425 / 414720),
    (4, 4465125 / 39813120, -94121676 / 39813120, 349922430 / 39813120, -446185740 / 39813120,
     185910725 / 39813120),
    (5, 1519035525 / 6688604160, -49286948607 / 6688604160, 284499769554 / 6688604160,
     -614135872350 / 6688604160, 566098157625 / 6688604160, -188699385875 / 6688604160),
)
_W = (
    (1, -1 / 2),
    (2, -3 / 16, 35 / 48),
    (3, -45 / 256, 231 / 128, -5005 / 2304),
    (4, -525 / 2048, 50193 / 10240, -85085 / 6144, 1616615 / 165888),
    (5, -33075 / 65536, 1258829 / 81920, -2448017 / 32768, 52055003 / 442368, -929553625 / 15925248),
)


def _poly_p2(coeffs: tuple, p2: float) -> float:
    """``Σ_j c_j p^{2j}`` for the tuple ``(lead, c_0, c_1, …)`` (the ``p^lead`` factor is left out)."""
    acc = 0.0
    for c in reversed(coeffs[1:]):
        acc = acc * p2 + c
    return acc


def _ratio_debye(nu: float, x: float) -> float:
    """``I_{ν+1}(x)/I_ν(x)`` from the Debye expansions, truncated after the ``k = 5`` terms.

    ``I_{ν+1}/I_ν = I_ν'/I_ν − ν/x`` and ``I_ν'(νz)/I_ν(νz) = (sqrt(1+z²)/z) ΣV_k/ν^k / ΣU_k/ν^k``
    (DLMF 10.41.3–4), written without cancellation as ``x/(h + ν) + (x/h) ΣW_k/ν^k / ΣU_k/ν^k``
    with ``h = hypot(ν, x)``. Since ``U_k`` and ``W_k`` carry a factor ``p^k`` and ``p/ν = 1/h``,
    the k-th terms are polynomials in ``p²`` over ``h^k``: the series is one in ``1/h``, accurate
    to O(h^-6) for any ``ν ≥ 0`` (at ν = 0 it is the Hankel expansion for large x).
    """
    h = math.hypot(nu, x)
    p2 = (nu / h) ** 2
    t = 1.0 / h
    su, sw, tk = 1.0, 0.0, 1.0
    for u, w in zip(_U, _W):
        tk *= t
        su += _poly_p2(u, p2) * tk
        sw += _poly_p2(w, p2) * tk
    return x / (h + nu) + (x / h) * (sw / su)


_DEBYE_H = 500.0  # from hypot(ν, x) = 500 on the Debye series above is exact to double precision


def bessel_ratio(nu: float, x: float) -> float:
    """``I_{ν+1}(x) / I_ν(x)`` for ``ν ≥ 0``, ``x ≥ 0``, to a few ulp for every finite x.

    The Debye series where ``hypot(ν, x) ≥ 500`` (error below 1e-16); otherwise the series at the
    smallest order μ = ν + m with ``hypot(μ, x) ≥ 500``, then the stable downward recurrence of
    the ratio ``I_μ/I_{μ−1} = 1/(2μ/x + I_{μ+1}/I_μ)`` to ν (the backward evaluation of Gauss's
    continued fraction, which damps the starting error since the ratios are below 1 there).
    No Bessel function itself is evaluated, so nothing under- or overflows.
    """
    if x == 0:
        return 0.0
    if x < 1e-150:
        return x / (2.0 * (nu + 1.0))  # next term is O(x³)
    m = 0 if math.hypot(nu, x) >= _DEBYE_H else max(0, math.ceil(math.sqrt(_DEBYE_H ** 2 - x * x) - nu))
    R = _ratio_debye(nu + m, x)
    for j in range(m, 0, -1):
        R = 1.0 / (2.0 * (nu + j) / x + R)
    return R



def brentq(f, a: float, b: float) -> float:
    from scipy import optimize

    return optimize.brentq(f, a, b, xtol=1e-300, rtol=4 * EPS, maxiter=1000)
