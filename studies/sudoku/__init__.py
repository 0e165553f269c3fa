"""Sudoku study: data (boards of any box shape, exact solver, seeded puzzle generator with
in-distribution and hard out-of-distribution splits, SATNet/RRN loaders); see :mod:`studies.sudoku.data`.
Training, evaluation (more steps, energy-based selection) and plots: :mod:`studies.sudoku.study`
(the ``akorn sudoku`` command).

``SudokuDataset`` (a ``torch.utils.data.Dataset``) and the study's names (``TrainSettings``,
``EvalSettings``, ``train_model``, ``board_accuracy``, ...) are imported on first access, so importing
this package does not import torch.
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
    "EvalSettings",
    "SudokuData",
    "SudokuDataset",
    "TrainSettings",
    "board_accuracy",
    "board_side",
    "cell_accuracy",
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
    "select_by_energy",
    "solve",
    "train_model",
]

# names of studies.sudoku.study, imported (with torch) on first access
# (not ``evaluate``: that name is the submodule studies.sudoku.evaluate)
_STUDY_NAMES = frozenset({"EvalSettings", "TrainSettings", "board_accuracy", "cell_accuracy", "select_by_energy",
                          "train_model"})


def __getattr__(name: str) -> Any:
    if name == "SudokuDataset":
        from studies.sudoku import data

        return data.SudokuDataset
    if name in _STUDY_NAMES:
        from studies.sudoku import study

        return getattr(study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
