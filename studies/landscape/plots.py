"""The summary table and the figure of a landscape result.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import xarray as xr

from studies.figures import result_figure, save_figure

__all__ = ["plot", "summarize"]


def _converged_count(ds: xr.Dataset) -> int:
    # Files written before unconverged runs were kept out of the basins have no converged_runs.
    return int(ds["converged_runs"]) if "converged_runs" in ds else int(ds["converged"].sum())


def summarize(ds: xr.Dataset) -> str:
    """Fixed points found among the converged runs, their energies and basins, the runs still moving,
    and the Lyapunov check."""
    cfg = json.loads(ds.attrs["config"])
    conv, total = _converged_count(ds), ds.sizes["init"]
    moving = ds["residual"].values[ds["converged"].values == 0]
    lines = [f"landscape: {cfg['coupling']} coupling, N = {cfg['N']}, n = {cfg['n']}, {total} initial "
             f"states, method {cfg['method']}, symmetry modded out: {ds.attrs.get('symmetry')}",
             f"converged: {conv}/{total} (max_i |f_i| < tol = {cfg['tol']:g} at t = {cfg['t_max']:g}); "
             + (f"basins are over these {conv} runs" if conv else "no fixed point was reached, so no basins")
             + (f"; {total - conv} still moving (largest residual {moving.max():.2e}) are in no basin"
                if moving.size else ""),
             f"distinct fixed points: {ds.sizes['minimum']}; energy never increased: "
             f"{'yes' if int(ds['energy_monotone']) else 'NO'} (largest increase "
             f"{float(ds['max_energy_increase']):.2e})",
             "  #     energy    basin  count      r"]
    for m in range(min(ds.sizes["minimum"], 12)):
        lines.append(f"{m:3d} {float(ds['minimum_energy'][m]):10.4f} {100 * float(ds['basin_size'][m]):7.1f}% "
                     f"{int(ds['basin_count'][m]):6d} {float(ds['minimum_r'][m]):6.3f}")
    if ds.sizes["minimum"] > 12:
        lines.append(f"  ... {ds.sizes['minimum'] - 12} more")
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``landscape.png`` for a landscape Dataset (atomically; returns ``path``): energy vs time,
    energy histogram of the minima, 2-D projection."""
    fig, cfg = result_figure(ds, "energy_t", "a landscape", (15, 4.6))
    ax_e, ax_h, ax_p = fig.subplots(1, 3)
    C = ds.sizes["minimum"]
    cmap = matplotlib.colormaps["tab10" if C <= 10 else "viridis"]

    def color(c: int):  # c = -1: a run that did not converge (in no basin)
        return "gray" if c < 0 else (cmap(c % 10) if C <= 10 else cmap(c / max(1, C - 1)))

    t = ds["time"].values
    labels = ds["minimum_index"].values
    shown = min(ds.sizes["init"], 40)
    for i in range(shown):
        ax_e.plot(t, ds["energy_t"].values[:, i], lw=0.8, alpha=0.7, color=color(int(labels[i])),
                  ls="--" if labels[i] < 0 else "-")
    ax_e.set_xlabel("simulated time t (model time units)")
    ax_e.set_ylabel("energy E(x)")
    ax_e.set_title(f"energy along {shown} of {ds.sizes['init']} runs (colour: fixed point reached;\n"
                   f"gray dashed: not converged)", fontsize=9.5)
    ax_e.grid(alpha=0.3)
    mono = "never increases" if int(ds["energy_monotone"]) else "INCREASES"
    ax_e.text(0.98, 0.97, f"E {mono} (max ΔE = {float(ds['max_energy_increase']):.1e})", transform=ax_e.transAxes,
              ha="right", va="top", fontsize=8, bbox={"fc": "white", "alpha": 0.8, "lw": 0})

    ef, done = ds["energy_final"].values, ds["converged"].values.astype(bool)
    bins = np.linspace(ef.min() - 1e-9, ef.max() + 1e-9, 31) if np.ptp(ef) > 0 else 10
    *_, bars = ax_h.hist([ef[done], ef[~done]], bins=bins, stacked=True, color=["lightgray", "white"],
                         edgecolor="gray", label=[f"converged runs ({done.sum()})",
                                                  f"still moving at t_max ({(~done).sum()}, in no basin)"])
    for bar in bars[1]:
        bar.set_hatch("///")
    ax_h2 = ax_h.twinx()
    me, bs = ds["minimum_energy"].values, ds["basin_size"].values
    for c in range(C):
        ax_h2.vlines(me[c], 0, 100 * bs[c], color=color(c), lw=2.5)
    ax_h2.set_ylabel("basin size (% of the converged runs)")
    ax_h2.set_ylim(0, 105 * max(bs.max(initial=0.0), 1e-3))
    ax_h.set_xlabel("energy E at the end of the run")
    ax_h.set_ylabel("number of runs")
    ax_h.set_title(f"{C} distinct fixed points among {_converged_count(ds)} converged runs (bars: basin sizes)",
                   fontsize=9.5)
    ax_h.legend(fontsize=8, loc="upper right")

    ga, gb = ds["pc_a"].values, ds["pc_b"].values
    cs = ax_p.contourf(ga, gb, ds["contour_energy"].values, levels=25, cmap="Greys_r", alpha=0.85)
    fig.colorbar(cs, ax=ax_p, label="energy on the projection plane")
    proj = ds["projection_t"].values
    for k in range(ds.sizes["traj"]):
        c = color(int(labels[int(ds["traj"].values[k])]))
        ax_p.plot(proj[:, k, 0], proj[:, k, 1], lw=1.0, color=c)
        ax_p.plot(proj[0, k, 0], proj[0, k, 1], "o", ms=4, mfc="white", mec=c)
        ax_p.plot(proj[-1, k, 0], proj[-1, k, 1], "o", ms=5, color=c)
    ev = ds["explained_variance"].values
    ax_p.set_xlabel(f"principal component 1 ({100 * ev[0]:.0f}% of variance)")
    ax_p.set_ylabel(f"principal component 2 ({100 * ev[1]:.0f}% of variance)")
    ax_p.set_title("trajectories (○ start, ● end) over the energy of the plane", fontsize=9.5)
    fig.suptitle(f"Energy landscape: {cfg['coupling']} coupling, N = {cfg['N']}, n = {cfg['n']}, stimulus "
                 f"{cfg['stimulus']:g}, Ω width {cfg['omega_width']:g}, method {cfg['method']}", fontsize=11)
    return save_figure(fig, path, dpi=120)
