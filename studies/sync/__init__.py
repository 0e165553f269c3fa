"""``akorn sync``: the synchronisation transition of the Kuramoto model, r(K) against theory.

The classic experiment (Kuramoto 1975; Strogatz 2000): N oscillators with natural frequencies
drawn from a density g(ω), coupled all-to-all with strength K, run from random phases through a
transient; then the order parameter r is averaged over time, for K on a grid and several seeds,
and compared with Kuramoto's mean-field theory. The default is the textbook case: n = 2,
quantile-sampled Lorentzian frequencies of half-width Δ = 0.5 (K_c = 1), N = 2000, K in [0, 4] at
21 values, 3 seeds. Options cover Gaussian and uniform g (the uniform case jumps at K_c),
adiabatic forward/backward sweeps (hysteresis), several N (finite-size scaling), vector
oscillators (n = 3, 4) and sparse graphs (ring, Erdős–Rényi, 2-D lattice).

The model (n = 2; in vector form on S^{n−1} in general):

    dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i),      r = |mean_j e^{iθ_j}|.

Above K_c = 2/(π g(0)) (K_c = 2Δ for a Lorentzian of half-width Δ) a locked cluster forms and r
follows Kuramoto's self-consistency curve (``sqrt(1 − 2Δ/K)`` for the Lorentzian); below it r is
O(1/√N). Time is in model time units, K and ω are rates in the same unit (:mod:`studies.units`).

**Why the integrator treats the rotation exactly.** The Lorentzian has heavy tails:
quantile-sampled at N = 2000 the fastest oscillators turn at |ω| ≈ ΔN/π ≈ 320 (thousands at
N = 20000). An explicit Runge–Kutta step is stable for a rotation only while h|ω| stays below
its stability limit (≈ 2.8 for RK4); beyond it those oscillators blow up or, renormalised,
jump around the circle at random. Their garbage enters the mean field that every other
oscillator feels and can make the whole population falsely lock (r ≈ 0.99 at K = 0.5 with
RK4 at h = 0.05, where the true r is ≈ 0). Dropping the fast oscillators would change g(ω)
and hence the physics. The default method, ``lawson_rk4`` (an integrating-factor /
exponential Runge–Kutta method), writes the flow as ``x' = Ωx + F(x)``, integrates the
rotation ``exp(tΩ)`` in closed form and applies RK4 only to the coupling in the rotating
frame. The rotation is then exact for every |ω| (a fast oscillator just turns, as it should,
and its contribution to the mean field averages out) and the step size is limited only by
the coupling (h·K ≲ 1), not by the fastest oscillator. A method that does not treat the
rotation exactly is accepted only with a step that resolves the fastest rotation
(h·max|ω| ≤ 1); otherwise :func:`run` refuses with an error that names ``dt``. Adaptive
methods control their step and are accepted as they are (they are slow on the tails).

Results (``sync.h5``): ``r`` (time-averaged order parameter) over ``K × N × seed`` (and
``direction`` for adiabatic sweeps), the trajectories ``r_t`` and, for n = 2, the complex
order parameter ``Z_t`` (stored as ``Z_t_real``, ``Z_t_imag``) over ``time``, the theory
curve ``r_theory``, ``K_c``, the solver statistics, and the fastest natural frequency. The run
streams: after every time chunk the new samples are appended to the file and the states are
checkpointed, so a killed run resumes from its last complete chunk with an identical result.

References:
    Y. Kuramoto, *Chemical Oscillations, Waves, and Turbulence* (1984);
    S. H. Strogatz, "From Kuramoto to Crawford", Physica D 143 (2000);
    J. D. Lawson, "Generalized Runge–Kutta processes ...", SIAM J. Numer. Anal. 4 (1967).
"""

from __future__ import annotations

from studies.lazy import lazy_attributes
from studies.sync.config import FILENAME, MAX_ROTATION_PER_STEP, ROTATION_EXACT, Config

__all__ = ["FILENAME", "MAX_ROTATION_PER_STEP", "ROTATION_EXACT", "Config", "build_coupling", "build_frequencies",
           "plot", "run", "summarize"]

__getattr__ = lazy_attributes(__name__, "model experiment plots")
