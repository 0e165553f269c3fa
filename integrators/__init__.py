"""How the flow is stepped: selectable solvers on products of spheres.

    from integrators import solve, METHODS
    sol = solve(field, x0, torch.linspace(0, 10, 101), method="lawson_rk4", dt=0.01,
                observe={"r": kuramoto.order_parameter}, save_states=False)

Families (each class states ``order``, ``adaptive``, ``stays_on_sphere``):

- retraction (the AKOrN family): ``euler_normalized`` (the AKOrN update), ``heun_normalized``,
  ``rk4_normalized``;
- Lie-group, exactly on the sphere: ``geodesic_euler``, ``rkmk4``, ``cf4``;
- exponential: ``lawson_rk4`` (natural frequencies rotated exactly);
- native adaptive: ``dopri5_normalized``, ``lawson_dopri5`` (Lawson Dormand–Prince: exact
  rotation, error control in the rotating frame);
- ambient, delegated to torchdiffeq under its names: ``euler``, ``midpoint``, ``heun2``,
  ``heun3``, ``rk4``, ``explicit_adams``, ``implicit_adams``, ``fixed_adams``, ``dopri5``,
  ``dopri8``, ``bosh3``, ``fehlberg2``, ``adaptive_heun``;
- the float64 reference ``scipy_reference`` (SciPy DOP853, no gradients).

:func:`step_fixed` runs T steps of a native method with an optional exact-discrete
checkpointed gradient (the discrete AKOrN layer); :class:`Compiled` wraps a native fixed-step
method in ``torch.compile`` (a uniform-grid solve becomes one compiled program, observables
included). ``solve(..., adjoint=True)`` differentiates fixed-step solves by recursive
checkpointing (:class:`RecursiveCheckpoint`). Before stepping, ``solve`` checks the method's
pairings with the other arguments (:func:`check_pairing`, shared with ``step_fixed`` and the
network layers), the step grid and the method's stability limits against the field
(:mod:`integrators.guards`); ambient
methods that leave the sphere raise a :class:`DriftWarning`. States are stepped in
component-major memory (see :mod:`kuramoto.sphere`). Adding a method is one class
implementing :class:`AbstractSolver` and one line in :mod:`integrators.registry`.
"""

import kuramoto  # noqa: F401  first: applies torch's OpenMP wait default before torch loads

from .adaptive import AbstractEmbeddedRK, Dopri5Normalized
from .base import AbstractSolver, DriftWarning, SolverError, StepResult
from .checkpoint import RecursiveCheckpoint
from .compiled import Compiled
from .controller import PIController
from .lawson import LawsonDopri5, LawsonRK4
from .pairing import check_pairing
from .registry import METHODS, get_solver
from .skew import expm_skew_apply
from .solution import Solution
from .solve import solve, step_fixed
from .tableau import Tableau

__all__ = [
    "METHODS",
    "AbstractEmbeddedRK",
    "AbstractSolver",
    "Compiled",
    "Dopri5Normalized",
    "DriftWarning",
    "LawsonDopri5",
    "LawsonRK4",
    "PIController",
    "RecursiveCheckpoint",
    "Solution",
    "SolverError",
    "StepResult",
    "Tableau",
    "check_pairing",
    "expm_skew_apply",
    "get_solver",
    "solve",
    "step_fixed",
]
