"""Running the integrator comparison: every method at a ladder of step sizes or tolerances against
the float64 SciPy reference (error, cost, drift off the spheres, fitted order).
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

import kuramoto as ku
from integrators import METHODS, SolverError, solve
from studies import storage, units
from studies.methods.config import REFERENCE, Config, upgrade

__all__ = ["FIT_CEILING", "build_problem", "fit_order", "order_note", "run"]


def build_problem(config: Config):
    """``(field, x0)``: the test field and a batch of initial states (float64)."""

    if not isinstance(config, Config):
        raise TypeError(f"config: expected an integrators Config, got {type(config).__name__}")
    g = torch.Generator().manual_seed(config.seed)
    N, n = config.N, config.n
    J = config.coupling * torch.randn(N, N, generator=g, dtype=torch.float64) / math.sqrt(N)
    omega = None
    if config.omega_width > 0:
        omega = ku.Frequencies(ku.gaussian(N, config.omega_width, generator=g, dtype=torch.float64))
    stimulus = None
    if config.stimulus > 0:
        stimulus = config.stimulus * ku.random_states(N, n=n, generator=g, dtype=torch.float64)
    field = ku.KuramotoField(ku.Dense(J), omega=omega, stimulus=stimulus)
    x0 = ku.random_states(config.batch, N, n=n, generator=g, dtype=torch.float64)
    return field, x0


#: Errors inside this range enter the order fit: below it round-off, above it the steps are too
#: coarse for the asymptotic rate (a distance between unit vectors is at most 2).
FIT_CEILING = 0.3


def fit_order(h: np.ndarray, error: np.ndarray, floor: float = 1e-11, ceiling: float = FIT_CEILING) -> float:
    """Least-squares slope of ``log error`` vs ``log h`` over the points with ``floor < error < ceiling``.

    Points at round-off (below ``floor``) or outside the asymptotic range (above ``ceiling``)
    are left out; NaN if fewer than two remain.
    """
    h, error = np.asarray(h, dtype=float), np.asarray(error, dtype=float)
    if h.shape != error.shape:
        raise ValueError(f"error: expected the shape of h {h.shape}, got {error.shape}")
    ok = np.isfinite(error) & np.isfinite(h) & (error > floor) & (error < ceiling) & (h > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h[ok]), np.log(error[ok]), 1)[0])


def _timed(fn, repeats: int, slow: float = 0.5) -> tuple[Any, float, float]:
    """``fn()``'s result and its median wall and CPU time over ``repeats`` calls (one call if
    it takes longer than ``slow`` seconds)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        if walls[-1] > slow:
            break
    return out, float(np.median(walls)), float(np.median(cpus))


class _Runs:
    """The measurements of every (method, step size or tolerance) run, ``[method, level]`` arrays."""

    def __init__(self, methods: int, levels: int) -> None:
        shape = (methods, levels)
        self.error, self.drift = np.full(shape, np.nan), np.full(shape, np.nan)
        self.wall, self.cpu = np.full(shape, np.nan), np.full(shape, np.nan)
        self.h_eff, self.rtol = np.full(shape, np.nan), np.full(shape, np.nan)
        self.nfe, self.steps, self.rejected = (np.zeros(shape, dtype=np.int64) for _ in range(3))
        self.status = np.full(shape, "success", dtype=object)

    def method(self, i: int, name: str, config: Config, solve_with: Any, x_ref: torch.Tensor, bar: Any) -> None:
        """Run method ``name`` (row ``i``) at every level; adaptive ones stop once over the step budget."""
        cls = METHODS[name]
        over_budget = False
        for k in range(config.levels):
            kwargs: dict[str, Any] = {}
            if cls.adaptive:
                self.rtol[i, k] = config.tolerances[k]
                if over_budget:
                    self.status[i, k] = f"skipped: more than max_steps={config.max_steps} steps at a looser tolerance"
                    bar.update(1)
                    continue
                kwargs.update(rtol=float(self.rtol[i, k]), atol=float(self.rtol[i, k]))
                if "max_steps" in inspect.signature(cls.__init__).parameters:
                    kwargs["options"] = {"max_steps": config.max_steps}
            else:
                kwargs["dt"] = float(config.steps[k])
            over_budget = self._one(i, k, config, cls, lambda kw=kwargs: solve_with(kw), x_ref)
            bar.update(1)

    def _one(self, i: int, k: int, config: Config, cls: Any, solve_once: Any, x_ref: torch.Tensor) -> bool:
        """One timed solve; returns whether an adaptive method went over its step budget."""
        try:
            # A method's warnings (torchdiffeq's "functional iteration did not converge")
            # are results of the comparison: recorded in the status, not raised.
            with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                sol, self.wall[i, k], self.cpu[i, k] = _timed(solve_once, config.repeats)
        except (SolverError, ValueError, RuntimeError) as exc:
            self.status[i, k] = f"failed: {type(exc).__name__}: {exc}"[:300]
            return "max_steps" in str(exc)
        x = sol.x_final.double()
        self.error[i, k] = float(torch.linalg.vector_norm(x - x_ref, dim=-1).max())
        self.drift[i, k] = float((torch.linalg.vector_norm(x, dim=-1) - 1).abs().max())
        self.nfe[i, k] = int(sol.stats.get("nfe", 0))
        self.steps[i, k] = int(sol.stats.get("steps", 0))
        self.rejected[i, k] = int(sol.stats.get("rejected", 0))
        accepted = int(sol.stats.get("accepted", self.steps[i, k] - self.rejected[i, k])) or self.steps[i, k]
        self.h_eff[i, k] = config.t_end / accepted if accepted else np.nan
        self.status[i, k] = sol.status
        if caught:
            self.status[i, k] = f"{sol.status}; warning: {caught[0].message}"[:300]
        if not np.isfinite(self.error[i, k]):
            self.status[i, k] = "non-finite result"
        return bool(cls.adaptive and self.steps[i, k] > config.max_steps / 3)


