"""Figures and a text summary of a Sudoku evaluation (``sudoku.h5``).

- :func:`plot`: accuracy against test-time steps T (both splits), against the number K of
  copies selected by energy, and the training curves; :func:`plot` also writes the board
  picture next to it (``<name>_boards.png``).
- :func:`plot_boards`: a few boards with every model's answers; givens in black, right
  answers in blue, wrong ones in red with the right digit small in the corner.
- :func:`summarize`: the headline numbers next to the paper's 9×9 figures.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogFormatterSciNotation, MaxNLocator, NullFormatter

from studies.figures import new_figure, save_figure

__all__ = ["PAPER", "plot", "plot_boards", "summarize"]

LABELS = {"akorn": "AKOrN", "itrsa": "ItrSA", "transformer": "Transformer"}
COLORS = {"akorn": "#1f77b4", "itrsa": "#ff7f0e", "transformer": "#2ca02c"}
#: The paper's 9×9 board accuracies in % (docs/AKORN.md §7.4: SATNet test / RRN sudoku-hard).
PAPER = {
    "AKOrN (T=128)": (100.0, 51.7),
    "AKOrN (T=128, K=100)": (100.0, 81.6),
    "ItrSA (T=32)": (95.7, 34.4),
    "Transformer": (98.6, 5.2),
}


def _check(ds: Any) -> xr.Dataset:
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected an xarray.Dataset, got {type(ds).__name__}")
    for name in ("board_acc", "vote_board_acc", "train_steps"):
        if name not in ds:
            raise ValueError(f"ds: not a Sudoku evaluation (no variable {name!r})")
    return ds


def _box(ds: xr.Dataset) -> tuple[int, int]:
    box = ds.attrs.get("box")
    if box is not None and len(np.atleast_1d(box)) == 2:
        return int(np.atleast_1d(box)[0]), int(np.atleast_1d(box)[1])
    side = ds.sizes["row"]
    root = int(math.isqrt(side))
    return (root, root) if root * root == side else (1, side)


def _tick_labels(ts: list[int], ratio: float = 1.2) -> list[str]:
    """Labels for ticks at ``ts`` (sorted) on a log axis: a value closer than ``ratio`` to the last
    labelled one (17 after 16) gets an empty label, which would overlap it."""
    labels, last = [], None
    for t in ts:
        show = last is None or t >= last * ratio
        labels.append(str(t) if show else "")
        last = t if show else last
    return labels


def _headline_vote(ds: xr.Dataset, model: str) -> tuple[int, int, str] | None:
    """(T, K, score) of the strongest selection setting that was run: largest T, largest K, 'sum' first."""
    v = ds.vote_board_acc.sel(model=model)
    run = np.isfinite(v.values).any(axis=0)  # [T, K, score]
    if not run.any():
        return None
    scores = list(ds.score.values)
    score = "sum" if "sum" in scores else scores[0]
    t_idx = int(np.nonzero(run.any(axis=(1, 2)))[0].max())
    k_idx = int(np.nonzero(run[t_idx].any(axis=1))[0].max())
    return int(ds.T.values[t_idx]), int(ds.K.values[k_idx]), str(score)


def plot(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write the accuracy figure to ``path`` and the board picture to ``<stem>_boards.png``.

    Panels: board accuracy vs T on the in-distribution and the OOD boards (one initial state,
    all test boards; the Transformer, evaluated at its own T only, as a horizontal line; thin
    lines: AKOrN's answer read out at every even and every odd step of one run, when the file
    has it);
    AKOrN's board accuracy vs K (selection by energy, ``sum`` solid, ``last`` dashed, ``paper``
    dash-dotted; by the readout's confidence dotted); the
    validation board accuracy (evaluated weights solid, raw weights dashed when the EMA is
    evaluated) and the training loss per epoch; the headline numbers as text.

    Returns:
        ``path``.
    """
    ds = _check(ds)
    path = Path(path)
    side = ds.sizes["row"]
    fig = new_figure((14, 8.2), layout=None)
    axes = fig.subplots(2, 3)
    for j, split in enumerate(ds.split.values):
        _plot_steps(axes[0, j], ds, split)
    _plot_selection(axes[0, 2], ds)
    _plot_training(axes[1, 0], axes[1, 1], ds)

    ax = axes[1, 2]
    ax.axis("off")
    ax.text(0.0, 1.0, summarize(ds), family="monospace", fontsize=7.2, va="top", ha="left", transform=ax.transAxes)

    b_r, b_c = _box(ds)
    seeds = ", ".join(f"{LABELS.get(str(m), m)} {int(ds.seed.sel(model=m))}" for m in ds.model.values)
    fig.suptitle(f"Sudoku {side}×{side} ({b_r}×{b_c} boxes): board accuracy; training seeds {seeds}, "
                 f"noise seed {ds.attrs.get('seed', '?')}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    save_figure(fig, path, dpi=130)
    plot_boards(ds, path.with_name(f"{path.stem}_boards.png"))
    return path


def _plot_steps(ax: Any, ds: xr.Dataset, split: str) -> None:
    """Board accuracy vs T on one split (and AKOrN's per-step readout, even and odd steps apart)."""
    steps = ds.T.values
    iterative_t = [t for t in steps if t > 1]
    for model in ds.model.values:
        acc = ds.board_acc.sel(model=model, split=split).values * 100
        ok = np.isfinite(acc)
        label = LABELS.get(str(model), str(model))
        t_train = int(ds.train_steps.sel(model=model))
        if ok.sum() == 1 and iterative_t:  # evaluated at one T only (the Transformer): a line
            ax.axhline(acc[ok][0], color=COLORS.get(str(model)), ls=":", lw=1.8,
                       label=f"{label} (T={int(steps[ok][0])} only)")
            continue
        ax.plot(steps[ok], acc[ok], "o-", color=COLORS.get(str(model)), label=label)
        if "along_board_acc" in ds:
            curve = ds.along_board_acc.sel(model=model, split=split).values * 100
            t_along = ds.t.values
            # even and odd steps apart: a trained network may alternate between two states
            for parity, ls in ((0, "-"), (1, ":")):
                on = np.isfinite(curve) & (t_along > 0) & (t_along % 2 == parity)  # t = 0: not on a log axis
                if on.any():
                    ax.plot(t_along[on], curve[on], ls, lw=1.0, alpha=0.6, color=COLORS.get(str(model)),
                            label=f"{label} at every {('even', 'odd')[parity]} step t of one run "
                                  f"({int(ds.n_vote.sel(split=split))} boards)")
        if t_train in steps[ok]:
            ax.plot([t_train], [acc[list(steps).index(t_train)]], "o", ms=11, mfc="none",
                    color=COLORS.get(str(model)))
    ax.set_xscale("log", base=2)
    labels = _tick_labels(iterative_t)
    if iterative_t:
        ax.set_xticks(iterative_t, labels)
        ax.xaxis.set_minor_formatter(NullFormatter())
    unlabelled = [str(t) for t, lab in zip(iterative_t, labels) if not lab]
    ax.set_ylim(-3, 103)
    ax.set_xlabel("steps T at test time (open circle: training T)"
                  + (f"\nunlabelled ticks: T = {', '.join(unlabelled)}" if unlabelled else ""))
    ax.set_ylabel("board accuracy (%)")
    n = int(ds.n_boards.sel(split=split))
    g = f"{int(ds.givens_min.sel(split=split))}-{int(ds.givens_max.sel(split=split))} givens"
    ax.set_title(f"{'in-distribution' if split == 'id' else 'out-of-distribution'} "
                 f"({n} boards, {g})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def _plot_selection(ax: Any, ds: xr.Dataset) -> None:
    """AKOrN's board accuracy vs K (selection by energy ``sum`` solid, ``last`` dashed, ``paper``
    dash-dotted; by the readout's confidence dotted)."""
    drew = False
    for model in ds.model.values:
        head = _headline_vote(ds, str(model))
        if head is None:
            continue
        t, _, _ = head
        for split, marker in zip(ds.split.values, ("o", "s")):
            for score in ds.score.values:
                acc = ds.vote_board_acc.sel(model=model, split=split, T=t, score=score).values * 100
                ok = np.isfinite(acc)
                ls = {"sum": "-", "last": "--", "paper": "-."}.get(str(score), ":")
                ax.plot(ds.K.values[ok], acc[ok], marker=marker, ls=ls,
                        color=COLORS.get(str(model)) if split == "id" else "#d62728",
                        label=f"{LABELS.get(str(model), model)} {split.upper()}, T={t}, {score}")
                drew = True
    if drew:
        ax.set_xscale("log")
        ks = ds.K.values
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8, loc="best")
        nv = "/".join(str(int(ds.n_vote.sel(split=s))) for s in ds.split.values)
        ax.set_title(f"selection among K copies ({nv} boards ID/OOD)", fontsize=10)
    else:
        ax.text(0.5, 0.5, "no energy-based selection in this file", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("copies K (lowest energy, or highest confidence, kept)")
    ax.set_ylabel("board accuracy (%)")
    ax.grid(alpha=0.3)


def _plot_training(ax_val: Any, ax_loss: Any, ds: xr.Dataset) -> None:
    """Validation board accuracy and training loss per epoch."""
    weights = "EMA" if ds.attrs.get("weights", "ema") == "ema" else "raw weights"
    if ds.sizes.get("epoch", 0):
        epochs = ds.epoch.values
        for model in ds.model.values:
            color = COLORS.get(str(model))
            label = LABELS.get(str(model), str(model))
            val = ds.val_board_acc.sel(model=model).values * 100
            ok = np.isfinite(val)
            ax_val.plot(epochs[ok], val[ok], "o-", ms=3, color=color, label=f"{label} ({weights})")
            if weights == "EMA" and "val_board_acc_raw" in ds:
                raw = ds.val_board_acc_raw.sel(model=model).values * 100
                ok = np.isfinite(raw)
                ax_val.plot(epochs[ok], raw[ok], "--", color=color, alpha=0.6, label=f"{label} (raw weights)")
            loss = ds.train_loss.sel(model=model).values
            ok = np.isfinite(loss) & (loss > 0)
            ax_loss.plot(epochs[ok], loss[ok], "-", color=color, label=label)
        losses = ds.train_loss.values[np.isfinite(ds.train_loss.values) & (ds.train_loss.values > 0)]
        if losses.size and losses.max() > 10 * losses.min():  # several decades: a log axis
            ax_loss.set_yscale("log")
            ax_loss.yaxis.set_major_formatter(LogFormatterSciNotation())
            ax_loss.yaxis.set_minor_formatter(NullFormatter())
        for a in (ax_val, ax_loss):
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_val.legend(fontsize=7, loc="best")
        ax_loss.legend(fontsize=8)
    else:  # e.g. shipped weights: the evaluated runs carry no training history
        for a in (ax_val, ax_loss):
            a.text(0.5, 0.5, "no training history in the evaluated runs", ha="center", va="center",
                   transform=a.transAxes, fontsize=9, color="0.4")
    ax_val.set_ylim(-3, 103)
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel("board accuracy at training T (%)")
    ax_val.set_title("validation board accuracy during training", fontsize=10)
    ax_val.grid(alpha=0.3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy (all cells)")
    ax_loss.set_title("training loss", fontsize=10)
    ax_loss.grid(alpha=0.3, which="both")


def _settings(ds: xr.Dataset, model: str) -> list[tuple[str, np.ndarray]]:
    """(label, predictions [split, sample, S, S]) rows for one model."""
    label = LABELS.get(model, model)
    rows = []
    acc = ds.board_acc.sel(model=model)
    finite = np.isfinite(acc.values).any(axis=0)
    ts = ds.T.values[finite]
    t_train = int(ds.train_steps.sel(model=model))
    for t in sorted({t_train, int(ts.max())}):
        rows.append((f"{label}\nT={t}", ds.prediction.sel(model=model, T=t).values))
    head = _headline_vote(ds, model)
    if head is not None:
        t, k, score = head
        rows.append((f"{label}\nT={t}, K={k}\n({score})",
                     ds.vote_prediction.sel(model=model, T=t, K=k, score=score).values))
    return rows


def _draw_board(ax: Any, puzzle: np.ndarray, solution: np.ndarray, pred: np.ndarray | None, box: tuple[int, int],
                title: str) -> None:
    side = puzzle.shape[0]
    ax.set_xlim(0, side)
    ax.set_ylim(side, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    for i in range(side + 1):
        lw_r = 1.8 if i % box[0] == 0 else 0.4
        lw_c = 1.8 if i % box[1] == 0 else 0.4
        ax.plot([0, side], [i, i], color="black", lw=lw_r)
        ax.plot([i, i], [0, side], color="black", lw=lw_c)
    size = 60 / side
    for r in range(side):
        for c in range(side):
            x, y = c + 0.5, r + 0.5
            if puzzle[r, c]:
                ax.text(x, y, str(puzzle[r, c]), ha="center", va="center", fontsize=size, weight="bold",
                        color="black")
                continue
            if pred is None:
                continue
            if pred[r, c] == solution[r, c]:
                ax.text(x, y, str(pred[r, c]), ha="center", va="center", fontsize=size, color="#1f5fbf")
            else:
                ax.add_patch(_rect(c, r))
                ax.text(x, y, str(pred[r, c]) if pred[r, c] else "?", ha="center", va="center", fontsize=size,
                        color="#c00000", weight="bold")
                ax.text(c + 0.9, r + 0.12, str(solution[r, c]), ha="right", va="top", fontsize=size * 0.45,
                        color="#555555")
    ax.set_title(title, fontsize=8)


def _rect(c: int, r: int) -> Any:
    return Rectangle((c, r), 1, 1, facecolor="#ffd6d6", edgecolor="none", zorder=0)


def plot_boards(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Draw the sample boards (columns) with every model's answers (rows); see the module docstring.

    Returns:
        ``path``.
    """
    ds = _check(ds)
    box = _box(ds)
    columns = [(j, s) for j, split in enumerate(ds.split.values) for s in range(ds.sizes["sample"])
               if ds.sample_puzzle.values[j, s].any()]
    rows: list[tuple[str, np.ndarray | None]] = [("puzzle", None)]
    for model in ds.model.values:
        rows += _settings(ds, str(model))
    if not columns:
        raise ValueError("ds: holds no sample boards (samples=0)")
    cell = 1.9
    fig = new_figure((0.9 + cell * len(columns), 0.3 + cell * len(rows)), layout=None)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for a, (label, preds) in enumerate(rows):
        for b, (j, s) in enumerate(columns):
            puzzle = ds.sample_puzzle.values[j, s]
            solution = ds.sample_solution.values[j, s]
            split = str(ds.split.values[j]).upper()
            ax = axes[a, b]
            if preds is None:
                _draw_board(ax, puzzle, solution, None, box, f"{split} #{s} ({int((puzzle > 0).sum())} givens)")
            else:
                pred = preds[j, s]
                if not pred.any():
                    ax.axis("off")
                    continue
                wrong = int(((pred != solution) & (puzzle == 0)).sum())
                _draw_board(ax, puzzle, solution, pred, box, "solved" if wrong == 0 else f"{wrong} wrong")
            if b == 0:
                ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
    fig.suptitle("Sample boards: givens black, right answers blue, wrong answers red (right digit small, grey)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return save_figure(fig, path, dpi=130)


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}" if np.isfinite(x) else "    -"


def summarize(ds: xr.Dataset) -> str:
    """The headline board accuracies (%) per model and split, with the paper's 9×9 figures.

    Rows: each model at its training T and at the largest T evaluated, and AKOrN with
    energy selection at its strongest setting (and selection by confidence there); the paper's
    rows follow for context.
    """
    ds = _check(ds)
    side = ds.sizes["row"]
    lines = [f"board accuracy (%), {side}x{side}, ID / OOD", f"{'':34s}{'ID':>6s}{'OOD':>7s}"]
    for model in ds.model.values:
        label = LABELS.get(str(model), str(model))
        acc = ds.board_acc.sel(model=model)
        finite = np.isfinite(acc.values).any(axis=0)
        ts = ds.T.values[finite]
        t_train = int(ds.train_steps.sel(model=model))
        for t in sorted({t_train, int(ts.max())}):
            v = acc.sel(T=t).values
            lines.append(f"{label + f' (T={t})':34s}{_pct(v[0]):>6s}{_pct(v[1]):>7s}")
        head = _headline_vote(ds, str(model))
        if head is not None:
            t, k, score = head
            rows = [(1, score), (k, score)] + ([(k, "confidence")] if "confidence" in ds.score.values
                                                and score != "confidence" else [])
            for kk, sc in rows:
                if kk not in ds.K.values:
                    continue
                v = ds.vote_board_acc.sel(model=model, T=t, K=kk, score=sc).values
                name = f"{label} (T={t}, K={kk}, {sc})*"
                lines.append(f"{name:34s}{_pct(v[0]):>6s}{_pct(v[1]):>7s}")
    nv = "/".join(str(int(ds.n_vote.sel(split=s))) for s in ds.split.values)
    lines.append(f"* on the first {nv} boards (ID/OOD)")
    lines.append("paper, 9x9 SATNet / RRN-hard:")
    for name, (id_acc, ood_acc) in PAPER.items():
        lines.append(f"  {name:32s}{id_acc:6.1f}{ood_acc:7.1f}")
    return "\n".join(lines)
