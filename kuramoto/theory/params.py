"""The parameters of the mean-field theory, checked once per public call: the frequency density
(:data:`DISTRIBUTIONS`), widths, noise, phase lag, sphere dimension and coupling strengths."""

from __future__ import annotations

import math

import numpy as np

from ..checks import is_int, is_real

__all__ = ["DISTRIBUTIONS", "check_couplings", "check_dist", "check_model", "check_real"]

DISTRIBUTIONS = ("lorentzian", "gaussian", "uniform")


def check_real(value: object, name: str, *, minimum: float | None = 0.0, strict: bool = False,
          what: str = "a non-negative finite number") -> float:
    if not is_real(value):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or (minimum is not None and (v < minimum or (strict and v == minimum))):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return v


def check_dist(dist: object) -> str:
    if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
        raise ValueError(f"dist: expected one of {DISTRIBUTIONS}, got {dist!r}")
    return dist


def check_model(dist: object, width: object, noise: object, lag: object,
                n: object) -> tuple[str, float, float, float, int]:
    """Validate a model's parameters (the combinations each function supports are checked there)."""
    dist = check_dist(dist)
    width = check_real(width, "width", what="a non-negative finite width (0 = identical oscillators)")
    noise = check_real(noise, "noise", what="a non-negative finite noise strength D")
    lag = check_real(lag, "lag", minimum=None, what="a finite phase lag α in radians")
    if not abs(lag) < math.pi / 2:
        raise ValueError(f"lag: |α| must be below π/2 (cos α > 0); with |α| ≥ π/2 the coupling repels on "
                         f"average and there is no synchronised state, got {lag!r}")
    if not is_int(n) or n < 2:
        raise ValueError(f"n: expected an integer sphere dimension >= 2, got {n!r}")
    n = int(n)
    if n != 2 and width > 0:
        raise ValueError(f"n: distributed natural frequencies are defined here for phase oscillators (n = 2); for "
                         f"n = {n} only identical oscillators (width=0) are covered, got width={width!r}")
    if n != 2 and lag != 0:
        raise ValueError(f"lag: the phase lag is defined for phase oscillators (n = 2), got n = {n}")
    if lag != 0 and width > 0 and dist != "lorentzian":
        raise ValueError(f"lag: the Kuramoto–Sakaguchi theory here is the Ott–Antonsen one of the Lorentzian (and "
                         f"identical oscillators); no closed form for dist={dist!r}")
    return dist, width, noise, lag, n


def check_couplings(K: object) -> np.ndarray:
    try:
        Ks = np.asarray(K, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"K: expected a real number or an array of real numbers, got {K!r}") from None
    if np.iscomplexobj(np.asarray(K)) or np.asarray(K).dtype == bool:
        raise TypeError(f"K: expected real coupling strengths, got dtype {np.asarray(K).dtype}")
    if not np.all(np.isfinite(Ks)) or np.any(Ks < 0):
        raise ValueError(f"K: expected finite non-negative coupling strengths, got {K!r}")
    return Ks
