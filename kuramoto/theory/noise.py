"""The model with noise (phase diffusion, or Brownian motion on the sphere for n > 2).

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
"""

from __future__ import annotations

import math

from .numerics import bessel_ratio, brentq

__all__ = ["r_noisy"]


def r_noisy(K: float, width: float, D: float, nu: float) -> float:
    """``r = I_{ν+1}(K r/D)/I_ν(K r/D)`` (ν = Δ/D, or n/2 − 1 for identical oscillators), K > K_c."""
    s = D / K
    if not (s > 1e-300 and math.isfinite(nu)):
        # K/D beyond 1e300 (or D negligible against Δ): the noise changes r below double precision.
        return math.sqrt(max(0.0, 1.0 - 2.0 * (width / K)))

    def h(x: float) -> float:
        return bessel_ratio(nu, x) / x - s

    hi = 1.0 / s
    lo = 0.5 * hi
    while h(lo) <= 0:
        lo *= 0.5
        if lo < 1e-300:
            return 0.0  # K within rounding of K_c
    if h(hi) >= 0:
        return bessel_ratio(nu, hi)
    return bessel_ratio(nu, brentq(h, lo, hi))
