"""Training of the Sudoku models (``akorn sudoku train``): settings, presets, data, loss and the run loop.

One run trains one model (``akorn``, ``itrsa`` or ``transformer``) into its own directory::

    <run_dir>/settings.json   the TrainSettings of the run (JSON)
    <run_dir>/checkpoint.pt   weights, EMA, optimizer, RNG states (rewritten atomically every epoch)
    <run_dir>/train.h5        loss and accuracy curves (per step and per epoch, xarray/netCDF4)

:func:`train_model` resumes from ``checkpoint.pt`` whenever it exists (bit for bit, see
:mod:`studies.training`), so the same command can be run again after an interruption or a
time budget (``max_hours``) until the run is finished. A run is finished when it has trained
``epochs`` epochs or, with ``stop_at`` set, when the validation board accuracy of the weights
that are evaluated (EMA if enabled) has reached ``stop_at`` at ``patience`` consecutive
validations. Validation uses ``val_boards`` in-distribution boards that are neither in the
training nor in the test set, at the training step count, with a fixed noise seed.

The paper's recipe (AKORN.md §5.1, §6) is the ``paper`` preset: 9×9 boards, width 512, Adam
with lr 1e-3 (AKOrN) or 5e-4 (ItrSA, Transformer), batch 100, 100 epochs, gradient-norm clip
1, EMA 0.995 updated every 10 steps after 100, cross-entropy over all cells (givens
included). The ``quick`` and ``cpu`` presets keep the recipe and shrink the board or width;
see :data:`PRESETS` for what each changes and why.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm import tqdm

from studies.cache import atomic_path
from studies.config import ConfigError, StudyConfig, param
from studies.sudoku.data import SudokuData, load_satnet, make_dataset

__all__ = [
    "MODELS",
    "PAPER_LR",
    "PRESETS",
    "SETTINGS_NAME",
    "TrainResult",
    "TrainSettings",
    "build_model",
    "converged",
    "load_eval_data",
    "load_train_data",
    "read_settings",
    "stop_reason",
    "sudoku_loss",
    "train_model",
    "training_summary",
]

#: The three models of the paper's Sudoku table.
MODELS = ("akorn", "itrsa", "transformer")
#: Adam learning rate per model in the official scripts (AKORN.md §6).
PAPER_LR = {"akorn": 1e-3, "itrsa": 5e-4, "transformer": 5e-4}
#: Paper defaults of depth L and steps T per model (AKORN.md §4.2, §4.4).
DEFAULT_DEPTH = {"akorn": 1, "itrsa": 1, "transformer": 8}
DEFAULT_STEPS = {"akorn": 16, "itrsa": 16, "transformer": 1}
#: File names inside a run directory.
SETTINGS_NAME = "settings.json"
METRICS_NAME = "train"
#: Settings that may change when a run is resumed: they only decide when training stops.
RESUMABLE = frozenset({"epochs", "stop_at", "patience", "plateau", "eval_every"})
#: Fixed-step integrators a trained AKOrN layer can use (native: they differentiate a learnable γ).
LAYER_METHODS = ("euler_normalized", "heun_normalized", "rk4_normalized", "geodesic_euler", "rkmk4", "cf4",
                 "lawson_rk4")

#: Preset overrides (the quick preset is the dataclass defaults).
#:
#: ``quick`` — 6×6 boards (2×3 boxes), width 64, 4 heads, 30 epochs of 9,000 boards: the
#: smallest boards on which the paper's test-time claims can be checked (4×4 has only 288
#: solved grids, and there more steps and energy selection had nothing left to fix). Measured
#: on the shared 2-core machine, one torch thread per model, three models training at once,
#: seed 0 (validation board accuracy at the training T, EMA weights):
#:
#: - AKOrN: 102-306 s per epoch (91 min in all; ≈ 100 s per epoch, 50 min, alone); 0% up to
#:   epoch 4, 22% at 10, 62% at 16, 87% at 24, 88-90% over the last four epochs.
#: - Transformer: 37-53 s per epoch (21 min); 64% at epoch 16, 67-70% from epoch 21 on.
#: - ItrSA learns these boards far more slowly: 0% up to epoch 17, 9% at 30, 14% at 60, 41% at
#:   100 and still rising (``--epochs 100``: 88 min); with lr 1e-3 instead of the paper's 5e-4
#:   it reached 28% at epoch 30 (5e-4: 9%).
#:
#: On 4×4 boards (``--box 2 2``) AKOrN takes 77-112 s per epoch and reaches 78% after 3
#: epochs. The EMA is updated every step (time constant 200 steps ≈ 2 epochs) instead of every
#: 10 steps (≈ 22 epochs), which would leave the evaluated weights far behind in a 30-epoch run.
#:
#: ``cpu`` — 9×9 boards at width 128 (8 heads), otherwise the paper's recipe (EMA every 10
#: steps with the ema_pytorch warm-up); up to 100 epochs, stopping once all 200 validation
#: boards are solved at three validations in a row; meant to be resumed across sessions
#: (``--max-hours``). Measured: 24-27 s per AKOrN step of 100 boards at load 8-11 (≈ 40 min
#: per epoch; width 64: 10-11 s per step); at load 3-4, 12-19 min per epoch, and after 5 epochs
#: (74 min) 46% of validation blank cells right, no board solved.
#:
#: ``paper`` — the official recipe at width 512 for a GPU (100 epochs, no early stop).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "cpu": {"box": (3, 3), "width": 128, "heads": 8, "epochs": 100, "ema_every": 10, "ema_warmup_power": 2 / 3,
            "stop_at": 1.0},
    "paper": {"box": (3, 3), "width": 512, "heads": 8, "epochs": 100, "ema_every": 10, "ema_warmup_power": 2 / 3},
}


@dataclasses.dataclass(frozen=True)
class TrainSettings(StudyConfig):
    """Settings of one Sudoku training run (defaults: the quick preset).

    ``None`` for ``depth``, ``steps`` and ``lr`` means the paper's value for the chosen
    model (:data:`DEFAULT_DEPTH`, :data:`DEFAULT_STEPS`, :data:`PAPER_LR`).
    """

    study: ClassVar[str] = "sudoku"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    model: Literal["akorn", "itrsa", "transformer"] = param(
        "akorn", "which network to train: AKOrN, iterated self-attention (ItrSA) or a Transformer")
    box: tuple[int, ...] = param((2, 3), "box shape: rows and columns of one box (board side = rows*cols)",
                                 metavar="INT")
    train_boards: int = param(9000, "generated training boards (ignored with --satnet-dir)")
    val_boards: int = param(200, "generated in-distribution validation boards (early stop and curves)")
    data_seed: int = param(0, "seed of the generated boards (train, validation, test, OOD)")
    satnet_dir: str | None = param(None, "train on SATNet's features.pt/labels.pt in this directory "
                                         "(first 9,000 boards) instead of generated boards", metavar="DIR")
    width: int = param(64, "channels C per cell (AKOrN: C/n oscillators per cell)")
    depth: int | None = param(None, "blocks L; none: the paper's (1 for AKOrN and ItrSA, 8 for the Transformer)")
    steps: int | None = param(None, "Kuramoto / attention steps T per block in training; none: the paper's "
                                            "(16; 1 for the Transformer)")
    steps_range: tuple[int, ...] | None = param(
        None, "train with T drawn uniformly from LO..HI (inclusive) for every batch, odd and even alike, instead "
              "of a fixed T (validation still runs at --steps)", metavar="INT")
    gamma_mode: Literal["learned", "bounded", "fixed"] = param(
        "learned", "AKOrN step size γ: learned freely (the official model), learned within (0, --gamma-max) as "
                   "gamma_max*sigmoid(theta), or fixed at --gamma")
    gamma: float | None = param(None, "AKOrN initial (or fixed) step size γ; none: 1.0, or gamma_max/2 when bounded")
    gamma_max: float = param(1.0, "upper bound of γ with --gamma-mode bounded")
    method: Literal[LAYER_METHODS] = param(  # type: ignore[valid-type]
        "euler_normalized", "integrator of the AKOrN Kuramoto layer (euler_normalized: the paper's update)")
    heads: int = param(4, "attention heads")
    n: int = param(4, "oscillator dimension (AKOrN only)")
    epochs: int = param(30, "epochs to train (the run may stop earlier, see --stop-at)")
    batch_size: int = param(100, "global batch size (split over DDP processes)")
    lr: float | None = param(None, "Adam learning rate; none: the paper's (1e-3 AKOrN, 5e-4 ItrSA and "
                                            "Transformer)")
    grad_clip: float | None = param(1.0, "max global gradient norm (none: no clipping)")
    ema_decay: float | None = param(0.995, "EMA factor of the evaluated weights (none: evaluate the raw weights)")
    ema_every: int = param(1, "EMA update every this many optimizer steps")
    ema_after: int = param(100, "optimizer steps during which the EMA copy equals the weights")
    ema_warmup_power: float | None = param(None, "EMA decay warm-up power p of ema_pytorch (none: constant decay)")
    loss_cells: Literal["all", "blank"] = param(
        "all", "cells in the cross-entropy: all (the official code) or blank cells only")
    seed: int = param(0, "seed of the initial weights, data order and training noise")
    eval_every: int = param(1, "validate every this many epochs")
    stop_at: float | None = param(None, "stop once the validation board accuracy reaches this "
                                        "(none: train all epochs)")
    patience: int = param(3, "consecutive validations that must reach --stop-at before stopping")
    plateau: int | None = param(None, "stop once the validation board accuracy has not improved on its best for "
                                      "this many validations (none: no plateau stop)")

    def validate(self) -> None:
        """Check ranges and relations between fields (raises ConfigError naming the field)."""
        if len(self.box) != 2:
            raise ConfigError("box", f"expected two integers (rows cols), got {self.box!r}")
        self._positive("box", "train_boards", "val_boards", "width", "depth", "steps", "heads", "n", "epochs",
                       "batch_size", "lr", "grad_clip", "ema_every", "eval_every", "patience", "plateau",
                       "steps_range", "gamma", "gamma_max")
        self._positive("data_seed", "seed", "ema_after", strict=False)
        side = self.box[0] * self.box[1]
        if not 2 <= side <= 9:
            raise ConfigError("box", f"the board side rows*cols must be in 2..9, got {side}")
        if self.satnet_dir is not None and tuple(self.box) != (3, 3):
            raise ConfigError("satnet_dir", f"SATNet boards are 9x9; set --box 3 3 (got {self.box})")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay", f"expected a value in [0, 1), got {self.ema_decay}")
        if self.ema_warmup_power is not None and not self.ema_warmup_power > 0:
            raise ConfigError("ema_warmup_power", f"expected a positive value, got {self.ema_warmup_power}")
        if self.stop_at is not None and not 0.0 < self.stop_at <= 1.0:
            raise ConfigError("stop_at", f"expected a board accuracy in (0, 1], got {self.stop_at}")
        if self.steps_range is not None:
            if len(self.steps_range) != 2 or self.steps_range[0] > self.steps_range[1]:
                raise ConfigError("steps_range", f"expected two step counts LO HI with LO <= HI, got {self.steps_range}")
            if self.model == "transformer":
                raise ConfigError("steps_range", "the Transformer has no iteration count to vary; use it with akorn "
                                                 "or itrsa")
        if self.gamma_mode == "bounded" and self.gamma is not None and not self.gamma < self.gamma_max:
            raise ConfigError("gamma", f"with --gamma-mode bounded the initial step must lie below "
                                       f"--gamma-max={self.gamma_max}, got {self.gamma}")
        if self.width % self.heads:
            raise ConfigError("heads", f"must divide width={self.width}, got {self.heads}")
        if self.model == "akorn":
            if self.n < 2 or self.n % 2:
                raise ConfigError("n", f"the AKOrN rotation Omega needs an even n >= 2, got {self.n}")
            if self.width % self.n:
                raise ConfigError("width", f"must be a multiple of n={self.n}, got {self.width}")
        elif self.width % 4:
            raise ConfigError("width", f"the baselines' 2-D positional embedding needs a multiple of 4, "
                                       f"got {self.width}")

    @property
    def side(self) -> int:
        """Board side S."""
        return self.box[0] * self.box[1]

    @property
    def model_depth(self) -> int:
        """Depth L actually used (the paper default when ``depth`` is None)."""
        return DEFAULT_DEPTH[self.model] if self.depth is None else self.depth

    @property
    def model_steps(self) -> int:
        """Training steps T actually used (the paper default when ``steps`` is None)."""
        return DEFAULT_STEPS[self.model] if self.steps is None else self.steps

    @property
    def initial_gamma(self) -> float:
        """Initial (or fixed) AKOrN step size: ``gamma``, or its default for the ``gamma_mode``."""
        if self.gamma is not None:
            return self.gamma
        return self.gamma_max / 2 if self.gamma_mode == "bounded" else 1.0

    @property
    def learning_rate(self) -> float:
        """Adam learning rate actually used (the paper's per-model value when ``lr`` is None)."""
        return PAPER_LR[self.model] if self.lr is None else self.lr

    def train_config(self, device: str = "auto", epochs: int | None = None, checkpoint_every: int = 1) -> Any:
        """The :class:`studies.training.TrainConfig` of this run.

        Args:
            device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
            epochs: epochs of this trainer (default ``self.epochs``).
            checkpoint_every: write a checkpoint every this many epochs (and after the last).
        """
        from studies.training import TrainConfig

        return TrainConfig(epochs=self.epochs if epochs is None else epochs, batch_size=self.batch_size,
                           lr=self.learning_rate, weight_decay=0.0, grad_clip=self.grad_clip,
                           ema_decay=self.ema_decay, ema_every=self.ema_every, ema_after=self.ema_after,
                           ema_warmup_power=self.ema_warmup_power, seed=self.seed, num_workers=0,
                           log_every=10, device=device, checkpoint_every=checkpoint_every)


def build_model(settings: TrainSettings) -> nn.Module:
    """A freshly initialised network for ``settings`` (seed the RNG first for fixed weights).

    Args:
        settings: the run's settings (model kind, box, width, depth, steps, heads, n).

    Returns:
        :class:`~networks.models.sudoku.SudokuAKOrN`,
        :class:`~networks.models.baselines.IteratedSelfAttention` or
        :class:`~networks.models.baselines.SudokuTransformer`.
    """
    if not isinstance(settings, TrainSettings):
        raise TypeError(f"settings: expected TrainSettings, got {type(settings).__name__}")
    box = (int(settings.box[0]), int(settings.box[1]))
    if settings.model == "akorn":
        from networks.models.sudoku import SudokuAKOrN

        return SudokuAKOrN(box, width=settings.width, depth=settings.model_depth, n=settings.n,
                           steps=settings.model_steps, heads=settings.heads, gamma=settings.initial_gamma,
                           learn_gamma=settings.gamma_mode != "fixed",
                           gamma_max=settings.gamma_max if settings.gamma_mode == "bounded" else None,
                           method=settings.method)
    from networks.models.baselines import IteratedSelfAttention, SudokuTransformer

    cls = IteratedSelfAttention if settings.model == "itrsa" else SudokuTransformer
    return cls(box, width=settings.width, depth=settings.model_depth, steps=settings.model_steps,
               heads=settings.heads)


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


# --------------------------------------------------------------------------- data


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
        from studies.sudoku.data import load_rrn

        ood = load_rrn(rrn_csv, box=box).subset(slice(0, boards))
    else:
        ood = make_dataset("ood", box, boards, settings.data_seed, **kw)
    return {"id": test, "ood": ood}


# --------------------------------------------------------------------------- run directory


def read_settings(run_dir: str | os.PathLike) -> TrainSettings:
    """The :class:`TrainSettings` stored in a run directory.

    Raises:
        FileNotFoundError: the directory holds no ``settings.json`` (never trained).
        ValueError: the file is not valid settings JSON.
    """
    path = Path(run_dir) / SETTINGS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"run_dir: {str(path)!r} does not exist; train the model first "
                                f"(akorn sudoku train ...)")
    try:
        return TrainSettings.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"run_dir: {str(path)!r} is not a TrainSettings JSON file: {exc}") from exc


