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
from studies import storage
from studies.methods.config import REFERENCE, Config

__all__ = ["build_problem", "fit_order", "run"]


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


def fit_order(h: np.ndarray, error: np.ndarray, floor: float = 1e-11, ceiling: float = 0.3) -> float:
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
        The Dataset described in the module doc (dims ``method``, ``h``).
    """

    if not isinstance(config, Config):
        raise TypeError(f"config: expected an integrators Config, got {type(config).__name__}")
    path = Path(path) if path is not None else None
    if path is not None and path.exists() and not overwrite:
        existing = storage.open_dataset(path, study=Config.study)
        if existing.attrs.get("config") == config.to_json():
            return existing
        raise storage.StorageError(f"path: {str(path)!r} holds a run with a different config; pass --overwrite or "
                                   f"choose another --out")
    dtype = {"float64": torch.float64, "float32": torch.float32}[config.dtype]
    field64, x64 = build_problem(config)
    t = torch.tensor([0.0, config.t_end], dtype=torch.float64)
    with torch.no_grad():
        ref, ref_wall, _ = _timed(lambda: solve(field64, x64, t, method=REFERENCE), 1)
    x_ref = ref.x_final.double()
    ref_drift = float((torch.linalg.vector_norm(x_ref, dim=-1) - 1).abs().max())
    field, x0 = field64.to(dtype), x64.to(dtype)
    names = config.method_names
    M, L = len(names), config.levels
    shape = (M, L)
    error, drift = np.full(shape, np.nan), np.full(shape, np.nan)
    wall, cpu = np.full(shape, np.nan), np.full(shape, np.nan)
    h_eff, rtol = np.full(shape, np.nan), np.full(shape, np.nan)
    nfe, steps, rejected = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    status = np.full(shape, "success", dtype=object)
    with tqdm(total=M * L, desc="integrator runs", unit="run", disable=not progress) as bar:
        for i, name in enumerate(names):  # a loop over sweep points (method × h)
            cls = METHODS[name]
            over_budget = False
            for k in range(L):
                kwargs: dict[str, Any] = {}
                if cls.adaptive:
                    rtol[i, k] = config.tolerances[k]
                    if over_budget:
                        status[i, k] = f"skipped: more than max_steps={config.max_steps} steps at a looser tolerance"
                        bar.update(1)
                        continue
                    kwargs.update(rtol=float(rtol[i, k]), atol=float(rtol[i, k]))
                    if "max_steps" in inspect.signature(cls.__init__).parameters:
                        kwargs["options"] = {"max_steps": config.max_steps}
                else:
                    kwargs["dt"] = float(config.steps[k])
                try:
                    # A method's warnings (torchdiffeq's "functional iteration did not converge")
                    # are results of the comparison: recorded in the status, not raised.
                    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        sol, wall[i, k], cpu[i, k] = _timed(
                            lambda kw=kwargs, nm=name: solve(field, x0, t, method=nm, save_states=False, **kw),
                            config.repeats)
                except (SolverError, ValueError, RuntimeError) as exc:
                    status[i, k] = f"failed: {type(exc).__name__}: {exc}"[:300]
                    over_budget = over_budget or "max_steps" in str(exc)
                    bar.update(1)
                    continue
                x = sol.x_final.double()
                error[i, k] = float(torch.linalg.vector_norm(x - x_ref, dim=-1).max())
                drift[i, k] = float((torch.linalg.vector_norm(x, dim=-1) - 1).abs().max())
                nfe[i, k] = int(sol.stats.get("nfe", 0))
                steps[i, k] = int(sol.stats.get("steps", 0))
                rejected[i, k] = int(sol.stats.get("rejected", 0))
                accepted = int(sol.stats.get("accepted", steps[i, k] - rejected[i, k])) or steps[i, k]
                h_eff[i, k] = config.t_end / accepted if accepted else np.nan
                status[i, k] = sol.status
                over_budget = cls.adaptive and steps[i, k] > config.max_steps / 3
                if caught:
                    status[i, k] = f"{sol.status}; warning: {caught[0].message}"[:300]
                if not np.isfinite(error[i, k]):
                    status[i, k] = "non-finite result"
                bar.update(1)
    floor = 1e-10 if config.dtype == "float64" else 1e-5
    observed = np.array([fit_order(h_eff[i], error[i], floor=floor) if not METHODS[m].adaptive else np.nan
                         for i, m in enumerate(names)])
    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "error": (("method", "h"), error, {**one, "long_name": "max_i |x_i(t_end) − x_ref,i(t_end)| against "
                                                                  "scipy_reference"}),
            "drift": (("method", "h"), drift, {**one, "long_name": "max_i | |x_i(t_end)| − 1 | (distance off the "
                                                                  "spheres)"}),
            "wall_time": (("method", "h"), wall, {"units": "s", "long_name": f"wall time of one solve (median of "
                                                                             f"{config.repeats})"}),
            "cpu_time": (("method", "h"), cpu, {"units": "s", "long_name": "process CPU time of one solve (median)"}),
            "nfe": (("method", "h"), nfe, {**one, "long_name": "field evaluations"}),
            "steps": (("method", "h"), steps, {**one, "long_name": "attempted steps"}),
            "rejected": (("method", "h"), rejected, {**one, "long_name": "rejected steps"}),
            "status": (("method", "h"), status.astype(str).astype(object), {"long_name": "solver status"}),
            "order": (("method",), np.array([METHODS[m].order for m in names], dtype=np.int64),
                      {**one, "long_name": "nominal order of the method"}),
            "order_observed": (("method",), observed, {**one, "long_name": "fitted slope of log error vs log h "
                                                                           "(fixed-step methods)"}),
            "adaptive": (("method",), np.array([int(METHODS[m].adaptive) for m in names], dtype=np.int8),
                         {**one, "long_name": "1 for an adaptive method (h index = tolerance level)"}),
            "stays_on_sphere": (("method",), np.array([int(METHODS[m].stays_on_sphere) for m in names],
                                                      dtype=np.int8),
                                {**one, "long_name": "1 if the method keeps |x_i| = 1 by construction"}),
            "reference_drift": ((), ref_drift, {**one, "long_name": "drift of the reference solution"}),
            "reference_wall_time": ((), ref_wall, {"units": "s", "long_name": "wall time of the reference solve"}),
        },
        coords={
            "method": ("method", np.asarray(names, dtype=object), {"long_name": "integration method"}),
            "h": ("h", config.steps, {**one, "long_name": "nominal step size of fixed-step methods"}),
            "h_effective": (("method", "h"), h_eff, {**one, "long_name": "mean accepted step t_end/accepted steps"}),
            "rtol": (("method", "h"), rtol, {**one, "long_name": "rtol = atol of adaptive methods (NaN for "
                                                                 "fixed-step ones)"}),
        },
    )
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, reference=REFERENCE,
                                    reference_rtol=1e-12, timing="sequential, in this process")
    if path is not None:
        storage.write_dataset(ds, path)
        ds = storage.open_dataset(path, study=Config.study)
    return ds
