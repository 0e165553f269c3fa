"""The result Dataset of ``akorn sudoku eval`` (``sudoku.h5``): accuracies over model × split × T (× K ×
score), the per-step readout, sample boards with the answers, training curves and test/train overlap.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from studies.sudoku.config import _SPLIT_NAMES, SPLITS, EvalSettings, TrainSettings
from studies.sudoku.dataset import SudokuData
from studies.sudoku.models import build_model

__all__ = ["Run", "assemble", "model_steps", "overlap"]


@dataclasses.dataclass
class Run:
    """One trained model to evaluate."""

    kind: str
    settings: TrainSettings
    run_dir: Path
    identity: str  # changes when the checkpoint changes
    history: xr.Dataset | None


def model_steps(kind: str, settings: TrainSettings, config: EvalSettings) -> list[int]:
    """The steps T at which a model is evaluated: every ``t_eval`` and its training T."""
    if kind == "transformer":  # not iterative: its T is part of the architecture
        return [settings.model_steps]
    return sorted(set(config.t_eval) | {settings.model_steps})


def overlap(train: SudokuData, test: SudokuData) -> tuple[float, float]:
    """Fractions of test puzzles, and of test solution grids, that also occur in the training set."""
    def rows(x: np.ndarray) -> np.ndarray:
        flat = np.ascontiguousarray(x.reshape(x.shape[0], -1))
        return flat.view(np.dtype((np.void, flat.shape[1])))[:, 0]

    return (float(np.isin(rows(test.puzzles), rows(train.puzzles)).mean()),
            float(np.isin(rows(test.solutions), rows(train.solutions)).mean()))


def assemble(config: EvalSettings, runs: list[Run], data: dict[str, SudokuData], train_data: SudokuData,
              plain: dict, voted: dict, along: dict, n_vote: dict[str, int], samples: dict[str, int]) -> xr.Dataset:
    kinds = [r.kind for r in runs]
    steps = sorted({t for r in runs for t in model_steps(r.kind, r.settings, config)})
    along_len = max([cell["board_acc"].size for cell in along.values()] + [1])
    along_acc = np.full((len(kinds), len(SPLITS), along_len), np.nan)
    along_energy = np.full_like(along_acc, np.nan)
    for (kind, split), cell in along.items():
        i, j = kinds.index(kind), SPLITS.index(split)
        along_acc[i, j, :cell["board_acc"].size] = cell["board_acc"]
        along_energy[i, j, :cell["energy"].size] = cell["energy"]
    ks, scores = list(config.k), list(config.scores)
    side = runs[0].settings.side
    n_samples = max(samples.values())
    shape = (len(kinds), len(SPLITS), len(steps))
    acc = {v: np.full(shape, np.nan) for v in ("board_acc", "cell_acc")}
    vacc = {v: np.full(shape + (len(ks), len(scores)), np.nan) for v in ("board_acc", "cell_acc")}
    pred = np.zeros(shape + (n_samples, side, side), np.int8)
    vpred = np.zeros(shape + (len(ks), len(scores), n_samples, side, side), np.int8)
    for (kind, split, t), cell in plain.items():
        i, j, m = kinds.index(kind), SPLITS.index(split), steps.index(t)
        for v in acc:
            acc[v][i, j, m] = float(cell[v])
        pred[i, j, m, :cell["samples"].shape[0]] = cell["samples"]
    for (kind, split, t), cell in voted.items():
        i, j, m = kinds.index(kind), SPLITS.index(split), steps.index(t)
        for v in vacc:
            vacc[v][i, j, m] = cell[v]
        vpred[i, j, m, :, :, :cell["samples"].shape[2]] = cell["samples"]

    def var(dims: tuple[str, ...], values: Any, long_name: str, units: str | None = "1", **attrs: Any) -> xr.Variable:
        a = {"long_name": long_name, **attrs}
        if units is not None:
            a["units"] = units
        return xr.Variable(dims, values, attrs=a)

    acc_dims = ("model", "split", "T")
    vote_dims = acc_dims + ("K", "score")
    data_vars: dict[str, xr.Variable] = {
        "board_acc": var(acc_dims, acc["board_acc"], "board accuracy: fraction of boards with every blank cell right "
                         "(one initial state per board, all test boards)"),
        "cell_acc": var(acc_dims, acc["cell_acc"], "fraction of blank cells right (one initial state per board)"),
        "vote_board_acc": var(vote_dims, vacc["board_acc"], "board accuracy of the lowest-energy copy among K "
                              "(first n_vote boards)", comment="NaN: not run (model without energy, or T not in "
                              "the selection steps)"),
        "vote_cell_acc": var(vote_dims, vacc["cell_acc"], "fraction of blank cells right for the lowest-energy copy "
                             "among K (first n_vote boards)"),
        "along_board_acc": var(("model", "split", "t"), along_acc, "board accuracy of the answer read out at step t "
                               "of one run of the largest T (first n_vote boards)", comment="NaN: model without "
                               "per-step readout (only AKOrN has one)"),
        "along_energy": var(("model", "split", "t"), along_energy, "mean energy E(x_t) of the last Kuramoto layer "
                            "along the same run"),
        "n_boards": var(("split",), np.array([len(data[s]) for s in SPLITS]), "test boards per split"),
        "n_vote": var(("split",), np.array([n_vote[s] for s in SPLITS]), "boards per split used for energy selection"),
        "givens_mean": var(("split",), np.array([float(data[s].givens.mean()) for s in SPLITS]),
                           "mean number of given cells"),
        "givens_min": var(("split",), np.array([int(data[s].givens.min()) for s in SPLITS]), "fewest given cells"),
        "givens_max": var(("split",), np.array([int(data[s].givens.max()) for s in SPLITS]), "most given cells"),
    }
    overlaps = [overlap(train_data, data[s]) for s in SPLITS]
    data_vars["overlap_puzzles"] = var(("split",), np.array([o[0] for o in overlaps]),
                                       "fraction of test puzzles that are also training puzzles")
    data_vars["overlap_solutions"] = var(("split",), np.array([o[1] for o in overlaps]),
                                         "fraction of test solution grids that also solve a training puzzle")
    data_vars["train_steps"] = var(("model",), np.array([r.settings.model_steps for r in runs]),
                                   "steps T per block used in training")
    data_vars["width"] = var(("model",), np.array([r.settings.width for r in runs]), "channels per cell")
    data_vars["depth"] = var(("model",), np.array([r.settings.model_depth for r in runs]), "blocks L")
    data_vars["params"] = var(("model",), np.array([sum(p.numel() for p in build_model(r.settings).parameters())
                                                    for r in runs]), "trainable parameters")
    data_vars["seed"] = var(("model",), np.array([r.settings.seed for r in runs]), "training seed")
    # training curves, NaN-padded to the longest run
    epochs = max([r.history.sizes.get("epoch", 0) for r in runs if r.history is not None] + [0])
    curves = {"train_loss": ("epoch_loss", "training loss, mean over the epoch"),
              "train_board_acc": ("epoch_board_acc", "board accuracy of the training batches, mean over the epoch"),
              "val_board_acc": (None, "validation board accuracy at the training T (evaluated weights)"),
              "val_board_acc_raw": ("eval_board_acc", "validation board accuracy at the training T (raw weights)"),
              "epoch_seconds": ("epoch_seconds", "wall-clock time of the epoch")}
    for out_name, (src, long_name) in curves.items():
        values = np.full((len(runs), epochs), np.nan)
        for i, r in enumerate(runs):
            if r.history is None:
                continue
            name = src or ("eval_ema_board_acc" if config.ema and r.settings.ema_decay is not None
                           else "eval_board_acc")
            if name in r.history:
                v = r.history[name].values
                values[i, :v.size] = v
        data_vars[out_name] = var(("model", "epoch"), values, long_name, "s" if out_name == "epoch_seconds" else "1")
    data_vars["epochs_trained"] = var(("model",), np.array([r.history.sizes.get("epoch", 0) if r.history is not None
                                                            else 0 for r in runs]), "epochs trained")
    sample_dims = ("split", "sample", "row", "col")
    puzzles = np.zeros((len(SPLITS), n_samples, side, side), np.int8)
    solutions = np.zeros_like(puzzles)
    for j, s in enumerate(SPLITS):
        puzzles[j, :samples[s]] = data[s].puzzles[:samples[s]]
        solutions[j, :samples[s]] = data[s].solutions[:samples[s]]
    data_vars["sample_puzzle"] = var(sample_dims, puzzles, "sample boards (0 = blank)")
    data_vars["sample_solution"] = var(sample_dims, solutions, "solutions of the sample boards")
    data_vars["prediction"] = var(acc_dims + sample_dims[1:], pred, "predicted digits of the sample boards "
                                  "(one initial state; 0 = not evaluated)")
    data_vars["vote_prediction"] = var(vote_dims + sample_dims[1:], vpred, "predicted digits of the sample boards "
                                       "after energy selection (0 = not evaluated)")
    coords = {
        "model": var(("model",), np.array(kinds, dtype=object), "network", None),
        "split": var(("split",), np.array(SPLITS, dtype=object), "evaluation split", None,
                     description="; ".join(f"{k}: {v}" for k, v in _SPLIT_NAMES.items())),
        "T": var(("T",), np.array(steps), "steps per block at test time"),
        "t": var(("t",), np.arange(along_len), "step read out along one run"),
        "K": var(("K",), np.array(ks), "copies selected among by energy"),
        "score": var(("score",), np.array(scores, dtype=object), "energy score of a copy", None,
                     description="last: last logged energy E(x_{T-1}); sum: sum of all logged energies"),
        "epoch": var(("epoch",), np.arange(1, epochs + 1), "epochs completed"),
        "sample": var(("sample",), np.arange(n_samples), "sample board index"),
        "row": var(("row",), np.arange(side), "board row"),
        "col": var(("col",), np.arange(side), "board column"),
    }
    return xr.Dataset(data_vars, coords=coords)
