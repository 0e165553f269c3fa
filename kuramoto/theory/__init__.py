"""Mean-field theory of the Kuramoto model (N → ∞, all-to-all coupling K), with noise and phase lag.

The model, for n = 2 (phases θ_i, natural frequencies ω_i drawn from a density g)::

    dθ_i = [ω_i + (K/N) Σ_j sin(θ_j − θ_i − α)] dt + sqrt(2D) dW_i

with independent Wiener processes ``W_i`` (so the one-oscillator Fokker–Planck equation has
diffusion coefficient D), phase lag α (Kuramoto–Sakaguchi) and noise strength D. With the
order parameter ``r e^{iψ} = (1/N) Σ_j e^{iθ_j}`` the coupling is ``K r sin(ψ − θ_i − α)``.
For n > 2 the noise is Brownian motion on the sphere, ``dx_i = Proj_{x_i}(K m) dt + sqrt(2D)
Proj_{x_i} ∘ dW_i`` (Stratonovich), ``m`` the mean of the unit vectors and ``r = |m|``.

One module per model, each with its formulas: :mod:`~kuramoto.theory.classic` (no noise, no
lag: the self-consistency (1) per density), :mod:`~kuramoto.theory.noise` (the Bessel
self-consistency (2)), :mod:`~kuramoto.theory.lag` (Ott–Antonsen with a phase lag, the locked
frequency); :mod:`~kuramoto.theory.stationary` gives K_c and r(K) for every combination,
:mod:`~kuramoto.theory.numerics` the Bessel-function ratio and the root finder behind them.
The public functions are re-exported here: ``kuramoto.theory.order_parameter`` etc.

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

from .classic import density, incoherent_order_parameter
from .lag import locked_frequency
from .numerics import bessel_ratio as _bessel_ratio  # noqa: F401  tests/kuramoto/test_theory.py checks it to a few ulp
from .params import DISTRIBUTIONS
from .stationary import critical_coupling, order_parameter

__all__ = [
    "DISTRIBUTIONS", "critical_coupling", "density", "incoherent_order_parameter", "locked_frequency",
    "order_parameter",
]
