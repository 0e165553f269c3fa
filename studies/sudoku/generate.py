"""The seeded puzzle generator: random solution grids, puzzles with a given number of givens
(in-distribution) or searched for few givens (hard, out-of-distribution), generated in a
process pool and cached per parameter set.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from studies.cache import cached_arrays
from studies.sudoku.boards import (
    _ENUM_LIMIT,
    _MAX_GRIDS,
    _SPLIT_CODES,
    DEFAULT_RESTARTS,
    DEFAULT_SIZES,
    DEFAULT_SWAPS,
    GENERATOR_VERSION,
    _as_rng,
    _check_boards,
    _check_count,
    _check_givens,
    _check_split,
    _constraints_ok,
    _is_int,
    check_box,
    default_givens,
)
from studies.sudoku.dataset import SudokuData
from studies.sudoku.solver import (
    _bits,
    _count_masks,
    _Geometry,
    _geometry,
    _nth_bit,
    _search,
    _witness,
)

__all__ = ["generate_puzzles", "make_dataset", "make_minimal_puzzle", "make_puzzle", "random_solution"]

def _random_solution_masks(geo: _Geometry, rng: np.random.Generator) -> list[int]:
    found: list[list[int]] = []
    _search([geo.full] * geo.side, 0, geo, 1, found, rng)
    return found[0]






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
