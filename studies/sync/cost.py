"""What a synchronisation run will cost, estimated from its config before anything is built.

:func:`check_cost` refuses a run that cannot finish or fit, naming the option to change and the
estimate, so that ``--dt 1e-300`` or ``--N 100000000000`` is one line at once instead of a run
that never ends or an allocator's message minutes later. The limits are far beyond any study
this toolkit is meant for (the paper preset needs ~5e10 oscillator steps and ~50 MB).
Torch-free: it needs only the config and the machine's memory size.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from studies.config import ConfigError
from studies.sync.config import Config

__all__ = ["MAX_OSCILLATOR_STEPS", "MAX_STEPS_PER_RUN", "MAX_SWEEP_POINTS", "Cost", "available_memory", "check_cost",
           "estimate"]

#: Integrator steps of one run (one K value, or one whole adiabatic sweep).
MAX_STEPS_PER_RUN = 1e9
#: Oscillator updates of the whole study: steps × oscillators × runs (years on one machine).
MAX_OSCILLATOR_STEPS = 1e15
#: Independent runs (K values × seed groups × N values): each is a task of the sweep.
MAX_SWEEP_POINTS = 1e6
#: Copies of the states a run keeps at once: current states, their checkpoint copy and the file
#: image in the main process, plus the solver's stages and observables in a worker.
_STATE_COPIES = 3
_WORKER_COPIES = 12


class Cost(NamedTuple):
    """An estimate: steps of one run, sweep points, total oscillator steps and peak memory (bytes)."""

    steps_per_run: float
    sweep_points: float
    oscillator_steps: float
    memory: float
    task_memory: float


def available_memory() -> float:
    """Bytes of memory this machine can give a run (``MemAvailable``, else the physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return float("inf")


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
    return Cost(steps_per_run=steps, sweep_points=groups_per_n * len(config.N),
                oscillator_steps=steps * groups_per_n * per_group * oscillators,
                memory=state_bytes * _STATE_COPIES + task_bytes, task_memory=task_bytes)


def _size(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} PB"  # pragma: no cover


def check_cost(config: Config, memory: float | None = None) -> Cost:
    """Refuse a run that cannot finish or fit, before anything is built.

    Args:
        config: the study parameters.
        memory: bytes available (default: :func:`available_memory`).

    Returns:
        The :class:`Cost` of an accepted run.

    Raises:
        ConfigError: naming the option to change, with the estimate and the limit.
    """
    cost = estimate(config)
    memory = available_memory() if memory is None else float(memory)
    if cost.steps_per_run > MAX_STEPS_PER_RUN:
        raise ConfigError("dt", f"one run would take {cost.steps_per_run:.3g} integrator steps of dt={config.dt:g} "
                                f"(at most {MAX_STEPS_PER_RUN:.0e}); use a larger --dt or a shorter time span")
    if cost.sweep_points > MAX_SWEEP_POINTS:
        raise ConfigError("k_num", f"the sweep would have {cost.sweep_points:.3g} independent runs (K values x seed "
                                   f"groups x N values; at most {MAX_SWEEP_POINTS:.0e}); use a smaller --k-num")
    if cost.task_memory > memory:
        raise ConfigError("N", f"one run of N={max(config.N)} would need about {_size(cost.task_memory)} of memory, "
                               f"{_size(memory)} is available; use a smaller --N")
    if cost.memory > memory:
        raise ConfigError("k_num", f"the sweep would need about {_size(cost.memory)} of memory for its states, "
                                   f"{_size(memory)} is available; use fewer --k-num, --seeds or --N values")
    if cost.oscillator_steps > MAX_OSCILLATOR_STEPS:
        raise ConfigError("N", f"the study would take {cost.oscillator_steps:.3g} oscillator steps (at most "
                               f"{MAX_OSCILLATOR_STEPS:.0e}, years on one machine); use a smaller --N, --k-num or "
                               f"--seeds, or a larger --dt")
    return cost
