"""Training of the Sudoku models (``akorn sudoku train``): data, loss, validation and the run loop.

One run trains one model (``akorn``, ``itrsa`` or ``transformer``) into its own directory::

    <run_dir>/config.json   the TrainSettings of the run (JSON)
    <run_dir>/checkpoint.pt   weights, EMA, optimizer, RNG states (rewritten atomically every epoch)
    <run_dir>/train.h5        loss and accuracy curves (per step and per epoch, xarray/netCDF4)

:func:`train_model` resumes from ``checkpoint.pt`` whenever it exists (bit for bit, see
:mod:`studies.training`), so the same command can be run again after an interruption or a
time budget (``max_hours``) until the run is finished. A run is finished when it has trained
``epochs`` epochs or, with ``stop_at`` set, when the validation board accuracy of the weights
that are evaluated (EMA if enabled) has reached ``stop_at`` at ``patience`` consecutive
validations. Validation uses ``val_boards`` in-distribution boards that are neither in the
training nor in the test set, at the training step count, with a fixed noise seed.

The paper's recipe (docs/AKORN.md §5.1, §6) is the ``paper`` preset (:mod:`studies.sudoku.config`): 9×9
boards, width 512, Adam
with lr 1e-3 (AKOrN) or 5e-4 (ItrSA, Transformer), batch 100, 100 epochs, gradient-norm clip
1, EMA 0.995 updated every 10 steps after 100, cross-entropy over all cells (givens
included). The ``quick`` and ``cpu`` presets keep the recipe and shrink the board or width;
see :data:`studies.sudoku.config.PRESETS` for what each changes and why.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm import tqdm

from kuramoto.checks import check_int, check_positive
from studies.config import ConfigError
from studies.protocol import Outcome
from studies.rundir import claim, is_writer, prepare_run, read_config, run_directory, start_over
from studies.sudoku.config import METRICS_NAME, RESUMABLE, TrainSettings
from studies.sudoku.dataset import SudokuData
from studies.sudoku.formats import load_rrn, load_satnet
from studies.sudoku.generate import make_dataset
from studies.sudoku.metrics import board_accuracy, cell_accuracy
from studies.sudoku.models import build_model, predict_digits
from studies.training import TrainConfig, Trainer, is_main_process, seed_everything, setup_distributed

__all__ = ["TrainResult", "converged", "load_eval_data", "load_train_data", "read_settings", "stop_reason",
           "sudoku_loss", "train_model", "training_summary"]


def sudoku_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], *,
                cells: str = "all", steps: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of the per-cell digit logits, with batch accuracies as metrics.

    Args:
        model: maps one-hot boards ``[B, S, S, S]`` to logits ``[B, S, S, S]``.
        batch: ``(puzzle one-hot [B, S, S, S] float, solution labels [B, S, S] int64 in
            0..S-1, is_given [B, S, S] bool)`` as served by ``SudokuData.to_torch()``.
        cells: ``"all"`` (every cell, givens included, as the official code) or ``"blank"``.
        steps: iterations T of the model for this batch (``None``: its own; not for the Transformer).

    Returns:
        ``(loss, {"cell_acc": fraction of blank cells right, "board_acc": fraction of boards
        with every blank cell right})``.
    """
    if cells not in ("all", "blank"):
        raise ValueError(f"cells: expected 'all' or 'blank', got {cells!r}")
    puzzles, labels, given = batch
    logits = model(puzzles) if steps is None else model(puzzles, steps=steps)
    s = logits.shape[-1]
    per_cell = nn.functional.cross_entropy(logits.reshape(-1, s), labels.reshape(-1), reduction="none")
    blank = ~given.reshape(-1)
    if cells == "all":
        loss = per_cell.mean()
    else:
        loss = (per_cell * blank).sum() / blank.sum().clamp_min(1)
    with torch.no_grad():
        right = logits.argmax(-1) == labels
        cell_acc = (right & ~given).sum() / (~given).sum().clamp_min(1)
        board_acc = (right | given).flatten(1).all(1).float().mean()
    return loss, {"cell_acc": cell_acc, "board_acc": board_acc}


