"""The Sudoku networks of a run and how they answer: building a model from its settings, one or
several predictions per board (with the energies energy selection ranks), and the answer read out
at every Kuramoto step.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from kuramoto.checks import is_int
from networks.models.baselines import IteratedSelfAttention, SudokuTransformer
from networks.models.sudoku import SudokuAKOrN
from studies.sudoku.config import ENERGY_SCORES, TrainSettings
from studies.sudoku.dataset import SudokuData
from studies.sudoku.metrics import (Prediction, _as_boards, board_accuracy, cell_accuracy, confidence_scores,
                                    energy_scores)
from studies.training import unwrap

__all__ = []

def build_model(settings: TrainSettings) -> nn.Module:
    """A freshly initialised network for ``settings`` (seed the RNG first for fixed weights).

    Args:
        settings: the run's settings (model kind, box, width, depth, steps, heads, n).

    Returns:
        :class:`~networks.models.sudoku.SudokuAKOrN`,
        :class:`~networks.models.baselines.IteratedSelfAttention` or
        :class:`~networks.models.baselines.SudokuTransformer`.
    """
    if not isinstance(settings, TrainSettings):
        raise TypeError(f"settings: expected TrainSettings, got {type(settings).__name__}")
    box = (int(settings.box[0]), int(settings.box[1]))
    if settings.model == "akorn":

        return SudokuAKOrN(box, width=settings.width, depth=settings.model_depth, n=settings.n,
                           steps=settings.model_steps, heads=settings.heads, gamma=settings.initial_gamma,
                           learn_gamma=settings.gamma_mode != "fixed",
                           gamma_max=settings.gamma_max if settings.gamma_mode == "bounded" else None,
                           method=settings.method)

    cls = IteratedSelfAttention if settings.model == "itrsa" else SudokuTransformer
    return cls(box, width=settings.width, depth=settings.model_depth, steps=settings.model_steps,
               heads=settings.heads)


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(unwrap(model).forward).parameters


def has_energy(model: nn.Module) -> bool:
    """True when ``model.forward`` can return energies (``return_energy=True``)."""
    return _accepts(model, "return_energy")


@torch.no_grad()
def predict(model: nn.Module, boards: torch.Tensor, *, steps: int | None = None, copies: int = 1,
            generator: torch.Generator | None = None, energy: bool | None = None) -> Prediction:
    """Run ``copies`` copies of every board in one batch.

    Args:
        model: a Sudoku network (``forward(board, *, steps, [generator, return_energy])``).
        boards: integer grids ``[B, S, S]`` (0 = blank).
        steps: steps T per block (default: the model's).
        copies: K, copies of every board (each with its own noise).
        generator: random generator of the initial-state noise (models without noise ignore it).
        energy: compute energy scores (default: when ``copies > 1``).

    Returns:
        A :class:`Prediction` with digits ``[K, B, S, S]`` and, with energies, scores ``[K, B]``.

    Raises:
        ValueError: ``copies < 1``, or energies asked of a model that has none.
    """
    boards = _as_boards(boards, "boards")
    if not is_int(copies) or copies < 1:
        raise ValueError(f"copies: expected a positive int, got {copies!r}")
    energy = copies > 1 if energy is None else energy
    if energy and not has_energy(model):
        raise ValueError(f"energy: {type(model).__name__} returns no energies, so copies cannot be selected by energy")
    device = next(model.parameters()).device
    b = boards.shape[0]
    batch = boards.to(device).repeat(copies, 1, 1)  # copy-major: item k * B + b
    kwargs: dict[str, Any] = {"steps": steps}
    if _accepts(model, "generator"):
        kwargs["generator"] = generator
    if energy:
        final = None
        if _accepts(model, "return_trajectory"):  # the paper's E(x_T) besides the official log
            logits, traj = model(batch, return_trajectory=True, **kwargs)
            logged, final = traj.logged_energy, traj.energy[-1]
        else:
            logits, logged = model(batch, return_energy=True, **kwargs)
        scores = {name: energy_scores(logged, name).view(copies, b).float().cpu() for name in ENERGY_SCORES}
        if final is not None:
            scores["paper"] = final.view(copies, b).float().cpu()
        scores["confidence"] = confidence_scores(logits, batch > 0).view(copies, b).float().cpu()
    else:
        logits, scores = model(batch, **kwargs), None
    digits = (logits.argmax(-1) + 1).view(copies, b, *boards.shape[1:]).cpu()
    return Prediction(digits, scores)


def accuracy_along(model: nn.Module, data: SudokuData, *, steps: int, seed: int = 0,
                   chunk: int = 256) -> xr.Dataset:
    """Accuracy of the answer read out at every step ``t = 0 … T`` of one run per board.

    One ``T``-step run gives the answers of every shorter run from the same noise, so this shows
    what more steps do (settling into a minimum, or drifting away from the training T's answer)
    at the cost of one evaluation at ``T``. Needs a model with ``logits_along`` (AKOrN).

    Args:
        model: a :class:`~networks.models.sudoku.SudokuAKOrN` (put it in ``eval()`` mode).
        data: the boards.
        steps: T, the last step read out.
        seed: seed of the initial-state noise.
        chunk: boards per forward pass.

    Returns:
        A Dataset over ``t`` with ``board_acc``, ``cell_acc`` (blank cells) and ``energy`` (the
        paper's ``E(x_t)``, mean over boards).

    Raises:
        TypeError: the model has no ``logits_along`` or ``data`` is not a :class:`SudokuData`.
        ValueError: ``steps`` or ``chunk`` is not a positive integer.
    """
    if not callable(getattr(model, "logits_along", None)):
        raise TypeError(f"model: expected a model with logits_along (SudokuAKOrN), got {type(model).__name__}")
    if not isinstance(data, SudokuData):
        raise TypeError(f"data: expected SudokuData, got {type(data).__name__}")
    for name, value in (("steps", steps), ("chunk", chunk)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    puzzles, solutions, given = data.grids("puzzles"), data.grids("solutions"), data.is_given()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    digits, energies = [], []
    with torch.no_grad():
        for i in range(0, len(data), chunk):
            logits, energy = model.logits_along(puzzles[i:i + chunk].to(device), steps=steps, generator=generator)
            digits.append((logits.argmax(-1) + 1).cpu())
            energies.append(energy.double().cpu())
    pred = torch.cat(digits, dim=1)  # [T+1, B, S, S]
    board_acc = np.array([board_accuracy(p, solutions, given) for p in pred])
    cell_acc = np.array([cell_accuracy(p, solutions, given) for p in pred])
    energy = torch.cat(energies, dim=1).mean(1)
    t = np.arange(steps + 1)
    return xr.Dataset(
        {"board_acc": ("t", board_acc, {"long_name": "board accuracy (every blank cell right)"}),
         "cell_acc": ("t", cell_acc, {"long_name": "accuracy over blank cells"}),
         "energy": ("t", energy.numpy(), {"long_name": "mean energy E(x_t) of the last Kuramoto layer"})},
        coords={"t": ("t", t, {"long_name": "Kuramoto step read out"})},
        attrs={"boards": len(data), "seed": seed})


@torch.no_grad()
def predict_digits(model: nn.Module, puzzles: torch.Tensor, *, steps: int | None = None, seed: int = 0,
                   batch_size: int = 500) -> torch.Tensor:
    """One plain prediction per board, in batches, with noise from a generator seeded by ``seed``.

    Args:
        model: a Sudoku network.
        puzzles: ``[M, S, S]`` integer grids.
        steps: steps T per block (default: the model's).
        seed: seed of the initial-state noise.
        batch_size: boards per forward pass.

    Returns:
        ``[M, S, S]`` int64 digits (on the CPU).
    """
    puzzles = _as_boards(puzzles, "puzzles")
    generator = torch.Generator().manual_seed(seed)
    parts = [predict(model, puzzles[i:i + batch_size], steps=steps, generator=generator).digits[0]
             for i in range(0, puzzles.shape[0], batch_size)]
    return torch.cat(parts) if parts else puzzles.new_zeros(puzzles.shape, dtype=torch.int64)
