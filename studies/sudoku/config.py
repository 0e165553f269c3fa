"""What ``akorn sudoku`` needs before any work starts: the train and eval configs and the command.

Torch-free at import (``akorn sudoku --help`` loads no torch): the presets, the two config
dataclasses (:class:`TrainSettings`, :class:`EvalSettings`), and :data:`TASK`, from which
:mod:`studies.commands` generates ``akorn sudoku train|eval``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

from studies.config import LAYER_METHODS, ConfigError, StudyConfig, param
from studies.protocol import Action, Task, positive_float, positive_int

__all__ = []

#: The three models of the paper's Sudoku table.
MODELS = ("akorn", "itrsa", "transformer")

#: Adam learning rate per model in the official scripts (docs/AKORN.md §6).
PAPER_LR = {"akorn": 1e-3, "itrsa": 5e-4, "transformer": 5e-4}

#: Paper defaults of depth L and steps T per model (docs/AKORN.md §4.2, §4.4).
DEFAULT_DEPTH = {"akorn": 1, "itrsa": 1, "transformer": 8}

DEFAULT_STEPS = {"akorn": 16, "itrsa": 16, "transformer": 1}


#: The history file inside a run directory (``train.h5``).
METRICS_NAME = "train"


#: Settings that may change when a run is resumed: they only decide when training stops.
RESUMABLE = frozenset({"epochs", "stop_at", "patience", "plateau", "eval_every"})

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


FILENAME = "sudoku.h5"

#: Energy scores of a copy from the official log (the last logged energy, the sum over all logged
#: steps), the paper's energy of the final state (``paper``: E(x_T) with its ½), and the readout's
#: confidence (the negative log-probability of its answer on the blank cells). Lower is better.
ENERGY_SCORES = ("last", "sum")
SCORES = ENERGY_SCORES + ("paper", "confidence")

#: Evaluation splits: in-distribution test boards and the harder out-of-distribution boards.
SPLITS = ("id", "ood")

_SPLIT_NAMES = {"id": "in-distribution test boards", "ood": "out-of-distribution (fewer givens) boards"}


#: Presets of the evaluation (the quick preset is the dataclass defaults). Selection over K
#: copies costs K plain runs plus the energies (about 2x), so on a CPU it runs on the first
#: boards of each split only: 100 (quick, 6×6) or 50 (cpu, 9×9); the paper preset uses all.
EVAL_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "cpu": {"vote_boards": 50},
    "paper": {"vote_boards": None},
}


@dataclasses.dataclass(frozen=True)
class EvalSettings(StudyConfig):
    """Settings of the Sudoku evaluation (defaults: the quick preset)."""

    study: ClassVar[str] = "sudoku"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = EVAL_PRESETS

    models: tuple[Literal["akorn", "itrsa", "transformer"], ...] = param(
        MODELS, "trained models to evaluate (each from <out>/<tag>/<model>)")
    t_eval: tuple[int, ...] = param((16, 17, 32, 33, 64, 128), "steps T per block at test time (iterative "
                                    "models); odd and even, so a period-2 cycle of the discrete map shows")
    k: tuple[int, ...] = param((1, 10, 100), "copies K among which the lowest-scoring one is selected")
    scores: tuple[Literal["last", "sum", "paper", "confidence"], ...] = param(
        SCORES, "score of a copy, lowest selected: last logged energy, the sum over all steps, the paper's energy "
                "E(x_T) of the final state, or the readout's confidence (-log p of its answer on the blank cells)")
    vote_t: tuple[int, ...] | None = param(None, "T values at which energy selection runs; none: the largest "
                                                 "--t-eval")
    test_boards: int = param(1000, "boards per split (in-distribution test and out-of-distribution)")
    vote_boards: int | None = param(100, "boards per split for energy selection (none: all test boards)")
    rrn_csv: str | None = param(None, "read the OOD boards from this RRN CSV (sudoku-hard test.csv) instead of "
                                      "generating them", metavar="CSV")
    seed: int = param(0, "seed of the initial-state noise")
    ema: bool = param(True, "evaluate the EMA weights (the paper's choice); --no-ema: the raw weights")
    samples: int = param(3, "boards per split drawn with the models' answers")
    step_scale: float = param(1.0, "multiply the step size γ of every Kuramoto layer by this at test time "
                                   "(AKOrN only): 0.5 with twice the --t-eval steps follows the same continuous "
                                   "flow more closely; results go to sudoku-step<scale>.h5")
    method: Literal[LAYER_METHODS] | None = param(  # type: ignore[valid-type]
        None, "run the trained AKOrN layers with this fixed-step integrator at test time "
                                     "(e.g. heun_normalized, rk4_normalized, lawson_rk4); none: the one it was "
                                     "trained with; results go to sudoku-<method>.h5", metavar="METHOD")

    def validate(self) -> None:
        """Check ranges and relations between fields (raises ConfigError naming the field)."""
        self._positive("t_eval", "k", "vote_t", "test_boards", "vote_boards", "samples")
        self._positive("seed", strict=False)
        if not (math.isfinite(self.step_scale) and self.step_scale > 0):
            raise ConfigError("step_scale", f"expected a positive finite factor, got {self.step_scale}")
        for name in ("models", "t_eval", "k", "scores", "vote_t"):
            value = getattr(self, name)
            if value is not None and len(set(value)) != len(value):
                raise ConfigError(name, f"values must be distinct, got {value!r}")
        if self.vote_t is not None and not set(self.vote_t) <= set(self.t_eval):
            raise ConfigError("vote_t", f"every value must be one of --t-eval {self.t_eval}, got {self.vote_t}")
        if self.vote_boards is not None and self.vote_boards > self.test_boards:
            raise ConfigError("vote_boards", f"must be <= test_boards={self.test_boards}, got {self.vote_boards}")

    @property
    def filename(self) -> str:
        """Result file name: ``sudoku.h5``; ``sudoku-<method>-step<scale>.h5`` with a test-time integrator
        and/or step scale (each part only when set)."""
        parts = ([] if self.method is None else [self.method]) + \
            ([] if self.step_scale == 1 else [f"step{self.step_scale:g}"])
        return FILENAME if not parts else f"sudoku-{'-'.join(parts)}.h5"

    @property
    def vote_steps(self) -> tuple[int, ...]:
        """The T values at which energy selection runs."""
        return tuple(sorted(self.vote_t)) if self.vote_t is not None else (max(self.t_eval),)

    @property
    def copies(self) -> int:
        """Copies per board in a selection run (``max(k)``)."""
        return max(self.k)


#: Parent of the run directories ``<out>/<tag>/<model>`` and of the evaluation files ``<out>/<tag>/``.
DEFAULT_OUT = "results/sudoku"

_PRESET_HELP = ("'quick': 6x6 boards, width 64, 30 epochs, about an hour per model on one CPU core; 'cpu': 9x9 "
                "at width 128, resumed across sessions until it converges; 'paper': the official 9x9 recipe "
                "(width 512, 100 epochs) for a GPU (default: quick)")

_TRAIN_EPILOG = """\
examples:
  akorn sudoku train --model akorn                      # quick preset -> results/sudoku/quick/akorn/
  akorn sudoku train --model itrsa --preset cpu --max-hours 2   # resumable: rerun to continue
  torchrun --nproc_per_node=4 -m studies.cli sudoku train --model akorn --preset paper

