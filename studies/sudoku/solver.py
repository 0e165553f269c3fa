"""An exact Sudoku solver on bit masks (constraint propagation plus search): counting solutions,
uniqueness, solving, minimality.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from studies.sudoku.boards import (
    _check_boards,
    _check_count,
)

__all__ = ["count_solutions", "has_unique_solution", "is_minimal", "solve"]


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


def _peers_of(cells: int, peers: list[int]) -> int:
    """The union of the peer masks of every cell set in ``cells``."""
    elim = 0
    while cells:
        low = cells & -cells
        elim |= peers[low.bit_length() - 1]
        cells ^= low
    return elim


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
                    elim = _peers_of(new, peers)
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
                elim = _peers_of(new, peers)
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


def _givens(puzzle: Any, box: Any) -> tuple[np.ndarray, _Geometry, list[int]]:
    """The checked board, its geometry and the candidate masks of its givens."""
    arr, (b_r, b_c) = _check_boards(puzzle, "puzzle", box, ndims=(2,), blanks=True)
    geo = _geometry(b_r, b_c)
    return arr, geo, geo.masks_from_grid(arr.ravel())


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
    _, geo, givens = _givens(puzzle, box)
    return _count_masks(givens, geo, _check_count(limit, "limit", minimum=1))


def has_unique_solution(puzzle: Any, box: Any = None) -> bool:
    """Whether a puzzle has exactly one solution (arguments and errors as :func:`count_solutions`)."""
    return count_solutions(puzzle, box, limit=2) == 1


def solve(puzzle: Any, box: Any = None) -> np.ndarray | None:
    """Solve a puzzle (arguments and errors as :func:`count_solutions`).

    Returns:
        A solution as an int8 array ``[S, S]`` (the first one found if there are several),
        or None if the puzzle has no solution.
    """
    arr, geo, givens = _givens(puzzle, box)
    found: list[list[int]] = []
    if not _count_masks(givens, geo, 1, found):
        return None
    return geo.grid_from_masks(found[0]).reshape(arr.shape)


def is_minimal(puzzle: Any, box: Any = None) -> bool:
    """Whether a puzzle is uniquely solvable and no single given can be blanked keeping that
    (arguments and errors as :func:`count_solutions`)."""
    arr, geo, givens = _givens(puzzle, box)
    found: list[list[int]] = []
    if _count_masks(givens, geo, 2, found) != 1:
        return False
    solution = found[0]
    keep = geo.full & ~int.from_bytes(np.packbits(arr.ravel() == 0, bitorder="little").tobytes(), "little")
    return not any(_removable(solution, keep, i, geo) for i in _bits(keep))


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
