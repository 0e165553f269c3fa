"""Figures of the object-discovery study: evaluation (masks and oscillators) and training curves."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.ticker import MaxNLocator

from studies.figures import check_result, new_figure, save_figure
from studies.objects.config import MODEL_NAMES

__all__ = ["mask_colours", "plot", "plot_eval", "plot_training", "summarize"]

_BACKGROUND = np.array([0.12, 0.12, 0.12])
_IGNORE = np.array([1.0, 1.0, 1.0])


def _palette(count: int) -> np.ndarray:
    tab = np.asarray(matplotlib.colormaps["tab10"].colors)
    extra = np.asarray(matplotlib.colormaps["Set3"].colors)
    colours = np.concatenate([tab, extra])
    return colours[np.arange(count) % len(colours)]


def mask_colours(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB images ``[H, W, 3]`` of a ground-truth mask and a prediction with matching colours.

    Ground truth: background dark grey, ignored pixels white, object ``i`` the ``i``-th palette
    colour. Predicted clusters are matched one-to-one to ground-truth ids (background
    included) by maximal pixel overlap (Hungarian assignment); a matched cluster takes its
    partner's colour, the others take the next unused palette colours, so a correct
    segmentation looks like the ground truth whatever the cluster numbering.
    """
    from scipy.optimize import linear_sum_assignment

    true = np.asarray(true).astype(np.int64)
    pred = np.asarray(pred).astype(np.int64)
    gt_ids = np.unique(true[true >= 0])
    pr_ids = np.unique(pred)
    top = int(max(gt_ids.max(initial=0), 0))
    palette = _palette(top + len(pr_ids) + 1)
    gt_colour = {int(i): (_BACKGROUND if i == 0 else palette[i - 1]) for i in gt_ids}
    out_true = np.empty((*true.shape, 3))
    out_true[true < 0] = _IGNORE
    for i, c in gt_colour.items():
        out_true[true == i] = c
    valid = true >= 0
    overlap = np.zeros((len(pr_ids), len(gt_ids)))
    if len(gt_ids):
        np.add.at(overlap, (np.searchsorted(pr_ids, pred[valid]), np.searchsorted(gt_ids, true[valid])), 1)
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else (np.array([], int), np.array([], int))
    pred_colour = {int(pr_ids[r]): gt_colour[int(gt_ids[c])] for r, c in zip(rows, cols) if overlap[r, c] > 0}
    spare = iter(palette[top:])
    out_pred = np.empty((*pred.shape, 3))
    for p in pr_ids:
        out_pred[pred == p] = pred_colour.get(int(p), next(spare))
    return out_true, out_pred


def _outline_objects(ax: Any, true: np.ndarray) -> None:
    """Draw the ground-truth objects' outlines (thin white lines) over a panel in pixel coordinates."""
    h, w = true.shape
    ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
    for i in np.unique(true[true > 0]):
        ax.contour(xs, ys, (true == i).astype(float), levels=[0.5], colors="white", linewidths=0.6, alpha=0.8)


