"""Sudoku study: data (boards of any box shape, exact solver, seeded puzzle generator with
in-distribution and hard out-of-distribution splits, SATNet/RRN loaders); see :mod:`studies.sudoku.data`.

``SudokuDataset`` (a ``torch.utils.data.Dataset``) is created on first access, so importing this
package does not import torch.
"""

from typing import Any

from studies.sudoku.data import (
    DEFAULT_RESTARTS,
    DEFAULT_SIZES,
    DEFAULT_SWAPS,
    GENERATOR_VERSION,
    SPLITS,
    SudokuData,
    board_side,
    check_box,
    count_solutions,
    default_givens,
    generate_puzzles,
    has_unique_solution,
    is_consistent,
    is_minimal,
    is_valid_solution,
    load_rrn,
    load_satnet,
    make_dataset,
    make_minimal_puzzle,
    make_puzzle,
    random_solution,
    save_rrn_csv,
    save_satnet,
    solve,
)

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


def __getattr__(name: str) -> Any:
    if name == "SudokuDataset":
        from studies.sudoku import data

        return data.SudokuDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