def _loss_fn(settings: TrainSettings) -> Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The training loss of a run; with ``steps_range`` every batch draws its T from the global torch
    RNG, which the trainer checkpoints, so a resumed run draws the same sequence."""
    cells, span = settings.loss_cells, settings.steps_range

    def loss_fn(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        steps = None if span is None else int(torch.randint(span[0], span[1] + 1, ()))
        return sudoku_loss(model, batch, cells=cells, steps=steps)

    return loss_fn


def load_train_data(settings: TrainSettings, *, workers: int | None = None, cache_dir: str | os.PathLike | None = None,
                    progress: bool = True) -> tuple[SudokuData, SudokuData]:
    """Training and validation boards of a run.

    Training boards are generated (``make_dataset("train", size=train_boards, seed=data_seed)``)
    or SATNet's first 9,000 boards; validation boards are always generated in-distribution
    boards (``make_dataset("test", size=val_boards, seed=data_seed + 1)``), a stream disjoint
    from both the training boards and the test boards of :func:`load_eval_data`.

    Returns:
        ``(train, validation)``.
    """
    box = tuple(settings.box)
    kw = dict(workers=workers, cache_dir=cache_dir, progress=progress)
    if settings.satnet_dir is not None:
        train = load_satnet(settings.satnet_dir, "train", box=box)
    else:
        train = make_dataset("train", box, settings.train_boards, settings.data_seed, **kw)
    val = make_dataset("test", box, settings.val_boards, settings.data_seed + 1, **kw)
    return train, val


def load_eval_data(settings: TrainSettings, boards: int, *, rrn_csv: str | None = None, workers: int | None = None,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, SudokuData]:
    """The in-distribution test boards and the out-of-distribution boards of a run.

    Generated: ``make_dataset("test"/"ood", size=boards, seed=data_seed)``. With SATNet
    training data the ID boards are SATNet's test part (boards 9,000-9,999); with ``rrn_csv``
    the OOD boards are read from that RRN CSV. Loaded sets are cut to their first ``boards``.

    Returns:
        ``{"id": ..., "ood": ...}``.
    """
    box = tuple(settings.box)
    kw = dict(workers=workers, cache_dir=cache_dir, progress=progress)
    if settings.satnet_dir is not None:
        test = load_satnet(settings.satnet_dir, "test", box=box)
        test = test.subset(slice(0, boards))
    else:
        test = make_dataset("test", box, boards, settings.data_seed, **kw)
    if rrn_csv is not None:

        ood = load_rrn(rrn_csv, box=box).subset(slice(0, boards))
    else:
        ood = make_dataset("ood", box, boards, settings.data_seed, **kw)
    return {"id": test, "ood": ood}


def read_settings(run_dir: str | os.PathLike) -> TrainSettings:
    """The :class:`TrainSettings` stored in a run directory (``config.json``, or an older ``settings.json``).

    Raises:
        FileNotFoundError: the directory holds no config (never trained).
        ValueError: the file is not a valid TrainSettings file.
    """
    return read_config(run_dir, TrainSettings, hint="train the model first (akorn sudoku train ...)")


def _check_run_dir(settings: TrainSettings, run_dir: Path) -> None:
    """Refuse to resume a run made with other settings; record the settings of this one."""
    prepare_run(settings, run_dir, resumable=RESUMABLE, write=is_main_process(),
                fix="Choose another run directory (--tag NAME) for a new run.")


def _validator(val: SudokuData, settings: TrainSettings) -> Callable[[nn.Module], dict[str, float]]:
    """Board and blank-cell accuracy of one prediction per validation board, at the training T
    and with a fixed noise seed (so the curve is not noisier than the model)."""

    puzzles, solutions, given = val.grids("puzzles"), val.grids("solutions"), val.is_given()

    def eval_fn(model: nn.Module) -> dict[str, float]:
        pred = predict_digits(model, puzzles, steps=settings.model_steps, seed=settings.seed + 12345,
                              batch_size=max(settings.batch_size, 200))
        return {"board_acc": board_accuracy(pred, solutions, given), "cell_acc": cell_accuracy(pred, solutions, given)}

    return eval_fn


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train_model` did.

    Attributes:
        history: the Trainer's history (``train.h5``): per-step ``loss``, ``cell_acc``,
            ``board_acc``; per-epoch means and ``eval_board_acc`` / ``eval_ema_board_acc``.
        epochs: epochs trained so far (over all sessions).
        finished: the run is complete (all epochs, or converged); False after a budget stop.
        reason: ``"epochs"``, ``"converged"``, ``"plateau"``, ``"max_epochs"`` or ``"max_hours"``.
        seconds: wall-clock seconds of this call.
    """

    history: xr.Dataset
    epochs: int
    finished: bool
    reason: str
    seconds: float


def _val_curve(history: xr.Dataset, ema: bool) -> np.ndarray:
    name = "eval_ema_board_acc" if ema else "eval_board_acc"
    if name not in history:
        return np.zeros(0)
    values = history[name].values
    return values[np.isfinite(values)]


