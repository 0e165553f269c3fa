"""Sudoku metrics: solved boards, board and blank-cell accuracy, the scores of a copy (energies, the
readout's confidence) and selection of the lowest-scoring copy among K.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from kuramoto.checks import is_int
from studies.sudoku.config import ENERGY_SCORES

__all__ = ["Prediction", "board_accuracy", "cell_accuracy", "confidence_scores", "energy_scores", "select_by_energy",
           "selection_auc", "solved", "vote"]


class Prediction(NamedTuple):
    """Predictions of K copies of B boards.

    Attributes:
        digits: ``[K, B, S, S]`` int64, predicted digits 1..S.
        scores: ``{score: [K, B]}`` (energies and confidence, lower is better), or ``None`` when
            energies were not computed.
    """

    digits: torch.Tensor
    scores: dict[str, torch.Tensor] | None


def _as_boards(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor or numpy array [M, S, S], got {type(x).__name__}")
    if x.dim() != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"{name}: expected boards [M, S, S], got shape {tuple(x.shape)}")
    return x


def _check_triple(pred: Any, solutions: Any, given: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pred, solutions, given = (_as_boards(pred, "pred"), _as_boards(solutions, "solutions"),
                              _as_boards(given, "given"))
    if pred.shape != solutions.shape or given.shape != solutions.shape:
        raise ValueError(f"pred, solutions, given: shapes differ: {tuple(pred.shape)}, {tuple(solutions.shape)}, "
                         f"{tuple(given.shape)}")
    if given.dtype != torch.bool:
        raise TypeError(f"given: expected a bool mask, got dtype {given.dtype}")
    if pred.is_floating_point() or solutions.is_floating_point():
        raise TypeError("pred, solutions: expected integer digit boards (1..S), got floating-point values")
    return pred.long(), solutions.long().to(pred.device), given.to(pred.device)


def solved(pred: Any, solutions: Any, given: Any) -> torch.Tensor:
    """Which boards have every blank cell right (givens are not checked).

    Args:
        pred: predicted digits ``[M, S, S]`` (1..S; what a model puts on given cells is ignored).
        solutions: true digits ``[M, S, S]``.
        given: bool ``[M, S, S]``, True on given cells.

    Returns:
        bool ``[M]``.

    Raises:
        TypeError, ValueError: wrong types or shapes (the argument is named).
    """
    pred, solutions, given = _check_triple(pred, solutions, given)
    return ((pred == solutions) | given).flatten(1).all(1)


def board_accuracy(pred: Any, solutions: Any, given: Any) -> float:
    """Fraction of boards whose every blank cell is right (docs/AKORN.md §5.1); arguments as :func:`solved`.

    Returns:
        A float in [0, 1] (NaN for zero boards).
    """
    ok = solved(pred, solutions, given)
    return float(ok.double().mean()) if ok.numel() else math.nan


def cell_accuracy(pred: Any, solutions: Any, given: Any) -> float:
    """Fraction of blank cells predicted right, pooled over all boards; arguments as :func:`solved`.

    Returns:
        A float in [0, 1] (NaN when there is no blank cell).
    """
    pred, solutions, given = _check_triple(pred, solutions, given)
    blank = ~given
    n = int(blank.sum())
    return float(((pred == solutions) & blank).sum()) / n if n else math.nan


def energy_scores(energy: torch.Tensor, score: str) -> torch.Tensor:
    """Score of every sample from the logged energies of its last Kuramoto layer.

    Args:
        energy: ``[T+1, N]`` as returned by ``SudokuAKOrN(..., return_energy=True)``
            (entry 0 is zero, entry ``t`` the energy of the state before step ``t``).
        score: ``"last"`` (entry T, i.e. E(x_{T-1})) or ``"sum"`` (sum over all entries).

    Returns:
        ``[N]``; lower is better.
    """
    if not isinstance(energy, torch.Tensor) or energy.dim() != 2:
        raise ValueError(f"energy: expected a tensor [T+1, N], got {getattr(energy, 'shape', type(energy).__name__)}")
    if score == "last":
        return energy[-1]
    if score == "sum":
        return energy.sum(0)
    raise ValueError(f"score: expected one of {ENERGY_SCORES}, got {score!r}")


def confidence_scores(logits: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """The readout's confidence in its answer: ``−Σ log p(answer)`` over the blank cells.

    Args:
        logits: ``[N, S, S, S]`` per-cell digit logits.
        given: ``[N, S, S]`` bool, the givens (not scored).

    Returns:
        ``[N]``; lower is better (0 for an answer given with certainty).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
        raise ValueError(f"logits: expected a tensor [N, S, S, S], got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    if not isinstance(given, torch.Tensor) or given.shape != logits.shape[:3]:
        raise ValueError(f"given: expected a bool tensor {tuple(logits.shape[:3])}, got "
                         f"{getattr(given, 'shape', type(given).__name__)}")
    top = logits.log_softmax(-1).amax(-1)  # log p of the answer in each cell
    return -(top * (~given.bool())).flatten(1).sum(1)


def select_by_energy(candidates: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every board, the candidate of lowest score among its K copies.

    Args:
        candidates: ``[K, B, ...]`` (predicted digits, logits, ...); copy axis first.
        scores: ``[K, B]`` energy scores.

    Returns:
        ``(selected [B, ...], index [B] int64)``; ties go to the lowest copy index.

    Raises:
        ValueError: shapes do not match.
    """
    if not isinstance(candidates, torch.Tensor) or not isinstance(scores, torch.Tensor):
        raise TypeError("candidates, scores: expected tensors")
    if scores.dim() != 2 or candidates.dim() < 2 or candidates.shape[:2] != scores.shape:
        raise ValueError(f"candidates, scores: expected [K, B, ...] and [K, B], got {tuple(candidates.shape)} and "
                         f"{tuple(scores.shape)}")
    index = scores.argmin(dim=0)  # first minimum on ties
    selected = candidates[index, torch.arange(candidates.shape[1], device=candidates.device)]
    return selected, index


def vote(prediction: Prediction, k: int, score: str) -> torch.Tensor:
    """Digits of the lowest-scoring copy (energy or confidence) among the first ``k`` copies of
    every board.

    Args:
        prediction: from :func:`predict` with at least ``k`` copies (and energies if ``k > 1``).
        k: number of copies to choose from.
        score: a key of ``prediction.scores``: ``"last"``, ``"sum"``, ``"paper"`` or ``"confidence"``.

    Returns:
        ``[B, S, S]`` int64.
    """
    if not is_int(k) or not 1 <= k <= prediction.digits.shape[0]:
        raise ValueError(f"k: expected an int in 1..{prediction.digits.shape[0]} (copies run), got {k!r}")
    if k == 1:
        return prediction.digits[0]
    if prediction.scores is None:
        raise ValueError("prediction: has no energy scores; run predict(..., energy=True)")
    if score not in prediction.scores:
        raise ValueError(f"score: expected one of {sorted(prediction.scores)}, got {score!r}")
    return select_by_energy(prediction.digits[:k], prediction.scores[score][:k])[0]


def selection_auc(scores: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """How well a score ranks the right copies of each board above the wrong ones.

    The within-board ROC AUC (Mann–Whitney): the probability that a right copy has a lower
    score than a wrong copy of the same board, ties counting half. 1: selection by the score
    always finds a right copy when there is one; 0.5: the score says nothing; below 0.5: the
    wrong copies score lower.

    Args:
        scores: ``[K, B]``, lower is better.
        right: bool ``[K, B]``, which copies solved their board.

    Returns:
        ``[B]`` float64; NaN for boards whose copies are all right or all wrong.
    """
    if not isinstance(scores, torch.Tensor) or not isinstance(right, torch.Tensor):
        raise TypeError("scores, right: expected tensors")
    if scores.dim() != 2 or right.shape != scores.shape:
        raise ValueError(f"scores, right: expected two [K, B] tensors, got {tuple(scores.shape)} and "
                         f"{tuple(right.shape)}")
    s, ok = scores.double(), right.bool()
    lower = (s[:, None] < s[None, :]).double() + 0.5 * (s[:, None] == s[None, :]).double()  # [K_i, K_j, B]
    pairs = (ok[:, None] & ~ok[None, :]).double()  # i right, j wrong
    n = pairs.sum((0, 1))
    return torch.where(n > 0, (lower * pairs).sum((0, 1)) / n.clamp_min(1), torch.full_like(n, math.nan))
