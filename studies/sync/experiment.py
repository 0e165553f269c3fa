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

from studies import storage, units
from studies.files import exclusive
from studies.sweep import Sweep
from studies.sync.analysis import TIME_ATTRS, finalize
from studies.sync.config import Config
from studies.sync.cost import check_cost
from studies.sync.model import LOCAL_WORK, advance, plan, work
from studies.sync.population import seed_of

__all__ = ["run"]

#: What a complete result file holds besides the trajectories (checked before a file is returned).
_RESULT_VARIABLES = ("r", "r_fluctuation", "r_theory", "K_c", "r_incoherent", "omega_max", "solver_status")


@dataclasses.dataclass(frozen=True)
class _Group:
    """One batched solve (a Dask task per chunk): K indices ``ks`` (independent sweeps) or every
    sweep direction (adiabatic), × ``seeds`` that share frequencies and graph, at one N."""

    a: int                  # position of N along the N dim
    N: int
    seeds: tuple[int, ...]
    ks: tuple[int, int] | None = None  # [k0, k1) of an independent sweep

    @property
    def label(self) -> str:
        return f"K{self.ks[0]}-{self.ks[1]}" if self.ks is not None else "adiabatic"


def _seed_groups(config: Config) -> list[tuple[int, ...]]:
    seeds = tuple(config.seed + i for i in range(config.seeds))
    return [seeds] if config.shared_frequencies else [(s,) for s in seeds]


def _groups(config: Config) -> list[_Group]:
    out = []
    for a, N in enumerate(config.N):
        for seeds in _seed_groups(config):
            if config.adiabatic:
                out.append(_Group(a, N, seeds))
            else:
                out.extend(_Group(a, N, seeds, ks=ks) for ks in plan(config)[1])
    return out


