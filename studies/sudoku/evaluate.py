"""Evaluation of trained Sudoku models (``akorn sudoku eval``): accuracy, more steps, energy selection.

Metrics (docs/AKORN.md §5.1)
    *Board accuracy*: the fraction of boards whose every blank cell is predicted right (the
    givens are not checked: a model is not asked to copy them). *Cell accuracy*: the
    fraction of blank cells predicted right, pooled over the boards.

Test-time step extension
    The trained weights are run with ``T_eval`` steps per block instead of the training T;
    nothing else changes. AKOrN and ItrSA are evaluated at every T of ``t_eval`` (and at their
    training T); the Transformer is not iterative and is evaluated at its own T only.

Energy-based selection
    Each board is replicated K times as a batch axis (copy-major: copy ``k`` of board ``b``
    is item ``k * B + b``), every copy with fresh noise on the blank cells; the model returns
    the official per-step energies of its last Kuramoto layer and every copy gets a score,
    ``last`` (the last logged entry, E(x_{T-1})) or ``sum`` (the sum of all logged entries),
    ``paper`` (the paper's energy of the final state, E(x_T) with its ½), or, for comparison,
    ``confidence`` (the readout's ``−Σ log p`` of its answer on the blank cells); the copy with
    the lowest score is kept (ties: the first). One run with ``max(k)`` copies
    serves every K of the list: selection over K uses copies ``0..K-1``, so K = 1 is one
    plain prediction. Only models that return energies (AKOrN) are selected.

Results (``sudoku.h5``, one xarray Dataset assembled in :mod:`studies.sudoku.results`): plain
accuracies ``board_acc`` / ``cell_acc`` over ``model × split × T`` on all test boards; selection accuracies ``vote_board_acc`` /
``vote_cell_acc`` over ``model × split × T × K × score`` on the first ``vote_boards`` boards
(both splits); a few sample boards with every model's answers; the training curves; the
overlap of the test boards with the training boards; the settings and provenance. Finished
cells are kept in ``sudoku.partial.h5`` while the evaluation runs, so an interrupted
evaluation resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm import tqdm

from kuramoto.checks import check_choice, check_positive
from networks.layer import use_integrator
from studies.cache import read_arrays, write_arrays
from studies.files import exclusive
from studies.protocol import Outcome
from studies.rundir import run_directory
from studies.storage import result_attrs, write_dataset
from studies.sudoku.config import METRICS_NAME, MODELS, SPLITS, EvalSettings
from studies.sudoku.dataset import SudokuData
from studies.sudoku.metrics import board_accuracy, cell_accuracy, selection_auc, solved, vote
from studies.sudoku.models import Prediction, accuracy_along, build_model, has_energy, predict
from studies.sudoku.pretrained import pretrained_runs
from studies.sudoku.results import Run, assemble, model_steps
from studies.sudoku.train import apply_runtime, load_eval_data, load_train_data, read_settings
from studies.training import CHECKPOINT_NAME, load_model_weights

__all__ = ["eval_command", "evaluate", "run_dirs"]

_MAX_ITEMS = 4096  # forward passes per chunk, whatever the memory budget


def _cell_seed(seed: int, *parts: Any) -> int:
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % 2**63


def _items_per_chunk(width: int, side: int, steps: int, energy: bool, memory_gb: float) -> int:
    """Forward passes per chunk under a memory budget (energies keep all T+1 states)."""
    per_item = 4.0 * width * side * side * (32 + (1.5 * (steps + 1) if energy else 0))
    return int(max(1, min(_MAX_ITEMS, memory_gb * 1e9 // per_item)))


def _open_runs(config: EvalSettings, runs: Mapping[str, str | os.PathLike]) -> list[Run]:
    out = []
    for kind in config.models:
        if kind not in runs:
            raise ValueError(f"runs: no run directory given for model {kind!r}")
        run_dir = Path(runs[kind])
        settings = read_settings(run_dir)
        if settings.model != kind:
            raise ValueError(f"runs: {str(run_dir)!r} holds a {settings.model!r} run, expected {kind!r}")
        ckpt = run_dir / CHECKPOINT_NAME
        if not ckpt.is_file():
            raise FileNotFoundError(f"runs: {str(ckpt)!r} does not exist; train {kind} first")
        st = ckpt.stat()
        history = None
        metrics = run_dir / f"{METRICS_NAME}.h5"
        if metrics.is_file():
            with xr.open_dataset(metrics, engine="h5netcdf") as ds:
                history = ds.load()
        out.append(Run(kind, settings, run_dir, f"{st.st_size}-{st.st_mtime_ns}", history))
    boxes = {tuple(r.settings.box) for r in out}
    if len(boxes) > 1:
        raise ValueError(f"runs: the models were trained on different boards {sorted(boxes)}; evaluate them separately")
    data_keys = {(r.settings.data_seed, r.settings.satnet_dir) for r in out}
    if len(data_keys) > 1:
        raise ValueError(f"runs: the models were trained on different data (data_seed, satnet_dir) {sorted(data_keys)}")
    return out


def _load_model(run: Run, ema: bool, device: torch.device, step_scale: float = 1.0,
                method: str | None = None) -> nn.Module:
    model = build_model(run.settings)
    load_model_weights(run.run_dir, model, ema=ema and run.settings.ema_decay is not None)
    if step_scale != 1 or method is not None:
        use_integrator(model, method, step_scale)
    return model.to(device).eval()


class _Partial:
    """Finished evaluation cells, kept in a side file so an interrupted evaluation resumes."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key
        self.arrays: dict[str, np.ndarray] = {}
        if path.is_file():
            try:
                arrays, attrs = read_arrays(path)
            except ValueError:
                arrays, attrs = {}, {}
            if attrs.get("key") == key:
                self.arrays = arrays

    def get(self, name: str) -> dict[str, np.ndarray] | None:
        prefix = name + ":"
        found = {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}
        return found or None

    def put(self, name: str, values: Mapping[str, np.ndarray]) -> None:
        self.arrays.update({f"{name}:{k}": np.asarray(v) for k, v in values.items()})
        write_arrays(self.path, self.arrays, {"key": self.key})

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()


