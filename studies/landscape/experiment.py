"""Running the landscape study: many random initial states relax under the flow; the final states are
clustered into fixed points and their energies, basins and a 2-D projection are stored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

import kuramoto as ku
from integrators import solve
from studies import storage, units
from studies.landscape.config import Config
from studies.landscape.model import _torch_dtype, build_field, cluster_states

__all__ = ["run"]


def run(config: Config, *, path: str | Path | None = None, progress: bool = True,
        overwrite: bool = False) -> xr.Dataset:
    """Run the landscape study.

    Args:
        config: the study parameters.
        path: result file (written atomically when the run is complete); a complete file of
            the same config is returned without recomputing.
        progress: tqdm bar over simulated time.
        overwrite: replace a file at ``path`` that holds a different config.

    Returns:
        The Dataset described in the module doc.
    """

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a landscape Config, got {type(config).__name__}")
    finished = storage.finished_result(path, config, Config.study, overwrite=overwrite)
    if finished is not None:
        return finished
    wall0 = time.perf_counter()
    field = build_field(config)
    dtype = _torch_dtype(config.dtype)
    g = torch.Generator().manual_seed(config.seed + 1)
    x = ku.random_states(config.inits, config.N, n=config.n, generator=g, dtype=torch.float64).to(dtype=dtype,
                                                                                                  device=config.device)
    S = config.num_samples
    times = config.sample_dt * np.arange(S + 1)
    energy = np.empty((S + 1, config.inits))
    r = np.empty((S + 1, config.inits))
    P = min(config.project_inits, config.inits)
    kept = np.empty((S + 1, P, config.N, config.n))
    # Integrate in segments so that only the projected trajectories' states are kept.
    per_segment = max(1, min(S, int(2e7 // max(1, config.inits * config.N * config.n))))
    stats = {"nfe": 0, "steps": 0, "rejected": 0}
    with torch.no_grad(), tqdm(total=config.t_max, desc="simulated time", unit="t", disable=not progress) as bar:
        energy[0] = field.energy(x).double().cpu().numpy()
        r[0] = ku.order_parameter(x).double().cpu().numpy()
        kept[0] = x[:P].double().cpu().numpy()
        for a in range(0, S, per_segment):
            b = min(S, a + per_segment)
            t = torch.as_tensor(times[a:b + 1], dtype=torch.float64)
            sol = solve(field, x, t, method=config.method, dt=config.dt, save_states=True,
                        observe={"energy": field.energy, "r": ku.order_parameter})
            energy[a + 1:b + 1] = sol.observed["energy"][1:].double().cpu().numpy()
            r[a + 1:b + 1] = sol.observed["r"][1:].double().cpu().numpy()
            kept[a + 1:b + 1] = sol.xs[1:, :P].double().cpu().numpy()
            x = sol.xs[-1]
            for key in stats:
                stats[key] += int(sol.stats.get(key, 0))
            bar.update(float(times[b] - times[a]))
        residual = torch.linalg.vector_norm(field(0.0, x), dim=-1).amax(-1).double().cpu().numpy()
    ds = xr.merge([_basins(config, x, energy[-1], r[-1], residual),
                   _trajectories(config, field, times, energy, r, kept, stats)], join="exact", compat="no_conflicts")
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, symmetry=config.symmetry,
                                    wall_time=round(time.perf_counter() - wall0, 3),
                                    units_convention=units.CONVENTION)
    if path is not None:
        storage.write_dataset(ds, path)
        ds = storage.open_dataset(path, study=Config.study)
    return ds


_RATE = {"units": units.RATE}
_ONE = {"units": units.DIMENSIONLESS}


def _basins(config: Config, x: Any, final_energy: np.ndarray, final_r: np.ndarray,
            residual: np.ndarray) -> xr.Dataset:
    """Fixed points and their basins, from the converged runs only (dims ``init``, ``minimum``).

    A run that has not converged (``residual >= tol``) did not end at a fixed point: it is in no
    basin (``minimum_index = -1``) and counted in ``unconverged_runs`` instead, so the basin counts
    add up to ``converged_runs``.
    """
    converged = residual < config.tol
    idx = np.flatnonzero(converged)
    local = cluster_states(x[torch.as_tensor(idx)].double(), config.cluster_distance, config.symmetry) if idx.size \
        else np.zeros(0, dtype=np.int64)
    C = int(local.max()) + 1 if local.size else 0
    # Fixed points sorted by energy (lowest first); each represented by its lowest-energy member.
    mean_energy = np.array([final_energy[idx[local == c]].mean() for c in range(C)])  # a loop over fixed points
    rank = np.empty(C, dtype=np.int64)
    rank[np.argsort(mean_energy, kind="stable")] = np.arange(C)
    labels = np.full(config.inits, -1, dtype=np.int64)
    labels[idx] = rank[local]
    counts = np.bincount(labels[idx], minlength=C)
    reps = np.array([np.flatnonzero(labels == c)[np.argmin(final_energy[labels == c])] for c in range(C)],
                    dtype=np.int64)
    x_np = x.double().cpu().numpy()
    return xr.Dataset(
        {
            "energy_final": (("init",), final_energy, {**_RATE, "long_name": "energy at the end of the run"}),
            "residual": (("init",), residual, {**_RATE, "long_name": "max_i |f_i(x)| at the end of the run"}),
            "converged": (("init",), converged.astype(np.int8), {**_ONE, "long_name": "1 if the run reached a fixed "
                                                                                       "point (residual below tol)"}),
            "minimum_index": (("init",), labels, {**_ONE, "long_name": "index of the fixed point the run reached",
                                                  "comment": "-1: the run did not converge, so it is in no basin"}),
            "converged_runs": ((), np.int64(idx.size), {**_ONE, "long_name": "runs that reached a fixed point (the "
                                                                             "basin counts add up to this)"}),
            "unconverged_runs": ((), np.int64(config.inits - idx.size),
                                 {**_ONE, "long_name": "runs still moving at t_max (residual >= tol), in no basin"}),
            "minimum_energy": (("minimum",), final_energy[reps], {**_RATE, "long_name": "energy of the fixed point"}),
            "basin_size": (("minimum",), counts / max(idx.size, 1),
                           {**_ONE, "long_name": "fraction of the converged runs that end at the fixed point"}),
            "basin_count": (("minimum",), counts, {**_ONE, "long_name": "converged runs ending at the fixed point"}),
            "minimum_r": (("minimum",), final_r[reps], {**_ONE, "long_name": "order parameter at the fixed point"}),
            "minimum_residual": (("minimum",), residual[reps], {**_RATE, "long_name": "max_i |f_i| at the "
                                                                                      "representative state"}),
            "minimum_state": (("minimum", "node", "component"), x_np[reps].reshape(C, config.N, config.n),
                              {**_ONE, "long_name": "representative state of the fixed point (its lowest-energy "
                                                    "run)"}),
        },
        coords={
            "init": ("init", np.arange(config.inits), {**_ONE, "long_name": "initial state"}),
            "minimum": ("minimum", np.arange(C), {**_ONE, "long_name": "fixed point, by increasing energy"}),
        },
    )


def _projection(config: Config, field: Any, kept: np.ndarray) -> dict[str, Any]:
    """The kept trajectories on their two leading principal components and the energy on that plane."""
    T, P = kept.shape[:2]
    flat = kept.reshape(T * P, -1)
    mean = flat.mean(0)
    _, sv, Vt = np.linalg.svd(flat - mean, full_matrices=False)
    comps = Vt[:2] if Vt.shape[0] >= 2 else np.vstack([Vt, np.zeros_like(Vt)])[:2]
    proj = ((flat - mean) @ comps.T).reshape(T, P, 2)
    lo, hi = proj.reshape(-1, 2).min(0), proj.reshape(-1, 2).max(0)
    pad = 0.15 * np.maximum(hi - lo, 1e-6)
    ga = np.linspace(lo[0] - pad[0], hi[0] + pad[0], config.grid)
    gb = np.linspace(lo[1] - pad[1], hi[1] + pad[1], config.grid)
    A, B = np.meshgrid(ga, gb)  # [grid_b, grid_a]
    plane = mean + A.reshape(-1, 1) * comps[0] + B.reshape(-1, 1) * comps[1]
    plane_t = torch.as_tensor(plane.reshape(-1, config.N, config.n), dtype=_torch_dtype(config.dtype),
                              device=config.device)
    with torch.no_grad():
        contour = field.energy(ku.normalize(plane_t)).double().cpu().numpy().reshape(A.shape)
    explained = (sv[:2] ** 2) / max((sv ** 2).sum(), 1e-300)
    return {"proj": proj, "explained": explained, "ga": ga, "gb": gb, "contour": contour}


def _trajectories(config: Config, field: Any, times: np.ndarray, energy: np.ndarray, r: np.ndarray,
                  kept: np.ndarray, stats: dict[str, int]) -> xr.Dataset:
    """Energy and r along every run, the Lyapunov check, the 2-D projection and the solver statistics."""
    dE = np.diff(energy, axis=0)
    scale = max(1.0, float(np.abs(energy).max()))
    max_increase = float(dE.max()) if dE.size else 0.0
    pr = _projection(config, field, kept)
    return xr.Dataset(
        {
            "energy_t": (("time", "init"), energy, {**_RATE, "long_name": "energy E(x(t))"}),
            "r_t": (("time", "init"), r, {**_ONE, "long_name": "order parameter r(t)"}),
            "max_energy_increase": ((), max_increase, {**_RATE, "long_name": "largest increase of E between samples "
                                                                             "(<= 0 for a gradient flow)"}),
            "energy_monotone": ((), np.int8(max_increase <= 1e-9 * scale),
                                {**_ONE, "long_name": "1 if E never increased (up to round-off 1e-9·max|E|)"}),
            "projection_t": (("time", "traj", "pc"), pr["proj"], {**_ONE, "long_name": "trajectory projected on the "
                                                                                        "two leading principal "
                                                                                        "components"}),
            "explained_variance": (("pc",), pr["explained"], {**_ONE, "long_name": "fraction of trajectory variance "
                                                                                   "on the component"}),
            "contour_energy": (("pc_b", "pc_a"), pr["contour"], {**_RATE, "long_name": "energy of the normalised "
                                                                                       "state on the projection "
                                                                                       "plane"}),
            "solver_nfe": ((), stats["nfe"], {**_ONE, "long_name": "solver field evaluations"}),
            "solver_steps": ((), stats["steps"], {**_ONE, "long_name": "solver steps"}),
        },
        coords={
            "time": ("time", times, {"units": units.TIME, "axis": "T",
                                     "long_name": "simulated time, in the unit the equations are written in"}),
            "traj": ("traj", np.arange(kept.shape[1]), {**_ONE, "long_name": "initial state of a projected "
                                                                             "trajectory"}),
            "pc": ("pc", np.array([1, 2]), {**_ONE, "long_name": "principal component"}),
            "pc_a": ("pc_a", pr["ga"], {**_ONE, "long_name": "coordinate along principal component 1"}),
            "pc_b": ("pc_b", pr["gb"], {**_ONE, "long_name": "coordinate along principal component 2"}),
        },
    )
