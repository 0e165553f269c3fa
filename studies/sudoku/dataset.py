"""The container of puzzles with their solutions (:class:`SudokuData`) and its torch view
(:class:`SudokuDataset`) served to the trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from studies.sudoku.boards import _check_boards, _constraints_ok, _is_int, check_box

__all__ = ["SudokuData", "SudokuDataset"]


@dataclasses.dataclass(frozen=True, eq=False)
class SudokuData:
    """Puzzles with their unique solutions.

    Construction validates everything (vectorised): shapes, digit ranges, that every solution
    is valid and matches its puzzle's givens, and that ``givens`` counts the givens.

    Attributes:
        puzzles: int8 ``[M, S, S]``, 0 for blanks.
        solutions: int8 ``[M, S, S]``, digits ``1..S``.
        givens: int64 ``[M]``, number of givens of each puzzle.
        box: box shape ``(b_r, b_c)``.
        targets: int64 ``[M]`` givens targets the generator sampled, or None (loaded data).
    """

    puzzles: np.ndarray
    solutions: np.ndarray
    givens: np.ndarray
    box: tuple[int, int]
    targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        box = check_box(self.box)
        puzzles, _ = _check_boards(self.puzzles, "puzzles", box, ndims=(3,), blanks=True)
        solutions, _ = _check_boards(self.solutions, "solutions", box, ndims=(3,), blanks=False)
        if solutions.shape != puzzles.shape:
            raise ValueError(f"solutions: expected the puzzles' shape {puzzles.shape}, got {solutions.shape}")
        givens = np.asarray(self.givens)
        if givens.dtype.kind not in "iu" or givens.shape != puzzles.shape[:1]:
            raise ValueError(f"givens: expected an int array of shape {puzzles.shape[:1]}, "
                             f"got {givens.dtype} {givens.shape}")
        counts = (puzzles != 0).sum(axis=(1, 2))
        bad = np.flatnonzero(counts != givens)
        if bad.size:
            k = bad[0]
            raise ValueError(f"givens: entry {k} is {givens[k]} but puzzle {k} has {counts[k]} givens")
        bad = np.flatnonzero(~_constraints_ok(solutions, box))
        if bad.size:
            raise ValueError(f"solutions: solution {bad[0]} breaks a row, column or box constraint")
        bad = np.flatnonzero(~((puzzles == 0) | (puzzles == solutions)).all(axis=(1, 2)))
        if bad.size:
            raise ValueError(f"puzzles: puzzle {bad[0]} has a given that differs from its solution")
        targets = self.targets
        if targets is not None:
            targets = np.asarray(targets)
            if targets.dtype.kind not in "iu" or targets.shape != givens.shape:
                raise ValueError(f"targets: expected None or an int array of shape {givens.shape}")
            targets = targets.astype(np.int64, copy=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "puzzles", puzzles)
        object.__setattr__(self, "solutions", solutions)
        object.__setattr__(self, "givens", givens.astype(np.int64, copy=False))
        object.__setattr__(self, "targets", targets)

    @property
    def side(self) -> int:
        """Board side ``S``."""
        return self.box[0] * self.box[1]

    def __len__(self) -> int:
        return int(self.puzzles.shape[0])

    def subset(self, index: Any) -> SudokuData:
        """The puzzles selected by a slice, integer array or boolean mask.

        Raises:
            IndexError: ``index`` is out of bounds.
        """
        if _is_int(index):
            index = [int(index)]
        return SudokuData(self.puzzles[index], self.solutions[index], self.givens[index], self.box,
                          None if self.targets is None else self.targets[index])

    def givens_histogram(self) -> np.ndarray:
        """Number of puzzles with ``k`` givens, for ``k = 0..S*S`` (length ``S*S + 1``)."""
        return np.bincount(self.givens, minlength=self.side ** 2 + 1)

    def _which(self, which: str) -> np.ndarray:
        if which == "puzzles":
            return self.puzzles
        if which == "solutions":
            return self.solutions
        raise ValueError(f"which: expected 'puzzles' or 'solutions', got {which!r}")

    def onehot(self, which: str = "puzzles", dtype: Any = None) -> torch.Tensor:
        """One-hot boards ``[M, S, S, S]`` (SATNet's format): channel ``d - 1`` for digit ``d``,
        an all-zero vector for a blank.

        Args:
            which: ``"puzzles"`` or ``"solutions"``.
            dtype: torch dtype (default ``torch.float32``).

        Raises:
            ValueError: unknown ``which``.
        """

        grids = torch.from_numpy(self._which(which).astype(np.int64))
        out = torch.nn.functional.one_hot(grids, self.side + 1)[..., 1:]
        return out.to(torch.float32 if dtype is None else dtype)

    def grids(self, which: str = "puzzles", zero_based: bool = False) -> torch.Tensor:
        """Integer boards ``[M, S, S]`` (int64).

        Args:
            which: ``"puzzles"`` (0 = blank) or ``"solutions"``.
            zero_based: shift digits to ``0..S-1`` (class labels); only for solutions.

        Raises:
            ValueError: unknown ``which``, or ``zero_based`` for puzzles.
        """

        grids = torch.from_numpy(self._which(which).astype(np.int64))
        if zero_based:
            if which != "solutions":
                raise ValueError("zero_based: only solutions can be zero-based (puzzles use 0 for blanks)")
            grids = grids - 1
        return grids

    def is_given(self) -> torch.Tensor:
        """Bool mask ``[M, S, S]`` of the given cells."""
        return torch.from_numpy(self.puzzles != 0)

    def to_torch(self) -> SudokuDataset:
        """This data as a :class:`SudokuDataset` (a ``torch.utils.data.Dataset``)."""
        return SudokuDataset(self)


class SudokuDataset(torch.utils.data.Dataset):
    """Map-style dataset of ``(puzzle one-hot [S,S,S] float32, solution labels [S,S] int64
    in 0..S-1, is_given [S,S] bool)``.

    Args:
        data: the puzzles to serve.

    Raises:
        TypeError: ``data`` is not a :class:`SudokuData`.
    """

    def __init__(self, data: SudokuData) -> None:
        if not isinstance(data, SudokuData):
            raise TypeError(f"data: expected SudokuData, got {type(data).__name__}")
        self.data = data
        self.inputs = data.onehot("puzzles")
        self.labels = data.grids("solutions", zero_based=True)
        self.mask = data.is_given()

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.labels[index], self.mask[index]
