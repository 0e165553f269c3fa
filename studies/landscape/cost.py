"""What an energy-landscape run will cost (:func:`estimate`), refused up front when it cannot finish
or fit (:func:`check_cost`; the rules are :mod:`studies.cost`'s). Torch-free.
"""

from __future__ import annotations

from studies import cost as _cost
from studies.cost import Cost
from studies.landscape.config import Config

__all__ = ["check_cost", "estimate"]

#: Copies of the batch of states a solve holds at once (solver stages, observables, the result).
_STATE_COPIES = 12


def estimate(config: Config) -> Cost:
    """The cost of ``config``: one solve of ``inits`` states over ``t_max`` in steps of ``dt``."""
    if not isinstance(config, Config):
        raise TypeError(f"config: expected a landscape Config, got {type(config).__name__}")
    N, n, P = float(config.N), config.n, float(config.patterns)
    item = 8 if config.dtype == "float64" else 4
    coupling = {"dense": 3 * N * N * 8, "lattice": 12 * N * 8, "hopfield": 2 * P * N * n * 8}[config.coupling]
    states = config.inits * N * n * item * _STATE_COPIES
    if config.coupling == "hopfield":
        states += 2 * config.inits * P * N * item  # the per-pattern overlaps of a field evaluation
    kept = config.project_inits * (config.t_max / config.sample_dt + 1) * N * n * 8
    steps = config.t_max / config.dt
    return Cost(steps_per_run=steps, runs=1.0, oscillator_steps=steps * config.inits * N,
                memory=coupling + states + kept, unit_memory=coupling, steps_option="dt", runs_option="inits",
                work_option="inits", memory_option="inits", unit_option="N")


def check_cost(config: Config, memory: float | None = None) -> Cost:
    """Refuse ``config`` if it cannot finish or fit (:func:`studies.cost.check`); its :class:`Cost` otherwise.

    Raises:
        ConfigError: naming the option to change, with the estimate and the limit.
    """
    return _cost.check(estimate(config), memory)