def _check_run_dir(settings: TrainSettings, run_dir: Path) -> None:
    """Refuse to resume a run made with other settings; record the settings of this one.

    Settings without a checkpoint (a run that never finished an epoch) are simply replaced.
    """
    from studies.training import CHECKPOINT_NAME, is_main_process

    path = run_dir / SETTINGS_NAME
    if path.is_file() and (run_dir / CHECKPOINT_NAME).is_file():
        old = read_settings(run_dir).to_dict()
        new = settings.to_dict()
        changed = [k for k in sorted(new) if k not in RESUMABLE and old.get(k) != new[k]]
        if changed:
            diffs = "; ".join(f"{k}: {old.get(k)!r} there, {new[k]!r} now" for k in changed)
            raise ConfigError(changed[0], f"{str(run_dir)!r} holds a run with other settings ({diffs}); only "
                                          f"{', '.join(sorted(RESUMABLE))} may change when resuming. Choose "
                                          f"another run directory (--tag NAME) for a new run.")
    if is_main_process():
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(settings.to_dict(), sort_keys=True, indent=1) + "\n")


# --------------------------------------------------------------------------- validation


def _validator(val: SudokuData, settings: TrainSettings) -> Callable[[nn.Module], dict[str, float]]:
    """Board and blank-cell accuracy of one prediction per validation board, at the training T
    and with a fixed noise seed (so the curve is not noisier than the model)."""
    from studies.sudoku.evaluate import board_accuracy, cell_accuracy, predict_digits

    puzzles, solutions, given = val.grids("puzzles"), val.grids("solutions"), val.is_given()

    def eval_fn(model: nn.Module) -> dict[str, float]:
        pred = predict_digits(model, puzzles, steps=settings.model_steps, seed=settings.seed + 12345,
                              batch_size=max(settings.batch_size, 200))
        return {"board_acc": board_accuracy(pred, solutions, given), "cell_acc": cell_accuracy(pred, solutions, given)}

    return eval_fn


