"""What a run will cost, estimated from its config before anything is built, and the refusal of a
run that cannot finish or fit.

A study describes its cost with :class:`Cost` (integrator steps of its longest run, its number of
independent runs, the oscillator updates of the whole study and the peak memory, each with the
option that drives it) and :func:`check` refuses it, naming that option and the estimate, so that
``--dt 1e-300`` or ``--N 100000000000`` is one line at once instead of a run that never ends or an
allocator's message minutes later. The limits are far beyond any study this toolkit is meant
for. Torch-free: the command line runs it before the study is imported.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from studies.config import ConfigError

__all__ = ["MAX_OSCILLATOR_STEPS", "MAX_RUNS", "MAX_STEPS_PER_RUN", "Cost", "available_memory", "check", "size"]

#: Integrator steps of one run (one solve from one initial state batch).
MAX_STEPS_PER_RUN = 1e9
#: Oscillator updates of the whole study: steps × oscillators × runs (years on one machine).
MAX_OSCILLATOR_STEPS = 1e15
#: Independent runs (sweep points, tasks of a sweep).
MAX_RUNS = 1e6


class Cost(NamedTuple):
    """A study's estimated cost; each ``*_option`` is the config field to name when it is too high.

    Attributes:
        steps_per_run: integrator steps of the longest single run.
        runs: independent runs (sweep points).
        oscillator_steps: oscillator updates of the whole study.
        memory: peak bytes of the whole run.
        unit_memory: peak bytes of its largest single piece (one run, one coupling matrix).
        steps_fix: what to do about too many steps (default: a larger step or a shorter time span).
    """

    steps_per_run: float
    runs: float
    oscillator_steps: float
    memory: float
    unit_memory: float
    steps_option: str = "dt"
    runs_option: str = "k_num"
    work_option: str = "N"
    memory_option: str = "N"
    unit_option: str = "N"
    steps_fix: str = ""


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


def size(value: float) -> str:
    """Bytes in words: ``"19.2 TB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} PB"


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def check(cost: Cost, memory: float | None = None) -> Cost:
    """Refuse a run whose ``cost`` cannot finish or fit; return ``cost`` otherwise.

    Args:
        cost: the study's estimate.
        memory: bytes available (default: :func:`available_memory`).

    Raises:
        ConfigError: naming the option to change, with the estimate and the limit.
    """
    if not isinstance(cost, Cost):
        raise TypeError(f"cost: expected a Cost, got {type(cost).__name__}")
    memory = available_memory() if memory is None else float(memory)
    if not cost.steps_per_run <= MAX_STEPS_PER_RUN:
        fix = cost.steps_fix or f"use a larger {_flag(cost.steps_option)} or a shorter time span"
        raise ConfigError(cost.steps_option, f"one run would take {cost.steps_per_run:.3g} integrator steps (at most "
                                             f"{MAX_STEPS_PER_RUN:.0e}); {fix}")
    if not cost.runs <= MAX_RUNS:
        raise ConfigError(cost.runs_option, f"the study would have {cost.runs:.3g} independent runs (at most "
                                            f"{MAX_RUNS:.0e}); use a smaller {_flag(cost.runs_option)}")
    if not cost.unit_memory <= memory:
        raise ConfigError(cost.unit_option, f"one run would need about {size(cost.unit_memory)} of memory, "
                                            f"{size(memory)} is available; use a smaller {_flag(cost.unit_option)}")
    if not cost.memory <= memory:
        raise ConfigError(cost.memory_option, f"the study would need about {size(cost.memory)} of memory, "
                                              f"{size(memory)} is available; use a smaller "
                                              f"{_flag(cost.memory_option)}")
    if not cost.oscillator_steps <= MAX_OSCILLATOR_STEPS:
        raise ConfigError(cost.work_option, f"the study would take {cost.oscillator_steps:.3g} oscillator steps (at "
                                            f"most {MAX_OSCILLATOR_STEPS:.0e}, years on one machine); use a smaller "
                                            f"{_flag(cost.work_option)} or a larger step")
    return cost