def stop_reason(history: xr.Dataset, settings: TrainSettings) -> str | None:
    """Why the run should stop before its last epoch, if it should.

    Returns:
        ``"converged"`` when the last ``patience`` validations all reached ``stop_at``;
        ``"plateau"`` (with ``plateau = p``) when the best validation accuracy is above zero and
        none of the last ``p`` validations improved on it; else ``None``.
    """
    curve = _val_curve(history, settings.ema_decay is not None)
    # a small tolerance: accuracies are ratios of integers stored as float64
    if settings.stop_at is not None and curve.size >= settings.patience \
            and bool((curve[-settings.patience:] >= settings.stop_at - 1e-9).all()):
        return "converged"
    p = settings.plateau
    if p is not None and curve.size > p:
        best_before = curve[:-p].max()
        # a model that has solved nothing yet has not plateaued (ItrSA sits at 0% for ~17 epochs on 6x6)
        if best_before > 0 and curve[-p:].max() <= best_before + 1e-9:
            return "plateau"
    return None


def converged(history: xr.Dataset, settings: TrainSettings) -> bool:
    """True when :func:`stop_reason` says the run is done (``stop_at`` reached or a plateau)."""
    return stop_reason(history, settings) is not None


def train_config(settings: TrainSettings, device: str = "auto", epochs: int | None = None,
             checkpoint_every: int = 1) -> TrainConfig:
    """The :class:`studies.training.TrainConfig` of a run.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        epochs: epochs of this trainer (default ``settings.epochs``).
        checkpoint_every: write a checkpoint every this many epochs (and after the last).
    """
    return TrainConfig(epochs=settings.epochs if epochs is None else epochs, batch_size=settings.batch_size,
                       lr=settings.learning_rate, weight_decay=0.0, grad_clip=settings.grad_clip,
                       ema_decay=settings.ema_decay, ema_every=settings.ema_every, ema_after=settings.ema_after,
                       ema_warmup_power=settings.ema_warmup_power, seed=settings.seed, num_workers=0,
                       log_every=10, device=device, checkpoint_every=checkpoint_every)


