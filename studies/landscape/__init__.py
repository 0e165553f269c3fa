"""``akorn landscape``: the energy landscape of a symmetric oscillator network.

Many random initial states of a network with symmetric coupling relax under the flow, which
(without natural frequencies, the default) descends an energy to a fixed point. The study records
the energy and the order parameter r along every run, groups the final states of the runs that
converged into distinct fixed points, and reports their energies and basin sizes (the fraction
of the converged runs that end at each); runs still moving at ``t_max`` are counted apart. The
default is a Hopfield network of 64 three-dimensional oscillators storing 4 patterns, 128 runs.

For a symmetric coupling J and Ω = 0 the flow ``dx_i/dt = Proj_{x_i}(c_i + Σ_j J_ij x_j)`` is
the Riemannian gradient descent of the energy

    E(x) = −½ Σ_ij x_iᵀ J_ij x_j − Σ_i c_iᵀ x_i        (AKOrN Eq. 3),

so every trajectory ends at a fixed point and E never increases on the way. A run counts as
converged when ``max_i |f_i(x)| < tol`` at the end; only those runs are grouped into fixed
points, by geodesic distance, which gives their energies and basin sizes.

Couplings: ``dense`` (Sherrington–Kirkpatrick-like symmetric Gaussian J/√N), ``lattice``
(2-D periodic nearest-neighbour graph with symmetric Gaussian weights, an Edwards–Anderson
glass) or ``hopfield`` (``P`` stored random patterns of unit vectors ξ^μ,
``J_ij = (1/N) Σ_μ ξ_i^μ ξ_j^μᵀ``, zero self-coupling), with an optional random stimulus of
strength ``stimulus``. Scalar couplings without stimulus are invariant under a global
rotation of all oscillators, so their fixed points come in continuous families; states are
then compared after optimal alignment (orthogonal Procrustes over O(n)). Hopfield couplings
without stimulus are only invariant under ``x → −x``, which is modded out instead.

Results (``landscape.h5``): ``energy_t`` and ``r_t`` over ``time × init``; per initial state
the final energy, residual ``max_i |f_i|``, convergence flag and the fixed point it reached
(``-1`` for a run that did not converge); ``converged_runs`` and ``unconverged_runs``; per fixed
point (dim ``minimum``, sorted by energy) its energy, basin count and size (a fraction of the
converged runs), r and a representative state; the largest energy increase between samples (a
check of the Lyapunov property, meaningful for Ω = 0); and a 2-D principal-component projection
of some trajectories with the energy on that plane (``contour_energy``). Energies and residuals
are rates, time is in model time units (:mod:`studies.units`).
"""

from __future__ import annotations

from studies.landscape.config import FILENAME, STUDY, Config
from studies.lazy import lazy_attributes

__all__ = ["Config", "FILENAME", "PatternCoupling", "STUDY", "build_field", "cluster_states", "plot", "run",
           "summarize"]

__getattr__ = lazy_attributes(__name__, "model experiment plots")