def _shown_steps(steps: np.ndarray, limit: int = 5) -> list[int]:
    t_max = int(steps[-1])
    wanted = sorted({0, 1, 2, t_max // 2, t_max} & set(int(s) for s in steps))
    return wanted[:limit - 1] + [t_max] if len(wanted) > limit else wanted


def plot_eval(ds: xr.Dataset, path: str | Path, *, max_examples: int = 6) -> Path:
    """Write the evaluation figure: examples (image, ground truth, prediction, features, oscillator
    states at a few Kuramoto steps) and the score distributions (and, for AKOrN, the FG-ARI of
    the oscillators against the step).

    Args:
        ds: an evaluation Dataset (:func:`studies.objects.evaluate.evaluate_run`).
        path: PNG destination (written atomically).
        max_examples: rows of examples shown.

    Returns:
        ``path``.
    """
    check_result(ds, "example_image", "an objects evaluation")
    rows = int(min(ds.sizes["example"], max_examples))
    akorn = "state_rgb" in ds
    shown = _shown_steps(ds["step"].values) if akorn else []
    cols = 4 + len(shown)
    fig_width = max(1.55 * cols + 0.4, 9.0)
    fig = new_figure((fig_width, 1.55 * rows + 3.4))
    outer = fig.add_gridspec(2, 1, height_ratios=[1.55 * rows, 2.5])
    grid = outer[0].subgridspec(rows, cols, wspace=0.04, hspace=0.04)
    _plot_examples(fig, grid, ds, rows, shown)
    _plot_scores(fig, outer[1], ds, akorn)
    fig.suptitle("\n".join(textwrap.wrap(summarize(ds).split("\n")[0], width=int(13 * fig_width))), fontsize=10)
    return save_figure(fig, path, dpi=110)


def _plot_examples(fig: Any, grid: Any, ds: xr.Dataset, rows: int, shown: list[int]) -> None:
    """One row per example: image, ground truth, prediction, features and the oscillators at a few steps."""
    akorn = "state_rgb" in ds
    titles = ["image", "ground truth", "prediction", "features (PCA)"] + [f"oscillators t={t}" for t in shown]
    height, width = ds.sizes["y"], ds.sizes["x"]
    extent = (0, width, height, 0)   # every panel in image pixels, so outlines line up with coarse maps
    for r in range(rows):
        image = np.clip(ds["example_image"].values[r].transpose(1, 2, 0), 0, 1)
        true = ds["example_true_mask"].values[r]
        true_rgb, pred_rgb = mask_colours(true, ds["example_pred_mask"].values[r])
        panels = [image, true_rgb, pred_rgb, ds["example_feature_rgb"].values[r]]
        if akorn:
            steps = list(ds["step"].values)
            panels += [ds["state_rgb"].values[r, steps.index(t)] for t in shown]
        for c, panel in enumerate(panels):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(panel, interpolation="nearest", extent=extent)
            if c >= 3:
                _outline_objects(ax, true)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8.5)
            if c == 0:
                ax.set_ylabel(f"#{int(ds['example_index'].values[r])}", fontsize=8)
            if c == 2:
                ari = float(ds["fg_ari"].values[int(ds["example_index"].values[r])])
                ax.text(0.02, 0.02, f"FG-ARI {100 * ari:.0f}" if np.isfinite(ari) else "no objects",
                        transform=ax.transAxes, fontsize=7, color="white", va="bottom",
                        bbox={"fc": "black", "alpha": 0.55, "lw": 0, "pad": 1.5})


def _plot_scores(fig: Any, area: Any, ds: xr.Dataset, akorn: bool) -> None:
    """Histograms of the scores per image and, for AKOrN, the FG-ARI of the oscillators against the step."""
    bottom = area.subgridspec(1, 2 if akorn else 1, wspace=0.15)
    ax_h = fig.add_subplot(bottom[0, 0])
    bins = np.linspace(-10, 100, 23)
    for key, label, colour in (("fg_ari", "FG-ARI", "tab:blue"), ("mbo", "MBO", "tab:orange")):
        v = 100 * ds[key].values
        v = v[np.isfinite(v)]
        ax_h.hist(np.clip(v, -10, 100), bins=bins, alpha=0.6, color=colour,
                  label=f"{label} {np.mean(v):.1f} ± {np.std(v):.1f}")
        if f"untrained_{key}" in ds:
            u = 100 * ds[f"untrained_{key}"].values
            u = u[np.isfinite(u)]
            ax_h.hist(np.clip(u, -10, 100), bins=bins, histtype="step", lw=1.4, ls="--", color=colour,
                      label=f"{label} untrained {np.mean(u):.1f} ± {np.std(u):.1f}")
    ax_h.set_xlabel("score per test image (%)")
    ax_h.set_ylabel("images")
    ax_h.legend(fontsize=8, loc="upper left")
    ax_h.set_title(f"scores of {int(ds['images_scored'])} test images (mean ± std over images)", fontsize=9)
    if akorn:
        ax_s = fig.add_subplot(bottom[0, 1])
        v = 100 * ds["fg_ari_by_step"].values
        t = ds["step"].values
        q25, q50, q75 = np.nanpercentile(v, [25, 50, 75], axis=1)
        ax_s.fill_between(t, q25, q75, color="tab:green", alpha=0.2, label="quartiles over images")
        ax_s.plot(t, np.nanmean(v, axis=1), "o-", color="tab:green", label="mean")
        ax_s.plot(t, q50, "--", color="tab:green", lw=1, label="median")
        ax_s.axhline(100 * float(ds["fg_ari_mean"]), color="tab:blue", lw=1, ls=":",
                     label="readout features (the score above)")
        ax_s.set_xlabel("Kuramoto step t (last block)")
        ax_s.set_ylabel("FG-ARI of clustering x_t (%)")
        ax_s.set_title("binding: clustering the oscillators themselves at each step", fontsize=9)
        ax_s.legend(fontsize=7.5, loc="lower right")
        ax_s.grid(alpha=0.3)


def plot_training(history: xr.Dataset, path: str | Path, *, title: str = "",
                  steps_per_epoch: int | None = None) -> Path:
    """Write the training curves: InfoNCE loss, contrastive top-1 accuracy, monitoring FG-ARI/MBO.

    Args:
        history: a :class:`~studies.training.Trainer` history of the SimCLR objective.
        path: PNG destination (written atomically).
        title: figure title.
        steps_per_epoch: optimizer steps per epoch, to place the epoch means on the step axis
            (default: estimated from the last logged step).

    Returns:
        ``path``.
    """
    if not isinstance(history, xr.Dataset) or "epoch_loss" not in history:
        raise ValueError("history: expected a Trainer history with an 'epoch_loss' variable")
    fig = new_figure((13, 3.6))
    ax_l, ax_a, ax_m = fig.subplots(1, 3)
    if steps_per_epoch is None:
        steps_per_epoch = _steps_per_epoch(history)
    if history.sizes.get("step"):
        ax_l.plot(history["step"].values, history["loss"].values, lw=0.8, color="0.6", label="per 10 steps")
        if "acc" in history:
            ax_a.plot(history["step"].values, 100 * history["acc"].values, lw=0.8, color="0.6", label="per 10 steps")
    ep_step = history["epoch"].values * steps_per_epoch
    ax_l.plot(ep_step, history["epoch_loss"].values, "o-", color="tab:red", ms=3, label="epoch mean")
    ax_l.set_xlabel("optimizer step")
    ax_l.set_ylabel("InfoNCE loss")
    ax_l.set_title("SimCLR loss", fontsize=9.5)
    ax_l.legend(fontsize=8)
    if "epoch_acc" in history:
        ax_a.plot(ep_step, 100 * history["epoch_acc"].values, "o-", color="tab:red", ms=3, label="epoch mean")
    ax_a.set_xlabel("optimizer step")
    ax_a.set_ylabel("positive ranked first (%)")
    ax_a.set_title("contrastive top-1 accuracy", fontsize=9.5)
    ax_a.legend(fontsize=8)
    drawn = False
    for key, label, style in (("eval_fg_ari", "FG-ARI (raw)", "o--"), ("eval_ema_fg_ari", "FG-ARI (EMA)", "o-"),
                              ("eval_mbo", "MBO (raw)", "s--"), ("eval_ema_mbo", "MBO (EMA)", "s-")):
        if key in history:
            v = history[key].values
            ok = np.isfinite(v)
            ax_m.plot(history["epoch"].values[ok], 100 * v[ok], style, ms=3, label=label,
                      color="tab:blue" if "fg_ari" in key else "tab:orange")
            drawn = True
    ax_m.set_xlabel("epoch")
    ax_m.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_m.set_ylabel("score on monitoring scenes (%)")
    ax_m.set_title("object discovery during training", fontsize=9.5)
    if drawn:
        ax_m.legend(fontsize=8)
    for ax in (ax_l, ax_a, ax_m):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10.5)
    return save_figure(fig, path, dpi=110)


