"""The summary table and the figure of a methods result.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import xarray as xr

from studies.figures import result_figure, save_figure
from studies.methods.config import upgrade

__all__ = ["plot", "summarize"]


def _fit_reason(ds: xr.Dataset, m: str) -> str:
    """A few words on why the order of fixed-step method ``m`` was not fitted ("" if it was)."""
    one = ds.sel(solver=m)
    if "order_note" not in ds or int(one["adaptive"]) or np.isfinite(float(one["order_observed"])):
        return ""
    note = str(one["order_note"].values)
    for key, words in (("too coarse", "steps too coarse"), ("round-off", "round-off"), ("failed", "failed runs")):
        if key in note:
            return words
    return "not fitted"


def summarize(ds: xr.Dataset) -> str:
    """One line per method: nominal and observed order, best error, its cost, drift; then why an
    observed order is missing."""
    ds = upgrade(ds)
    lines = [f"{'solver':<18} {'order':>5} {'observed':>8} {'best error':>11} {'wall (s)':>9} {'nfe':>7} "
             f"{'max drift':>10}"]
    notes = []
    for m in ds["solver"].values:
        e = ds["error"].sel(solver=m).values
        if np.all(~np.isfinite(e)):
            lines.append(f"{m:<18} {int(ds['order'].sel(solver=m)):>5}   failed: "
                         f"{str(ds['status'].sel(solver=m).values[0])[:60]}")
            continue
        k = int(np.nanargmin(e))
        obs = float(ds["order_observed"].sel(solver=m))
        shown = f"{obs:>8.2f}" if np.isfinite(obs) else (f"{'adaptive':>8}" if int(ds["adaptive"].sel(solver=m))
                                                          else f"{'n/a *':>8}")
        if _fit_reason(ds, m):
            notes.append(f"  * {m}: {ds['order_note'].sel(solver=m).values}")
        lines.append(f"{m:<18} {int(ds['order'].sel(solver=m)):>5} {shown} {e[k]:>11.2e} "
                     f"{float(ds['wall_time'].sel(solver=m)[k]):>9.4f} {int(ds['nfe'].sel(solver=m)[k]):>7d} "
                     f"{np.nanmax(ds['drift'].sel(solver=m).values):>10.1e}")
    return "\n".join(lines + notes)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write the comparison figure of an integrators Dataset (atomically; returns ``path``): error vs
    h (order slopes), error vs wall time, drift vs h."""
    fig, cfg = result_figure(ds, "error", "an integrators", (17, 6.2))
    ds = upgrade(ds)
    ax_o, ax_w, ax_d = fig.subplots(1, 3)
    names = list(ds["solver"].values)
    cmap = matplotlib.colormaps["tab20"]
    tiny = 1e-17
    for i, m in enumerate(names):
        sel = ds.sel(solver=m)
        err = np.maximum(sel["error"].values, tiny)
        h = sel["h_effective"].values
        ok = np.isfinite(sel["error"].values)
        if not ok.any():
            continue
        adaptive = bool(sel["adaptive"])
        style = {"color": cmap(i % 20), "marker": "osD^v<>"[i % 7], "ms": 4, "lw": 1.2,
                 "ls": "--" if adaptive else "-"}
        obs = float(sel["order_observed"])
        if adaptive:
            label = f"{m} (p={int(sel['order'])}, adaptive)"
        else:
            reason = _fit_reason(ds, m)
            label = f"{m} (p={int(sel['order'])}" + (f", fit {obs:.1f})" if np.isfinite(obs) else
                                                     f", no fit: {reason})" if reason else ")")
        ax_o.loglog(h[ok], err[ok], label=label, **style)
        ax_w.loglog(np.maximum(sel["wall_time"].values[ok], 1e-6), err[ok], label=m, **style)
        ax_d.loglog(h[ok], np.maximum(sel["drift"].values[ok], tiny), label=m, **style)
    hh = ds["h"].values
    for p, ls in ((1, ":"), (2, "-."), (4, "--")):
        anchor = 1e-2 * (hh / hh.max()) ** p
        ax_o.loglog(hh, anchor, color="black", lw=0.8, ls=ls, alpha=0.6)
        ax_o.text(hh[-1], anchor[-1], f" slope {p}", fontsize=7, va="center", alpha=0.7)
    ax_o.set_xlabel("step size h (mean accepted step for adaptive methods, model time units)")
    ax_o.set_ylabel(f"error at t = {cfg['t_end']:g}: max_i |x_i − x_ref,i|")
    ax_o.set_title("convergence (order slopes)", fontsize=10)
    ax_w.set_xlabel("wall time per solve (s)")
    ax_w.set_ylabel("error")
    ax_w.set_title("work–precision", fontsize=10)
    ax_d.set_xlabel("step size h (model time units)")
    ax_d.set_ylabel("drift off the spheres: max_i | |x_i| − 1 |")
    ax_d.set_title("sphere drift (round-off level: method stays on the sphere)", fontsize=10)
    for ax in (ax_o, ax_w, ax_d):
        ax.grid(alpha=0.3, which="both")
    handles, labels = ax_o.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7.5,
               title="method (nominal order p,\nfitted slope); dashed: adaptive")
    fig.suptitle(f"Integrators vs scipy_reference: N = {cfg['N']}, n = {cfg['n']}, batch {cfg['batch']}, dense J "
                 f"(scale {cfg['coupling']:g}), Ω width {cfg['omega_width']:g}, stimulus {cfg['stimulus']:g}, "
                 f"{cfg['dtype']}", fontsize=11)
    return save_figure(fig, path, dpi=115)
