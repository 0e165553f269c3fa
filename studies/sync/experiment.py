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

from studies import storage, units
from studies.sweep import Sweep
from studies.sync.analysis import TIME_ATTRS, finalize
from studies.sync.config import Config
from studies.sync.model import LOCAL_WORK, advance, plan, work
from studies.sync.population import seed_of

__all__ = ["run"]


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
        config: the study parameters (validated when built: a step beyond the method's stability
            limit is a ``ConfigError`` on ``dt`` already).
        path: result file; the run streams into it chunk by chunk and resumes it if it holds
            an unfinished run of the same config (a finished one is returned as is). ``None``
            keeps everything in memory.
        scheduler: address of an existing Dask scheduler (default: a local cluster, or this
            process for a single batch or a run shorter than a cluster's start-up).
        workers: local Dask worker processes (default: one per core for long runs of several
            batches, else none; 0: in this process).
        progress: tqdm bars over simulated time and over the tasks of each chunk.
        overwrite: replace a file at ``path`` that holds a different config or is unreadable.

    Returns:
        The Dataset (see the module doc; dims ``K``, ``N``, ``seed``, ``time`` and, for
        adiabatic sweeps, ``direction``).

    Raises:
        StorageError: ``path`` holds a different run or is unreadable (and ``overwrite`` is off).
    """

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a sync Config, got {type(config).__name__}")
    path = Path(path) if path is not None else None
    groups = _groups(config)
    bounds = _chunk_bounds(config)
    start, checkpoint, finished = (0, None, None) if path is None else _resume_point(config, path, overwrite)
    if finished is not None:
        return finished
    states: list[Any] = [None] * len(groups)
    stats = np.zeros((len(groups), 3), dtype=np.int64)  # nfe, steps, rejected
    if checkpoint is not None:
        states = _restore_states(groups, checkpoint)
        stats = checkpoint["solver_stats"].astype(np.int64)
    if workers is None and scheduler is None and (len(groups) == 1 or work(config) < LOCAL_WORK):
        workers = 0  # a cluster would only add its start-up
    chunks_in_memory: list[xr.Dataset] = []
    statuses = ["ok"] * len(groups)
    wall0 = time.perf_counter()
    total_time = bounds[-1][1] * config.sample_dt
    with Sweep(scheduler=scheduler, workers=workers, progress=progress) as sweep, \
            tqdm(total=total_time, initial=bounds[start][0] * config.sample_dt if start < len(bounds) else total_time,
                 desc="simulated time", unit="t", disable=not progress) as bar:
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
                _store_chunk(config, path, chunk, c, len(bounds), _checkpoint(states, stats))
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
                 checkpoint: dict[str, np.ndarray]) -> None:
    """Write chunk ``c`` (the first creates the file) with the states to resume from."""
    progress_attrs = {"chunks_done": c + 1, "chunks_total": total, "complete": 0}
    if c == 0:
        chunk.attrs = storage.result_attrs(Config.study, config, config.seed, **progress_attrs)
        storage.write_dataset(chunk, path, unlimited="time", checkpoint=checkpoint)
    else:
        storage.append(path, chunk, attrs=progress_attrs, checkpoint=checkpoint)
