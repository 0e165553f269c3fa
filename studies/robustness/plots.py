"""Figures and a text summary of a robustness evaluation (the Dataset of :func:`~.evaluate.evaluate`).

:func:`plot` writes one figure: accuracy against the L∞ radius for the gradient attacks
(FGSM, PGD, AutoAttack) and for random-sign noise, accuracy against corruption severity, one
reliability diagram per model and the ensemble curves. :func:`plot_reliability_diagrams`
writes a standalone reliability diagram per model (:func:`.metrics.plot_reliability_diagram`).
:func:`summarize` prints the headline numbers next to the paper's CIFAR-10 ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

from studies.figures import new_figure, save_figure
from studies.robustness.metrics import ReliabilityDiagram, plot_reliability_diagram

__all__ = ["plot", "plot_reliability_diagrams", "summarize"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_ATTACK_STYLE = {  # line style ("none": markers only, the attack is run at few radii), marker, label
    "fgsm": ("--", "s", "FGSM"),
    "pgd": ("-", "o", "PGD"),
    "autoattack": ("none", "*", "AutoAttack standard"),
    "autoattack_rand": ("none", "D", "AutoAttack rand (EoT 20)"),
}
_CORRUPTION_STYLE = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)))


def _check(ds: xr.Dataset) -> None:
    if not isinstance(ds, xr.Dataset) or "attack_accuracy" not in ds or ds.attrs.get("akorn_study") != "robustness":
        raise ValueError("ds: expected a robustness Dataset (from 'akorn robustness eval')")


def _curve(ds: xr.Dataset, model: str, attack: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ε (1/255), accuracy and image count where ``attack`` was run on ``model``."""
    if attack not in ds["attack"].values:
        return np.array([]), np.array([]), np.array([])
    acc = ds["attack_accuracy"].sel(model=model, attack=attack).values
    done = np.isfinite(acc)
    n = int(ds["attack_images"].sel(attack=attack))
    return ds["eps_255"].values[done], acc[done], np.full(int(done.sum()), n)


def _binomial_se(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(p * (1 - p), 0, None) / np.maximum(n, 1))


def _eps_axis(ax, eps_max: float) -> None:
    ax.set_xscale("symlog", base=2, linthresh=1.0, linscale=0.6)
    ticks = [0] + [2 ** k for k in range(0, int(np.log2(max(eps_max, 1))) + 1)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlim(-0.15, eps_max * 1.15 if eps_max > 0 else 1)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)


