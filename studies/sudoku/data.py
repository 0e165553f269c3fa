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

The pieces live in :mod:`~studies.sudoku.boards` (geometry, validity), :mod:`~studies.sudoku.solver`
(exact solver), :mod:`~studies.sudoku.generate` (the seeded generator and its process pool),
:mod:`~studies.sudoku.dataset` (:class:`SudokuData`, the torch dataset) and
:mod:`~studies.sudoku.formats` (SATNet and RRN files); this module gathers their public names.
"""

from studies.sudoku.boards import (
    DEFAULT_RESTARTS,
    DEFAULT_SIZES,
    DEFAULT_SWAPS,
    GENERATOR_VERSION,
    SPLITS,
    board_side,
    check_box,
    default_givens,
    is_consistent,
    is_valid_solution,
)
from studies.sudoku.dataset import SudokuData, SudokuDataset
from studies.sudoku.formats import load_rrn, load_satnet, save_rrn_csv, save_satnet
from studies.sudoku.generate import generate_puzzles, make_dataset, make_minimal_puzzle, make_puzzle, random_solution
from studies.sudoku.solver import count_solutions, has_unique_solution, is_minimal, solve

__all__ = ["DEFAULT_RESTARTS", "DEFAULT_SIZES", "DEFAULT_SWAPS", "GENERATOR_VERSION", "SPLITS", "SudokuData",
           "SudokuDataset", "board_side", "check_box", "count_solutions", "default_givens",
           "generate_puzzles", "has_unique_solution", "is_consistent", "is_minimal", "is_valid_solution",
           "load_rrn", "load_satnet", "make_dataset", "make_minimal_puzzle", "make_puzzle",
           "random_solution", "save_rrn_csv", "save_satnet", "solve"]