def _fit_floor(config: Config) -> float:
    return 1e-10 if config.dtype == "float64" else 1e-5


def order_note(h: np.ndarray, error: np.ndarray, *, adaptive: bool, floor: float, ceiling: float = FIT_CEILING) -> str:
    """Why :func:`fit_order` gives a slope or NaN for one method's errors ``[levels]``: which step
    sizes it used, or which ones it left out and for what reason."""
    if adaptive:
        return "not fitted: adaptive method (its h index is a tolerance level, not a step size)"
    h, error = np.asarray(h, dtype=float), np.asarray(error, dtype=float)
    bad = ~(np.isfinite(error) & np.isfinite(h))
    above, below = ~bad & (error >= ceiling), ~bad & (error <= floor)
    used = int((~bad & ~above & ~below).sum())
    window = f"an error in ({floor:g}, {ceiling:g})"
    if used >= 2:
        return f"fitted over {used} of {error.size} step sizes with {window}"
    reasons = [f"{int(bad.sum())} failed or skipped (see status)"] if bad.any() else []
    if above.any():
        left = " (errors above 2, the largest distance between unit vectors: the state left the spheres)" \
            if (error[above] > 2).any() else ""
        reasons.append(f"{int(above.sum())} at or above {ceiling:g}: the steps are too coarse for the method to "
                       f"reach its asymptotic rate{left}; smaller steps (more --levels, smaller --h-max) reach it")
    if below.any():
        reasons.append(f"{int(below.sum())} at or below {floor:g}: round-off")
    return (f"not fitted (NaN): {used} of {error.size} step sizes have {window}, two are needed; "
            + "; ".join(reasons))


def _per_run_vars(config: Config, runs: _Runs) -> dict[str, Any]:
    """The ``[solver, h]`` measurements with their units and what a NaN means."""
    dims = ("solver", "h")
    failed = "NaN: the run failed or was skipped (its status says why)"
    one = {"units": units.DIMENSIONLESS}
    return {
        "error": (dims, runs.error, {**one, "long_name": f"max_i |x_i(t_end) - x_ref,i(t_end)| against {REFERENCE} "
                                                         f"(distance between unit vectors, at most 2)",
                                     "comment": failed}),
        "drift": (dims, runs.drift, {**one, "long_name": "max_i | |x_i(t_end)| - 1 | (distance off the spheres)",
                                     "comment": failed}),
        "wall_time": (dims, runs.wall, {"units": units.SECONDS, "long_name": f"wall time of one solve (median of "
                                                                             f"{config.repeats})", "comment": failed}),
        "cpu_time": (dims, runs.cpu, {"units": units.SECONDS, "long_name": "process CPU time of one solve (median)",
                                      "comment": failed}),
        "nfe": (dims, runs.nfe, {**one, "long_name": "field evaluations", "comment": "0 for a failed or skipped run"}),
        "steps": (dims, runs.steps, {**one, "long_name": "attempted steps",
                                     "comment": "0 for a failed or skipped run"}),
        "rejected": (dims, runs.rejected, {**one, "long_name": "rejected steps"}),
        "status": (dims, runs.status.astype(str).astype(object), {"long_name": "solver status"}),
    }