def _describe_model(ds: xr.Dataset, model: str) -> str:
    params = int(ds["parameters"].sel(model=model))
    return f"{model} ({params / 1e6:.2f} M params, {int(ds['train_epochs'].sel(model=model))} ep.)"


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write the study's figure (PNG, atomically).

    Top row: accuracy vs ε for FGSM, PGD and AutoAttack (error bars: binomial standard error of
    the image count); accuracy vs ε of random-sign noise; accuracy vs corruption severity
    (mean over corruptions, thin lines per corruption). Bottom row: the reliability diagram of
    each model (pass 0) and the ensemble accuracy and ECE against the number of random
    initial states.

    Args:
        ds: a robustness Dataset.
        path: PNG destination.

    Returns:
        ``path``.
    """
    _check(ds)
    models = [str(m) for m in ds["model"].values]
    colour = {m: _COLOURS[i % len(_COLOURS)] for i, m in enumerate(models)}
    n_models = len(models)
    fig = new_figure((4.1 * max(3, n_models + 1), 8.6))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.05])
    ax_grad, ax_noise, ax_corr = top.subplots(1, 3)
    counts = {a: int(ds["attack_images"].sel(attack=a)) for a in ds["attack"].values}
    _plot_attacks(ax_grad, ds, models, colour, counts)
    _plot_noise(ax_noise, ds, models, colour, counts)
    _plot_corruptions(ax_corr, ds, models, colour)
    left, right = bottom.subfigures(1, 2, width_ratios=[n_models, 1])
    _plot_reliability(left, ds, models, colour)
    _plot_ensembles(right, ds, models, colour)
    data = ds.attrs.get("data", "?")
    fig.suptitle(f"akorn robustness: {data}, {ds.sizes['image']} test images (seed {ds.attrs.get('seed', '?')}); "
                 f"paper, CIFAR-10: AKOrN^mix 91.2% clean / 58.9% AutoAttack / ECE 1.3%, "
                 f"ResNet-18 94.4% / 0.0% / 8.9%", fontsize=10)
    return save_figure(fig, path, dpi=110)


def _plot_attacks(ax: Any, ds: xr.Dataset, models: list[str], colour: dict[str, str], counts: dict[str, int]) -> None:
    """Accuracy vs ε for FGSM, PGD and AutoAttack (error bars: binomial standard error)."""
    eps_max = 1.0
    for m in models:
        for attack, (ls, marker, _) in _ATTACK_STYLE.items():
            eps, acc, n = _curve(ds, m, attack)
            if not len(eps):
                continue
            eps_max = max(eps_max, float(eps.max()))
            ax.errorbar(eps, acc, yerr=_binomial_se(acc, n), color=colour[m], ls=ls, marker=marker,
                             ms=10 if marker == "*" else 5, capsize=2, lw=1.4, mfc="white" if marker == "D" else None,
                             zorder=3 if ls == "none" else 2)
    _eps_axis(ax, eps_max)
    cfg = json.loads(ds.attrs["config"])
    ax.set_xlabel("L∞ radius ε (units of 1/255)")
    ax.set_ylabel("accuracy on attacked images")
    ax.set_title(f"gradient attacks\nPGD: {cfg['pgd_steps']} steps of ε/3, EoT {cfg['eot']} on stochastic "
                      f"models", fontsize=9)
    handles = [Line2D([], [], color=colour[m], lw=2, label=m) for m in models]
    handles += [Line2D([], [], color="0.3", ls=ls, marker=mk, ms=9 if mk == "*" else 5,
                       mfc="white" if mk == "D" else "0.3", label=f"{lab} ({counts[a]} images)")
                for a, (ls, mk, lab) in _ATTACK_STYLE.items() if a in counts]
    ax.legend(handles=handles, fontsize=7.5, loc="best", framealpha=0.85)


def _plot_noise(ax: Any, ds: xr.Dataset, models: list[str], colour: dict[str, str], counts: dict[str, int]) -> None:
    """Accuracy vs ε of random-sign noise (the reference for the attacks' ε)."""
    eps_max = 1.0
    for m in models:
        eps, acc, n = _curve(ds, m, "random_sign")
        if len(eps):
            eps_max = max(eps_max, float(eps.max()))
            ax.errorbar(eps, acc, yerr=_binomial_se(acc, n), color=colour[m], marker="o", ms=4, capsize=2,
                              lw=1.4, label=m)
    _eps_axis(ax, eps_max)
    ax.set_xlabel("noise size ε (units of 1/255), each pixel ± ε")
    ax.set_ylabel("accuracy")
    title = "random-sign noise"
    if "random_sign" in counts:
        title += f" ({counts['random_sign']} images)"
    ax.set_title(title + "\n(not an attack: the reference for the attacks' ε)", fontsize=9)
    if "random_sign" in counts:
        ax.legend(fontsize=7.5, loc="lower left")


def _plot_corruptions(ax: Any, ds: xr.Dataset, models: list[str], colour: dict[str, str]) -> None:
    """Accuracy vs corruption severity: mean over corruptions (thick) and each corruption (thin)."""
    sev = ds["severity"].values
    for m in models:
        acc = ds["corruption_accuracy"].sel(model=m)
        for i, c in enumerate(ds["corruption"].values):
            ax.plot(sev, acc.sel(corruption=c).values, color=colour[m], lw=0.9, alpha=0.5,
                         ls=_CORRUPTION_STYLE[i % len(_CORRUPTION_STYLE)])
        ax.plot(sev, acc.mean("corruption").values, color=colour[m], lw=2.4, marker="o", ms=4)
    handles = [Line2D([], [], color=colour[m], lw=2.4, marker="o", ms=4, label=f"{m}: mean") for m in models]
    handles += [Line2D([], [], color="0.4", lw=0.9, ls=_CORRUPTION_STYLE[i % len(_CORRUPTION_STYLE)],
                       label=str(c).replace("_", " ")) for i, c in enumerate(ds["corruption"].values)]
    ax.legend(handles=handles, fontsize=7, loc="lower left", ncols=2, framealpha=0.85)
    ax.set_xlim(-0.2, sev[-1] + 0.2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(sev)
    ax.set_xlabel("corruption severity (0: clean)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"common corruptions ({int(ds['corruption_images'])} images)\nthick: mean over "
                      f"corruptions, thin: each corruption", fontsize=9)
    ax.grid(alpha=0.3)


def _plot_reliability(left: Any, ds: xr.Dataset, models: list[str], colour: dict[str, str]) -> None:
    """One reliability diagram per model (pass 0) with the bin populations below it."""
    n_models = len(models)
    axes = np.asarray(left.subplots(2, n_models, height_ratios=[3, 1], sharex="col")).reshape(2, n_models)
    lower, upper = ds["bin_lower"].values, ds["bin_upper"].values
    width = upper - lower
    for j, m in enumerate(models):
        ax, ax_n = axes[0, j], axes[1, j]
        count = ds["calibration_count"].sel(model=m).values
        acc = np.nan_to_num(ds["calibration_accuracy"].sel(model=m).values)
        conf = np.nan_to_num(ds["calibration_confidence"].sel(model=m).values)
        filled = count > 0
        ax.bar(lower, acc, width=width, align="edge", color=colour[m], alpha=0.75, edgecolor="white", lw=0.6,
               label="accuracy in bin")
        gap_lo = np.minimum(acc, conf)
        ax.bar(lower[filled], np.abs(conf - acc)[filled], bottom=gap_lo[filled], width=width[filled], align="edge",
               color="none", edgecolor="#c44e52", hatch="////", lw=0.6, label="gap to mean confidence")
        ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(_describe_model(ds, m), fontsize=9.5)
        ax.text(0.96, 0.05, f"ECE = {100 * float(ds['ece'].sel(model=m)):.2f}%\n"
                            f"accuracy = {100 * float(ds['accuracy'].sel(model=m)):.1f}%\n"
                            f"N = {int(count.sum())}", transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
        ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax_n.bar(lower, count / max(count.sum(), 1), width=width, align="edge", color="0.55", edgecolor="white",
                 lw=0.6)
        ax_n.set_yscale("log")
        ax_n.set_ylim(1e-3, 1.5)
        ax_n.set_xlabel("confidence (top-class probability)")
        ax_n.set_ylabel("fraction")


def _plot_ensembles(right: Any, ds: xr.Dataset, models: list[str], colour: dict[str, str]) -> None:
    """Ensemble accuracy and ECE against the number of random initial states averaged."""
    ax_e, ax_c = right.subplots(2, 1, sharex=True)
    ks = ds["ensemble"].values
    for m in models:
        deterministic = not int(ds["stochastic"].sel(model=m))
        label = f"{m}" + (" (deterministic)" if deterministic else "")
        ax_e.plot(ks, 100 * ds["ensemble_accuracy"].sel(model=m).values, color=colour[m], marker="o", lw=1.8,
                  ls=":" if deterministic else "-", label=label)
        ax_c.plot(ks, 100 * ds["ensemble_ece"].sel(model=m).values, color=colour[m], marker="s", lw=1.8,
                  ls=":" if deterministic else "-")
    ax_c.set_xscale("log", base=2)
    ax_c.set_xticks(ks)
    ax_c.set_xticklabels([str(k) for k in ks])
    ax_c.set_xlabel("random initial states averaged")
    ax_e.set_ylabel("accuracy (%)")
    ax_c.set_ylabel("ECE (%)")
    ax_e.set_title("ensemble over random initial states", fontsize=9.5)
    for a in (ax_e, ax_c):
        a.grid(alpha=0.3)
    ax_e.legend(fontsize=7, loc="best")


def plot_reliability_diagrams(ds: xr.Dataset, directory: str | Path, stem: str = "robustness") -> list[Path]:
    """Write ``<stem>-reliability-<model>.png`` per model (pass-0 predictions) into ``directory``."""
    _check(ds)
    out = []
    edges = np.concatenate([ds["bin_lower"].values, ds["bin_upper"].values[-1:]])
    for m in ds["model"].values:
        diagram = ReliabilityDiagram(edges, ds["calibration_confidence"].sel(model=m).values,
                                     ds["calibration_accuracy"].sel(model=m).values,
                                     ds["calibration_count"].sel(model=m).values.astype(np.int64))
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(m))
        path = Path(directory) / f"{stem}-reliability-{safe}.png"
        out.append(plot_reliability_diagram(diagram, path, title=f"{m}: reliability (pass 0), {ds.attrs.get('data')}"))
    return out


def _pct(value: float) -> str:
    return "     -" if not np.isfinite(value) else f"{100 * value:6.1f}"


def summarize(ds: xr.Dataset) -> str:
    """The headline numbers per model (percent), with image counts, and the paper's for context."""
    _check(ds)
    cfg = json.loads(ds.attrs["config"])

    def at(model: str, attack: str, eps: float) -> float:
        if attack not in ds["attack"].values or not np.isclose(ds["eps_255"].values, eps).any():
            return float("nan")
        e = int(np.flatnonzero(np.isclose(ds["eps_255"].values, eps))[0])
        return float(ds["attack_accuracy"].sel(model=model, attack=attack).values[e])

    k_max = int(ds["ensemble"].values[-1])
    counts = ", ".join(f"{a} {int(n)}" for a, n in zip(ds["attack"].values, ds["attack_images"].values))
    lines = [f"robustness on {ds.attrs.get('data')}: {ds.sizes['image']} test images (seed {ds.attrs.get('seed')}); "
             f"attacked images: {counts}; corruptions on {int(ds['corruption_images'])}",
             f"{'model':<30}{'params':>7}{'epochs':>7}{'clean':>7}{'ECE':>6}{f'ens{k_max}':>7}{'noise64':>8}"
             f"{'FGSM8':>7}{'PGD8':>7}{'AA8':>7}{'AAr8':>7}{'corr.':>7}{'train':>8}{'eval':>8}"]
    for m in ds["model"].values:
        m = str(m)
        corr = float(ds["corruption_accuracy"].sel(model=m).isel(severity=slice(1, None)).mean())
        evals = float(ds["clean_seconds"].sel(model=m) + ds["corruption_seconds"].sel(model=m)
                      + ds["attack_seconds"].sel(model=m).sum())
        lines.append(f"{m[:29]:<30}{float(ds['parameters'].sel(model=m)) / 1e6:6.2f}M"
                     f"{int(ds['train_epochs'].sel(model=m)):>7}{_pct(float(ds['accuracy'].sel(model=m))):>7}"
                     f"{_pct(float(ds['ece'].sel(model=m)))[1:]:>6}"
                     f"{_pct(float(ds['ensemble_accuracy'].sel(model=m).values[-1])):>7}"
                     f"{_pct(at(m, 'random_sign', 64)):>8}{_pct(at(m, 'fgsm', 8)):>7}{_pct(at(m, 'pgd', 8)):>7}"
                     f"{_pct(at(m, 'autoattack', 8)):>7}{_pct(at(m, 'autoattack_rand', 8)):>7}{_pct(corr):>7}"
                     f"{float(ds['train_seconds'].sel(model=m)) / 60:7.1f}m{evals / 60:7.1f}m")
    for name, ref in json.loads(ds.attrs.get("paper_reference", "{}")).items():
        lines.append(f"{name[:29]:<30}{'':>7}{'':>7}{_pct(ref['clean']):>7}{_pct(ref['ece'])[1:]:>6}{'':>7}{'':>8}"
                     f"{'':>7}{'':>7}{'':>7}{_pct(ref['autoattack']):>7}")
    lines.append(f"(percent; ECE with {cfg['n_bins']} bins; corr. = mean over corruptions and severities 1-5; "
                 f"PGD {cfg['pgd_steps']} steps, EoT {cfg['eot']}; AA = AutoAttack standard, AAr = AutoAttack rand; "
                 f"the paper's AutoAttack is 'with EoT')")
    return "\n".join(lines)
