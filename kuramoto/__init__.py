"""Oscillator dynamics on products of spheres: the generalised Kuramoto flow.

    dx_i/dt = Ω_i x_i + Proj_{x_i}(c_i + Σ_j J_ij x_j)

The state is a tensor ``[..., n]`` whose last axis is the sphere axis; ``n = 2`` is the
classic phase oscillator. See :class:`KuramotoField`, the couplings in
:mod:`kuramoto.couplings`, the frequencies in :mod:`kuramoto.frequencies`, the observables in
:mod:`kuramoto.observables` and the mean-field theory in :mod:`kuramoto.theory`.
"""

from . import _runtime  # noqa: F401  first: torch's OpenMP wait policy is read when torch loads
from . import checks, couplings, frequencies, graphs, observables, planes, theory
from .couplings import COUPLINGS, AbstractCoupling, Dense, MeanField, Sparse
from .field import KuramotoField, energy, logged_energy, noise_shape, sphere_noise
from .frequencies import (
    AbstractFrequencies,
    Frequencies,
    RotationPairs,
    Skew,
    gaussian,
    lorentzian,
    random_axis_rotations,
    uniform,
)
from .graphs import erdos_renyi_edges, lattice_edges, ring_edges
from .observables import (
    count_clusters,
    group_order_parameter,
    local_order_parameter,
    mean_field,
    mean_frequency,
    mean_phase,
    order_parameter,
    phase_locking_value,
    window_order_parameter,
)
from .sphere import (
    assert_state,
    check_state,
    expmap,
    from_phases,
    geodesic_distance,
    inner,
    normalize,
    project,
    random_states,
    to_phases,
)

__version__ = "0.1.0"

__all__ = [
    "COUPLINGS", "checks", "erdos_renyi_edges", "graphs", "lattice_edges", "random_axis_rotations", "ring_edges",
    "AbstractCoupling", "AbstractFrequencies", "Dense", "Frequencies", "KuramotoField", "MeanField",
    "RotationPairs", "Skew", "Sparse", "assert_state", "check_state", "count_clusters", "couplings", "energy",
    "expmap", "frequencies", "from_phases", "gaussian", "geodesic_distance", "group_order_parameter", "inner",
    "local_order_parameter", "logged_energy", "lorentzian", "mean_field", "mean_frequency", "mean_phase",
    "noise_shape", "normalize", "observables", "order_parameter", "planes", "phase_locking_value", "project", "random_states",
    "sphere_noise", "theory",
    "to_phases", "uniform", "window_order_parameter",
]
