"""What an integrator comparison will cost (:func:`estimate`), refused up front when it cannot finish
or fit (:func:`check_cost`; the rules are :mod:`studies.cost`'s). Torch-free.
"""

from __future__ import annotations

from studies import cost as _cost
from studies.cost import Cost
from studies.methods.config import Config

__all__ = ["check_cost", "estimate"]

#: Copies of the batch of states a solve holds at once (solver stages, observables, the result).
_STATE_COPIES = 12
#: An upper bound on the compared methods (the registry holds about twenty).
_METHODS = 30


def estimate(config: Config) -> Cost:
    """The cost of ``config``: every method at ``levels`` step sizes ``h_max / 2^k`` over ``t_end``."""
    if not isinstance(config, Config):
        raise TypeError(f"config: expected a methods Config, got {type(config).__name__}")
    N, n = float(config.N), config.n
    finest = config.t_end / (config.h_max / 2.0 ** (config.levels - 1))
    steps = max(finest, float(config.max_steps))
    runs = _METHODS * config.levels * config.repeats
    coupling = 3 * N * N * 8  # the dense Gaussian J, in float64 and in the compared dtype
    states = config.batch * N * n * 8 * _STATE_COPIES
    return Cost(steps_per_run=steps, runs=runs, oscillator_steps=2 * steps * _METHODS * config.repeats * config.batch * N,
                memory=coupling + states, unit_memory=coupling, steps_option="levels", runs_option="levels",
                work_option="N", memory_option="batch", unit_option="N",
                steps_fix="use fewer --levels, a larger --h-max or a shorter --t-end")


def check_cost(config: Config, memory: float | None = None) -> Cost:
    """Refuse ``config`` if it cannot finish or fit (:func:`studies.cost.check`); its :class:`Cost` otherwise.

    Raises:
        ConfigError: naming the option to change, with the estimate and the limit.
    """
    return _cost.check(estimate(config), memory)