def _chunk_bounds(config: Config) -> list[tuple[int, int]]:
    """Sample-index ranges ``[start, stop)`` of every chunk (1-based samples at ``i·sample_dt``)."""
    S = config.samples_per_segment
    if config.adiabatic:
        return [(j * S, (j + 1) * S) for j in range(config.k_num)]
    edges = np.linspace(0, S, config.chunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _k_of_chunk(config: Config, group: _Group, chunk: int) -> list[float]:
    """The K value of every leading index of the group's state during ``chunk``."""
    K = config.K
    if not config.adiabatic:
        return [float(k) for k in K[group.ks[0]:group.ks[1]]]
    return [float(K[chunk] if d == "forward" else K[config.k_num - 1 - chunk]) for d in config.directions]


def _noise_seed(config: Config, group: _Group, chunk: int) -> int | None:
    """The seed of a task's noise: fixed by the config, the batch and the chunk, so that a resumed
    run draws what an uninterrupted one did."""
    if not config.stochastic:
        return None
    return seed_of(config.seed, group.N, group.seeds[0], group.label, chunk, "noise")


_TIME_ATTRS = TIME_ATTRS


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


def _cells(config: Config, group: _Group) -> tuple[slice, int, slice]:
    """Where a group's results go along (K or direction, N, seed)."""
    s0 = group.seeds[0] - config.seed
    lead = slice(*group.ks) if group.ks is not None else slice(None)
    return lead, group.a, slice(s0, s0 + len(group.seeds))


def _chunk_dataset(config: Config, groups: list[_Group], results: list[dict[str, Any]], chunk: int,
                   bounds: tuple[int, int]) -> xr.Dataset:
    dims = _traj_dims(config)
    m = bounds[1] - bounds[0]
    lead = (len(config.directions) if config.adiabatic else config.k_num, len(config.N))
    r = np.full((m, *lead, config.seeds), np.nan)
    Z = np.full((m, *lead, config.seeds), np.nan + 0j) if config.n == 2 else None
    for group, res in zip(groups, results):
        cells = (slice(None), *_cells(config, group))
        r[cells] = res["r"]
        if Z is not None:
            Z[cells] = res["Z"]
    times = config.sample_dt * np.arange(bounds[0] + 1, bounds[1] + 1)
    coords = {k: v for k, v in _coords(config).items() if k in dims}
    coords["time"] = ("time", times, _TIME_ATTRS)
    data = {"r_t": (dims, r, {"units": units.DIMENSIONLESS, "long_name": "order parameter r(t) = |mean_j x_j|"})}
    if Z is not None:
        data["Z_t"] = (dims, Z, {"units": units.DIMENSIONLESS,
                                 "long_name": "complex order parameter Z(t) = r e^{iψ}"})
    if config.adiabatic:
        K_t = np.tile(np.asarray(_k_of_chunk(config, groups[0], chunk)), (m, 1))
        data["K_t"] = (("time", "direction"), K_t, {"units": units.RATE, "long_name": "coupling strength K(t)"})
    return xr.Dataset(data, coords=coords)


def _checkpoint(states: list[Any], stats: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"solver_stats": stats}
    for i, state in enumerate(states):
        out[f"state_{i}"] = np.asarray(state)
    return out


def _restore_states(groups: list[_Group], checkpoint: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [checkpoint[f"state_{i}"] for i in range(len(groups))]


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
    for i, g in enumerate(groups):
        batch = g.ks[1] - g.ks[0] if g.ks is not None else len(config.directions)
        expected[f"state_{i}"] = (batch, len(g.seeds), g.N, config.n)
    for name, shape in expected.items():
        if name not in checkpoint or checkpoint[name].shape != shape:
            found = checkpoint[name].shape if name in checkpoint else "nothing"
            raise _damaged(path, f"has a checkpoint whose {name!r} is {found}, expected shape {shape}")


def run(config: Config, *, path: str | Path | None = None, scheduler: str | None = None, workers: int | None = None,
        progress: bool = True, overwrite: bool = False) -> xr.Dataset:
    """Run the synchronisation study.

    Args:
        config: the study parameters (validated when built: a step beyond the method's stability
            limit is a ``ConfigError`` on ``dt`` already).
        path: result file; the run streams into it chunk by chunk and resumes it if it holds
            an unfinished run of the same config (a finished one is returned as is), after
            checking its checksum and progress counters. The run holds the file's lock
            (:func:`studies.files.exclusive`) throughout. ``None`` keeps everything in memory.
        scheduler: address of an existing Dask scheduler (default: a local cluster, or this
            process for a single batch or a run shorter than a cluster's start-up).
        workers: local Dask worker processes (default: one per core for long runs of several
            batches, else none; 0: in this process).
        progress: tqdm bars over simulated time and over the tasks of each chunk (only when
            stderr is a terminal).
        overwrite: start over, replacing whatever ``path`` holds (another config, a damaged,
            unfinished or finished run).

    Returns:
        The Dataset (see the module doc; dims ``K``, ``N``, ``seed``, ``time`` and, for
        adiabatic sweeps, ``direction``).

    Raises:
        ConfigError: the run cannot finish or fit (:func:`studies.sync.cost.check_cost`).
        StorageError: ``path`` holds a different run, or is unreadable, damaged or tampered
            with (and ``overwrite`` is off).
        LockedError: another process is writing ``path``.
    """

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a sync Config, got {type(config).__name__}")
    check_cost(config)
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
    states: list[Any] = [None] * len(groups)
    stats = np.zeros((len(groups), 3), dtype=np.int64)  # nfe, steps, rejected
    statuses = ["ok"] * len(groups)
    if checkpoint is not None:
        states = _restore_states(groups, checkpoint)
        stats = checkpoint["solver_stats"].astype(np.int64)
        statuses = checkpoint["status"]
    if workers is None and scheduler is None and (len(groups) == 1 or work(config) < LOCAL_WORK):
        workers = 0  # a cluster would only add its start-up
    chunks_in_memory: list[xr.Dataset] = []
    wall0 = time.perf_counter()
    total_time = bounds[-1][1] * config.sample_dt
    with Sweep(scheduler=scheduler, workers=workers, progress=progress) as sweep, \
            tqdm(total=total_time, initial=bounds[start][0] * config.sample_dt if start < len(bounds) else total_time,
                 desc="simulated time", unit="t", disable=None if progress else True) as bar:
        for c in range(start, len(bounds)):
            results = sweep.map(advance, _tasks(config, groups, states, c, bounds[c]),
                                desc=f"chunk {c + 1}/{len(bounds)}")
            states = [res["state"] for res in results]
            stats += np.asarray([[res["nfe"], res["steps"], res["rejected"]] for res in results], dtype=np.int64)
            statuses = [res["status"] for res in results]
            chunk = _chunk_dataset(config, groups, results, c, bounds[c])
            if path is None:
                chunks_in_memory.append(chunk)
            else:
                _store_chunk(config, path, chunk, c, len(bounds), _checkpoint(states, stats), statuses)
            bar.update((bounds[c][1] - bounds[c][0]) * config.sample_dt)
        where = sweep.description
    if path is None:
        traj = xr.concat(chunks_in_memory, dim="time", data_vars="minimal", coords="minimal")
    else:
        traj = storage.open_dataset(path, study=Config.study, combine_complex=True)
    cells = [_cells(config, g) for g in groups]
    ds = finalize(config, traj, cells, stats, statuses, _coords(config))
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, chunks_done=len(bounds),
                                    chunks_total=len(bounds), executor=where, units_convention=units.CONVENTION,
                                    wall_time_last_session=round(time.perf_counter() - wall0, 3))
    if path is not None:
        storage.write_dataset(ds, path, unlimited="time")
        ds = storage.open_dataset(path, study=Config.study, combine_complex=True)
    return ds


def _tasks(config: Config, groups: list[_Group], states: list[Any], c: int, bounds: tuple[int, int]) -> list[dict]:
    a, b = bounds
    return [{"config": config.to_json(), "K": _k_of_chunk(config, g, c), "N": g.N, "seeds": list(g.seeds),
             "t0": a * config.sample_dt, "times": config.sample_dt * np.arange(a + 1, b + 1), "state": states[i],
             "init_label": [f"init-{d}" for d in config.directions] if config.adiabatic else "init-independent",
             "noise_seed": _noise_seed(config, g, c)}
            for i, g in enumerate(groups)]


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
