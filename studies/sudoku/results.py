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


def _var(dims: tuple[str, ...], values: Any, long_name: str, units: str | None = "1", **attrs: Any) -> xr.Variable:
    a = {"long_name": long_name, **attrs}
    if units is not None:
        a["units"] = units
    return xr.Variable(dims, values, attrs=a)


def assemble(config: EvalSettings, runs: list[Run], data: dict[str, SudokuData], train_data: SudokuData,
             plain: dict, voted: dict, along: dict, n_vote: dict[str, int], samples: dict[str, int]) -> xr.Dataset:
    """The evaluation Dataset from the finished cells (see :mod:`studies.sudoku.evaluate`)."""
    kinds = [r.kind for r in runs]
    steps = sorted({t for r in runs for t in model_steps(r.kind, r.settings, config)})
    side, n_samples = runs[0].settings.side, max(samples.values())
    data_vars, along_len = _accuracy_vars(config, kinds, steps, plain, voted, along, n_samples, side)
    data_vars.update(_data_vars(data, train_data, n_vote))
    data_vars.update(_run_vars(config, runs))
    data_vars.update(_sample_vars(data, samples, n_samples, side))
    epochs = max([r.history.sizes.get("epoch", 0) for r in runs if r.history is not None] + [0])
    return xr.Dataset(data_vars, coords=_coords(config, kinds, steps, along_len, epochs, n_samples, side))


def _accuracy_vars(config: EvalSettings, kinds: list[str], steps: list[int], plain: dict, voted: dict, along: dict,
                   n_samples: int, side: int) -> tuple[dict[str, xr.Variable], int]:
    """Plain and selection accuracies, the per-step readout, and the sample boards' answers."""
    along_len = max([cell["board_acc"].size for cell in along.values()] + [1])
    along_acc = np.full((len(kinds), len(SPLITS), along_len), np.nan)
    along_energy = np.full_like(along_acc, np.nan)
    for (kind, split), cell in along.items():
        i, j = kinds.index(kind), SPLITS.index(split)
        along_acc[i, j, :cell["board_acc"].size] = cell["board_acc"]
        along_energy[i, j, :cell["energy"].size] = cell["energy"]
    ks, scores = list(config.k), list(config.scores)
    shape = (len(kinds), len(SPLITS), len(steps))
    acc = {v: np.full(shape, np.nan) for v in ("board_acc", "cell_acc")}
    vacc = {v: np.full(shape + (len(ks), len(scores)), np.nan) for v in ("board_acc", "cell_acc")}
    pred = np.zeros(shape + (n_samples, side, side), np.int8)
    vpred = np.zeros(shape + (len(ks), len(scores), n_samples, side, side), np.int8)
    vauc, voracle = np.full(shape + (len(scores),), np.nan), np.full(shape, np.nan)
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
        vauc[i, j, m], voracle[i, j, m] = cell.get("auc", np.nan), cell.get("oracle", np.nan)

    acc_dims = ("model", "split", "T")
    vote_dims = acc_dims + ("K", "score")
    not_evaluated = ("NaN: the model is not evaluated at this T (the Transformer is not iterative and runs at its "
                     "own T only; the others at t_eval and their training T)")
    data_vars: dict[str, xr.Variable] = {
        "board_acc": _var(acc_dims, acc["board_acc"], "board accuracy: fraction of boards with every blank cell right "
                         "(one initial state per board, all test boards)", comment=not_evaluated),
        "cell_acc": _var(acc_dims, acc["cell_acc"], "fraction of blank cells right (one initial state per board)",
                        comment=not_evaluated),
        "vote_board_acc": _var(vote_dims, vacc["board_acc"], "board accuracy of the lowest-scoring copy among K "
                              "(first n_vote boards)", comment="NaN: not run (model without energy, or T not in "
                              "the selection steps)"),
        "vote_cell_acc": _var(vote_dims, vacc["cell_acc"], "fraction of blank cells right for the lowest-scoring copy "
                             "among K (first n_vote boards)", comment="NaN: not run (model without energy, or T not "
                             "in the selection steps)"),
        "vote_auc": _var(acc_dims + ("score",), vauc, "within-board ROC AUC of the score: probability that a "
                        "right copy scores lower than a wrong copy of the same board (boards whose copies disagree)",
                        comment="0.5: the score says nothing; below 0.5: the wrong copies score lower. NaN: "
                                "selection not run (model without energy, or T not in the selection steps), or no "
                                "board with both right and wrong copies"),
        "vote_oracle": _var(acc_dims, voracle, "fraction of boards with a right copy among all K copies (what a "
                           "perfect score would select)", comment="NaN: selection not run (model without energy, "
                           "or T not in the selection steps)"),
        "along_board_acc": _var(("model", "split", "t"), along_acc, "board accuracy of the answer read out at step t "
                               "of one run of the largest T (first n_vote boards)", comment="NaN: model without "
                               "per-step readout (only AKOrN has one)"),
        "along_energy": _var(("model", "split", "t"), along_energy, "mean energy E(x_t) of the last Kuramoto layer "
                            "along the same run", comment="NaN: model without energies (only AKOrN has them)"),
    }
    sample_dims = ("sample", "row", "col")
    data_vars["prediction"] = _var(acc_dims + sample_dims, pred, "predicted digits of the sample boards "
                                  "(one initial state; 0 = not evaluated)")
    data_vars["vote_prediction"] = _var(vote_dims + sample_dims, vpred, "predicted digits of the sample boards "
                                       "after selection among K copies (0 = not evaluated)")
    return data_vars, along_len


