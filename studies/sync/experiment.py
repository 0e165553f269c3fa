"""Running the synchronisation study: the sweep plan (groups of seeds, time chunks), streaming to
``sync.h5`` with a checkpoint after every chunk, resuming, and the final averages against theory.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

import kuramoto as ku
from studies import storage, units
from studies.sweep import Sweep
from studies.sync.config import Config
from studies.sync.model import advance, build_frequencies, check_step

__all__ = ["run"]


@dataclasses.dataclass(frozen=True)
class _Group:
    """One batch of runs that share frequencies and graph: a K (or a sweep direction), an N, seeds."""

    index: tuple[int, ...]  # position along the non-seed result dims
    N: int
    seeds: tuple[int, ...]
    direction: str | None = None
    k_index: int | None = None


def _seed_groups(config: Config) -> list[tuple[int, ...]]:
    seeds = tuple(config.seed + i for i in range(config.seeds))
    return [seeds] if config.shared_frequencies else [(s,) for s in seeds]


def _groups(config: Config) -> list[_Group]:
    out = []
    for a, N in enumerate(config.N):
        for seeds in _seed_groups(config):
            if config.adiabatic:
                for d, direction in enumerate(config.directions):
                    out.append(_Group((d, a), N, seeds, direction=direction))
            else:
                for k in range(config.k_num):
                    out.append(_Group((k, a), N, seeds, k_index=k))
    return out


def _chunk_bounds(config: Config) -> list[tuple[int, int]]:
    """Sample-index ranges ``[start, stop)`` of every chunk (1-based samples at ``i·sample_dt``)."""
    S = config.samples_per_segment
    if config.adiabatic:
        return [(j * S, (j + 1) * S) for j in range(config.k_num)]
    edges = np.linspace(0, S, config.chunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _k_of_chunk(config: Config, group: _Group, chunk: int) -> float:
    K = config.K
    if not config.adiabatic:
        return float(K[group.k_index])
    return float(K[chunk] if group.direction == "forward" else K[config.k_num - 1 - chunk])


#: The time coordinate: model time (:mod:`studies.units`), marked as CF's time axis.
_TIME_ATTRS = {"units": units.TIME, "axis": "T", "long_name": "simulated time, in the unit the equations are "
                                                              "written in"}


def _traj_dims(config: Config) -> tuple[str, ...]:
    return ("time", "direction", "N", "seed") if config.adiabatic else ("time", "K", "N", "seed")


def _coords(config: Config) -> dict[str, Any]:
    coords: dict[str, Any] = {
        "K": ("K", config.K, {"units": units.RATE, "long_name": "coupling strength K"}),
        "N": ("N", np.asarray(config.N, dtype=np.int64), {"units": "1", "long_name": "number of oscillators"}),
        "seed": ("seed", np.arange(config.seed, config.seed + config.seeds, dtype=np.int64),
                 {"units": "1", "long_name": "random seed of the initial state"}),
    }
    if config.adiabatic:
        coords["direction"] = ("direction", np.asarray(config.directions, dtype=object),
                               {"long_name": "direction of the adiabatic K sweep"})
    return coords


def _chunk_dataset(config: Config, groups: list[_Group], results: list[dict[str, Any]], chunk: int,
                   bounds: tuple[int, int]) -> xr.Dataset:
    dims = _traj_dims(config)
    m = bounds[1] - bounds[0]
    lead = (len(config.directions) if config.adiabatic else config.k_num, len(config.N))
    r = np.full((m, *lead, config.seeds), np.nan)
    Z = np.full((m, *lead, config.seeds), np.nan + 0j) if config.n == 2 else None
    for group, res in zip(groups, results):
        s0 = group.seeds[0] - config.seed
        sl = (slice(None), *group.index, slice(s0, s0 + len(group.seeds)))
        r[sl] = res["r"]
        if Z is not None:
            Z[sl] = res["Z"]
    times = config.sample_dt * np.arange(bounds[0] + 1, bounds[1] + 1)
    coords = {k: v for k, v in _coords(config).items() if k in dims}
    coords["time"] = ("time", times, _TIME_ATTRS)
    data = {"r_t": (dims, r, {"units": units.DIMENSIONLESS, "long_name": "order parameter r(t) = |mean_j x_j|"})}
    if Z is not None:
        data["Z_t"] = (dims, Z, {"units": units.DIMENSIONLESS,
                                 "long_name": "complex order parameter Z(t) = r e^{iψ}"})
    if config.adiabatic:
        K_t = np.empty((m, len(config.directions)))
        for d, direction in enumerate(config.directions):
            K_t[:, d] = _k_of_chunk(config, _Group((d, 0), 0, (), direction=direction), chunk)
        data["K_t"] = (("time", "direction"), K_t, {"units": units.RATE, "long_name": "coupling strength K(t)"})
    return xr.Dataset(data, coords=coords)


def _checkpoint(config: Config, groups: list[_Group], states: list[Any], stats: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"solver_stats": stats}
    for N in config.N:
        sel = [np.asarray(s) for g, s in zip(groups, states) if g.N == N]
        out[f"state_N{N}"] = np.stack(sel)
    return out


def _restore_states(config: Config, groups: list[_Group], checkpoint: dict[str, np.ndarray]) -> list[np.ndarray]:
    cursor = {N: 0 for N in config.N}
    states = []
    for g in groups:
        states.append(checkpoint[f"state_N{g.N}"][cursor[g.N]])
        cursor[g.N] += 1
    return states


def _resume_point(config: Config, path: Path, overwrite: bool) -> tuple[int, dict[str, np.ndarray] | None,
                                                                       xr.Dataset | None]:
    """``(chunks_done, checkpoint, complete_dataset)`` for an existing file at ``path``."""

    storage.remove_stale_temporaries(path)
    if not path.exists():
        return 0, None, None
    try:
        ds = storage.open_dataset(path, study=Config.study)
    except storage.StorageError:
        if overwrite:
            return 0, None, None
        raise
    if ds.attrs.get("config") != config.to_json():
        if overwrite:
            return 0, None, None
        raise storage.StorageError(f"path: {str(path)!r} holds a run with a different config; pass --overwrite to "
                                   f"replace it or choose another --out (its config: {ds.attrs.get('config')})")
    if int(ds.attrs.get("complete", 0)):
        return -1, None, ds
    done = int(ds.attrs.get("chunks_done", 0))
    checkpoint = storage.read_checkpoint(path)
    if checkpoint is None:
        raise storage.StorageError(f"path: {str(path)!r} is an unfinished run without a checkpoint; delete it or pass "
                                   f"--overwrite")
    return done, checkpoint, None


def run(config: Config, *, path: str | Path | None = None, scheduler: str | None = None, workers: int | None = None,
        progress: bool = True, overwrite: bool = False) -> xr.Dataset:
    """Run the synchronisation study.

    Args:
        config: the study parameters.
        path: result file; the run streams into it chunk by chunk and resumes it if it holds
            an unfinished run of the same config (a finished one is returned as is). ``None``
            keeps everything in memory.
        scheduler: address of an existing Dask scheduler (default: a local cluster).
        workers: local Dask worker processes (default: one per core; 0: in this process).
        progress: tqdm bars over simulated time and over the tasks of each chunk.
        overwrite: replace a file at ``path`` that holds a different config or is unreadable.

    Returns:
        The Dataset (see the module doc; dims ``K``, ``N``, ``seed``, ``time`` and, for
        adiabatic sweeps, ``direction``).

    Raises:
        ConfigError: the step is too large for the method and the fastest oscillator.
        StorageError: ``path`` holds a different run or is unreadable (and ``overwrite`` is off).
    """

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a sync Config, got {type(config).__name__}")
    path = Path(path) if path is not None else None
    _check_steps(config)
    groups = _groups(config)
    bounds = _chunk_bounds(config)
    start, checkpoint, finished = (0, None, None) if path is None else _resume_point(config, path, overwrite)
    if finished is not None:
        return finished
    config_json = config.to_json()
    states: list[Any] = [None] * len(groups)
    stats = np.zeros((len(groups), 3), dtype=np.int64)  # nfe, steps, rejected
    if checkpoint is not None:
        states = _restore_states(config, groups, checkpoint)
        stats = checkpoint["solver_stats"].astype(np.int64)
    chunks_in_memory: list[xr.Dataset] = []
    statuses = ["ok"] * len(groups)
    wall0 = time.perf_counter()
    total_time = bounds[-1][1] * config.sample_dt
    with Sweep(scheduler=scheduler, workers=workers, progress=progress) as sweep, \
            tqdm(total=total_time, initial=bounds[start][0] * config.sample_dt if start < len(bounds) else total_time,
                 desc="simulated time", unit="t", disable=not progress) as bar:
        for c in range(start, len(bounds)):
            a, b = bounds[c]
            tasks = [{"config": config_json, "K": _k_of_chunk(config, g, c), "N": g.N, "seeds": list(g.seeds),
                      "t0": a * config.sample_dt, "times": config.sample_dt * np.arange(a + 1, b + 1),
                      "state": states[i], "init_label": f"init-{g.direction or 'independent'}"}
                     for i, g in enumerate(groups)]
            results = sweep.map(advance, tasks, desc=f"chunk {c + 1}/{len(bounds)}")
            states = [res["state"] for res in results]
            stats += np.asarray([[res["nfe"], res["steps"], res["rejected"]] for res in results], dtype=np.int64)
            statuses = [res["status"] for res in results]
            chunk = _chunk_dataset(config, groups, results, c, bounds[c])
            if path is None:
                chunks_in_memory.append(chunk)
            else:
                _store_chunk(config, path, chunk, c, len(bounds), _checkpoint(config, groups, states, stats))
            bar.update((b - a) * config.sample_dt)
        where = sweep.description
    if path is None:
        traj = xr.concat(chunks_in_memory, dim="time", data_vars="minimal", coords="minimal")
    else:
        traj = storage.open_dataset(path, study=Config.study, combine_complex=True)
    ds = _finalize(config, groups, traj, stats, statuses)
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, chunks_done=len(bounds),
                                    chunks_total=len(bounds), executor=where, units_convention=units.CONVENTION,
                                    wall_time_last_session=round(time.perf_counter() - wall0, 3))
    if path is not None:
        storage.write_dataset(ds, path, unlimited="time")
        ds = storage.open_dataset(path, study=Config.study, combine_complex=True)
    return ds


def _check_steps(config: Config) -> None:
    """Refuse a step too large for the fastest oscillator of any run, before anything runs."""
    for N in config.N:
        for seeds in _seed_groups(config):
            _, omega = build_frequencies(config, N, seeds[0])
            check_step(config, float(omega.abs().max()))


def _store_chunk(config: Config, path: Path, chunk: xr.Dataset, c: int, total: int,
                 checkpoint: dict[str, np.ndarray]) -> None:
    """Write chunk ``c`` (the first creates the file) with the states to resume from."""
    progress_attrs = {"chunks_done": c + 1, "chunks_total": total, "complete": 0}
    if c == 0:
        chunk.attrs = storage.result_attrs(Config.study, config, config.seed, **progress_attrs)
        storage.write_dataset(chunk, path, unlimited="time", checkpoint=checkpoint)
    else:
        storage.append(path, chunk, attrs=progress_attrs, checkpoint=checkpoint)


def _finalize(config: Config, groups: list[_Group], traj: xr.Dataset, stats: np.ndarray,
              statuses: list[str]) -> xr.Dataset:
    """Add the time averages, theory, and solver statistics to the trajectories."""

    keep = [v for v in ("r_t", "Z_t", "K_t") if v in traj]
    ds = traj[keep].copy()
    ds.attrs = {}
    t = ds["time"].values
    S = config.samples_per_segment
    seg_time = S * config.sample_dt
    if config.adiabatic:
        local = t - np.floor((t - 1e-9) / seg_time) * seg_time
        window = local > config.t_transient + 1e-9
        segment = np.floor((t - 1e-9) / seg_time).astype(int)
        r_dir = []
        for d, direction in enumerate(config.directions):  # a loop over sweep points, not oscillators
            seg_mean = ds["r_t"].isel(direction=d).where(xr.DataArray(window, dims="time")).groupby(
                xr.DataArray(segment, dims="time", name="segment")).mean("time")
            seg_std = ds["r_t"].isel(direction=d).where(xr.DataArray(window, dims="time")).groupby(
                xr.DataArray(segment, dims="time", name="segment")).std("time")
            k_idx = np.arange(config.k_num) if direction == "forward" else np.arange(config.k_num)[::-1]
            r_dir.append((seg_mean.values[k_idx], seg_std.values[k_idx]))
        r = np.stack([a for a, _ in r_dir])  # [direction, K, N, seed]
        r_fluct = np.stack([b for _, b in r_dir])
        rdims = ("direction", "K", "N", "seed")
    else:
        window = xr.DataArray(t > config.t_transient + 1e-9, dims="time")
        r = ds["r_t"].where(window).mean("time").transpose("K", "N", "seed").values
        r_fluct = ds["r_t"].where(window).std("time").transpose("K", "N", "seed").values
        rdims = ("K", "N", "seed")
    ds = ds.assign_coords({k: v for k, v in _coords(config).items() if k not in ds.coords})
    ds["r"] = (rdims, r, {"units": units.DIMENSIONLESS, "long_name": "time-averaged order parameter r"})
    ds["r_fluctuation"] = (rdims, r_fluct, {"units": units.DIMENSIONLESS,
                                            "long_name": "standard deviation of r(t) in the averaging window"})
    if config.has_theory:
        theory = ku.theory.order_parameter(config.K, config.distribution, config.width)
        kc = ku.theory.critical_coupling(config.distribution, config.width)
    else:
        theory, kc = np.full(config.k_num, np.nan), np.nan
    no_theory = "NaN: no mean-field theory for this case (it covers n = 2 on the complete graph)"
    ds["r_theory"] = ("K", np.asarray(theory, dtype=float),
                      {"units": units.DIMENSIONLESS, "long_name": "mean-field theory r(K), N → ∞",
                       "comment": no_theory})
    ds["K_c"] = ((), float(kc), {"units": units.RATE, "long_name": "critical coupling K_c = 2/(π g(0))",
                                 "comment": no_theory})
    ds["r_incoherent"] = ("N", np.asarray([ku.theory.incoherent_order_parameter(N, config.n) for N in config.N]),
                          {"units": units.DIMENSIONLESS, "long_name": "expected r of N independent uniform "
                                                                      "oscillators"})
    omega_max = np.zeros((len(config.N), config.seeds))
    for a, N in enumerate(config.N):
        for seeds in _seed_groups(config):
            _, omega = build_frequencies(config, N, seeds[0])
            s0 = seeds[0] - config.seed
            omega_max[a, s0:s0 + len(seeds)] = float(omega.abs().max())
    ds["omega_max"] = (("N", "seed"), omega_max, {"units": units.ANGULAR_VELOCITY,
                                                  "long_name": "largest natural angular velocity |ω|"})
    sdims = ("direction", "N", "seed") if config.adiabatic else ("K", "N", "seed")
    shape = tuple(ds.sizes[d] for d in sdims)
    for j, name in enumerate(("nfe", "steps", "rejected")):
        arr = np.zeros(shape, dtype=np.int64)
        status = np.empty(shape, dtype=object)
        for g, row, st in zip(groups, stats, statuses):
            s0 = g.seeds[0] - config.seed
            arr[(*g.index, slice(s0, s0 + len(g.seeds)))] = row[j]
            status[(*g.index, slice(s0, s0 + len(g.seeds)))] = st
        long = {"nfe": "field evaluations", "steps": "integrator steps", "rejected": "rejected steps"}[name]
        ds[f"solver_{name}"] = (sdims, arr, {"units": "1", "long_name": f"solver {long} (per batch of seeds)"})
    ds["solver_status"] = (sdims, status.astype(str).astype(object), {"long_name": "solver status"})
    ds["time"].attrs.update(_TIME_ATTRS)
    return ds
