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
from studies import storage
from studies.landscape.config import Config
from studies.landscape.model import _torch_dtype, build_field, cluster_states

__all__ = ["run"]


"""The Hopfield coupling class (a :class:`kuramoto.couplings.AbstractCoupling`); created on first use."""


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
    labels = cluster_states(x.double(), config.cluster_distance, config.symmetry)
    ds = _assemble(config, field, x, times, energy, r, kept, residual, labels, stats)
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, symmetry=config.symmetry,
                                    wall_time=round(time.perf_counter() - wall0, 3))
    if path is not None:
        storage.write_dataset(ds, path)
        ds = storage.open_dataset(path, study=Config.study)
    return ds


def _assemble(config: Config, field: Any, x: Any, times: np.ndarray, energy: np.ndarray, r: np.ndarray,
              kept: np.ndarray, residual: np.ndarray, labels: np.ndarray, stats: dict[str, int]) -> xr.Dataset:
    C = int(labels.max()) + 1
    final_energy = energy[-1]
    # Fixed points sorted by energy (lowest first); each represented by its lowest-energy member.
    mean_energy = np.array([final_energy[labels == c].mean() for c in range(C)])  # loop over fixed points
    order = np.argsort(mean_energy, kind="stable")
    rank = np.empty(C, dtype=np.int64)
    rank[order] = np.arange(C)
    labels = rank[labels]
    counts = np.bincount(labels, minlength=C)
    reps = np.array([np.flatnonzero(labels == c)[np.argmin(final_energy[labels == c])] for c in range(C)])
    x_np = x.double().cpu().numpy()
    converged = (residual < config.tol).astype(np.int8)
    dE = np.diff(energy, axis=0)
    scale = max(1.0, float(np.abs(energy).max()))
    max_increase = float(dE.max()) if dE.size else 0.0
    monotone = int(max_increase <= 1e-9 * scale)
    # 2-D projection: principal components of the kept trajectories (flattened states).
    T, P = kept.shape[:2]
    flat = kept.reshape(T * P, -1)
    mean = flat.mean(0)
    _, sv, Vt = np.linalg.svd(flat - mean, full_matrices=False)
    comps = Vt[:2] if Vt.shape[0] >= 2 else np.vstack([Vt, np.zeros_like(Vt)])[:2]
    proj = ((flat - mean) @ comps.T).reshape(T, P, 2)
    explained = (sv[:2] ** 2) / max((sv ** 2).sum(), 1e-300)
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
    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "energy_t": (("time", "init"), energy, {**one, "long_name": "energy E(x(t))"}),
            "r_t": (("time", "init"), r, {**one, "long_name": "order parameter r(t)"}),
            "energy_final": (("init",), final_energy, {**one, "long_name": "energy at the end of the run"}),
            "residual": (("init",), residual, {**one, "long_name": "max_i |f_i(x)| at the end of the run"}),
            "converged": (("init",), converged, {**one, "long_name": "1 if the run reached a fixed point (residual "
                                                                      "below tol)"}),
            "minimum_index": (("init",), labels, {**one, "long_name": "index of the fixed point the run reached"}),
            "minimum_energy": (("minimum",), final_energy[reps], {**one, "long_name": "energy of the fixed point"}),
            "basin_size": (("minimum",), counts / config.inits, {**one, "long_name": "fraction of initial states "
                                                                                       "ending at the fixed point"}),
            "basin_count": (("minimum",), counts, {**one, "long_name": "initial states ending at the fixed point"}),
            "minimum_r": (("minimum",), r[-1][reps], {**one, "long_name": "order parameter at the fixed point"}),
            "minimum_residual": (("minimum",), residual[reps], {**one, "long_name": "max_i |f_i| at the "
                                                                                    "representative state"}),
            "minimum_state": (("minimum", "node", "component"), x_np[reps],
                              {**one, "long_name": "representative state of the fixed point"}),
            "max_energy_increase": ((), max_increase, {**one, "long_name": "largest increase of E between samples "
                                                                           "(<= 0 for a gradient flow)"}),
            "energy_monotone": ((), np.int8(monotone), {**one, "long_name": "1 if E never increased (up to "
                                                                             "round-off 1e-9·max|E|)"}),
            "projection_t": (("time", "traj", "pc"), proj, {**one, "long_name": "trajectory projected on the two "
                                                                                 "leading principal components"}),
            "explained_variance": (("pc",), explained, {**one, "long_name": "fraction of trajectory variance "
                                                                            "on the component"}),
            "contour_energy": (("pc_b", "pc_a"), contour, {**one, "long_name": "energy of the normalised state on "
                                                                                "the projection plane"}),
            "solver_nfe": ((), stats["nfe"], {**one, "long_name": "solver field evaluations"}),
            "solver_steps": ((), stats["steps"], {**one, "long_name": "solver steps"}),
        },
        coords={
            "time": ("time", times, {**one, "long_name": "simulated time (model units)"}),
            "init": ("init", np.arange(config.inits), {**one, "long_name": "initial state"}),
            "minimum": ("minimum", np.arange(len(reps)), {**one, "long_name": "fixed point, by increasing energy"}),
            "traj": ("traj", np.arange(P), {**one, "long_name": "initial state of a projected trajectory"}),
            "pc": ("pc", np.array([1, 2]), {**one, "long_name": "principal component"}),
            "pc_a": ("pc_a", ga, {**one, "long_name": "coordinate along principal component 1"}),
            "pc_b": ("pc_b", gb, {**one, "long_name": "coordinate along principal component 2"}),
        },
    )
    return ds