def _data_vars(data: dict[str, SudokuData], train_data: SudokuData, n_vote: dict[str, int]) -> dict[str, xr.Variable]:
    """What the test boards are: counts, givens, overlap with the training boards."""
    data_vars: dict[str, xr.Variable] = {
        "n_boards": _var(("split",), np.array([len(data[s]) for s in SPLITS]), "test boards per split"),
        "n_vote": _var(("split",), np.array([n_vote[s] for s in SPLITS]), "boards per split used for energy selection"),
        "givens_mean": _var(("split",), np.array([float(data[s].givens.mean()) for s in SPLITS]),
                           "mean number of given cells"),
        "givens_min": _var(("split",), np.array([int(data[s].givens.min()) for s in SPLITS]), "fewest given cells"),
        "givens_max": _var(("split",), np.array([int(data[s].givens.max()) for s in SPLITS]), "most given cells"),
    }
    overlaps = [overlap(train_data, data[s]) for s in SPLITS]
    data_vars["overlap_puzzles"] = _var(("split",), np.array([o[0] for o in overlaps]),
                                       "fraction of test puzzles that are also training puzzles")
    data_vars["overlap_solutions"] = _var(("split",), np.array([o[1] for o in overlaps]),
                                         "fraction of test solution grids that also solve a training puzzle")
    return data_vars


def _run_vars(config: EvalSettings, runs: list[Run]) -> dict[str, xr.Variable]:
    """Per model: training T, width, depth, parameters, seed, and the training curves (NaN-padded)."""
    data_vars: dict[str, xr.Variable] = {}
    data_vars["train_steps"] = _var(("model",), np.array([r.settings.model_steps for r in runs]),
                                   "steps T per block used in training")
    data_vars["width"] = _var(("model",), np.array([r.settings.width for r in runs]), "channels per cell")
    data_vars["depth"] = _var(("model",), np.array([r.settings.model_depth for r in runs]), "blocks L")
    data_vars["params"] = _var(("model",), np.array([sum(p.numel() for p in build_model(r.settings).parameters())
                                                    for r in runs]), "trainable parameters")
    data_vars["seed"] = _var(("model",), np.array([r.settings.seed for r in runs]), "training seed")
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
        data_vars[out_name] = _var(("model", "epoch"), values, long_name, "s" if out_name == "epoch_seconds" else "1",
                                   comment="NaN: past this model's last epoch, or no training record (curves are "
                                           "padded to the longest run)")
    data_vars["epochs_trained"] = _var(("model",), np.array([r.history.sizes.get("epoch", 0) if r.history is not None
                                                            else 0 for r in runs]), "epochs trained")
    return data_vars


def _sample_vars(data: dict[str, SudokuData], samples: dict[str, int], n_samples: int,
                 side: int) -> dict[str, xr.Variable]:
    """The sample boards and their solutions."""
    data_vars: dict[str, xr.Variable] = {}
    sample_dims = ("split", "sample", "row", "col")
    puzzles = np.zeros((len(SPLITS), n_samples, side, side), np.int8)
    solutions = np.zeros_like(puzzles)
    for j, s in enumerate(SPLITS):
        puzzles[j, :samples[s]] = data[s].puzzles[:samples[s]]
        solutions[j, :samples[s]] = data[s].solutions[:samples[s]]
    data_vars["sample_puzzle"] = _var(sample_dims, puzzles, "sample boards (0 = blank)")
    data_vars["sample_solution"] = _var(sample_dims, solutions, "solutions of the sample boards")
    return data_vars


def _coords(config: EvalSettings, kinds: list[str], steps: list[int], along_len: int, epochs: int, n_samples: int,
            side: int) -> dict[str, xr.Variable]:
    return {
        "model": _var(("model",), np.array(kinds, dtype=object), "network", None),
        "split": _var(("split",), np.array(SPLITS, dtype=object), "evaluation split", None,
                     description="; ".join(f"{k}: {v}" for k, v in _SPLIT_NAMES.items())),
        "T": _var(("T",), np.array(steps), "steps per block at test time"),
        "t": _var(("t",), np.arange(along_len), "step read out along one run"),
        "K": _var(("K",), np.array(list(config.k)), "copies selected among (lowest score)"),
        "score": _var(("score",), np.array(list(config.scores), dtype=object), "score of a copy (lowest selected)",
                      None, description="last: last logged energy E(x_{T-1}); sum: sum of all logged energies; "
                                        "paper: the paper's energy E(x_T) of the final state (with 1/2); "
                                        "confidence: -sum of log p of the readout's answer over the blank cells"),
        "epoch": _var(("epoch",), np.arange(1, epochs + 1), "epochs completed"),
        "sample": _var(("sample",), np.arange(n_samples), "sample board index"),
        "row": _var(("row",), np.arange(side), "board row"),
        "col": _var(("col",), np.arange(side), "board column"),
    }
