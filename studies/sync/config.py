"""Parameters of the synchronisation study (``akorn sync``): the config dataclass and its presets.

Torch-free at import, so ``akorn sync --help`` does not load torch; validating a config checks the
device, the method name against :data:`integrators.METHODS` (or :data:`integrators.SDE_METHODS`
with noise) and the step against the method's stability limits for the population
(:func:`integrators.guards.check_stability`: the rule lives with the methods).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
from typing import Any, ClassVar, Literal

import numpy as np

from studies.config import ConfigError, StudyConfig, param
from studies.cost import available_memory
from studies import units
from studies.protocol import Study

__all__ = ["DEFAULT_METHOD", "DEFAULT_SDE_METHOD", "FILENAME", "STUDY", "Config"]

FILENAME = "sync.h5"

#: The method without noise: the rotation exp(tΩ) exactly, RK4 on the coupling.
DEFAULT_METHOD = "lawson_rk4"
#: The method with noise: stochastic Heun on the rotation group (for n = 2 Heun on the phase: Ω
#: turned exactly, weak order 2, so a stationary r is right at the noiseless run's step).
DEFAULT_SDE_METHOD = "geodesic_heun"


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
    width: float = param(0.5, "width of g(ω): Lorentzian half-width Δ, Gaussian σ, uniform half-width; 0: identical "
                              "oscillators", units=units.ANGULAR_VELOCITY)
    noise: float = param(0.0, "noise strength D: every phase gets sqrt(2D) dW (Brownian motion on the sphere for "
                              "n > 2); solved as a Stratonovich SDE", units=units.RATE)
    lag: float = param(0.0, "phase lag α in radians (Kuramoto–Sakaguchi: sin(θ_j − θ_i − α)); even n only, |α| < π/2")
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
    method: str | None = param(None, "integrator: integrators.METHODS, or SDE_METHODS with --noise (default: "
                                      "lawson_rk4, geodesic_heun with noise; both rotate exactly, see the module doc)")
    dtype: Literal["float64", "float32"] = param("float64", "floating-point precision")
    device: str = param("cpu", "torch device")

    def validate(self) -> None:
        if self.method is None:  # resolved here, so the stored config names the method that ran
            object.__setattr__(self, "method", DEFAULT_SDE_METHOD if self.noise > 0 else DEFAULT_METHOD)
        self._positive("N", "k_num", "seeds", "t_average", "dt", "sample_dt", "chunks", "degree")
        self._positive("k_min", "t_transient", "width", "noise", strict=False)
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
        self._check_lag()
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
        self._check_graph()
        self._check_device()
        self._check_integrator()

    def _check_lag(self) -> None:
        if self.lag != 0 and self.n % 2:
            raise ConfigError("lag", f"a phase lag turns component pairs and is undefined for odd n, got n={self.n}")
        if not abs(self.lag) < math.pi / 2:
            raise ConfigError("lag", f"|α| must be below π/2 (beyond it the coupling repels and nothing "
                                     f"synchronises), got {self.lag:g}")

    def _check_graph(self) -> None:
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

    def _check_integrator(self) -> None:
        """The method against the registries, then the step against the method's stability limits
        for every population of the run (the integrators' guard, turned into a ConfigError on dt)."""
        try:
            from integrators import SDE_METHODS  # torch-free at import: only a built config checks its method
        except ImportError as exc:
            raise ConfigError("method", f"the integrators package cannot be imported ({exc})") from None
        if self.noise > 0:
            if self.method not in SDE_METHODS:
                ode = " (an ODE method)" if self.method in self._methods("method") else ""
                raise ConfigError("method", f"with --noise D > 0 the run is an SDE: expected a stochastic method, got "
                                            f"{self.method!r}{ode}; valid: {', '.join(sorted(SDE_METHODS))} (default "
                                            f"{DEFAULT_SDE_METHOD})")
        elif self.method not in SDE_METHODS:
            self._check_method()
        if max(self.N) * self.n * _POPULATION_BYTES > available_memory():
            return  # no population of this size can be built; the run's cost check refuses it by name
        try:
            _check_stability(self.to_json())
        except ValueError as exc:
            reason = str(exc).removeprefix("dt: ")
            if reason.startswith("the coupling is stiff"):  # the strongest K, not the oscillators, is too fast
                raise ConfigError("k_max", f"K = {max(abs(self.k_min), abs(self.k_max)):g}: {reason} (in the study: "
                                           f"a smaller --k-max, --dt, or --method)") from None
            raise ConfigError("dt", f"{reason} (in the study: --dt, or --method)") from None

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
        """Whether kuramoto.theory covers the model at all (n = 2, or identical oscillators on any
        sphere, all-to-all); some combinations of noise and lag still have only K_c, or nothing."""
        return self.graph == "complete" and (self.n == 2 or self.width == 0)

    @property
    def stochastic(self) -> bool:
        return self.noise > 0



#: Bytes per oscillator and sphere dimension that building one population for the stability check
#: takes at most (frequencies, a float64 state and the field's temporaries: four float64 arrays).
_POPULATION_BYTES = 4 * 8


@functools.lru_cache(maxsize=64)
def _check_stability(config_json: str) -> None:
    """:func:`integrators.guards.check_stability` for the method, ``dt`` and each population of the
    run at its largest |K| (cached per config: tasks rebuild their config from JSON)."""
    from integrators import SDE_METHODS, get_sde_solver, get_solver  # torch-free at import (see above)
    from integrators.guards import check_stability  # torch-free at import (see above)

    from studies.sync import population  # torch-free at import (see above)

    config = types.SimpleNamespace(**json.loads(config_json))  # the validated values, not a new Config
    solver = get_sde_solver(config.method) if config.method in SDE_METHODS else get_solver(config.method)
    k = max(abs(config.k_min), abs(config.k_max))
    seeds = [config.seed] if config.quantile else range(config.seed, config.seed + config.seeds)
    for N in config.N:
        for seed in seeds:
            check_stability(solver, population.build_field(config, k, N, seed), config.dt)


#: What ``akorn sync`` runs (:mod:`studies.commands`).
STUDY = Study(config=Config, filename=FILENAME, runner="studies.sync.experiment", plots="studies.sync.plots",
              run_options=("scheduler", "workers", "overwrite"),
              cost="studies.sync.cost:check_cost")
