"""The units written into result files and shown in ``--help``: one vocabulary for every study.

The equations are dimensionless in everything but time, and time is measured in an arbitrary
unit, the *model time unit*: the unit in which the equations are written (``dθ_i/dt = ω_i +
(K/N) Σ_j sin(θ_j − θ_i)``, ``dx_i/dt = Ω_i x_i + Proj_{x_i}(c_i + Σ_j J_ij x_j)``). Rescaling
time rescales every rate below by the same factor, so results are comparable only in it:

- times and step sizes (``time``, ``dt``, ``h``, ``t_end``): :data:`TIME`;
- natural angular velocities ω and the width of their density: :data:`ANGULAR_VELOCITY`;
- coupling strengths K and J, stimulus strengths c, field values ``|f_i(x)|`` and the energy
  ``E(x) = −½ Σ x_iᵀ J_ij x_j − Σ c_iᵀ x_i`` (the flow is E's gradient descent, so E is a rate
  too): :data:`RATE`. A radian is dimensionless, so ``K_c = 2Δ`` compares like with like;
- order parameters, distances between unit vectors, tolerances, fractions and counts:
  :data:`DIMENSIONLESS` (``"1"``, as in CF); geodesic distances: :data:`RADIAN`;
- wall-clock and CPU time: :data:`SECONDS`.

**Why not CF's units or ``standard_name: time``.** CF asks for UDUNITS strings, and CF's
``time`` standard name has canonical units of seconds. Model time is not seconds, and calling
it ``"1"`` would hide that it is a time at all, so :data:`TIME` is a plain word that no tool
will convert silently (pint reads it after ``ureg.define("model_time_unit = [model_time]")``).
No study quantity has a CF standard name whose canonical units it meets, so none carries a
``standard_name``; the model-time coordinate carries CF's unit-independent ``axis: "T"``
instead, and every variable a ``long_name``. String variables (names, statuses) have no units.

**NaN.** A variable that can hold NaN says what a NaN means in its ``comment`` attribute
(``"NaN: ..."``).
"""

from __future__ import annotations

__all__ = ["ANGULAR_VELOCITY", "CONVENTION", "DIMENSIONLESS", "RADIAN", "RATE", "SECONDS", "TIME", "VOCABULARY"]

#: Time in the unit the equations are written in.
TIME = "model_time_unit"
#: A rate: coupling strengths, stimuli, field values, energy.
RATE = "1/model_time_unit"
#: Angular velocity: natural frequencies ω and their width.
ANGULAR_VELOCITY = "rad/model_time_unit"
#: CF's dimensionless unit.
DIMENSIONLESS = "1"
#: Angles and geodesic distances on the sphere.
RADIAN = "rad"
#: Wall-clock and CPU time.
SECONDS = "s"

#: Every unit the sync, landscape and integrators results use.
VOCABULARY = frozenset({TIME, RATE, ANGULAR_VELOCITY, DIMENSIONLESS, RADIAN, SECONDS})

#: The global attribute ``units_convention`` of those results: what the model time unit is.
CONVENTION = (f"'{TIME}' is the unit of time the equations are written in (not seconds; rescaling it rescales "
              f"every rate): frequencies are in '{ANGULAR_VELOCITY}', couplings, stimuli, field values and energies "
              f"in '{RATE}'; '1' is dimensionless; see studies.units")