def _dataset(config: Config, names: list[str], runs: _Runs, ref_drift: float, ref_wall: float) -> xr.Dataset:
    """The comparison as a Dataset (dims ``solver``, ``h``) with the fitted orders and why a fit is missing."""
    floor = _fit_floor(config)
    adaptive = [METHODS[m].adaptive for m in names]
    observed = np.array([np.nan if a else fit_order(runs.h_eff[i], runs.error[i], floor=floor, ceiling=FIT_CEILING)
                         for i, a in enumerate(adaptive)])
    notes = np.array([order_note(runs.h_eff[i], runs.error[i], adaptive=a, floor=floor)
                      for i, a in enumerate(adaptive)], dtype=object)
    one = {"units": units.DIMENSIONLESS}
    return xr.Dataset(
        {
            **_per_run_vars(config, runs),
            "order": (("solver",), np.array([METHODS[m].order for m in names], dtype=np.int64),
                      {**one, "long_name": "nominal order of the method"}),
            "order_observed": (("solver",), observed, {**one, "long_name": "fitted slope of log error vs log h "
                                                                           "(fixed-step methods)",
                                                       "comment": "NaN: not fitted; order_note says why (an adaptive "
                                                                  "method, or fewer than two step sizes with an "
                                                                  "error inside the fit range)"}),
            "order_note": (("solver",), notes, {"long_name": "which errors the order fit used, or why there is none"}),
            "adaptive": (("solver",), np.array([int(a) for a in adaptive], dtype=np.int8),
                         {**one, "long_name": "1 for an adaptive method (h index = tolerance level)"}),
            "stays_on_sphere": (("solver",), np.array([int(METHODS[m].stays_on_sphere) for m in names],
                                                      dtype=np.int8),
                                {**one, "long_name": "1 if the method keeps |x_i| = 1 by construction"}),
            "reference_drift": ((), ref_drift, {**one, "long_name": "drift of the reference solution"}),
            "reference_wall_time": ((), ref_wall, {"units": units.SECONDS,
                                                   "long_name": "wall time of the reference solve"}),
        },
        coords={
            "solver": ("solver", np.asarray(names, dtype=object),
                       {"long_name": "integration method (a name in integrators.METHODS)"}),
            "h": ("h", config.steps, {"units": units.TIME, "long_name": "nominal step size of fixed-step methods "
                                                                        "(for adaptive ones the tolerance level)"}),
            "h_effective": (("solver", "h"), runs.h_eff, {"units": units.TIME, "long_name": "mean accepted step "
                                                                                              "t_end / accepted steps",
                                                          "comment": "NaN: the run failed or was skipped"}),
            "rtol": (("solver", "h"), runs.rtol, {**one, "long_name": "rtol = atol of adaptive methods",
                                                  "comment": "NaN: a fixed-step method (it has no tolerance)"}),
        },
    )


def run(config: Config, *, path: str | Path | None = None, progress: bool = True,
        overwrite: bool = False) -> xr.Dataset:
    """Run the comparison.

    Args:
        config: the study parameters.
        path: result file (written atomically when complete); a complete file of the same
            config is returned without recomputing.
        progress: a tqdm bar over the runs.
        overwrite: replace a file at ``path`` that holds a different config.

    Returns:
        The Dataset described in the module doc (dims ``solver``, ``h``).
    """

    if not isinstance(config, Config):
        raise TypeError(f"config: expected an integrators Config, got {type(config).__name__}")
    finished = storage.finished_result(path, config, Config.study, overwrite=overwrite)
    if finished is not None:
        return upgrade(finished)
    dtype = {"float64": torch.float64, "float32": torch.float32}[config.dtype]
    field64, x64 = build_problem(config)
    t = torch.tensor([0.0, config.t_end], dtype=torch.float64)
    with torch.no_grad():
        ref, ref_wall, _ = _timed(lambda: solve(field64, x64, t, method=REFERENCE), 1)
    x_ref = ref.x_final.double()
    ref_drift = float((torch.linalg.vector_norm(x_ref, dim=-1) - 1).abs().max())
    field, x0 = field64.to(dtype), x64.to(dtype)
    names = config.method_names
    runs = _Runs(len(names), config.levels)
    with tqdm(total=len(names) * config.levels, desc="integrator runs", unit="run", disable=not progress) as bar:
        for i, name in enumerate(names):  # a loop over sweep points (method × h)
            runs.method(i, name, config, lambda kw, nm=name: solve(field, x0, t, method=nm, save_states=False, **kw),
                        x_ref, bar)
    ds = _dataset(config, names, runs, ref_drift, ref_wall)
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, reference=REFERENCE,
                                    reference_rtol=1e-12, timing="sequential, in this process",
                                    order_fit_range=[_fit_floor(config), FIT_CEILING],
                                    units_convention=units.CONVENTION)
    if path is not None:
        storage.write_dataset(ds, path)
        ds = storage.open_dataset(path, study=Config.study)
    return ds
