"""Parameters of the synchronisation study (``akorn sync``): the config dataclass and its presets.

Torch-free at import, so ``akorn sync --help`` does not load torch; validating a config checks the
device and the method name against torch and :data:`integrators.METHODS`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

import numpy as np

from studies.config import ConfigError, StudyConfig, param
from studies import units
from studies.protocol import Study

__all__ = ["FILENAME", "MAX_ROTATION_PER_STEP", "ROTATION_EXACT", "STUDY", "Config"]

FILENAME = "sync.h5"


#: Methods that integrate the natural rotation exp(tΩ) in closed form, so that their step is
#: not limited by the fastest oscillator.
ROTATION_EXACT = frozenset({"lawson_rk4"})

#: Largest h·max|ω| accepted for a fixed-step method that does not rotate exactly.
MAX_ROTATION_PER_STEP = 1.0


@dataclasses.dataclass(frozen=True)
class Config(StudyConfig):
    """Parameters of the synchronisation study (defaults: the quick preset)."""

    study: ClassVar[str] = "sync"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"N": (20000,), "k_num": 41, "seeds": 8, "t_transient": 200.0, "t_average": 200.0, "dt": 0.05,
                  "chunks": 10},
    }

    N: tuple[int, ...] = param((2000,), "numbers of oscillators (several values for finite-size scaling)",
                               metavar="INT")
    n: int = param(2, "sphere dimension of an oscillator: 2 is the classic phase model, 3 and 4 vector oscillators")
    k_min: float = param(0.0, "smallest coupling strength K", units=units.RATE)
    k_max: float = param(4.0, "largest coupling strength K", units=units.RATE)
    k_num: int = param(21, "number of K values, evenly spaced from k_min to k_max")
    distribution: Literal["lorentzian", "gaussian", "uniform"] = param(
        "lorentzian", "natural-frequency density g(ω) (uniform shows the first-order jump)")
    width: float = param(0.5, "width of g(ω): Lorentzian half-width Δ, Gaussian σ, uniform half-width",
                         units=units.ANGULAR_VELOCITY)
    quantile: bool = param(True, "deterministic quantile frequencies (seeds then differ only in initial states); "
                                 "--no-quantile draws them at random per seed")
    graph: Literal["complete", "ring", "erdos_renyi", "lattice"] = param(
        "complete", "coupling graph; sparse graphs use weight K/(mean degree) so that K is comparable")
    degree: int = param(10, "mean degree of the ring (even) and Erdős–Rényi graphs (the 2-D lattice has 4)")
    sweep: Literal["independent", "forward", "backward", "both"] = param(
        "independent", "independent: every K starts from random phases; forward/backward/both: adiabatic "
                       "continuation along increasing/decreasing K (hysteresis)")
    seeds: int = param(3, "number of seeds (random initial states; frequencies too with --no-quantile)")
    seed: int = param(0, "first seed")
    t_transient: float = param(40.0, "transient discarded before averaging r (per K value)", units=units.TIME)
    t_average: float = param(40.0, "time over which r is averaged (per K value)", units=units.TIME)
    dt: float = param(0.125, "integrator step (initial step for adaptive methods)", units=units.TIME)
    sample_dt: float = param(0.5, "interval at which r(t) is recorded (a multiple of dt)", units=units.TIME)
    chunks: int = param(4, "time chunks of an independent sweep: the file is appended and checkpointed after each "
                           "(adiabatic sweeps checkpoint after every K value)")
    method: str = param("lawson_rk4", "integrator (integrators.METHODS); the default rotates exactly, see the "
                                      "module doc")
    dtype: Literal["float64", "float32"] = param("float64", "floating-point precision")
    device: str = param("cpu", "torch device")

    def validate(self) -> None:
        self._positive("N", "k_num", "width", "seeds", "t_average", "dt", "sample_dt", "chunks", "degree")
        self._positive("k_min", "t_transient", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected a sphere dimension >= 2, got {self.n}")
        if len(set(self.N)) != len(self.N):
            raise ConfigError("N", f"expected distinct values, got {self.N}")
        if self.k_num > 1 and not self.k_max > self.k_min:
            raise ConfigError("k_max", f"must be greater than k_min={self.k_min:g}, got {self.k_max:g} (the K range "
                                       f"is reversed or empty; for a decreasing sweep use --sweep backward)")
        if self.k_num == 1 and self.k_max < self.k_min:
            raise ConfigError("k_max", f"must be >= k_min={self.k_min:g}, got {self.k_max:g}")
        if self.seed < 0:
            raise ConfigError("seed", f"expected a non-negative integer, got {self.seed}")
        for name in ("sample_dt", "t_transient", "t_average"):
            value, unit = getattr(self, name), ("dt" if name == "sample_dt" else "sample_dt")
            ratio = value / getattr(self, unit)
            if not math.isfinite(ratio):
                raise ConfigError(unit, f"{getattr(self, unit):g} is too small: {name}/{unit} overflows")
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                raise ConfigError(name, f"must be a multiple of {unit}={getattr(self, unit):g}, got {value:g}")
        if self.chunks > self.samples_per_segment and self.sweep == "independent":
            raise ConfigError("chunks", f"at most {self.samples_per_segment} chunks (one per recorded sample), "
                                        f"got {self.chunks}")
        if self.graph == "lattice":
            for N in self.N:
                if math.isqrt(N) ** 2 != N or N < 9:
                    raise ConfigError("N", f"the 2-D lattice needs square numbers >= 9 of oscillators, got {N}")
        if self.graph in ("ring", "erdos_renyi"):
            if self.graph == "ring" and self.degree % 2:
                raise ConfigError("degree", f"a ring needs an even degree (k neighbours on each side), got "
                                            f"{self.degree}")
            if self.degree >= min(self.N):
                raise ConfigError("degree", f"must be smaller than the smallest N={min(self.N)}, got {self.degree}")
        self._check_device()
        self._check_method()

    # -- derived quantities ----------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """The coupling strengths, ``[k_num]``."""
        return np.linspace(self.k_min, self.k_max, self.k_num)

    @property
    def samples_per_segment(self) -> int:
        """Recorded samples per K value (transient and averaging window)."""
        return int(round((self.t_transient + self.t_average) / self.sample_dt))

    @property
    def steps_per_sample(self) -> int:
        return int(round(self.sample_dt / self.dt))

    @property
    def adiabatic(self) -> bool:
        return self.sweep != "independent"

    @property
    def directions(self) -> tuple[str, ...]:
        return {"forward": ("forward",), "backward": ("backward",), "both": ("forward", "backward")}.get(self.sweep, ())

    @property
    def shared_frequencies(self) -> bool:
        """Whether every seed sees the same frequencies and graph (then seeds are batched)."""
        return self.quantile

    @property
    def has_theory(self) -> bool:
        return self.n == 2 and self.graph == "complete"


#: What ``akorn sync`` runs (:mod:`studies.commands`).
STUDY = Study(config=Config, filename=FILENAME, runner="studies.sync.experiment", plots="studies.sync.plots",
              run_options=("scheduler", "workers", "overwrite"),
              cost="studies.sync.cost:check_cost")
