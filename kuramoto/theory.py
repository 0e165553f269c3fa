"""Mean-field theory of the Kuramoto model (N → ∞, all-to-all coupling K), with noise and phase lag.

The model, for n = 2 (phases θ_i, natural frequencies ω_i drawn from a density g)::

    dθ_i = [ω_i + (K/N) Σ_j sin(θ_j − θ_i − α)] dt + sqrt(2D) dW_i

with independent Wiener processes ``W_i`` (so the one-oscillator Fokker–Planck equation has
diffusion coefficient D), phase lag α (Kuramoto–Sakaguchi) and noise strength D. With the
order parameter ``r e^{iψ} = (1/N) Σ_j e^{iθ_j}`` the coupling is ``K r sin(ψ − θ_i − α)``.
For n > 2 the noise is Brownian motion on the sphere, ``dx_i = Proj_{x_i}(K m) dt + sqrt(2D)
Proj_{x_i} ∘ dW_i`` (Stratonovich), ``m`` the mean of the unit vectors and ``r = |m|``.

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

**Noise** (Sakaguchi 1988; Strogatz & Mirollo 1991; review: Acebrón et al. 2005, §III).
Linearising the Fokker–Planck equation about incoherence gives
``K_c = 2 / ∫ g(ω) D/(D² + ω²) dω``: ``2(Δ + D)`` (Lorentzian), ``2σ sqrt(2/π) /
erfcx(D/(σ√2))`` (Gaussian), ``2w / arctan(w/D)`` (uniform), ``2D`` (identical); on the
sphere S^{n−1} with identical oscillators ``nD``. Above K_c:

- Identical oscillators: the stationary density in the mean field is the von Mises(–Fisher)
  density ``∝ exp((K r/D) cos θ)``, so ``r = I1(K r/D) / I0(K r/D)`` (on S^{n−1}:
  ``r = I_{n/2}(K r/D) / I_{n/2−1}(K r/D)``).
- Lorentzian: the Ott–Antonsen manifold is *not* invariant with noise (diffusion damps the k-th
  Fourier mode like ``D k²`` and breaks ``a_k = a^k``), so OA is not used. Instead: in the
  mean-field frame the stationary Fourier moments ``z_k = ⟨e^{ikθ}⟩`` of an oscillator of
  frequency ω solve ``(D k − iω) z_k = (K r/2)(z_{k−1} − z_{k+1})``, ``z_0 = 1``; the
  decaying solution is ``z_k ∝ I_{k+ν}(K r/D)`` with ``ν = −iω/D`` (the Bessel recurrence
  ``I_{μ−1} − I_{μ+1} = (2μ/x) I_μ``). As a function of ω, ``z_1`` is analytic and bounded
  for ``Im ω > −D`` (every denominator of its continued fraction has real part ``≥ D k``), so
  the Lorentzian average closes on the pole ``ω = iΔ``: ``∫ g(ω) z_1(ω) dω = z_1(iΔ)``. Hence
  the exact self-consistency ::

      r = I_{1+Δ/D}(K r/D) / I_{Δ/D}(K r/D)                                          (2)

  an implicit equation with no explicit solution, solved here by a bracketed root (it has one
  root for ``K > K_c`` since ``I_{ν+1}(x)/(x I_ν(x))`` decreases in x). Limits: ``Δ = 0`` gives
  the identical case; ``D → 0`` (Debye asymptotics) gives ``r = sqrt(1 − 2Δ/K)``; small r gives
  ``K_c = 2(Δ + D)``; large K gives ``1 − r ≈ (Δ + D/2)/K``. (The tests check (2) against a
  direct quadrature over ω of the one-oscillator stationary densities.)
- Gaussian and uniform with noise: only K_c is given here (r(K) would need the ω-average of
  ``z_1`` numerically; not implemented).

**Phase lag** α, ``|α| < π/2`` (Sakaguchi & Kuramoto 1986; Ott & Antonsen 2008). For the
Lorentzian centred at ω0 the OA reduction holds without noise: ``z = r e^{iψ}`` obeys ::

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

Widths follow the package convention: Lorentzian half-width, Gaussian standard deviation,
uniform half-width; ``width = 0`` means identical oscillators (every distribution).

References:
    Y. Kuramoto, *Chemical Oscillations, Waves, and Turbulence* (Springer, 1984), §5.
    H. Sakaguchi, Y. Kuramoto, Prog. Theor. Phys. 76, 576 (1986) (phase lag).
    H. Sakaguchi, Prog. Theor. Phys. 79, 39 (1988) (noise, self-consistency).
    S. H. Strogatz, R. E. Mirollo, J. Stat. Phys. 63, 613 (1991) (noise, stability of incoherence).
    S. H. Strogatz, Physica D 143, 1 (2000).
    J. A. Acebrón et al., Rev. Mod. Phys. 77, 137 (2005), §II–III.
    E. Ott, T. M. Antonsen, Chaos 18, 037113 (2008) (Ott–Antonsen reduction).
    NIST DLMF §10.41 (uniform asymptotic expansions of I_ν used for large orders).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "DISTRIBUTIONS", "critical_coupling", "density", "incoherent_order_parameter", "locked_frequency",
    "order_parameter",
]

DISTRIBUTIONS = ("lorentzian", "gaussian", "uniform")

_SQRT_8_OVER_PI = math.sqrt(8.0 / math.pi)
_SERIES_KAPPA = 1e4   # K/width beyond which the large-K series of (1) are exact to double precision
_EPS = np.finfo(float).eps


# -- validation --------------------------------------------------------------------------------------

def _real(value: object, name: str, *, minimum: float | None = 0.0, strict: bool = False,
          what: str = "a non-negative finite number") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or (minimum is not None and (v < minimum or (strict and v == minimum))):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return v


def _check_dist(dist: object) -> str:
    if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
        raise ValueError(f"dist: expected one of {DISTRIBUTIONS}, got {dist!r}")
    return dist


def _model(dist: object, width: object, noise: object, lag: object, n: object) -> tuple[str, float, float, float, int]:
    """Validate a model's parameters (the combinations each function supports are checked there)."""
    dist = _check_dist(dist)
    width = _real(width, "width", what="a non-negative finite width (0 = identical oscillators)")
    noise = _real(noise, "noise", what="a non-negative finite noise strength D")
    lag = _real(lag, "lag", minimum=None, what="a finite phase lag α in radians")
    if not abs(lag) < math.pi / 2:
        raise ValueError(f"lag: |α| must be below π/2 (cos α > 0); with |α| ≥ π/2 the coupling repels on "
                         f"average and there is no synchronised state, got {lag!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
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


def _couplings(K: object) -> np.ndarray:
    try:
        Ks = np.asarray(K, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"K: expected a real number or an array of real numbers, got {K!r}") from None
    if np.iscomplexobj(np.asarray(K)) or np.asarray(K).dtype == bool:
        raise TypeError(f"K: expected real coupling strengths, got dtype {np.asarray(K).dtype}")
    if not np.all(np.isfinite(Ks)) or np.any(Ks < 0):
        raise ValueError(f"K: expected finite non-negative coupling strengths, got {K!r}")
    return Ks


# -- densities and critical couplings -----------------------------------------------------------------

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
    _check_dist(dist)
    width = _real(width, "width", strict=True, what="a positive finite width")
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


def _kc(dist: str, width: float, noise: float, lag: float, n: int) -> float:
    """K_c without validation (may be inf when it exceeds the float range)."""
    from scipy import special

    D = noise
    with np.errstate(over="ignore"):
        if width == 0:
            base = n * D
        elif dist == "lorentzian":
            base = 2.0 * (width + D)
        elif D == 0:
            base = (_SQRT_8_OVER_PI if dist == "gaussian" else 4.0 / math.pi) * width
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
    """The critical coupling K_c where the incoherent state loses stability (module docstring).

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
    dist, width, noise, lag, n = _model(dist, width, noise, lag, n)
    kc = _kc(dist, width, noise, lag, n)
    if not math.isfinite(kc):
        name = "width" if width >= noise else "noise"
        raise ValueError(f"{name}: K_c for width={width!r}, noise={noise!r}, lag={lag!r} exceeds the float64 range")
    return kc


# -- special functions --------------------------------------------------------------------------------

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


def _bessel_ratio(nu: float, x: float) -> float:
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


# -- the branches of r(K) -----------------------------------------------------------------------------

def _brentq(f, a: float, b: float) -> float:
    from scipy import optimize

    return optimize.brentq(f, a, b, xtol=1e-300, rtol=4 * _EPS, maxiter=1000)


def _r_gaussian(q: float) -> float:
    """Noiseless Gaussian branch, ``q = σ/K`` (caller ensures ``K > K_c``)."""
    from scipy import special

    if q <= 1.0 / _SERIES_KAPPA:
        e2 = q * q
        return 1.0 - e2 * (0.5 + e2 * (7.0 / 8.0 + e2 * (47.0 / 16.0)))
    c = _SQRT_8_OVER_PI * q

    def f(b: float) -> float:
        return float(special.ive(0, b) + special.ive(1, b)) - c

    hi = 1.0
    while f(hi) > 0:
        hi *= 4.0
    b = _brentq(f, 0.0, hi)
    return 2.0 * math.sqrt(b) * q


def _r_uniform(q: float) -> float:
    """Noiseless uniform branch, ``q = w/K`` (caller ensures ``K > K_c``)."""
    if q <= 1.0 / _SERIES_KAPPA:
        e2 = q * q
        return 1.0 - e2 * (1.0 / 6.0 + e2 * (29.0 / 360.0 + e2 * (1003.0 / 15120.0)))
    y = 2.0 * q

    def f(u: float) -> float:
        return u + math.sin(u) * math.cos(u) - y

    u = _brentq(f, 0.5 * y, min(y, math.pi / 2))
    return q / math.sin(u)


def _r_noisy(K: float, width: float, D: float, nu: float) -> float:
    """``r = I_{ν+1}(K r/D)/I_ν(K r/D)`` (ν = Δ/D, or n/2 − 1 for identical oscillators), K > K_c."""
    s = D / K
    if not (s > 1e-300 and math.isfinite(nu)):
        # K/D beyond 1e300 (or D negligible against Δ): the noise changes r below double precision.
        return math.sqrt(max(0.0, 1.0 - 2.0 * (width / K)))

    def h(x: float) -> float:
        return _bessel_ratio(nu, x) / x - s

    hi = 1.0 / s
    lo = 0.5 * hi
    while h(lo) <= 0:
        lo *= 0.5
        if lo < 1e-300:
            return 0.0  # K within rounding of K_c
    if h(hi) >= 0:
        return _bessel_ratio(nu, hi)
    return _bessel_ratio(nu, _brentq(h, lo, hi))


def order_parameter(K, dist: str = "lorentzian", width: float = 1.0, *, noise: float = 0.0, lag: float = 0.0,
                    n: int = 2):
    """Stationary order parameter r(K) on the partially locked branch (0 at and below K_c).

    The cases and their formulas are in the module docstring: the self-consistency (1) for the
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
        See the module docstring.
    """
    dist, width, noise, lag, n = _model(dist, width, noise, lag, n)
    if noise > 0 and lag != 0:
        raise ValueError(f"lag: r(K) with both noise and lag is not available (the Ott–Antonsen reduction fails with "
                         f"noise); critical_coupling gives K_c = 2(Δ + D)/cos α. Got noise={noise!r}, lag={lag!r}")
    if noise > 0 and width > 0 and dist != "lorentzian":
        raise ValueError(f"noise: r(K) with noise is given for the Lorentzian (exact Bessel self-consistency) and for "
                         f"identical oscillators (width=0); for dist={dist!r} only critical_coupling(..., noise=D) "
                         f"is available")
    Ks = _couplings(K)
    kc = _kc(dist, width, noise, lag, n)
    out = np.zeros_like(Ks)
    cos_a = math.cos(lag)
    for idx, k in np.ndenumerate(Ks):  # a handful of scalar root-finds, not a loop over oscillators
        if not k > kc:
            continue
        if noise > 0:
            nu = (width / noise) if width > 0 else n / 2 - 1
            out[idx] = _r_noisy(k, width, noise, nu)
            continue
        q = width / k  # 1/κ; K > K_c ≥ 0 so k > 0
        if width == 0:
            out[idx] = 1.0
        elif dist == "lorentzian":
            out[idx] = math.sqrt(max(0.0, 1.0 - 2.0 * q / cos_a))
        elif dist == "gaussian":
            out[idx] = _r_gaussian(q)
        else:
            out[idx] = _r_uniform(q)
    return float(out) if out.ndim == 0 else out


def locked_frequency(K, dist: str = "lorentzian", width: float = 1.0, *, noise: float = 0.0, lag: float = 0.0,
                     center: float = 0.0):
    """Angular frequency Ω of the locked group (the mean field's rotation), NaN at and below K_c.

    For symmetric densities without lag the locked group turns at the centre, ``Ω = ω0``. With a
    lag α (Ott–Antonsen, module docstring): ``Ω = ω0 − (K/2)(1 + r²) sin α
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
    center = _real(center, "center", minimum=None, what="a finite centre frequency ω0")
    r = np.asarray(order_parameter(K, dist, width, noise=noise, lag=lag))
    Ks = _couplings(K)
    kc = _kc(*_model(dist, width, noise, lag, 2))
    with np.errstate(invalid="ignore"):
        omega = center - 0.5 * Ks * (1.0 + r * r) * math.sin(lag)
    omega = np.where(Ks > kc, omega, np.nan)
    return float(omega) if omega.ndim == 0 else omega


def incoherent_order_parameter(N: int, n: int = 2) -> float:
    """Expected ``r`` of N independent uniform unit vectors in R^n, to leading order in 1/N:
    ``E r ≈ sqrt(2/(nN)) Γ((n+1)/2)/Γ(n/2)`` (``≈ 0.886/√N`` for n = 2)."""
    if isinstance(N, bool) or not isinstance(N, numbers.Integral) or N < 1:
        raise ValueError(f"N: expected a positive integer, got {N!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n: expected an integer >= 2, got {n!r}")
    return math.sqrt(2.0 / (n * N)) * math.exp(math.lgamma((n + 1) / 2) - math.lgamma(n / 2))
