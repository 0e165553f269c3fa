"""Running the synchronisation study: the sweep plan (groups of seeds, time chunks), streaming to
``sync.h5`` with a checkpoint after every chunk, resuming, and the final averages against theory.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

import kuramoto as ku
from integrators import get_solver
from integrators.guards import check_stability
from studies import storage, units
from studies.config import ConfigError
from studies.files import exclusive
from studies.sweep import Sweep
from studies.sync.config import Config
from studies.sync.cost import check_cost
from studies.sync.model import advance, build_coupling, build_frequencies, check_step

__all__ = ["run"]

#: What a complete result file holds besides the trajectories (checked before a file is returned).
_RESULT_VARIABLES = ("r", "r_fluctuation", "r_theory", "K_c", "r_incoherent", "omega_max", "solver_status")


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


def _resume_point(config: Config, path: Path, overwrite: bool) -> tuple[int, dict[str, Any] | None,
                                                                       xr.Dataset | None]:
    """``(chunks_done, checkpoint, complete_dataset)`` for an existing file at ``path``; the
    checkpoint also holds the solver status of every group after the last chunk (``"status"``).

    Nothing in the file is trusted before it is checked: its checksum (by :func:`storage.open_dataset`),
    its config, and its progress counters against the data it holds. ``overwrite`` starts over
    whatever the file holds.
    """
    storage.remove_stale_temporaries(path)
    if overwrite or not path.exists():
        return 0, None, None
    ds = storage.open_dataset(path, study=Config.study)
    if ds.attrs.get("config") != config.to_json():
        raise storage.StorageError(f"path: {str(path)!r} holds a run with a different config "
                                   f"({storage.config_difference(ds.attrs.get('config'), config)}); pass --overwrite "
                                   f"to replace it or choose another --out")
    bounds = _chunk_bounds(config)
    if int(ds.attrs.get("complete", 0)):
        _check_progress(path, ds, len(bounds), bounds, complete=True)
        missing = [name for name in _RESULT_VARIABLES if name not in ds.variables]
        if missing:
            raise _damaged(path, f"says it is complete but lacks {', '.join(map(repr, missing))}")
        return -1, None, ds
    done = _check_progress(path, ds, int(ds.attrs.get("chunks_done", 0)), bounds, complete=False)
    checkpoint = storage.read_checkpoint(path)
    if checkpoint is None:
        raise storage.StorageError(f"path: {str(path)!r} is an unfinished run without a checkpoint; pass --overwrite "
                                   f"to start it over")
    _check_checkpoint(config, path, checkpoint)
    try:
        checkpoint["status"] = [str(v) for v in json.loads(ds.attrs["solver_status"])]
    except (KeyError, ValueError, TypeError):  # a file written before statuses were checkpointed
        checkpoint["status"] = ["unknown"] * checkpoint["solver_stats"].shape[0]
    return done, checkpoint, None


def _damaged(path: Path, what: str) -> storage.StorageError:
    return storage.StorageError(f"path: {str(path)!r} {what}; it cannot be resumed (pass --overwrite to start over)")


def _check_progress(path: Path, ds: xr.Dataset, done: int, bounds: list[tuple[int, int]], complete: bool) -> int:
    """Check the progress counters of a file against the samples it holds; the number of chunks done."""
    total = len(bounds)
    for name, expected in (("chunks_total", total), *((("chunks_done", total),) if complete else ())):
        if name in ds.attrs and int(ds.attrs[name]) != expected:
            raise _damaged(path, f"says {name}={int(ds.attrs[name])}, the config has {expected} chunks")
    if not 1 <= done <= total:
        raise _damaged(path, f"says chunks_done={done}, expected 1 to {total}")
    times = ds["time"].values if "time" in ds.coords else np.zeros(0)
    stop = bounds[done - 1][1]
    sample_dt = float(json.loads(ds.attrs["config"])["sample_dt"])
    if times.size != stop or not np.allclose(times, sample_dt * np.arange(1, stop + 1), rtol=1e-12, atol=0):
        raise _damaged(path, f"holds {times.size} samples in time, but chunks_done={done} means {stop} in order")
    return done


def _check_checkpoint(config: Config, path: Path, checkpoint: dict[str, np.ndarray]) -> None:
    groups = _groups(config)
    expected = {"solver_stats": (len(groups), 3)}
    for N in config.N:
        count = sum(g.N == N for g in groups)
        expected[f"state_N{N}"] = (count, len(groups[0].seeds), N, config.n)
    for name, shape in expected.items():
        if name not in checkpoint or checkpoint[name].shape != shape:
            found = checkpoint[name].shape if name in checkpoint else "nothing"
            raise _damaged(path, f"has a checkpoint whose {name!r} is {found}, expected shape {shape}")


def run(config: Config, *, path: str | Path | None = None, scheduler: str | None = None, workers: int | None = None,
        progress: bool = True, overwrite: bool = False) -> xr.Dataset:
    """Run the synchronisation study.

    Args:
        config: the study parameters.
        path: result file; the run streams into it chunk by chunk and resumes it if it holds
            an unfinished run of the same config (a finished one is returned as is), after
            checking its checksum and progress counters. The run holds the file's lock
            (:func:`studies.files.exclusive`) throughout. ``None`` keeps everything in memory.
        scheduler: address of an existing Dask scheduler (default: a local cluster).
        workers: local Dask worker processes (default: one per core; 0: in this process).
        progress: tqdm bars over simulated time and over the tasks of each chunk (only when
            stderr is a terminal).
        overwrite: start over, replacing whatever ``path`` holds (another config, a damaged,
            unfinished or finished run).

    Returns:
        The Dataset (see the module doc; dims ``K``, ``N``, ``seed``, ``time`` and, for
        adiabatic sweeps, ``direction``).

    Raises:
        ConfigError: the step is too large for the method and the fastest oscillator, or the run
            cannot finish or fit (:func:`studies.sync.cost.check_cost`).
        StorageError: ``path`` holds a different run, or is unreadable, damaged or tampered
            with (and ``overwrite`` is off).
        LockedError: another process is writing ``path``.
    """

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a sync Config, got {type(config).__name__}")
    check_cost(config)
    _check_steps(config)
    if path is None:
        return _run(config, None, scheduler, workers, progress, overwrite)
    with exclusive(path):  # one writer per file, from the resume check to the final write
        return _run(config, Path(path), scheduler, workers, progress, overwrite)


def _run(config: Config, path: Path | None, scheduler: str | None, workers: int | None, progress: bool,
         overwrite: bool) -> xr.Dataset:
    groups = _groups(config)
    bounds = _chunk_bounds(config)
    start, checkpoint, finished = (0, None, None) if path is None else _resume_point(config, path, overwrite)
    if finished is not None:
        return finished
    config_json = config.to_json()
    states: list[Any] = [None] * len(groups)
    stats = np.zeros((len(groups), 3), dtype=np.int64)  # nfe, steps, rejected
    statuses = ["ok"] * len(groups)
    if checkpoint is not None:
        states = _restore_states(config, groups, checkpoint)
        stats = checkpoint["solver_stats"].astype(np.int64)
        statuses = checkpoint["status"]
    chunks_in_memory: list[xr.Dataset] = []
    wall0 = time.perf_counter()
    total_time = bounds[-1][1] * config.sample_dt
    with Sweep(scheduler=scheduler, workers=workers, progress=progress) as sweep, \
            tqdm(total=total_time, initial=bounds[start][0] * config.sample_dt if start < len(bounds) else total_time,
                 desc="simulated time", unit="t", disable=None if progress else True) as bar:
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
                _store_chunk(config, path, chunk, c, len(bounds), _checkpoint(config, groups, states, stats),
                             statuses)
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
    """Refuse a step too large for the fastest oscillator, or for the strongest coupling, of any run,
    before anything runs (the solver would refuse it in every task of the sweep)."""
    solver = get_solver(config.method)
    strongest = float(np.abs(config.K).max())
    for N in config.N:
        for seeds in _seed_groups(config):
            freq, omega = build_frequencies(config, N, seeds[0])
            check_step(config, float(omega.abs().max()))
            field = ku.KuramotoField(build_coupling(config, strongest, N, seeds[0]), omega=freq)
            try:
                check_stability(solver, field, config.dt)
            except ValueError as exc:
                reason = str(exc).removeprefix("dt: ").split(". Use ")[0].split("; ")[0]
                raise ConfigError("k_max", f"K = {strongest:g} at dt = {config.dt:g}: {reason}; use a smaller "
                                           f"--k-max or --dt, or an adaptive --method") from None


def _store_chunk(config: Config, path: Path, chunk: xr.Dataset, c: int, total: int,
                 checkpoint: dict[str, np.ndarray], statuses: list[str]) -> None:
    """Write chunk ``c`` (the first creates the file) with the states and solver statuses to resume from."""
    progress_attrs = {"chunks_done": c + 1, "chunks_total": total, "complete": 0,
                      "solver_status": json.dumps(statuses)}
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
