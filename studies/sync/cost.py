"""What a synchronisation run will cost (:func:`estimate`), refused up front when it cannot finish or
fit (:func:`check_cost`; the rules are :mod:`studies.cost`'s). Torch-free.
"""

from __future__ import annotations

from studies import cost as _cost
from studies.cost import Cost
from studies.sync.config import Config

__all__ = ["Cost", "check_cost", "estimate"]

#: Copies of the states a run keeps at once: current states, their checkpoint copy and the file
#: image in the main process, plus the solver's stages and observables in a worker.
_STATE_COPIES = 3
_WORKER_COPIES = 12


def estimate(config: Config) -> Cost:
    """The cost of ``config``, computed in floating point (no list of runs is built)."""
    if not isinstance(config, Config):
        raise TypeError(f"config: expected a sync Config, got {type(config).__name__}")
    samples = (config.t_transient + config.t_average) / config.sample_dt
    steps = samples * (config.sample_dt / config.dt) * (config.k_num if config.adiabatic else 1)
    per_group = config.seeds if config.shared_frequencies else 1
    groups_per_n = (config.seeds / per_group) * (len(config.directions) if config.adiabatic else config.k_num)
    itemsize = 8 if config.dtype == "float64" else 4
    oscillators = float(sum(config.N))
    state_bytes = groups_per_n * per_group * oscillators * config.n * 8  # states travel as float64
    task_bytes = per_group * float(max(config.N)) * config.n * itemsize * _WORKER_COPIES
    return Cost(steps_per_run=steps, runs=groups_per_n * len(config.N),
                oscillator_steps=steps * groups_per_n * per_group * oscillators,
                memory=state_bytes * _STATE_COPIES + task_bytes, unit_memory=task_bytes,
                steps_option="dt", runs_option="k_num", work_option="N", memory_option="k_num", unit_option="N")


def check_cost(config: Config, memory: float | None = None) -> Cost:
    """Refuse ``config`` if it cannot finish or fit (:func:`studies.cost.check`); its :class:`Cost` otherwise.

    Raises:
        ConfigError: naming the option to change, with the estimate and the limit.
    """
    return _cost.check(estimate(config), memory)