A run resumes from <out>/<tag>/<model>/checkpoint.pt whenever it exists; changing a setting
other than --epochs/--stop-at/--patience/--eval-every needs another --tag."""

_EVAL_EPILOG = """\
examples:
  akorn sudoku eval                                     # quick preset, the three models of results/sudoku/quick/
  akorn sudoku eval --preset paper --rrn-csv sudoku-hard/test.csv
  akorn sudoku eval --models akorn --t-eval 16 64 --k 1 4 --vote-boards 20
  akorn sudoku eval --models akorn --step-scale 0.5 --t-eval 32 128 256   # γ/2: -> sudoku-step0.5.h5
  akorn sudoku eval --pretrained                        # the shipped weights, no training needed

An interrupted evaluation resumes from <out>/<tag>/sudoku.partial.h5."""


def _options(outputs: str, extra: dict[str, dict[str, Any]]) -> Any:
    """The running options of ``train`` or ``eval``: where, how, and the action's own (``extra``)."""
    def add(parser: Any, group: Any) -> None:
        group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                           help=f"results directory (default: {DEFAULT_OUT}); {outputs}")
        group.add_argument("--tag", default=None, metavar="NAME",
                           help="name of the run directory under --out (default: the preset's name)")
        group.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                           help="where to run (default: auto = CUDA when available)")
        group.add_argument("--threads", type=positive_int, default=None, metavar="INT",
                           help="torch CPU threads (default: torch's choice)")
        group.add_argument("--workers", type=positive_int, default=None, metavar="INT",
                           help="processes generating boards on first use (default: up to 2; 1 = this process)")
        for flag, kwargs in extra.items():
            group.add_argument(flag, **kwargs)
    return add


_train_options = _options("the run goes to <out>/<tag>/<model>/", {
    "--max-hours": {"type": positive_float, "default": None, "metavar": "FLOAT",
                    "help": "stop after the first epoch that ends past this many hours (rerun to continue)"},
    "--max-epochs": {"type": positive_int, "default": None, "metavar": "INT",
                     "help": "stop once the run has this many epochs in total (rerun with a larger value to "
                             "continue)"}})
_eval_options = _options("reads <out>/<tag>/<model>/ and writes <out>/<tag>/sudoku.h5 and its plots", {
    "--memory-gb": {"type": positive_float, "default": 1.0, "metavar": "FLOAT",
                    "help": "memory budget of one forward pass; sets the chunk size (default: 1.0)"},
    "--pretrained": {"action": "store_true",
                     "help": "evaluate the weights shipped with the toolkit (studies/sudoku/weights/<preset>/, "
                             "the README's table) instead of <out>/<tag>/<model>/; results go to "
                             "<out>/pretrained-<preset>/ unless --tag is given"}})


#: ``akorn sudoku train|eval`` (:mod:`studies.commands`).
_TRAIN = Action(
    TrainSettings, "studies.sudoku.train:train_command", "train one model (resumes from its last checkpoint)",
    "Train one Sudoku model (docs/AKORN.md §5.1) into <out>/<tag>/<model>/: checkpoint.pt every epoch, train.h5 with the "
    "loss and accuracy curves.", _PRESET_HELP, _train_options, _TRAIN_EPILOG,
    "rerun the same command to resume from the last checkpoint")
_EVAL = Action(
    EvalSettings, "studies.sudoku.evaluate:eval_command", "evaluate the trained models: accuracy vs T and vs K, plots",
    "Evaluate trained Sudoku models on in-distribution and OOD boards for every T and K (energy-based selection); "
    "write sudoku.h5, sudoku.png and sudoku_boards.png.", _PRESET_HELP, _eval_options, _EVAL_EPILOG,
    "rerun the same command to resume (finished cells are in <out>/<tag>/sudoku.partial.h5)")
TASK = Task("sudoku", "Sudoku reasoning: train AKOrN, ItrSA and a Transformer, then evaluate more steps and "
                      "energy-based selection on harder boards.", _TRAIN, _EVAL, "studies.sudoku.plots",
            action_required=False)