def _run_plain(model: nn.Module, data: SudokuData, steps: int, seed: int, chunk: int, samples: int,
               bar: tqdm) -> dict[str, np.ndarray]:
    puzzles, solutions, given = data.grids("puzzles"), data.grids("solutions"), data.is_given()
    generator = torch.Generator().manual_seed(seed)
    digits = []
    for i in range(0, len(data), chunk):
        digits.append(predict(model, puzzles[i:i + chunk], steps=steps, generator=generator).digits[0])
        bar.update(digits[-1].shape[0] * steps)
    pred = torch.cat(digits)
    return {"board_acc": np.array(board_accuracy(pred, solutions, given)),
            "cell_acc": np.array(cell_accuracy(pred, solutions, given)),
            "samples": pred[:samples].numpy().astype(np.int8)}


def _run_vote(model: nn.Module, data: SudokuData, steps: int, ks: Sequence[int], scores: Sequence[str], seed: int,
              chunk: int, samples: int, bar: tqdm) -> dict[str, np.ndarray]:
    """Selection accuracies [K, score], the sample boards' selected digits [K, score, sample, S, S],
    the mean within-board AUC of every score [score] (boards whose copies disagree) and the
    fraction of boards with a right copy among all of them (``oracle``)."""
    copies = max(ks)
    puzzles, solutions, given = data.grids("puzzles"), data.grids("solutions"), data.is_given()
    generator = torch.Generator().manual_seed(seed)
    boards_per_chunk = max(1, chunk // copies)
    copies_per_pass = min(copies, chunk)  # K beyond the budget (K = 4096): the copies of a board in several passes
    right_boards = np.zeros((len(ks), len(scores)))
    right_cells = np.zeros((len(ks), len(scores)))
    side = puzzles.shape[-1]
    sample_digits = np.zeros((len(ks), len(scores), min(samples, len(data)), side, side), np.int8)
    auc_sum, auc_boards, oracle = np.zeros(len(scores)), 0, 0
    for i in range(0, len(data), boards_per_chunk):
        sl = slice(i, i + boards_per_chunk)
        parts = [predict(model, puzzles[sl], steps=steps, copies=min(copies_per_pass, copies - j),
                         generator=generator, energy=True) for j in range(0, copies, copies_per_pass)]
        pred = parts[0] if len(parts) == 1 else Prediction(
            torch.cat([p.digits for p in parts]), {n: torch.cat([p.scores[n] for p in parts]) for n in parts[0].scores})
        if pred.scores is not None and not set(scores) <= set(pred.scores):
            raise ValueError(f"scores: {type(model).__name__} gives no {sorted(set(scores) - set(pred.scores))} score "
                             f"(it has {sorted(pred.scores)})")
        nb = pred.digits.shape[1]
        right = solved(pred.digits.flatten(0, 1), solutions[sl].repeat(copies, 1, 1),
                       given[sl].repeat(copies, 1, 1)).view(copies, nb)
        oracle += int(right.any(0).sum())
        if pred.scores is not None:
            aucs = [selection_auc(pred.scores[score], right) for score in scores]
            mixed = ~aucs[0].isnan()
            auc_boards += int(mixed.sum())
            auc_sum += np.array([float(a[mixed].sum()) for a in aucs])
        for a, k in enumerate(ks):
            for c, score in enumerate(scores):
                chosen = vote(pred, k, score)
                ok = (chosen == solutions[sl]) & ~given[sl]
                right_cells[a, c] += int(ok.sum())
                right_boards[a, c] += int(solved(chosen, solutions[sl], given[sl]).sum())
                if i < samples:
                    n = min(samples - i, chosen.shape[0])
                    sample_digits[a, c, i:i + n] = chosen[:n].numpy()
        bar.update(puzzles[sl].shape[0] * copies * steps)
    blanks = max(int((~given).sum()), 1)
    return {"board_acc": right_boards / len(data), "cell_acc": right_cells / blanks, "samples": sample_digits,
            "auc": auc_sum / auc_boards if auc_boards else np.full(len(scores), np.nan),
            "oracle": np.array(oracle / len(data))}


def evaluate(config: EvalSettings, runs: Mapping[str, str | os.PathLike], *, path: str | os.PathLike | None = None,
             device: str = "auto", memory_gb: float = 1.0, workers: int | None = None,
             cache_dir: str | os.PathLike | None = None, progress: bool = True) -> xr.Dataset:
    """Evaluate trained models on both splits for every T, K and score; write ``path`` if given.

    Args:
        config: what to evaluate.
        runs: model kind -> run directory (as written by :func:`~studies.sudoku.train.train_model`).
        path: result file (netCDF4/HDF5, written atomically); its ``.partial.h5`` sibling keeps
            finished cells until the evaluation completes.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        memory_gb: memory budget of one forward pass (sets the chunk size; the noise of each
            cell is drawn in chunk order, so results depend on it only through the noise).
        workers: processes generating boards (default up to 2; 1 = this process).
        cache_dir: cache of generated boards.
        progress: show a progress bar (work = board-steps).

    Returns:
        The result Dataset (see the module docstring).

    Raises:
        TypeError: ``config`` is not :class:`EvalSettings`.
        ValueError, FileNotFoundError: a missing or inconsistent run directory.
    """
    if not isinstance(config, EvalSettings):
        raise TypeError(f"config: expected EvalSettings, got {type(config).__name__}")
    check_positive(memory_gb, "memory_gb")
    check_choice(device, "device", ("auto", "cpu", "cuda"))
    started = time.perf_counter()
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    opened = _open_runs(config, runs)
    ref = opened[0].settings
    data = load_eval_data(ref, config.test_boards, rrn_csv=config.rrn_csv, workers=workers, cache_dir=cache_dir,
                          progress=progress)
    train_data, _ = load_train_data(ref, workers=workers, cache_dir=cache_dir, progress=progress)
    key = json.dumps({"config": config.to_dict(), "runs": {r.kind: [r.settings.to_dict(), r.identity] for r in opened},
                      "memory_gb": memory_gb}, sort_keys=True)
    partial = _Partial(Path(path).with_suffix(".partial.h5"), key) if path is not None else None
    cells = _Cells(config, data, partial, memory_gb, ref.side)
    with tqdm(total=cells.work(opened), desc="sudoku eval", unit="board-step", unit_scale=True,
              disable=not progress, dynamic_ncols=True) as bar:
        for r in opened:
            cells.run_model(r, _load_model(r, config.ema, dev, config.step_scale, config.method), bar)
    ds = assemble(config, opened, data, train_data, cells.plain, cells.voted, cells.along, cells.n_vote,
                  cells.samples)
    ds.attrs.update(result_attrs("sudoku", config, config.seed, train_settings=json.dumps(
        {r.kind: r.settings.to_dict() for r in opened}, sort_keys=True), box=list(ref.box), memory_gb=memory_gb,
        weights="ema" if config.ema else "raw", device=str(dev), eval_seconds=time.perf_counter() - started,
        complete=1))
    if path is not None:
        write_dataset(ds, path)
        partial.remove()
    return ds


class _Cells:
    """The evaluation cells (model × split × T, plain or energy selection, and the per-step readout),
    each computed once: read back from the partial file when an earlier run finished it."""

    def __init__(self, config: EvalSettings, data: dict[str, SudokuData], partial: _Partial | None, memory_gb: float,
                 side: int) -> None:
        self.config, self.data, self.partial, self.memory_gb, self.side = config, data, partial, memory_gb, side
        self.n_vote = {s: len(d) if config.vote_boards is None else min(config.vote_boards, len(d))
                       for s, d in data.items()}
        self.samples = {s: min(config.samples, self.n_vote[s]) for s in SPLITS}
        self.plain: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
        self.voted: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
        self.along: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def voting(self, r: Run) -> list[int]:
        """The T values at which model ``r`` runs energy selection."""
        return [t for t in self.config.vote_steps if t in model_steps(r.kind, r.settings, self.config)]

    def work(self, runs: list[Run]) -> int:
        """Board-steps of the whole evaluation (the progress bar's total)."""
        total = 0
        for r in runs:
            steps = model_steps(r.kind, r.settings, self.config)
            for split in SPLITS:
                total += sum(len(self.data[split]) * t for t in steps)
                if r.kind == "akorn":
                    total += sum(self.n_vote[split] * self.config.copies * t for t in self.voting(r))
                    total += self.n_vote[split] * max(steps)
        return total

    def _cached(self, name: str, compute: Any, done: int, bar: tqdm) -> dict[str, np.ndarray]:
        cell = self.partial.get(name) if self.partial else None
        if cell is not None:
            bar.update(done)
            return cell
        cell = compute()
        if self.partial:
            self.partial.put(name, cell)
        return cell

    def run_model(self, r: Run, model: nn.Module, bar: tqdm) -> None:
        """Every cell of one trained model."""
        config, width = self.config, r.settings.width
        steps = model_steps(r.kind, r.settings, config)
        for split in SPLITS:
            data = self.data[split]
            for t in steps:
                bar.set_postfix_str(f"{r.kind} {split} T={t}", refresh=False)
                chunk = _items_per_chunk(width, self.side, t, False, self.memory_gb)
                seed = _cell_seed(config.seed, split, t, "plain")
                self.plain[(r.kind, split, t)] = self._cached(
                    f"{r.kind}:{split}:{t}:plain",
                    lambda: _report_plain(_run_plain(model, data, t, seed, chunk, self.samples[split], bar), r.kind,
                                          split, t, len(data), bar), len(data) * t, bar)
            if has_energy(model):
                self._run_energy(r, model, split, max(steps), bar)

    def _run_energy(self, r: Run, model: nn.Module, split: str, t_max: int, bar: tqdm) -> None:
        """The per-step readout along one run of the largest T, and energy selection."""
        config, width, n = self.config, r.settings.width, self.n_vote[split]
        subset = self.data[split].subset(slice(0, n))
        if callable(getattr(model, "logits_along", None)):
            name = f"{r.kind}:{split}:along"
            cell = self.partial.get(name) if self.partial else None
            if cell is None:
                chunk = _items_per_chunk(width, self.side, t_max, True, self.memory_gb)
                curve = accuracy_along(model, subset, steps=t_max, seed=_cell_seed(config.seed, split, "along"),
                                       chunk=chunk)
                cell = {v: curve[v].values for v in ("board_acc", "energy")}
                if self.partial:
                    self.partial.put(name, cell)
                best = int(np.argmax(cell["board_acc"]))
                bar.write(f"{r.kind} {split} along one T={t_max} run ({n} boards): board accuracy "
                          f"{cell['board_acc'][-1]:.3f} at t={t_max}, best {cell['board_acc'][best]:.3f} at t={best}")
            bar.update(n * t_max)
            self.along[(r.kind, split)] = cell
        for t in self.voting(r):
            bar.set_postfix_str(f"{r.kind} {split} T={t} K={config.copies}", refresh=False)
            chunk = _items_per_chunk(width, self.side, t, True, self.memory_gb)
            seed = _cell_seed(config.seed, split, t, "vote")
            self.voted[(r.kind, split, t)] = self._cached(
                f"{r.kind}:{split}:{t}:vote",
                lambda: _report_vote(_run_vote(model, subset, t, config.k, config.scores, seed, chunk,
                                               self.samples[split], bar), config, r.kind, split, t, n, bar),
                n * config.copies * t, bar)


def _report_plain(cell: dict[str, np.ndarray], kind: str, split: str, t: int, boards: int,
                  bar: tqdm) -> dict[str, np.ndarray]:
    bar.write(f"{kind} {split} T={t}: board accuracy {float(cell['board_acc']):.3f}, "
              f"cell accuracy {float(cell['cell_acc']):.3f} ({boards} boards)")
    return cell


def _report_vote(cell: dict[str, np.ndarray], config: EvalSettings, kind: str, split: str, t: int, boards: int,
                 bar: tqdm) -> dict[str, np.ndarray]:
    accs = ", ".join(f"K={k} {sc} {cell['board_acc'][a, c]:.3f}" for a, k in enumerate(config.k)
                     for c, sc in enumerate(config.scores))
    aucs = ", ".join(f"{sc} {a:.2f}" for sc, a in zip(config.scores, cell["auc"]))
    bar.write(f"{kind} {split} T={t} selection ({boards} boards): board accuracy {accs}; a right copy among "
              f"K={config.copies} for {float(cell['oracle']):.3f}; within-board AUC {aucs}")
    return cell


def run_dirs(out: str | os.PathLike, tag: str, models: tuple[str, ...] = MODELS) -> dict[str, Path]:
    """Run directories ``<out>/<tag>/<model>`` of the given models (a ``tag`` may not leave ``out``)."""
    return {m: run_directory(out, tag, m) for m in models}


def eval_command(config: EvalSettings, args: Any) -> Outcome:
    """``akorn sudoku eval``: evaluate the models of ``<out>/<tag>/`` into ``<out>/<tag>/<config.filename>``
    (locked while written: one writer per result file and its partial file)."""
    apply_runtime(args)
    if getattr(args, "pretrained", False):
        runs = pretrained_runs(config.models, args.preset)
        tag = args.tag or f"pretrained-{args.preset}"
    else:
        tag = args.tag or args.preset
        runs = run_dirs(args.out, tag, config.models)
    path = run_directory(args.out, tag) / config.filename
    with exclusive(path):
        ds = evaluate(config, runs, path=path, device=args.device,
                      memory_gb=args.memory_gb, workers=args.workers, progress=args.progress)
    return Outcome(dataset=ds, path=path)
