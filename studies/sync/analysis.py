"""What a finished synchronisation run is turned into: time averages, the theory that applies (with
noise and phase lag), the rotation of the mean field, and the solver statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

import kuramoto as ku
from studies import units
from studies.sync.config import Config
from studies.sync.population import build_frequencies

__all__ = ["TIME_ATTRS", "finalize", "locked_frequency", "theory_curves"]

#: The time coordinate: model time (:mod:`studies.units`), marked as CF's time axis.
TIME_ATTRS = {"units": units.TIME, "axis": "T", "long_name": "simulated time, in the unit the equations are written in"}


def _model_text(config: Config) -> str:
    parts = [f"{config.distribution} g(ω), width {config.width:g}" if config.width > 0 else "identical oscillators"]
    if config.noise > 0:
        parts.append(f"noise D = {config.noise:g}")
    if config.lag != 0:
        parts.append(f"lag α = {config.lag:g}")
    return ", ".join(parts)


def theory_curves(config: Config) -> tuple[np.ndarray, float, np.ndarray, str]:
    """``(r_theory [K], K_c, Ω_theory [K], note)`` from :mod:`kuramoto.theory`, NaN where it has
    no answer; ``note`` says what is available (empty when everything is)."""
    K = config.K
    nan = np.full(config.k_num, np.nan)
    if not config.has_theory:
        return nan, np.nan, nan, ("NaN: no mean-field theory for this case (it covers the complete graph with phase "
                                  "oscillators, n = 2, or identical oscillators on any sphere)")
    args = dict(noise=config.noise, lag=config.lag)
    try:
        kc = ku.theory.critical_coupling(config.distribution, config.width, n=config.n, **args)
    except ValueError as exc:
        return nan, np.nan, nan, f"NaN: no theory for {_model_text(config)}: {exc}"
    try:
        r = np.asarray(ku.theory.order_parameter(K, config.distribution, config.width, n=config.n, **args), float)
    except ValueError:
        return nan, float(kc), nan, (f"NaN: only K_c is known; kuramoto.theory has no closed-form r(K) for "
                                     f"{_model_text(config)}")
    omega = nan
    if config.n == 2:
        omega = np.asarray(ku.theory.locked_frequency(K, config.distribution, config.width, **args), float)
    return r, float(kc), omega, ""


def locked_frequency(Z: xr.DataArray, window: xr.DataArray) -> xr.DataArray:
    """The angular velocity of the mean field ``Z = r e^{iψ}`` over the averaging window: the
    least-squares slope of the unwrapped ψ(t) (the rotation of the locked group)."""
    t = Z["time"].values[window.values]
    if t.size < 2:
        return xr.full_like(Z.isel(time=0).real, np.nan)
    psi = np.unwrap(np.angle(Z.values[window.values]), axis=0)
    tc = t - t.mean()
    slope = np.tensordot(tc, psi - psi.mean(0), axes=(0, 0)) / float((tc * tc).sum())
    return xr.DataArray(slope, dims=Z.dims[1:], coords={d: Z[d] for d in Z.dims[1:] if d in Z.coords})


def _averages(config: Config, ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    t = ds["time"].values
    if not config.adiabatic:
        window = xr.DataArray(t > config.t_transient + 1e-9, dims="time")
        r = ds["r_t"].where(window)
        return r.mean("time").transpose("K", "N", "seed").values, r.std("time").transpose("K", "N", "seed").values, \
            ("K", "N", "seed")
    seg_time = config.samples_per_segment * config.sample_dt
    local = t - np.floor((t - 1e-9) / seg_time) * seg_time
    window = xr.DataArray(local > config.t_transient + 1e-9, dims="time")
    segment = xr.DataArray(np.floor((t - 1e-9) / seg_time).astype(int), dims="time", name="segment")
    means, stds = [], []
    for d, direction in enumerate(config.directions):  # a loop over sweep directions, not oscillators
        grouped = ds["r_t"].isel(direction=d).where(window).groupby(segment)
        k_idx = np.arange(config.k_num) if direction == "forward" else np.arange(config.k_num)[::-1]
        means.append(grouped.mean("time").values[k_idx])
        stds.append(grouped.std("time").values[k_idx])
    return np.stack(means), np.stack(stds), ("direction", "K", "N", "seed")


def finalize(config: Config, traj: xr.Dataset, cells: list[tuple[Any, ...]], stats: np.ndarray,  # long: one variable
             statuses: list[str], coords: dict[str, Any]) -> xr.Dataset:                         # after the other
    """Add the time averages, theory, mean-field rotation and solver statistics to the trajectories.

    Args:
        cells: per batched solve, its place along (K or direction, N, seed).
        stats: ``[batches, 3]`` field evaluations, steps and rejected steps per batch.
        statuses: per batch, the solver's status.
    """
    ds = traj[[v for v in ("r_t", "Z_t", "K_t") if v in traj]].copy()
    ds.attrs = {}
    r, r_fluct, rdims = _averages(config, ds)
    ds = ds.assign_coords({k: v for k, v in coords.items() if k not in ds.coords})
    ds["r"] = (rdims, r, {"units": units.DIMENSIONLESS, "long_name": "time-averaged order parameter r"})
    ds["r_fluctuation"] = (rdims, r_fluct, {"units": units.DIMENSIONLESS,
                                            "long_name": "standard deviation of r(t) in the averaging window"})
    theory, kc, omega_theory, note = theory_curves(config)
    comment = note or "0 at and below K_c (the incoherent branch of the N → ∞ theory)"
    ds["r_theory"] = ("K", theory, {"units": units.DIMENSIONLESS, "long_name": f"mean-field theory r(K), N → ∞ "
                                    f"({_model_text(config)})", "comment": comment})
    ds["K_c"] = ((), kc, {"units": units.RATE, "long_name": "critical coupling K_c of the mean-field theory",
                          "comment": note if np.isnan(kc) else "kuramoto.theory.critical_coupling"})
    ds["r_incoherent"] = ("N", np.asarray([ku.theory.incoherent_order_parameter(N, config.n) for N in config.N]),
                          {"units": units.DIMENSIONLESS, "long_name": "expected r of N independent uniform "
                                                                      "oscillators"})
    if config.n == 2 and not config.adiabatic:
        window = xr.DataArray(ds["time"].values > config.t_transient + 1e-9, dims="time")
        ds["omega_locked"] = locked_frequency(ds["Z_t"], window).transpose("K", "N", "seed")
        ds["omega_locked"].attrs = {"units": units.ANGULAR_VELOCITY, "long_name": "rotation rate of the mean field "
                                    "Z (slope of its unwrapped phase in the averaging window)"}
        ds["omega_locked_theory"] = ("K", omega_theory, {
            "units": units.ANGULAR_VELOCITY, "long_name": "rotation rate of the locked group, mean-field theory",
            "comment": note or "NaN at and below K_c, where no group is locked"})
    omega_max = np.zeros((len(config.N), config.seeds))
    for a, N in enumerate(config.N):
        for s in range(config.seeds):  # one sampler call per seed and N (cheap; quantiles share it)
            _, omega = build_frequencies(config, N, config.seed + s)
            omega_max[a, s] = float(omega.abs().max())
    ds["omega_max"] = (("N", "seed"), omega_max, {"units": units.ANGULAR_VELOCITY,
                                                  "long_name": "largest natural angular velocity |ω|"})
    sdims = ("direction", "N", "seed") if config.adiabatic else ("K", "N", "seed")
    shape = tuple(ds.sizes[d] for d in sdims)
    status = np.empty(shape, dtype=object)
    for cell, st in zip(cells, statuses):
        status[cell] = st
    for j, name in enumerate(("nfe", "steps", "rejected")):
        arr = np.zeros(shape, dtype=np.int64)
        for cell, row in zip(cells, stats):
            arr[cell] = row[j]
        long = {"nfe": "field evaluations", "steps": "integrator steps", "rejected": "rejected steps"}[name]
        ds[f"solver_{name}"] = (sdims, arr, {"units": "1", "long_name": f"solver {long} (of the batched solve "
                                                                        f"this run was part of)"})
    ds["solver_status"] = (sdims, status.astype(str).astype(object), {"long_name": "solver status"})
    ds["time"].attrs.update(TIME_ATTRS)
    return ds
