"""``akorn sync``: the synchronisation transition of the Kuramoto model, r(K) against theory.

The classic experiment (Kuramoto 1975; Strogatz 2000): N oscillators with natural frequencies
drawn from a density g(ω), coupled all-to-all with strength K, run from random phases through a
transient; then the order parameter r is averaged over time, for K on a grid and several seeds,
and compared with Kuramoto's mean-field theory. The default is the textbook case: n = 2,
quantile-sampled Lorentzian frequencies of half-width Δ = 0.5 (K_c = 1), N = 2000, K in [0, 4] at
21 values, 3 seeds. Options cover Gaussian and uniform g (the uniform case jumps at K_c),
adiabatic forward/backward sweeps (hysteresis), several N (finite-size scaling), vector
oscillators (n = 3, 4), sparse graphs (ring, Erdős–Rényi, 2-D lattice), identical oscillators
(``--width 0``), noise (``--noise D``: the stochastic Kuramoto model, Brownian motion on the sphere
for n > 2) and a phase lag (``--lag α``: Kuramoto–Sakaguchi).

The model (n = 2; in vector form on S^{n−1} in general):

    dθ_i = [ω_i + (K/N) Σ_j sin(θ_j − θ_i − α)] dt + sqrt(2D) dW_i,      r = |mean_j e^{iθ_j}|

(α = D = 0 by default).

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
rotation exactly is accepted only with a step within its stability limit for the fastest
rotation (the limit is the method's own, :func:`integrators.guards.check_stability`: 2√2 for
RK4, 1 for Euler- and Heun-type steps); otherwise the config is refused with an error that
names ``dt``. Adaptive methods control their step and are accepted as they are (they are slow
on the tails). With noise the run is a Stratonovich SDE (:func:`integrators.solve_sde`), by
default ``geodesic_heun``: for n = 2 Heun's method on the phase with every stage an exact
rotation, so Ω costs nothing and the phase noise is additive (weak order 2: at dt = 0.125 the
stationary r of identical oscillators with D = 0.5 is within 0.002 of theory, where
``lawson_heun``, weak order 1, is 0.024 low).

**Batches.** The K values and seeds of a run are solved as batches (``MeanField(K)`` with K of
shape ``[K, 1, 1, 1]`` against states ``[K, seeds, N, n]``); seeds share a batch when they share
frequencies and graph (``--quantile``, the default). Adiabatic sweeps stay sequential in K and
batch the seeds and both directions. Long deterministic runs go through
``integrators.Compiled(method)`` (one compiled program, batches up to 4·10^6 numbers); short
ones eagerly in batches of ~10^5 numbers, which measured fastest (:func:`studies.sync.model.plan`,
a function of the config alone). Each batch is one Dask task; a run of a single batch runs in
this process (no cluster to start).

**Theory with noise and lag** (:mod:`kuramoto.theory`): identical oscillators with noise
(``r = I1(Kr/D)/I0(Kr/D)``, K_c = 2D), the Lorentzian with noise (K_c = 2(Δ + D), exact Bessel
self-consistency) and with lag (K_c = 2Δ/cos α, ``r = sqrt(1 − 2Δ/(K cos α))``, and the rotation
frequency of the locked group, compared with the measured rotation of the mean field). Where
the theory has no r(K) (Gaussian or uniform g with noise, noise and lag together) only K_c is
drawn, and where it has no K_c either, nothing; the summary says which.

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
from studies.sync.config import DEFAULT_METHOD, DEFAULT_SDE_METHOD, FILENAME, Config

__all__ = ["DEFAULT_METHOD", "DEFAULT_SDE_METHOD", "FILENAME", "Config", "build_coupling", "build_frequencies",
           "plot", "run", "summarize"]

__getattr__ = lazy_attributes(__name__, "population model experiment plots")