def train_model(settings: TrainSettings, run_dir: str | os.PathLike, *, max_epochs: int | None = None,
                max_hours: float | None = None, device: str = "auto", workers: int | None = None,
                cache_dir: str | os.PathLike | None = None, progress: bool = True,
                checkpoint_every: int = 1) -> TrainResult:
    """Train (or resume) one Sudoku model in ``run_dir``.

    The run is split into sessions of ``eval_every`` epochs (each resumes from the checkpoint
    of the previous one, which the trainer guarantees to be exact), so that it can stop on
    convergence or on a time budget between them. Under ``torchrun`` every process runs this
    function; rank 0 generates the data first and writes every file.

    Args:
        settings: the run's settings.
        run_dir: directory of ``config.json``, ``checkpoint.pt`` and ``train.h5``.
        max_epochs: stop this call once the run has this many epochs in total (the run can
            be continued later with the same settings).
        max_hours: stop this call after the first validation that ends past this wall time.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        workers: processes that generate boards (default: up to 2; 1 = this process).
        cache_dir: cache of generated boards (default ``$AKORN_CACHE`` or ``~/.cache/akorn``).
        progress: show progress bars (a line per validation is printed either way).
        checkpoint_every: write the checkpoint every this many epochs (and at the end of every
            session); 1 (every epoch) unless epochs are so short that writing dominates.

    Returns:
        A :class:`TrainResult`.

    Raises:
        TypeError: ``settings`` is not :class:`TrainSettings`.
        ConfigError: ``run_dir`` holds a run with other settings (the field is named).
        ValueError: bad ``max_epochs`` / ``max_hours``, or a checkpoint that does not fit.
    """

    if not isinstance(settings, TrainSettings):
        raise TypeError(f"settings: expected TrainSettings, got {type(settings).__name__}")
    check_int(max_epochs, "max_epochs", minimum=1, optional=True)
    check_positive(max_hours, "max_hours", optional=True)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    ctx = setup_distributed()
    _check_run_dir(settings, run_dir)
    if ctx.distributed and not ctx.is_main:
        torch.distributed.barrier()  # rank 0 generates (and caches) the boards first
    train, val = load_train_data(settings, workers=workers, cache_dir=cache_dir,
                                 progress=progress and is_main_process())
    if ctx.distributed and ctx.is_main:
        torch.distributed.barrier()
    seed_everything(settings.seed)
    model = build_model(settings)
    train_set = train.to_torch()
    show = progress and is_main_process()

    def trainer(epochs: int) -> Trainer:
        cfg = train_config(settings, device, epochs, checkpoint_every)
        return Trainer(model, _loss_fn(settings), train_set, cfg, out_dir=run_dir,
                       eval_fn=_validator(val, settings), eval_every=settings.eval_every,
                       metrics_name=METRICS_NAME, resume=True, progress=show)

    current = trainer(settings.epochs)  # loads and checks the checkpoint, if any
    target = settings.epochs if max_epochs is None else min(settings.epochs, max_epochs)
    while not (reason := _session_end(current, settings, target, max_hours, started)):
        stop = min(target, (current.epoch // settings.eval_every + 1) * settings.eval_every)
        if stop != current.config.epochs:
            current = trainer(stop)
        current.fit()
        if is_main_process():  # one line per validation, also without progress bars (logs)
            _report_epoch(current.history, settings)
    finished = reason in ("epochs", "converged", "plateau")
    return TrainResult(history=current.history, epochs=current.epoch, finished=finished, reason=reason,
                       seconds=time.perf_counter() - started)


def _session_end(current: Trainer, settings: TrainSettings, target: int, max_hours: float | None,
                 started: float) -> str:
    """Why training stops now (``"epochs"``, ``"converged"``, ``"plateau"``, ``"max_epochs"``,
    ``"max_hours"``), or ``""`` to train another session."""
    done = current.epoch
    if done >= settings.epochs:
        return "epochs"
    early = stop_reason(current.history, settings)
    if early is not None:
        return early
    if done >= target:
        return "max_epochs"
    if max_hours is not None and time.perf_counter() - started > 3600 * max_hours:
        return "max_hours"
    return ""


def _report_epoch(history: xr.Dataset, settings: TrainSettings) -> None:
    last = history.isel(epoch=-1)

    def value(name: str) -> str:
        return f"{float(last[name]):.3f}" if name in last and np.isfinite(float(last[name])) else "-"

    tqdm.write(f"[{settings.model}] epoch {int(last.epoch)}/{settings.epochs}: loss {value('epoch_loss')}, "
               f"train board acc {value('epoch_board_acc')}, val board acc {value('eval_board_acc')} "
               f"(EMA {value('eval_ema_board_acc')}), {value('epoch_seconds')} s")


def training_summary(result: TrainResult, settings: TrainSettings, run_dir: str | os.PathLike) -> str:
    """A few lines on a finished (or paused) run, for the command line."""
    ema = settings.ema_decay is not None
    curve = _val_curve(result.history, ema)
    val = f"{curve[-1]:.3f}" if curve.size else "-"
    what = {"epochs": "finished all epochs", "converged": f"converged (validation board accuracy >= "
            f"{settings.stop_at} at {settings.patience} validations in a row)",
            "plateau": f"stopped on a plateau (no better validation board accuracy in the last {settings.plateau} "
                       f"validations)",
            "max_epochs": "paused at --max-epochs", "max_hours": "paused at --max-hours"}[result.reason]
    lines = [f"{settings.model}: {what} after {result.epochs} of {settings.epochs} epochs; "
             f"validation board accuracy ({'EMA' if ema else 'raw'} weights, T={settings.model_steps}): {val}",
             f"run directory: {run_dir} (checkpoint.pt, train.h5, config.json); this call took "
             f"{result.seconds / 60:.1f} min"]
    if not result.finished:
        lines.append("rerun the same command to continue from the last checkpoint")
    return "\n".join(lines)


def apply_runtime(args: Any) -> None:
    """The ``--threads`` and ``--device`` options of ``akorn sudoku train|eval``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "'cuda' requested but CUDA is not available")


def train_command(settings: TrainSettings, args: Any) -> Outcome:
    """``akorn sudoku train``: train (or resume) ``<out>/<tag>/<model>`` and summarise the run.

    The run directory is locked while training (one writer); ``--overwrite`` starts it over."""
    apply_runtime(args)
    run_dir = run_directory(args.out, args.tag or args.preset, settings.model)
    with claim(run_dir, writer=is_writer()):
        if getattr(args, "overwrite", False) and is_writer():
            start_over(run_dir, extra=(f"{METRICS_NAME}.h5",))
        result = train_model(settings, run_dir, max_epochs=args.max_epochs, max_hours=args.max_hours,
                             device=args.device, workers=args.workers, progress=args.progress)
    return Outcome(lines=[training_summary(result, settings, run_dir)])
