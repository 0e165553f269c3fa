"""The summary table and the figure of a synchronisation result (``sync.png``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import xarray as xr

import kuramoto as ku
from studies.figures import result_figure, save_figure

__all__ = ["plot", "summarize"]


def summarize(ds: xr.Dataset) -> str:
    """A short table: K, r (mean ± std over seeds) per N and direction, theory."""
    config = json.loads(ds.attrs["config"])
    lines = [f"sync: {config['distribution']} g(ω), width {config['width']:g}, n = {config['n']}, "
             f"graph {config['graph']}, method {config['method']}, K_c = {float(ds['K_c']):.4g}"]
    r = ds["r"]
    if "direction" in r.dims:
        cols = [(d, N) for d in r["direction"].values for N in r["N"].values]
    else:
        cols = [(None, N) for N in r["N"].values]
    head = "   K   " + "".join(f"{(str(d) + ' ' if d else '') + 'N=' + str(N):>18}" for d, N in cols) + "    theory"
    lines.append(head)
    for k, K in enumerate(ds["K"].values):
        row = f"{K:6.3f} "
        for d, N in cols:
            sel = r.isel(K=k).sel(N=N)
            if d is not None:
                sel = sel.sel(direction=d)
            row += f"{float(sel.mean()):>11.4f} ± {float(sel.std()):.4f}"
        row += f"{float(ds['r_theory'][k]):>10.4f}"
        lines.append(row)
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``sync.png`` for a Dataset of :func:`run` or ``sync.h5`` (atomically; returns ``path``):
    r(K) (mean ± spread over seeds) with theory and K_c; r(t) for a few K."""
    fig, cfg = result_figure(ds, "r", "a sync", (11, 4.6))
    ax, ax_t = fig.subplots(1, 2, width_ratios=[1.35, 1])
    _plot_transition(ax, ds, cfg)
    _plot_trajectories(ax_t, ds, cfg)
    return save_figure(fig, path, dpi=130)


def _plot_transition(ax: Any, ds: xr.Dataset, cfg: dict[str, Any]) -> None:
    """r(K): mean ± sd over seeds per N (and sweep direction) as error bars, theory and K_c.

    Error bars, not a shaded band: a band is interpolated between neighbouring K and drew a wedge
    across K_c, where r(K) has a kink and the seeds' spread jumps (the sd is defined at the
    simulated K only)."""
    K = ds["K"].values
    directions = list(ds["direction"].values) if "direction" in ds["r"].dims else [None]
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    markers = {None: "o", "forward": "^", "backward": "v"}
    for a, N in enumerate(ds["N"].values):
        for d in directions:
            r = ds["r"].sel(N=N) if d is None else ds["r"].sel(N=N, direction=d)
            mean, std = r.mean("seed").values, r.std("seed").values
            label = f"simulation, N = {N}" + (f", {d}" if d else "") + f" (mean ± sd, {ds.sizes['seed']} seeds)"
            color = colors[a % len(colors)]
            ax.errorbar(K, mean, yerr=std, fmt=markers.get(d, "o"), ms=4.5, color=color, capsize=2, lw=1,
                        label=label, mfc="white" if d == "backward" else color)
        ax.axhline(float(ds["r_incoherent"].sel(N=N)), color=colors[a % len(colors)], ls=":", lw=1,
                   label=f"incoherent level ≈ 0.89/√N, N = {N}" if cfg["n"] == 2 else f"incoherent level, N = {N}")
    kc = float(ds["K_c"])
    if np.isfinite(kc):
        fine = np.linspace(0.0, max(K.max(), 1e-9), 600)
        ax.plot(fine, ku.theory.order_parameter(fine, cfg["distribution"], cfg["width"]), color="black", lw=1.6,
                label=f"theory (N → ∞, {cfg['distribution']})")
        ax.axvline(kc, color="crimson", ls="--", lw=1.2, label=f"K_c = 2/(π g(0)) = {kc:.3g}")
    ax.set_xlabel("coupling strength K (per model time unit)")
    ax.set_ylabel("time-averaged order parameter r")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(K.min() - 0.02 * (np.ptp(K) or 1), K.max() + 0.02 * (np.ptp(K) or 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    ax.set_title(f"Kuramoto transition: n = {cfg['n']}, {cfg['graph']} graph, {cfg['distribution']} g(ω), "
                 f"width {cfg['width']:g}", fontsize=10)


def _plot_trajectories(ax_t: Any, ds: xr.Dataset, cfg: dict[str, Any]) -> None:
    """r(t) for a few K (seed 0, largest N), or along the adiabatic sweep with K(t)."""
    K = ds["K"].values
    directions = list(ds["direction"].values) if "direction" in ds["r"].dims else [None]
    N = ds["N"].values[-1]
    t = ds["time"].values
    if "direction" in ds["r_t"].dims:
        rt = ds["r_t"].sel(N=N).isel(seed=0, direction=0)
        ax_t.plot(t, rt.values, lw=0.8, color="tab:blue", label=f"{directions[0]} sweep")
        ax_t2 = ax_t.twinx()
        ax_t2.plot(t, ds["K_t"].isel(direction=0).values, color="gray", lw=0.8, ls="--")
        ax_t2.set_ylabel("coupling strength K(t)", color="gray")
    else:
        picks = sorted({int(i) for i in np.linspace(0, len(K) - 1, min(5, len(K))).round()})
        cmap = matplotlib.colormaps["viridis"]
        for j, k in enumerate(picks):
            ax_t.plot(t, ds["r_t"].sel(N=N).isel(seed=0, K=k).values, lw=0.9,
                      color=cmap(j / max(1, len(picks) - 1)), label=f"K = {K[k]:.2f}")
        ax_t.axvspan(cfg["t_transient"], t.max(), color="gray", alpha=0.12, label="averaging window")
    ax_t.set_xlabel("simulated time t (model time units)")
    ax_t.set_ylabel("order parameter r(t)")
    ax_t.set_ylim(0, 1.02)
    ax_t.grid(alpha=0.3)
    ax_t.legend(fontsize=7.5, loc="upper left" if "direction" in ds["r_t"].dims else "center right")
    ax_t.set_title(f"r(t), seed {int(ds['seed'].values[0])}, N = {N}, method {cfg['method']}", fontsize=10)