def _steps_per_epoch(history: xr.Dataset) -> float:
    """Optimizer steps per epoch, estimated from the last logged step (logged every few steps)."""
    if history.sizes.get("step") and history.sizes.get("epoch"):
        return float(np.ceil(history["step"].values[-1] / history["epoch"].values[-1]))
    return 1.0


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def summarize(ds: xr.Dataset) -> str:
    """FG-ARI and MBO in percent (mean ± std over images), and the binding curve for AKOrN."""
    if not isinstance(ds, xr.Dataset) or "fg_ari" not in ds:
        raise ValueError("ds: expected an objects evaluation Dataset with an 'fg_ari' variable")
    a = ds.attrs
    source = ("look-alike scenes" if int(a.get("look_alike", 0)) else "scenes")
    model = MODEL_NAMES.get(str(a.get("model")), a.get("model_class", "?"))
    head = (f"{model} on {a.get('dataset', a.get('dataset_name', '?'))} "
            f"{source}, {int(ds['images_scored'])} test images, K={a.get('clusters')}, up-tiling x{a.get('uptile')}"
            + (f", EMA weights after {_epochs(int(a['trained_epochs']))}" if "trained_epochs" in a else ""))

    def pm(key: str) -> str:
        return f"{100 * float(ds[key + '_mean']):.1f} ± {100 * float(ds[key + '_std']):.1f}"

    lines = [head, f"FG-ARI {pm('fg_ari')}   MBO {pm('mbo')}   (percent, mean ± std over images)"]
    if "untrained_fg_ari_mean" in ds:
        lines.append(f"untrained (the run's initial weights): FG-ARI {pm('untrained_fg_ari')}   "
                     f"MBO {pm('untrained_mbo')}")
    if "fg_ari_by_step" in ds:
        curve = np.nanmean(ds["fg_ari_by_step"].values, axis=1) * 100
        lines.append("FG-ARI of clustering the oscillators x_t: " +
                     ", ".join(f"t={t} {v:.1f}" for t, v in zip(ds["step"].values, curve)))
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write the evaluation figure of ``ds`` (:func:`plot_eval`)."""
    return plot_eval(ds, path)
