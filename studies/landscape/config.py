"""Parameters of the energy-landscape study (``akorn landscape``); torch-free at import.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

from studies.config import ConfigError, StudyConfig, param
from studies import units
from studies.protocol import Study

__all__ = ["STUDY", "Config", "FILENAME"]

FILENAME = "landscape.h5"


#: The paper preset: a workstation-sized landscape.
_PAPER = {"N": 256, "inits": 1024, "t_max": 200.0, "project_inits": 32, "grid": 80}


@dataclasses.dataclass(frozen=True)
class Config(StudyConfig):
    """Parameters of the energy-landscape study (defaults: the quick preset)."""

    study: ClassVar[str] = "landscape"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"quick": {}, "paper": _PAPER}

    coupling: Literal["dense", "lattice", "hopfield"] = param(
        "hopfield", "symmetric coupling: dense Gaussian J/√N, 2-D lattice glass, or Hopfield stored patterns")
    N: int = param(64, "number of oscillators (a square number for the lattice)")
    n: int = param(3, "sphere dimension of an oscillator")
    patterns: int = param(4, "stored patterns of the Hopfield coupling")
    stimulus: float = param(0.0, "strength |c_i| of a fixed random stimulus (0: none)", units=units.RATE)
    omega_width: float = param(0.0, "standard deviation of Gaussian natural frequencies (0: Ω = 0, the gradient "
                                    "flow; even n only)", units=units.ANGULAR_VELOCITY)
    inits: int = param(128, "random initial states (one batch)")
    t_max: float = param(50.0, "integration time", units=units.TIME)
    dt: float = param(0.1, "integrator step", units=units.TIME)
    sample_dt: float = param(0.5, "interval at which energy and r are recorded (a multiple of dt)",
                             units=units.TIME)
    method: str = param("rk4_normalized", "integrator (integrators.METHODS): rk4_normalized stays on the spheres "
                                          "by normalising; cf4 and rkmk4 exactly, at 3-5x the cost")
    tol: float = param(1e-4, "a run has converged when max_i |f_i(x)| is below this", units=units.RATE)
    cluster_distance: float = param(0.05, "final states closer than this mean geodesic distance (after alignment) "
                                          "are the same fixed point", units=units.RADIAN)
    project_inits: int = param(12, "trajectories kept for the 2-D projection plot")
    grid: int = param(50, "resolution of the energy contour on the projection plane")
    seed: int = param(0, "seed of the coupling, stimulus and initial states")
    dtype: Literal["float64", "float32"] = param("float64", "floating-point precision")
    device: str = param("cpu", "torch device")

    def validate(self) -> None:
        self._positive("N", "n", "patterns", "inits", "t_max", "dt", "sample_dt", "tol", "cluster_distance",
                       "project_inits", "grid")
        self._positive("stimulus", "omega_width", "seed", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected a sphere dimension >= 2, got {self.n}")
        if self.N < 2:
            raise ConfigError("N", f"expected at least 2 oscillators, got {self.N}")
        if self.coupling == "lattice" and (math.isqrt(self.N) ** 2 != self.N or self.N < 9):
            raise ConfigError("N", f"the 2-D lattice needs a square number >= 9 of oscillators, got {self.N}")
        if self.omega_width > 0 and self.n % 2:
            raise ConfigError("omega_width", f"natural frequencies rotate component pairs and need an even n, got "
                                             f"n={self.n}")
        for name, unit in (("sample_dt", "dt"), ("t_max", "sample_dt")):
            ratio = getattr(self, name) / getattr(self, unit)
            if not math.isfinite(ratio):
                raise ConfigError(unit, f"{getattr(self, unit):g} is too small: {name}/{unit} overflows")
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                raise ConfigError(name, f"must be a multiple of {unit}={getattr(self, unit):g}, got "
                                        f"{getattr(self, name):g}")
        if self.grid < 2:
            raise ConfigError("grid", f"expected at least 2 points, got {self.grid}")
        self._check_device()
        self._check_method()

    @property
    def symmetry(self) -> str:
        """The global symmetry modded out when comparing states: ``"O(n)"``, ``"sign"`` or ``"none"``."""
        if self.stimulus > 0 or self.omega_width > 0:
            return "none"
        return "sign" if self.coupling == "hopfield" else "O(n)"

    @property
    def num_samples(self) -> int:
        return int(round(self.t_max / self.sample_dt))


#: What ``akorn landscape`` runs (:mod:`studies.commands`).
STUDY = Study(config=Config, filename=FILENAME, runner="studies.landscape.experiment",
              plots="studies.landscape.plots", run_options=("overwrite",),
              cost="studies.landscape.cost:check_cost")
