"""Reading and writing the public Sudoku formats: SATNet (``features.pt`` / ``labels.pt``) and RRN
(``puzzle,solution`` CSV).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studies.cache import atomic_path
from studies.sudoku.boards import _check_count, _constraints_ok, _infer_box, check_box
from studies.sudoku.dataset import SudokuData

__all__ = ["load_rrn", "load_satnet", "save_rrn_csv", "save_satnet"]


def _load_tensor(path: Path, arg: str) -> np.ndarray:
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

    data = _check_data(data)
    directory = Path(directory)
    for name, which in (("features.pt", "puzzles"), ("labels.pt", "solutions")):
        with atomic_path(directory / name) as tmp:
            torch.save(data.onehot(which), tmp)
    return directory
