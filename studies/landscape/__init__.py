"""``akorn landscape``: the energy landscape of a symmetric oscillator network.

For a symmetric coupling J and Ω = 0 the flow ``dx_i/dt = Proj_{x_i}(c_i + Σ_j J_ij x_j)`` is
the Riemannian gradient descent of the energy

    E(x) = −½ Σ_ij x_iᵀ J_ij x_j − Σ_i c_iᵀ x_i        (AKOrN Eq. 3),

so every trajectory ends at a fixed point and E never increases on the way. This study
samples the landscape: many uniformly random initial states (one batch) are run to
convergence with an integrator that stays on the spheres, recording E and the order
parameter r along the way; the final states are grouped into distinct fixed points by
geodesic distance, which gives their energies and basin sizes (the fraction of initial
states that end there).

Couplings: ``dense`` (Sherrington–Kirkpatrick-like symmetric Gaussian J/√N), ``lattice``
(2-D periodic nearest-neighbour graph with symmetric Gaussian weights, an Edwards–Anderson
glass) or ``hopfield`` (``P`` stored random patterns of unit vectors ξ^μ,
``J_ij = (1/N) Σ_μ ξ_i^μ ξ_j^μᵀ``, zero self-coupling), with an optional random stimulus of
strength ``stimulus``. Scalar couplings without stimulus are invariant under a global
rotation of all oscillators, so their fixed points come in continuous families; states are
then compared after optimal alignment (orthogonal Procrustes over O(n)). Hopfield couplings
without stimulus are only invariant under ``x → −x``, which is modded out instead.

Results (``landscape.h5``): ``energy_t`` and ``r_t`` over ``time × init``; per initial state
the final energy, residual ``max_i |f_i|``, convergence flag and the fixed point it reached;
per fixed point (dim ``minimum``, sorted by energy) its energy, basin size, r and a
representative state; the largest energy increase between samples (a check of the Lyapunov
property, meaningful for Ω = 0); and a 2-D principal-component projection of some
trajectories with the energy on that plane (``contour_energy``).
"""

from __future__ import annotations

from studies.landscape.config import FILENAME, STUDY, Config
from studies.lazy import lazy_attributes

__all__ = ["Config", "FILENAME", "PatternCoupling", "STUDY", "build_field", "cluster_states", "plot", "run",
           "summarize"]

__getattr__ = lazy_attributes(__name__, "model experiment plots")
