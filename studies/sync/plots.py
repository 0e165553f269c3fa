"""The summary table and the figure of a synchronisation result (``sync.png``).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import xarray as xr

import kuramoto as ku
from studies.figures import result_figure, save_figure

__all__ = ["plot", "summarize"]


def _model(config: dict[str, Any]) -> str:
    text = f"{config['distribution']} g(ω), width {config['width']:g}" if config["width"] > 0 else "identical ω"
    if config.get("noise", 0.0) > 0:
        text += f", noise D = {config['noise']:g}"
    if config.get("lag", 0.0) != 0:
        text += f", lag α = {config['lag']:g}"
    return text


def _theory_note(ds: xr.Dataset) -> str:
    """What the theory could not give (the comment of r_theory when it is NaN throughout), or ''."""
    if np.isfinite(ds["r_theory"].values).any():
        return ""
    return str(ds["r_theory"].attrs.get("comment", "")).removeprefix("NaN: ")


def summarize(ds: xr.Dataset) -> str:
    """A short table: K, r (mean ± std over seeds) per N and direction, theory (and with a lag the
    rotation rate Ω of the mean field against the locked group's)."""
    config = json.loads(ds.attrs["config"])
    lines = [f"sync: {_model(config)}, n = {config['n']}, graph {config['graph']}, method {config['method']}, "
             f"K_c = {float(ds['K_c']):.4g}"]
    if _theory_note(ds):
        lines.append(f"theory: {_theory_note(ds)}")
    lag = "omega_locked" in ds and config.get("lag", 0.0) != 0
    r = ds["r"]
    if "direction" in r.dims:
        cols = [(d, N) for d in r["direction"].values for N in r["N"].values]
    else:
        cols = [(None, N) for N in r["N"].values]
    head = "   K   " + "".join(f"{(str(d) + ' ' if d else '') + 'N=' + str(N):>18}" for d, N in cols) + "    theory"
    lines.append(head + ("   Ω (sim, N=%d)   Ω theory" % ds["N"].values[-1] if lag else ""))
    for k, K in enumerate(ds["K"].values):
        row = f"{K:6.3f} "
        for d, N in cols:
            sel = r.isel(K=k).sel(N=N)
            if d is not None:
                sel = sel.sel(direction=d)
            row += f"{float(sel.mean()):>11.4f} ± {float(sel.std()):.4f}"
        row += f"{float(ds['r_theory'][k]):>10.4f}"
        if lag:
            om = ds["omega_locked"].isel(K=k, N=-1)
            row += f"   {float(om.mean()):>9.4f} ± {float(om.std()):.4f}{float(ds['omega_locked_theory'][k]):>10.4f}"
        lines.append(row)
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``sync.png`` for a Dataset of :func:`run` or ``sync.h5`` (atomically; returns ``path``):
    r(K) (mean ± spread over seeds) with theory and K_c; r(t) for a few K."""
    lagged = "omega_locked_theory" in ds and bool(np.isfinite(ds["omega_locked_theory"].values).any()) and \
        json.loads(ds.attrs["config"]).get("lag", 0.0) != 0
    fig, cfg = result_figure(ds, "r", "a sync", (16, 4.6) if lagged else (11, 4.6))
    axes = fig.subplots(1, 3 if lagged else 2, width_ratios=[1.35, 1, 1] if lagged else [1.35, 1])
    _plot_transition(axes[0], ds, cfg)
    _plot_trajectories(axes[1], ds, cfg)
    if lagged:
        _plot_locked_frequency(axes[2], ds, cfg)
    return save_figure(fig, path, dpi=130)


def _theory_curve(K: np.ndarray, cfg: dict[str, Any]) -> np.ndarray | None:
    try:
        return np.asarray(ku.theory.order_parameter(K, cfg["distribution"], cfg["width"], noise=cfg.get("noise", 0.0),
                                                    lag=cfg.get("lag", 0.0), n=cfg["n"]))
    except ValueError:
        return None


def _plot_locked_frequency(ax: Any, ds: xr.Dataset, cfg: dict[str, Any]) -> None:
    """Ω(K): the measured rotation rate of the mean field (mean ± sd over seeds) against the locked
    group's from the Ott–Antonsen theory (Ω = ω0 − K sin α + Δ tan α for the Lorentzian)."""
    K = ds["K"].values
    kc = float(ds["K_c"])
    above = K > kc if np.isfinite(kc) else np.ones_like(K, dtype=bool)
    for a, N in enumerate(ds["N"].values):
        om = ds["omega_locked"].sel(N=N)
        mean, std = om.mean("seed").values, om.std("seed").values
        color = ["tab:blue", "tab:orange", "tab:green"][a % 3]
        ax.errorbar(K[above], mean[above], yerr=std[above], fmt="o", ms=4, capsize=2, lw=1, color=color,
                    label=f"simulation, N = {N}")
        if (~above).any():
            ax.errorbar(K[~above], mean[~above], yerr=std[~above], fmt="o", ms=4, capsize=2, lw=1, color="gray",
                        mfc="white", label="below K_c: no locked group" if a == 0 else None)
    th = ds["omega_locked_theory"].values
    ax.plot(K, th, "k-", lw=1.4, label="theory (locked group, N → ∞)")
    if np.isfinite(kc):
        ax.axvline(kc, color="crimson", ls="--", lw=1.2)
    ax.set_xlabel("coupling strength K (per model time unit)")
    ax.set_ylabel("rotation rate Ω of the mean field (rad per time unit)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    ax.set_title(f"rotation of the locked group, lag α = {cfg.get('lag', 0.0):g}", fontsize=10)


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
    fine = np.linspace(0.0, max(K.max(), 1e-9), 600)
    curve = _theory_curve(fine, cfg) if np.isfinite(ds["r_theory"].values).any() else None
    if curve is not None:
        ax.plot(fine, curve, color="black", lw=1.6, label=f"theory (N → ∞, {_model(cfg)})")
    if np.isfinite(kc):
        ax.axvline(kc, color="crimson", ls="--", lw=1.2, label=f"K_c (theory) = {kc:.3g}")
    note = _theory_note(ds)
    if note:
        ax.text(0.98, 0.03, "\n".join(textwrap.wrap(note, 60)), transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7.5, color="dimgray", bbox={"facecolor": "white", "edgecolor": "lightgray", "alpha": 0.9})
    ax.set_xlabel("coupling strength K (per model time unit)")
    ax.set_ylabel("time-averaged order parameter r")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(K.min() - 0.02 * (np.ptp(K) or 1), K.max() + 0.02 * (np.ptp(K) or 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    ax.set_title(f"Kuramoto transition: n = {cfg['n']}, {cfg['graph']} graph, {_model(cfg)}", fontsize=10)


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
