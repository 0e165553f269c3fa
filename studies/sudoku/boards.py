"""Board geometry and validity for any ``b_r × b_c`` box shape: argument checks, the generator's
constants and split definitions, valid and consistent solutions, the default givens ranges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_RESTARTS", "DEFAULT_SIZES", "DEFAULT_SWAPS", "GENERATOR_VERSION", "SPLITS", "board_side",
           "check_box", "default_givens", "is_consistent", "is_valid_solution"]

#: Bump when the generator's output for a given seed changes (part of the cache key).
GENERATOR_VERSION = 1

#: Data set splits: two in-distribution splits and the out-of-distribution "hard" test split.
SPLITS = ("train", "test", "ood")

#: Default number of puzzles per split.
DEFAULT_SIZES = {"train": 9000, "test": 1000, "ood": 1000}

#: Hard search budget: greedy passes from the full grid, and local swaps after each pass.
DEFAULT_RESTARTS = 2

DEFAULT_SWAPS = 40


#: Givens fractions of the board: SATNet 31-42 of 81 (ID), RRN hard 17-34 of 81 (OOD).
_ID_FRACTION = (31, 42)

_OOD_FRACTION = (17, 34)


_SPLIT_CODES = {"train": 0, "test": 1, "ood": 2}

_MAX_SIDE = 127  # digits must fit in int8


_MAX_GRIDS = 20  # solution grids tried per ID puzzle before giving up on the givens range

_ENUM_LIMIT = 16  # alternative solutions enumerated per swap in the hard search


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_box(box: Any) -> tuple[int, int]:
    """Validate a box shape and return it as ``(b_r, b_c)``.

    Args:
        box: a pair of positive integers, rows and columns of one box.

    Returns:
        The box shape as a tuple of two Python ints.

    Raises:
        TypeError: ``box`` is not a pair of integers.
        ValueError: an entry is below 1, or the side ``b_r * b_c`` is below 2 or above 127.
    """
    if isinstance(box, (str, bytes)) or not isinstance(box, (Sequence, np.ndarray)):
        raise TypeError(f"box: expected a pair of ints (rows, cols) per box, got {box!r}")
    if len(box) != 2 or not all(_is_int(v) for v in box):
        raise TypeError(f"box: expected a pair of ints (rows, cols) per box, got {box!r}")
    b_r, b_c = int(box[0]), int(box[1])
    if b_r < 1 or b_c < 1:
        raise ValueError(f"box: entries must be >= 1, got {box!r}")
    if not 2 <= b_r * b_c <= _MAX_SIDE:
        raise ValueError(f"box: side rows*cols must be in [2, {_MAX_SIDE}], got {b_r}*{b_c}={b_r * b_c}")
    return b_r, b_c


def board_side(box: Any) -> int:
    """Side ``S = b_r * b_c`` of a board with box shape ``box``.

    Raises:
        TypeError, ValueError: as :func:`check_box`.
    """
    b_r, b_c = check_box(box)
    return b_r * b_c


def _infer_box(side: int, name: str) -> tuple[int, int]:
    root = math.isqrt(side)
    if root * root != side:
        raise ValueError(f"box: cannot infer the box shape of a {side}x{side} {name}; pass box=(rows, cols)")
    return root, root


def _check_boards(x: Any, name: str, box: Any, *, ndims: tuple[int, ...], blanks: bool,
                  need_box: bool = True) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Validate a board or stack of boards; return it as int8 and the box shape.

    With ``box=None`` the box is inferred from a perfect-square side, or left as None when
    ``need_box`` is false and the side is not a perfect square.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name}: expected an integer array, got {type(x).__name__}")
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.ndim not in ndims:
        want = " or ".join(["[S, S]", "[M, S, S]"][d - 2] for d in ndims)
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    side = arr.shape[-1]
    if arr.shape[-2] != side or side < 2:
        raise ValueError(f"{name}: boards must be square [.., S, S] with S >= 2, got {arr.shape}")
    if box is not None:
        box = check_box(box)
        if box[0] * box[1] != side:
            need = box[0] * box[1]
            raise ValueError(f"{name}: box {box} needs {need}x{need} boards, got shape {arr.shape}")
    elif need_box or math.isqrt(side) ** 2 == side:
        box = _infer_box(side, name)
    low = 0 if blanks else 1
    if arr.size and (arr.min() < low or arr.max() > side):
        bad = arr[(arr < low) | (arr > side)].ravel()[0]
        raise ValueError(f"{name}: digits must be in [{low}, {side}], found {int(bad)}")
    return arr.astype(np.int8, copy=False), box


def _check_count(value: Any, name: str, *, minimum: int = 0) -> int:
    if not _is_int(value):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _check_givens(givens: Any, n_cells: int, name: str = "givens") -> tuple[int, int]:
    if isinstance(givens, (str, bytes)) or not isinstance(givens, (Sequence, np.ndarray)) or len(givens) != 2 \
            or not all(_is_int(v) for v in givens):
        raise TypeError(f"{name}: expected a pair of ints (low, high), got {givens!r}")
    lo, hi = int(givens[0]), int(givens[1])
    if not 0 <= lo <= hi <= n_cells:
        raise ValueError(f"{name}: expected 0 <= low <= high <= {n_cells} (cells on the board), got ({lo}, {hi})")
    return lo, hi


def _check_split(split: Any) -> str:
    if split == "hard":
        split = "ood"
    if split not in _SPLIT_CODES:
        raise ValueError(f"split: expected one of {SPLITS} (or 'hard'), got {split!r}")
    return split


def _as_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.SeedSequence) or (_is_int(rng) and rng >= 0):
        return np.random.default_rng(rng)
    raise TypeError(f"{name}: expected a numpy Generator, SeedSequence or non-negative int seed, got {rng!r}")


def _constraints_ok(boards: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """[M] bool: every row, column and box of each full board holds each digit exactly once."""
    m, side = boards.shape[0], boards.shape[-1]
    b_r, b_c = box
    onehot = boards[..., None] == np.arange(1, side + 1, dtype=boards.dtype)  # [M, S(row), S(col), S(digit)]
    rows = (onehot.sum(axis=2) == 1).all(axis=(1, 2))
    cols = (onehot.sum(axis=1) == 1).all(axis=(1, 2))
    boxes = (onehot.reshape(m, side // b_r, b_r, side // b_c, b_c, side).sum(axis=(2, 4)) == 1).all(axis=(1, 2, 3))
    return rows & cols & boxes


def is_valid_solution(solution: Any, box: Any = None) -> bool | np.ndarray:
    """Whether a full board satisfies every row, column and box constraint.

    Args:
        solution: board ``[S, S]`` or stack ``[M, S, S]`` of ints in ``[0, S]``; a board with
            blanks (0) is not a valid solution.
        box: box shape; inferred when ``S`` is a perfect square.

    Returns:
        A bool for one board, or a bool array ``[M]`` for a stack.

    Raises:
        TypeError: not an integer array.
        ValueError: bad shape or box, or digits outside ``[0, S]``.
    """
    arr, box = _check_boards(solution, "solution", box, ndims=(2, 3), blanks=True)
    ok = _constraints_ok(arr.reshape((-1,) + arr.shape[-2:]), box)
    return bool(ok[0]) if arr.ndim == 2 else ok


def is_consistent(puzzle: Any, solution: Any) -> bool | np.ndarray:
    """Whether a solution agrees with every given of a puzzle.

    Args:
        puzzle: board ``[S, S]`` or stack ``[M, S, S]``, 0 for blanks.
        solution: array of the same shape.

    Returns:
        A bool for one board, or a bool array ``[M]`` for a stack.

    Raises:
        TypeError: not integer arrays.
        ValueError: shapes differ or are not square boards, or digits outside ``[0, S]``.
    """
    p, _ = _check_boards(puzzle, "puzzle", None, ndims=(2, 3), blanks=True, need_box=False)
    s, _ = _check_boards(solution, "solution", None, ndims=(2, 3), blanks=True, need_box=False)
    if p.shape != s.shape:
        raise ValueError(f"solution: expected the puzzle's shape {p.shape}, got {s.shape}")
    ok = ((p == 0) | (p == s)).all(axis=(-2, -1))
    return bool(ok) if p.ndim == 2 else ok


def default_givens(split: str, box: Any = (3, 3)) -> tuple[int, int]:
    """Default givens range of a split: SATNet's 31-42 of 81 (ID) or RRN's 17-34 of 81 (OOD).

    Other board sizes use the same fractions of their ``S*S`` cells, rounded half up.

    Args:
        split: ``"train"``, ``"test"`` (in-distribution) or ``"ood"`` / ``"hard"``.
        box: box shape.

    Returns:
        ``(low, high)`` inclusive.

    Raises:
        ValueError: unknown split or bad box.
    """
    split = _check_split(split)
    n = board_side(box) ** 2
    lo, hi = _OOD_FRACTION if split == "ood" else _ID_FRACTION
    return (lo * n + 40) // 81, (hi * n + 40) // 81  # round half up of k * n / 81
