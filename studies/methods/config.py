"""Parameters of the integrator comparison (``akorn integrators``); torch-free at import.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np

from studies.config import ConfigError, StudyConfig, param
from studies import units
from studies.protocol import Study

__all__ = ["STUDY", "Config", "FILENAME", "REFERENCE", "RENAMED_DIMS", "upgrade"]

FILENAME = "integrators.h5"


REFERENCE = "scipy_reference"

#: Dimensions renamed since earlier result files: ``method`` is a keyword of ``Dataset.sel``, so
#: ``ds.sel(method="rk4")`` silently selected nothing and returned every method.
RENAMED_DIMS = {"method": "solver"}


def upgrade(ds: Any) -> Any:
    """An integrators Dataset in the current layout: an earlier file's ``method`` dimension is
    renamed ``solver`` (the file itself is not touched)."""
    old = {k: v for k, v in RENAMED_DIMS.items() if k in ds.dims and v not in ds.dims}
    return ds.rename(old) if old else ds


#: The paper preset: more oscillators, levels and repeats.
_PAPER = {"N": 256, "batch": 8, "t_end": 10.0, "levels": 8, "repeats": 5, "max_steps": 100000}


@dataclasses.dataclass(frozen=True)
class Config(StudyConfig):
    """Parameters of the integrator comparison (defaults: the quick preset)."""

    study: ClassVar[str] = "integrators"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"quick": {}, "paper": _PAPER}

    methods: tuple[str, ...] = param(("all",), "methods to compare (names from integrators.METHODS), or 'all'",
                                     metavar="METHOD")
    N: int = param(32, "number of oscillators")
    n: int = param(2, "sphere dimension (natural frequencies need an even n; odd n runs with Ω = 0)")
    batch: int = param(4, "random initial states integrated together")
    coupling: float = param(1.0, "scale of the dense Gaussian coupling J_ij ~ coupling·N(0, 1/N)",
                            units=units.RATE)
    omega_width: float = param(1.0, "standard deviation of the Gaussian natural frequencies (0: Ω = 0)",
                               units=units.ANGULAR_VELOCITY)
    stimulus: float = param(0.5, "strength |c_i| of a random stimulus (0: none)", units=units.RATE)
    levels: int = param(5, "step sizes h_max/2^k (and tolerances rtol_max·10^-k), k = 0 .. levels-1")
    t_end: float = param(5.0, "integration time", units=units.TIME)
    h_max: float = param(0.5, "largest step size of fixed-step methods", units=units.TIME)
    rtol_max: float = param(1e-3, "loosest tolerance (rtol = atol) of adaptive methods", units="1")
    repeats: int = param(3, "timed repetitions per run (the median is kept; a run slower than 0.5 s is timed once)")
    max_steps: int = param(2000, "step budget of an adaptive run; tighter tolerances of a method that exceeds it "
                                 "are skipped")
    seed: int = param(0, "seed of the problem and the initial states")
    dtype: Literal["float64", "float32"] = param("float64", "floating-point precision of the compared runs")

    def validate(self) -> None:
        self._positive("N", "n", "batch", "t_end", "h_max", "levels", "rtol_max", "repeats", "max_steps")
        self._positive("coupling", "omega_width", "stimulus", "seed", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected a sphere dimension >= 2, got {self.n}")
        if self.omega_width > 0 and self.n % 2:
            raise ConfigError("omega_width", f"natural frequencies need an even n; use --omega-width 0 with n={self.n}")
        if self.h_max > self.t_end:
            raise ConfigError("h_max", f"must not exceed t_end={self.t_end:g}, got {self.h_max:g}")
        if self.rtol_max >= 1:
            raise ConfigError("rtol_max", f"expected a tolerance below 1, got {self.rtol_max:g}")
        METHODS = self._methods("methods")
        if "all" in self.methods and len(self.methods) > 1:
            raise ConfigError("methods", "give 'all' alone or a list of method names")
        unknown = [m for m in self.methods if m != "all" and m not in METHODS]
        if unknown:
            raise ConfigError("methods", f"unknown method {unknown[0]!r}; valid: all, {', '.join(sorted(METHODS))}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError("methods", f"expected distinct names, got {self.methods}")

    @property
    def method_names(self) -> list[str]:
        """The compared methods (the reference excluded), in registry order."""
        names = list(self._methods("methods")) if self.methods == ("all",) else list(self.methods)
        return [m for m in names if m != REFERENCE]

    @property
    def steps(self) -> np.ndarray:
        """Nominal step sizes ``[levels]``."""
        return self.h_max / 2.0 ** np.arange(self.levels)

    @property
    def tolerances(self) -> np.ndarray:
        """Tolerances of adaptive methods ``[levels]``."""
        return self.rtol_max * 10.0 ** -np.arange(self.levels, dtype=float)


#: What ``akorn integrators`` runs (:mod:`studies.commands`).
STUDY = Study(config=Config, filename=FILENAME, runner="studies.methods.experiment", plots="studies.methods.plots",
              run_options=("overwrite",),
              cost="studies.methods.cost:check_cost")
