"""Sudoku data: boards of any box shape, an exact solver, a puzzle generator and file loaders.

Boards
    A board of box shape ``(b_r, b_c)`` (each box has ``b_r`` rows and ``b_c`` columns) has
    side ``S = b_r * b_c`` and is an ``int8`` array ``[S, S]``: ``0`` is a blank and ``1..S``
    are digits. A data set is ``[M, S, S]``. Supported shapes include 4x4 ``(2, 2)``, 6x6
    ``(2, 3)`` / ``(3, 2)`` and 9x9 ``(3, 3)``.

Solver
    :func:`count_solutions` / :func:`solve` use bitboards: one Python integer per digit whose
    bit ``i`` says whether digit ``d`` is still possible in cell ``i`` (row-major). Propagation
    places naked singles (cells with one candidate) until none are left, then looks for one
    digit with hidden singles (a unit with one place for it), and repeats; the search branches
    on a cell with the fewest candidates (MRV). A uniqueness check on a typical 9x9 puzzle takes
    well under a millisecond.

Generator
    A random solution grid comes from a randomised search on the empty board (random MRV cell,
    random digit order). Cells are then blanked in random order, each only if the puzzle stays
    uniquely solvable, until a target number of givens is reached. For the out-of-distribution
    ("hard") split, greedy removal stops at a *minimal* puzzle (no single given removable);
    a local search then swaps one given for another cell chosen so that uniqueness is kept by
    construction, greedily removes again, and restarts from the full grid a few times, keeping
    the lowest count reached.

Givens ranges (``round half up`` of the same fraction of the ``S*S`` cells):

    ========  ======================  =========================
    board     in-distribution (ID)    out-of-distribution (OOD)
    ========  ======================  =========================
    9x9       31-42 (SATNet)          17-34 (RRN hard)
    6x6       14-19                   8-15
    4x4       6-8                     3-7
    ========  ======================  =========================

The OOD targets are sampled uniformly from the range and the search accepts the lowest count it
reaches, so the achieved counts pile up at the low end of what the search finds (about 21-25 for
9x9; 17-clue puzzles are essentially unreachable by search). 4x4 puzzles need at least 4 givens
and 6x6 at least 8, so the lowest OOD targets are not always met either. The achieved count of
every puzzle is stored (``SudokuData.givens``), next to the sampled target.

Parallel generation derives one seed per puzzle from the master seed
(:meth:`numpy.random.SeedSequence.spawn`), so the result does not depend on the number of
worker processes; workers are started with the ``spawn`` method, so scripts that call
:func:`make_dataset` with ``workers > 1`` need the usual ``if __name__ == "__main__":`` guard.

Loaders read the public SATNet (``features.pt`` / ``labels.pt``) and RRN (``puzzle,solution``
CSV) formats.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studies.cache import atomic_path, cached_arrays

if TYPE_CHECKING:  # pragma: no cover - typing only; torch is imported lazily
    import torch

__all__ = [
    "DEFAULT_RESTARTS",
    "DEFAULT_SIZES",
    "DEFAULT_SWAPS",
    "GENERATOR_VERSION",
    "SPLITS",
    "SudokuData",
    "SudokuDataset",
    "board_side",
    "check_box",
    "count_solutions",
    "default_givens",
    "generate_puzzles",
    "has_unique_solution",
    "is_consistent",
    "is_minimal",
    "is_valid_solution",
    "load_rrn",
    "load_satnet",
    "make_dataset",
    "make_minimal_puzzle",
    "make_puzzle",
    "random_solution",
    "save_rrn_csv",
    "save_satnet",
    "solve",
]

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


# --------------------------------------------------------------------------- validation


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


# --------------------------------------------------------------------------- bitboard solver


class _Geometry:
    """Cell/unit bit masks of one box shape (cell ``i = row * S + col`` is bit ``i``)."""

    def __init__(self, b_r: int, b_c: int) -> None:
        side = b_r * b_c
        n = side * side
        self.box = (b_r, b_c)
        self.side = side
        self.n_cells = n
        self.full = (1 << n) - 1
        self.n_bytes = (n + 7) // 8
        idx = np.arange(n).reshape(side, side)
        cells = [idx[r, :] for r in range(side)] + [idx[:, c] for c in range(side)]
        cells += [idx[r:r + b_r, c:c + b_c].ravel() for r in range(0, side, b_r) for c in range(0, side, b_c)]
        self.units = [self._mask(u) for u in cells]
        peers = [0] * n
        for unit_cells, mask in zip(cells, self.units):
            for i in unit_cells:
                peers[int(i)] |= mask
        self.peers = [p & ~(1 << i) for i, p in enumerate(peers)]

    @staticmethod
    def _mask(cells: np.ndarray) -> int:
        mask = 0
        for i in cells:
            mask |= 1 << int(i)
        return mask

    def masks_from_grid(self, flat: np.ndarray) -> list[int]:
        """Per-digit cell masks of a flat board (0 = blank)."""
        return [int.from_bytes(np.packbits(flat == d, bitorder="little").tobytes(), "little")
                for d in range(1, self.side + 1)]

    def grid_from_masks(self, masks: Sequence[int]) -> np.ndarray:
        """Flat int8 board from per-digit cell masks (cells in no mask are blank)."""
        out = np.zeros(self.n_cells, dtype=np.int8)
        for d, mask in enumerate(masks):
            bits = np.unpackbits(np.frombuffer(mask.to_bytes(self.n_bytes, "little"), dtype=np.uint8),
                                 count=self.n_cells, bitorder="little")
            out[bits.astype(bool)] = d + 1
        return out

    def start(self, givens: Sequence[int]) -> tuple[list[int], int] | None:
        """Candidate bitboards and placed-cells mask for per-digit given masks (None: clash)."""
        peers = self.peers
        placed = 0
        for g in givens:
            if g & placed:
                return None
            placed |= g
        free = self.full & ~placed
        boards = []
        for g in givens:
            elim = 0
            x = g
            while x:
                low = x & -x
                elim |= peers[low.bit_length() - 1]
                x ^= low
            if elim & g:
                return None
            boards.append((free & ~elim) | g)
        return boards, placed


@functools.lru_cache(maxsize=None)
def _geometry(b_r: int, b_c: int) -> _Geometry:
    return _Geometry(b_r, b_c)


def _bits(x: int) -> list[int]:
    out = []
    while x:
        low = x & -x
        out.append(low.bit_length() - 1)
        x ^= low
    return out


def _nth_bit(x: int, k: int) -> int:
    for _ in range(k):
        x &= x - 1
    return x & -x


def _propagate(boards: list[int], done: int, geo: _Geometry) -> int:
    """Place naked and hidden singles in ``boards`` (in place); return the placed mask or -1."""
    full = geo.full
    units = geo.units
    peers = geo.peers
    digits = range(geo.side)
    scanned = [-1] * geo.side  # board of each digit at its last fruitless hidden-single scan
    while True:
        once = twice = 0
        for b in boards:
            twice |= once & b
            once |= b
        if once != full:
            return -1  # a cell without candidates
        if done == full:
            return done
        singles = once & ~twice & ~done
        if singles:  # naked singles: cheap, so run them to a fixpoint first
            for d in digits:
                new = singles & boards[d]
                if new:
                    elim = 0
                    x = new
                    while x:
                        low = x & -x
                        elim |= peers[low.bit_length() - 1]
                        x ^= low
                    if elim & new:
                        return -1  # two new singles of one digit see each other
                    boards[d] &= ~elim
                    done |= new
            continue
        for d in digits:  # hidden singles of the first digit that has any
            b = boards[d]
            if b == scanned[d] or not b & ~done:
                continue  # unchanged since a fruitless scan, or all placed
            new = 0
            for u in units:
                x = b & u
                if not x & (x - 1):
                    if not x:
                        return -1  # no place left for digit d in unit u
                    new |= x
            new &= ~done
            if new:
                elim = 0
                x = new
                while x:
                    low = x & -x
                    elim |= peers[low.bit_length() - 1]
                    x ^= low
                if elim & new:
                    return -1
                boards[d] = b & ~elim
                keep = ~new
                for e in digits:
                    if e != d:
                        boards[e] &= keep
                done |= new
                break
            scanned[d] = b
        else:
            return done


def _choose_cell(boards: list[int], done: int, geo: _Geometry, rng: np.random.Generator | None) -> int:
    """Bit of an open cell with the fewest candidates (random among ties if ``rng``)."""
    open_ = geo.full & ~done
    once = twice = thrice = 0
    for b in boards:
        b &= open_
        thrice |= twice & b
        twice |= once & b
        once |= b
    pick = twice & ~thrice
    if not pick:  # rare: no bivalue cell; count candidates in bit-sliced layers
        side = geo.side
        at_least = [open_] + [0] * (side + 1)
        for b in boards:
            b &= open_
            for k in range(side, 0, -1):
                at_least[k] |= at_least[k - 1] & b
        for k in range(3, side + 1):
            pick = at_least[k] & ~at_least[k + 1]
            if pick:
                break
    if rng is None:
        return pick & -pick
    return _nth_bit(pick, int(rng.integers(pick.bit_count())))


def _search(boards: list[int], done: int, geo: _Geometry, limit: int, found: list[list[int]] | None = None,
            rng: np.random.Generator | None = None) -> int:
    """Count solutions up to ``limit`` (appending them to ``found`` if given)."""
    done = _propagate(boards, done, geo)
    if done < 0:
        return 0
    if done == geo.full:
        if found is not None:
            found.append(boards)
        return 1
    bit = _choose_cell(boards, done, geo, rng)
    options = [d for d in range(geo.side) if boards[d] & bit]
    if rng is not None:
        rng.shuffle(options)
    count = 0
    for d in options:
        child = [b & ~bit for b in boards]
        child[d] = boards[d]
        count += _search(child, done, geo, limit - count, found, rng)
        if count >= limit:
            break
    return count


def _count_masks(givens: Sequence[int], geo: _Geometry, limit: int, found: list[list[int]] | None = None) -> int:
    state = geo.start(givens)
    if state is None:
        return 0
    return _search(state[0], state[1], geo, limit, found)


def count_solutions(puzzle: Any, box: Any = None, limit: int = 2) -> int:
    """Count the solutions of a puzzle, stopping at ``limit``.

    Args:
        puzzle: board ``[S, S]`` of ints, 0 for blanks.
        box: box shape ``(b_r, b_c)``; inferred when ``S`` is a perfect square.
        limit: stop counting at this many solutions (2 suffices for a uniqueness check).

    Returns:
        ``min(number of solutions, limit)``; 0 if the givens contradict each other.

    Raises:
        TypeError: ``puzzle`` is not an integer array or ``limit`` not an int.
        ValueError: bad shape, digits outside ``[0, S]``, bad box, or ``limit < 1``.
    """
    arr, (b_r, b_c) = _check_boards(puzzle, "puzzle", box, ndims=(2,), blanks=True)
    limit = _check_count(limit, "limit", minimum=1)
    geo = _geometry(b_r, b_c)
    return _count_masks(geo.masks_from_grid(arr.ravel()), geo, limit)


def has_unique_solution(puzzle: Any, box: Any = None) -> bool:
    """Whether a puzzle has exactly one solution.

    Args:
        puzzle: board ``[S, S]`` of ints, 0 for blanks.
        box: box shape; inferred when ``S`` is a perfect square.

    Returns:
        True iff the puzzle has exactly one solution.

    Raises:
        TypeError, ValueError: as :func:`count_solutions`.
    """
    return count_solutions(puzzle, box, limit=2) == 1


def solve(puzzle: Any, box: Any = None) -> np.ndarray | None:
    """Solve a puzzle.

    Args:
        puzzle: board ``[S, S]`` of ints, 0 for blanks.
        box: box shape; inferred when ``S`` is a perfect square.

    Returns:
        A solution as an int8 array ``[S, S]`` (the first one found if there are several),
        or None if the puzzle has no solution.

    Raises:
        TypeError, ValueError: as :func:`count_solutions`.
    """
    arr, (b_r, b_c) = _check_boards(puzzle, "puzzle", box, ndims=(2,), blanks=True)
    geo = _geometry(b_r, b_c)
    found: list[list[int]] = []
    if not _count_masks(geo.masks_from_grid(arr.ravel()), geo, 1, found):
        return None
    return geo.grid_from_masks(found[0]).reshape(arr.shape)


def is_minimal(puzzle: Any, box: Any = None) -> bool:
    """Whether a puzzle is uniquely solvable and no single given can be blanked keeping that.

    Args:
        puzzle: board ``[S, S]`` of ints, 0 for blanks.
        box: box shape; inferred when ``S`` is a perfect square.

    Returns:
        True iff the puzzle is unique and minimal.

    Raises:
        TypeError, ValueError: as :func:`count_solutions`.
    """
    arr, (b_r, b_c) = _check_boards(puzzle, "puzzle", box, ndims=(2,), blanks=True)
    geo = _geometry(b_r, b_c)
    found: list[list[int]] = []
    if _count_masks(geo.masks_from_grid(arr.ravel()), geo, 2, found) != 1:
        return False
    solution = found[0]
    keep = geo.full & ~int.from_bytes(np.packbits(arr.ravel() == 0, bitorder="little").tobytes(), "little")
    return not any(_removable(solution, keep, i, geo) for i in _bits(keep))


# --------------------------------------------------------------------------- validity checks


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


# --------------------------------------------------------------------------- generator


def _random_solution_masks(geo: _Geometry, rng: np.random.Generator) -> list[int]:
    found: list[list[int]] = []
    _search([geo.full] * geo.side, 0, geo, 1, found, rng)
    return found[0]


def _witness(solution: Sequence[int], keep: int, cell: int, geo: _Geometry) -> list[int] | None:
    """A solution of the puzzle ``solution & keep`` without ``cell`` that puts another digit
    there, or None when there is none, i.e. blanking ``cell`` keeps the solution unique."""
    bit = 1 << cell
    rest = keep & ~bit
    state = geo.start([s & rest for s in solution])
    if state is None:  # pragma: no cover - a subset of a solution never clashes
        raise AssertionError("givens taken from a solution clash")
    boards, done = state
    for d, s in enumerate(solution):
        if s & bit:
            boards[d] &= ~bit
            break
    found: list[list[int]] = []
    _search(boards, done, geo, 1, found)
    return found[0] if found else None


def _removable(solution: Sequence[int], keep: int, cell: int, geo: _Geometry) -> bool:
    """Whether blanking ``cell`` in the puzzle ``solution & keep`` keeps the solution unique."""
    return _witness(solution, keep, cell, geo) is None


def _greedy(solution: Sequence[int], keep: int, order: Sequence[int], target: int, geo: _Geometry,
            witnesses: dict[int, list[int]] | None = None) -> int:
    """Blank the given cells of ``keep`` in ``order`` while unique, stopping at ``target`` givens.

    ``witnesses`` maps cells known to be non-removable to an alternative solution proving it;
    those cells are skipped, and new proofs are added. A proof stays valid while givens are
    only removed (the alternative still satisfies the remaining givens).
    """
    count = keep.bit_count()
    for cell in order:
        if count <= target:
            break
        if not keep >> cell & 1 or (witnesses is not None and cell in witnesses):
            continue
        alt = _witness(solution, keep, cell, geo)
        if alt is None:
            keep &= ~(1 << int(cell))
            count -= 1
        elif witnesses is not None:
            witnesses[int(cell)] = alt
    return keep


def _shuffled_bits(x: int, rng: np.random.Generator) -> list[int]:
    cells = _bits(x)
    rng.shuffle(cells)
    return cells


def _id_keep(solution: list[int], geo: _Geometry, target: int, hi: int, rng: np.random.Generator,
             tries: int = 8) -> int | None:
    """Givens mask with ``target`` givens (or the lowest <= hi over a few removal orders)."""
    best = None
    for _ in range(tries):
        keep = _greedy(solution, geo.full, rng.permutation(geo.n_cells).tolist(), target, geo)
        if best is None or keep.bit_count() < best.bit_count():
            best = keep
        if best.bit_count() <= target:
            break
    return best if best.bit_count() <= hi else None


def _hard_keep(solution: list[int], geo: _Geometry, target: int, rng: np.random.Generator, restarts: int,
               swaps: int) -> int:
    """Lowest givens mask found by greedy removal + uniqueness-preserving swaps (see module doc)."""
    best = geo.full
    for _ in range(max(restarts, 1)):
        witnesses: dict[int, list[int]] = {}
        keep = _greedy(solution, geo.full, rng.permutation(geo.n_cells).tolist(), target, geo, witnesses)
        if keep.bit_count() < best.bit_count():
            best = keep
        if best.bit_count() <= target:
            return best
        for _ in range(swaps):
            givens = _bits(keep)
            drop = 1 << givens[int(rng.integers(len(givens)))]
            reduced = keep & ~drop
            found: list[list[int]] = []
            if _count_masks([s & reduced for s in solution], geo, _ENUM_LIMIT + 1, found) > _ENUM_LIMIT:
                continue
            # Cells that rule out every alternative solution when given their solution digit.
            fixers = geo.full & ~reduced & ~drop
            for alt in found:
                differ = 0
                for a, s in zip(alt, solution):
                    differ |= a & ~s
                if differ:
                    fixers &= differ
            if not fixers:
                continue
            add = _nth_bit(fixers, int(rng.integers(fixers.bit_count())))
            digit = next(d for d, s in enumerate(solution) if s & add)
            # A proof that a given cannot be blanked survives the swap iff it agrees with the new given.
            witnesses = {c: alt for c, alt in witnesses.items() if reduced >> c & 1 and alt[digit] & add}
            keep = _greedy(solution, reduced | add, _shuffled_bits(reduced | add, rng), target, geo, witnesses)
            if keep.bit_count() < best.bit_count():
                best = keep
                if best.bit_count() <= target:
                    return best
    return best


def random_solution(box: Any, rng: Any) -> np.ndarray:
    """A random full solution grid (randomised MRV search on the empty board).

    Args:
        box: box shape ``(b_r, b_c)``.
        rng: numpy Generator, SeedSequence or non-negative int seed (required; the global
            RNG is never used).

    Returns:
        int8 array ``[S, S]``.

    Raises:
        TypeError: bad ``rng`` or ``box``.
        ValueError: bad ``box``.
    """
    b_r, b_c = check_box(box)
    rng = _as_rng(rng)
    geo = _geometry(b_r, b_c)
    return geo.grid_from_masks(_random_solution_masks(geo, rng)).reshape(geo.side, geo.side)


def _prepare_solution(solution: Any, box: Any) -> tuple[list[int], _Geometry]:
    arr, (b_r, b_c) = _check_boards(solution, "solution", box, ndims=(2,), blanks=False)
    if not _constraints_ok(arr[None], (b_r, b_c))[0]:
        raise ValueError("solution: not a valid solution grid (a row, column or box repeats a digit)")
    geo = _geometry(b_r, b_c)
    return geo.masks_from_grid(arr.ravel()), geo


def make_puzzle(solution: Any, n_givens: int, rng: Any, box: Any = None) -> np.ndarray:
    """Blank cells of a solution in random order, keeping uniqueness, down to ``n_givens`` givens.

    If a minimal puzzle is reached first (no single given removable), it is returned with more
    givens than asked for.

    Args:
        solution: valid full grid ``[S, S]``.
        n_givens: target number of givens, in ``[0, S*S]``.
        rng: numpy Generator, SeedSequence or non-negative int seed.
        box: box shape; inferred when ``S`` is a perfect square.

    Returns:
        int8 puzzle ``[S, S]`` (0 = blank) whose unique solution is ``solution``.

    Raises:
        TypeError: bad argument types.
        ValueError: ``solution`` invalid, or ``n_givens`` out of range.
    """
    masks, geo = _prepare_solution(solution, box)
    n_givens = _check_count(n_givens, "n_givens")
    if n_givens > geo.n_cells:
        raise ValueError(f"n_givens: expected at most {geo.n_cells} (cells on the board), got {n_givens}")
    rng = _as_rng(rng)
    keep = _greedy(masks, geo.full, rng.permutation(geo.n_cells).tolist(), n_givens, geo)
    return geo.grid_from_masks([s & keep for s in masks]).reshape(geo.side, geo.side)


def make_minimal_puzzle(solution: Any, rng: Any, box: Any = None, target: int = 0,
                        restarts: int = DEFAULT_RESTARTS, swaps: int = DEFAULT_SWAPS) -> np.ndarray:
    """A puzzle with few givens: greedy removal to a minimal puzzle, then swaps and restarts.

    Args:
        solution: valid full grid ``[S, S]``.
        rng: numpy Generator, SeedSequence or non-negative int seed.
        box: box shape; inferred when ``S`` is a perfect square.
        target: stop as soon as a puzzle with at most this many givens is found (such a
            puzzle need not be minimal); with the default 0 the search always runs its budget
            and returns a minimal puzzle.
        restarts: greedy passes from the full grid.
        swaps: uniqueness-preserving swap moves after each pass.

    Returns:
        int8 puzzle ``[S, S]`` whose unique solution is ``solution``.

    Raises:
        TypeError: bad argument types.
        ValueError: ``solution`` invalid, or negative ``target``/``restarts``/``swaps``.
    """
    masks, geo = _prepare_solution(solution, box)
    target = _check_count(target, "target")
    restarts = _check_count(restarts, "restarts", minimum=1)
    swaps = _check_count(swaps, "swaps")
    rng = _as_rng(rng)
    keep = _hard_keep(masks, geo, target, rng, restarts, swaps)
    return geo.grid_from_masks([s & keep for s in masks]).reshape(geo.side, geo.side)


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


def _generate_chunk(task: tuple) -> dict[str, np.ndarray]:
    """Worker: generate the puzzles of one chunk of per-puzzle seeds."""
    (b_r, b_c), hard, (lo, hi), seeds, restarts, swaps = task
    geo = _geometry(b_r, b_c)
    k, side = len(seeds), geo.side
    out = {"puzzles": np.zeros((k, side, side), np.int8), "solutions": np.zeros((k, side, side), np.int8),
           "givens": np.zeros(k, np.int64), "targets": np.zeros(k, np.int64)}
    for j, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        target = int(rng.integers(lo, hi + 1))
        for _ in range(_MAX_GRIDS):
            solution = _random_solution_masks(geo, rng)
            keep = (_hard_keep(solution, geo, target, rng, restarts, swaps) if hard
                    else _id_keep(solution, geo, target, hi, rng))
            if keep is not None:
                break
        else:
            raise ValueError(f"givens: no uniquely solvable {side}x{side} puzzle with at most {hi} givens found in "
                             f"{_MAX_GRIDS} grids; lower counts need the minimal-puzzle search (hard=True)")
        out["puzzles"][j] = geo.grid_from_masks([s & keep for s in solution]).reshape(side, side)
        out["solutions"][j] = geo.grid_from_masks(solution).reshape(side, side)
        out["givens"][j] = keep.bit_count()
        out["targets"][j] = target
    return out


def _seed_sequence(seed: Any) -> np.random.SeedSequence:
    """A fresh SeedSequence (spawning from a caller's object would change it between calls)."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    values = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    if not values or not all(_is_int(v) for v in values):
        raise TypeError(f"seed: expected a non-negative int, a sequence of them or a SeedSequence, got {seed!r}")
    if any(v < 0 for v in values):
        raise ValueError(f"seed: entries must be non-negative, got {seed!r}")
    return np.random.SeedSequence([int(v) for v in values])


def _check_workers(workers: Any) -> int:
    if workers is None:
        return min(2, os.cpu_count() or 1)
    return _check_count(workers, "workers", minimum=1)


def _run_chunks(tasks: list[tuple], workers: int, total: int, progress: bool, desc: str) -> list[dict[str, np.ndarray]]:
    from tqdm import tqdm

    results: list[dict[str, np.ndarray] | None] = [None] * len(tasks)
    with tqdm(total=total, desc=desc, unit="puzzle", disable=not progress, dynamic_ncols=True) as bar:
        if workers == 1 or len(tasks) == 1:
            for k, task in enumerate(tasks):
                results[k] = _generate_chunk(task)
                bar.update(len(task[3]))
        else:
            ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch/threads are running
            with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
                futures = {pool.submit(_generate_chunk, task): k for k, task in enumerate(tasks)}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        k = futures[future]
                        results[k] = future.result()
                        bar.update(len(tasks[k][3]))
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    return results  # type: ignore[return-value]


def generate_puzzles(n: int, box: Any = (3, 3), givens: Any = None, *, hard: bool = False, seed: Any = 0,
                     workers: int | None = None, progress: bool = True, restarts: int = DEFAULT_RESTARTS,
                     swaps: int = DEFAULT_SWAPS) -> SudokuData:
    """Generate uniquely solvable puzzles in parallel (uncached; see :func:`make_dataset`).

    Puzzle ``i`` depends only on ``seed`` and ``i`` (its seed is child ``i`` of
    ``SeedSequence(seed)``), so results do not depend on ``workers`` and a smaller set is a
    prefix of a larger one with the same seed.

    Args:
        n: number of puzzles.
        box: box shape ``(b_r, b_c)``.
        givens: inclusive ``(low, high)`` range the per-puzzle target is drawn from uniformly;
            default :func:`default_givens` for the ID (``hard=False``) or OOD split.
        hard: use the minimal-puzzle search (accepts the lowest count reached when the target
            is out of reach) instead of stopping inside the range.
        seed: non-negative int (or sequence of them) or a ``numpy.random.SeedSequence``.
        workers: worker processes (default ``min(2, cpu_count)``); 1 runs in this process.
        progress: show a tqdm progress bar.
        restarts: hard search greedy passes per puzzle.
        swaps: hard search swap moves per pass.

    Returns:
        A :class:`SudokuData` with ``targets`` set to the sampled targets.

    Raises:
        TypeError: bad argument types.
        ValueError: negative ``n``, bad box, or a givens range outside ``[0, S*S]`` or reversed.
    """
    n = _check_count(n, "n")
    b_r, b_c = check_box(box)
    n_cells = (b_r * b_c) ** 2
    if givens is None:
        lo, hi = default_givens("ood" if hard else "train", (b_r, b_c))
    else:
        lo, hi = _check_givens(givens, n_cells)
    workers = _check_workers(workers)
    restarts = _check_count(restarts, "restarts", minimum=1)
    swaps = _check_count(swaps, "swaps")
    root = _seed_sequence(seed)
    side = b_r * b_c
    if n == 0:
        empty = np.zeros((0, side, side), np.int8)
        return SudokuData(empty, empty.copy(), np.zeros(0, np.int64), (b_r, b_c), np.zeros(0, np.int64))
    seeds = root.spawn(n)  # child i depends only on (seed, i)
    chunk = max(1, min(50, math.ceil(n / (8 * workers))))
    tasks = [((b_r, b_c), bool(hard), (lo, hi), seeds[i:i + chunk], restarts, swaps) for i in range(0, n, chunk)]
    parts = _run_chunks(tasks, workers, n, progress, f"sudoku {side}x{side} {'ood' if hard else 'id'}")
    arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return SudokuData(arrays["puzzles"], arrays["solutions"], arrays["givens"], (b_r, b_c), arrays["targets"])


def make_dataset(split: str, box: Any = (3, 3), size: int | None = None, seed: int = 0, *, givens: Any = None,
                 workers: int | None = None, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                 restarts: int = DEFAULT_RESTARTS, swaps: int = DEFAULT_SWAPS) -> SudokuData:
    """Generate (or read from the cache) one split of the Sudoku data set.

    The arrays are cached with :func:`studies.cache.cached_arrays` under a key made of every
    parameter that changes them (box, split, size, givens range, seed, generator version and,
    for ``"ood"``, the search budget); ``workers`` and ``progress`` do not change the result.
    ``"train"`` and ``"test"`` draw from the same distribution with different seeds.

    Args:
        split: ``"train"``, ``"test"`` or ``"ood"`` (alias ``"hard"``).
        box: box shape ``(b_r, b_c)``.
        size: number of puzzles (default :data:`DEFAULT_SIZES`: 9000 / 1000 / 1000).
        seed: master seed (non-negative int).
        givens: inclusive givens range (default :func:`default_givens`).
        workers: worker processes (default ``min(2, cpu_count)``).
        cache_dir: cache directory (default ``$AKORN_CACHE`` or ``~/.cache/akorn``).
        progress: show a tqdm progress bar while generating.
        restarts: OOD search greedy passes per puzzle.
        swaps: OOD search swap moves per pass.

    Returns:
        The split as :class:`SudokuData`.

    Raises:
        TypeError: bad argument types.
        ValueError: unknown split, bad box, negative size, or a bad givens range.
    """
    split = _check_split(split)
    b_r, b_c = check_box(box)
    size = DEFAULT_SIZES[split] if size is None else _check_count(size, "size")
    if not _is_int(seed):
        raise TypeError(f"seed: expected a non-negative int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed}")
    lo, hi = _check_givens(givens, (b_r * b_c) ** 2) if givens is not None else default_givens(split, (b_r, b_c))
    workers = _check_workers(workers)
    restarts = _check_count(restarts, "restarts", minimum=1)
    swaps = _check_count(swaps, "swaps")
    hard = split == "ood"
    params: dict[str, Any] = {"version": GENERATOR_VERSION, "box": [b_r, b_c], "split": split, "size": size,
                              "givens": [lo, hi], "seed": int(seed)}
    if hard:
        params.update(restarts=restarts, swaps=swaps)

    def build() -> dict[str, np.ndarray]:
        data = generate_puzzles(size, (b_r, b_c), (lo, hi), hard=hard, seed=[int(seed), _SPLIT_CODES[split], b_r, b_c],
                                workers=workers, progress=progress, restarts=restarts, swaps=swaps)
        return {"puzzles": data.puzzles, "solutions": data.solutions, "givens": data.givens, "targets": data.targets}

    arrays = cached_arrays(f"sudoku-{b_r}x{b_c}-{split}", params, build, root=cache_dir)
    return SudokuData(arrays["puzzles"], arrays["solutions"], arrays["givens"], (b_r, b_c), arrays["targets"])


# --------------------------------------------------------------------------- data container


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
        import torch

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
        import torch

        grids = torch.from_numpy(self._which(which).astype(np.int64))
        if zero_based:
            if which != "solutions":
                raise ValueError("zero_based: only solutions can be zero-based (puzzles use 0 for blanks)")
            grids = grids - 1
        return grids

    def is_given(self) -> torch.Tensor:
        """Bool mask ``[M, S, S]`` of the given cells."""
        import torch

        return torch.from_numpy(self.puzzles != 0)

    def to_torch(self) -> SudokuDataset:
        """This data as a :class:`SudokuDataset` (a ``torch.utils.data.Dataset``)."""
        return _dataset_class()(self)


@functools.lru_cache(maxsize=None)
def _dataset_class() -> type:
    """Build the torch Dataset class on first use, so importing this module stays torch-free."""
    import torch

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

    SudokuDataset.__module__ = __name__  # picklable as studies.sudoku.data.SudokuDataset (DataLoader workers)
    SudokuDataset.__qualname__ = "SudokuDataset"
    return SudokuDataset


def __getattr__(name: str) -> Any:
    if name == "SudokuDataset":
        return _dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- loaders / writers


def _load_tensor(path: Path, arg: str) -> np.ndarray:
    import pickle

    import torch

    if not path.is_file():
        raise ValueError(f"{arg}: missing file {str(path)!r}")
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{arg}: {str(path)!r} is not a readable torch file: {exc}") from exc
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{arg}: {str(path)!r} holds a {type(value).__name__}, expected a tensor")
    return value.detach().cpu().numpy()


def load_satnet(directory: str | os.PathLike, split: str = "train", *, n_train: int | None = None,
                box: Any = None) -> SudokuData:
    """Load SATNet's Sudoku data: ``features.pt`` and ``labels.pt`` (``perm.pt`` is ignored).

    Both files hold one-hot tensors ``[N, S, S, S]`` (``S = 9`` in the published set): the
    features have an all-zero vector for blanks, the labels are full solutions.

    Args:
        directory: the directory holding the files.
        split: ``"train"`` (the first ``n_train`` boards), ``"test"`` (the rest) or ``"all"``.
        n_train: size of the training part; default ``9 * N // 10`` (9000 of the published
            10,000 boards, so the test part is boards 9000-9999).
        box: box shape; inferred when ``S`` is a perfect square.

    Returns:
        The selected boards as :class:`SudokuData`.

    Raises:
        ValueError: missing directory or files, unreadable files, wrong shapes, values not
            one-hot, invalid or inconsistent solutions, ``n_train`` out of range, unknown split.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"directory: no such directory {str(directory)!r}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    arrays = {}
    for key in ("features", "labels"):
        value = _load_tensor(directory / f"{key}.pt", "directory")
        if value.ndim != 4 or not value.shape[1] == value.shape[2] == value.shape[3]:
            raise ValueError(f"directory: {key}.pt must have shape [N, S, S, S], got {tuple(value.shape)}")
        if value.dtype.kind not in "biuf" or not np.isin(value, (0, 1)).all():
            raise ValueError(f"directory: {key}.pt must be one-hot (entries 0 or 1)")
        arrays[key] = value.astype(np.int8)
    features, labels = arrays["features"], arrays["labels"]
    if features.shape != labels.shape:
        raise ValueError(f"directory: features.pt {features.shape} and labels.pt {labels.shape} differ in shape")
    side = features.shape[-1]
    box = _infer_box(side, "board") if box is None else check_box(box)
    if box[0] * box[1] != side:
        raise ValueError(f"box: {box} does not match the {side}x{side} boards in {str(directory)!r}")
    f_sum, l_sum = features.sum(axis=-1), labels.sum(axis=-1)
    if (f_sum > 1).any():
        raise ValueError("directory: features.pt has a cell with more than one digit set")
    if (l_sum != 1).any():
        raise ValueError("directory: labels.pt has a cell without exactly one digit set")
    puzzles = np.where(f_sum == 1, features.argmax(axis=-1) + 1, 0).astype(np.int8)
    solutions = (labels.argmax(axis=-1) + 1).astype(np.int8)
    n = puzzles.shape[0]
    n_train = n * 9 // 10 if n_train is None else _check_count(n_train, "n_train")
    if n_train > n:
        raise ValueError(f"n_train: expected at most {n} (boards in the files), got {n_train}")
    part = {"train": slice(0, n_train), "test": slice(n_train, n), "all": slice(0, n)}[split]
    try:
        return SudokuData(puzzles[part], solutions[part], (puzzles[part] != 0).sum(axis=(1, 2)), box)
    except ValueError as exc:
        raise ValueError(f"directory: {str(directory)!r}: {exc}") from exc


def load_rrn(path: str | os.PathLike, box: Any = (3, 3)) -> SudokuData:
    """Load an RRN-style CSV file: one ``puzzle,solution`` row per board.

    Each field is ``S*S`` digit characters in row-major order, ``0`` (or ``.``) for blanks. A
    first line containing letters and not shaped like a data row (e.g. ``quizzes,solutions``)
    is taken as a header and skipped; blank lines are ignored.

    Args:
        path: the CSV file.
        box: box shape (digits must be single characters, so ``S <= 9``).

    Returns:
        The boards as :class:`SudokuData`.

    Raises:
        ValueError: missing file, malformed line (named by line number), digits out of range,
            invalid or inconsistent solutions, or a board with ``S > 9``.
    """
    b_r, b_c = check_box(box)
    side = b_r * b_c
    if side > 9:
        raise ValueError(f"box: RRN CSV files hold single-character digits, so the side must be <= 9, got {side}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    n = side * side
    lines = path.read_bytes().splitlines()
    numbers = [k + 1 for k, line in enumerate(lines) if line.strip()]
    rows = [line.strip() for line in lines if line.strip()]
    if rows and any(chr(c).isalpha() for c in rows[0]) and not (len(rows[0]) == 2 * n + 1 and rows[0][n:n + 1] == b","):
        rows, numbers = rows[1:], numbers[1:]  # a header (a row-shaped line with a typo is reported below)
    if not rows:
        raise ValueError(f"path: {str(path)!r} has no puzzle rows")
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero(lengths != 2 * n + 1)
    if bad.size:
        k = bad[0]
        raise ValueError(f"path: line {numbers[k]}: expected 'puzzle,solution' with {n} characters each, "
                         f"got {rows[k][:60]!r} ({lengths[k]} characters)")
    table = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), 2 * n + 1)
    bad = np.flatnonzero(table[:, n] != ord(","))
    if bad.size:
        raise ValueError(f"path: line {numbers[bad[0]]}: expected a ',' after the {n}-character puzzle")
    puzzles = np.where(table[:, :n] == ord("."), ord("0"), table[:, :n]).astype(np.int16) - ord("0")
    solutions = table[:, n + 1:].astype(np.int16) - ord("0")
    for name, grid, low in (("puzzle", puzzles, 0), ("solution", solutions, 1)):
        bad = np.flatnonzero(((grid < low) | (grid > side)).any(axis=1))
        if bad.size:
            raise ValueError(f"path: line {numbers[bad[0]]}: {name} has characters other than digits {low}-{side}")
    puzzles = puzzles.reshape(-1, side, side).astype(np.int8)
    solutions = solutions.reshape(-1, side, side).astype(np.int8)
    bad = np.flatnonzero(~_constraints_ok(solutions, (b_r, b_c)))
    if bad.size:
        raise ValueError(f"path: line {numbers[bad[0]]}: solution breaks a row, column or box constraint")
    bad = np.flatnonzero(~((puzzles == 0) | (puzzles == solutions)).all(axis=(1, 2)))
    if bad.size:
        raise ValueError(f"path: line {numbers[bad[0]]}: puzzle has a given that differs from the solution")
    return SudokuData(puzzles, solutions, (puzzles != 0).sum(axis=(1, 2)), (b_r, b_c))


def _check_data(data: Any) -> SudokuData:
    if not isinstance(data, SudokuData):
        raise TypeError(f"data: expected SudokuData, got {type(data).__name__}")
    return data


def save_rrn_csv(data: SudokuData, path: str | os.PathLike, header: bool = False) -> Path:
    """Write boards as an RRN-style ``puzzle,solution`` CSV file (atomically).

    Args:
        data: the boards (side at most 9).
        path: destination file.
        header: write a ``quizzes,solutions`` header line first.

    Returns:
        The path written.

    Raises:
        TypeError: ``data`` is not :class:`SudokuData`.
        ValueError: side above 9.
    """
    data = _check_data(data)
    if data.side > 9:
        raise ValueError(f"data: RRN CSV files hold single-character digits, so the side must be <= 9, got {data.side}")
    m = len(data)
    table = np.full((m, 2 * data.side ** 2 + 2), ord("\n"), dtype=np.uint8)
    n = data.side ** 2
    table[:, :n] = data.puzzles.reshape(m, n) + ord("0")
    table[:, n] = ord(",")
    table[:, n + 1:2 * n + 1] = data.solutions.reshape(m, n) + ord("0")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes((b"quizzes,solutions\n" if header else b"") + table.tobytes())
    return path


def save_satnet(data: SudokuData, directory: str | os.PathLike) -> Path:
    """Write boards in SATNet's format: ``features.pt`` and ``labels.pt`` (one-hot float32).

    Args:
        data: the boards.
        directory: destination directory (created if needed).

    Returns:
        The directory.

    Raises:
        TypeError: ``data`` is not :class:`SudokuData`.
    """
    import torch

    data = _check_data(data)
    directory = Path(directory)
    for name, which in (("features.pt", "puzzles"), ("labels.pt", "solutions")):
        with atomic_path(directory / name) as tmp:
            torch.save(data.onehot(which), tmp)
    return directory