# --------------------------------------------------------------------------- the run loop


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
        run_dir: directory of ``settings.json``, ``checkpoint.pt`` and ``train.h5``.
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
    from studies.training import Trainer, is_main_process, seed_everything, setup_distributed

    if not isinstance(settings, TrainSettings):
        raise TypeError(f"settings: expected TrainSettings, got {type(settings).__name__}")
    if max_epochs is not None and (isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1):
        raise ValueError(f"max_epochs: expected a positive int or None, got {max_epochs!r}")
    if max_hours is not None and (isinstance(max_hours, bool) or not isinstance(max_hours, (int, float))
                                  or not max_hours > 0 or not math.isfinite(max_hours)):
        raise ValueError(f"max_hours: expected a positive number or None, got {max_hours!r}")
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
        cfg = settings.train_config(device, epochs, checkpoint_every)
        return Trainer(model, _loss_fn(settings), train_set, cfg, out_dir=run_dir,
                       eval_fn=_validator(val, settings), eval_every=settings.eval_every,
                       metrics_name=METRICS_NAME, resume=True, progress=show)

    current = trainer(settings.epochs)  # loads and checks the checkpoint, if any
    target = settings.epochs if max_epochs is None else min(settings.epochs, max_epochs)
    reason = ""
    while True:
        history = current.history
        done = current.epoch
        if done >= settings.epochs:
            reason = "epochs"
        elif (early := stop_reason(history, settings)) is not None:
            reason = early
        elif done >= target:
            reason = "max_epochs"
        elif max_hours is not None and time.perf_counter() - started > 3600 * max_hours:
            reason = "max_hours"
        if reason:
            break
        stop = min(target, (done // settings.eval_every + 1) * settings.eval_every)
        if stop != current.config.epochs:
            current = trainer(stop)
        current.fit()
        if is_main_process():  # one line per validation, also without progress bars (logs)
            _report_epoch(current.history, settings)
    finished = reason in ("epochs", "converged", "plateau")
    return TrainResult(history=current.history, epochs=current.epoch, finished=finished, reason=reason,
                       seconds=time.perf_counter() - started)


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
             f"run directory: {run_dir} (checkpoint.pt, train.h5, settings.json); this call took "
             f"{result.seconds / 60:.1f} min"]
    if not result.finished:
        lines.append("rerun the same command to continue from the last checkpoint")
    return "\n".join(lines)
