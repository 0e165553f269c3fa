"""Evaluation of trained Sudoku models (``akorn sudoku eval``): accuracy, more steps, energy selection.

Metrics (AKORN.md §5.1)
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
    ``last`` (the last logged entry, E(x_{T-1})) or ``sum`` (the sum of all logged entries);
    the copy with the lowest score is kept (ties: the first). One run with ``max(k)`` copies
    serves every K of the list: selection over K uses copies ``0..K-1``, so K = 1 is one
    plain prediction. Only models that return energies (AKOrN) are selected.

Results (``sudoku.h5``, one xarray Dataset): plain accuracies ``board_acc`` / ``cell_acc``
over ``model × split × T`` on all test boards; selection accuracies ``vote_board_acc`` /
``vote_cell_acc`` over ``model × split × T × K × score`` on the first ``vote_boards`` boards
(both splits); a few sample boards with every model's answers; the training curves; the
overlap of the test boards with the training boards; the settings and provenance. Finished
cells are kept in ``sudoku.partial.h5`` while the evaluation runs, so an interrupted
evaluation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm import tqdm

from studies.config import ConfigError, StudyConfig, param
from studies.sudoku.data import SudokuData
from studies.sudoku.train import (LAYER_METHODS, METRICS_NAME, MODELS, TrainSettings, build_model, load_eval_data,
                                  load_train_data, read_settings)

__all__ = [
    "FILENAME",
    "SCORES",
    "SPLITS",
    "EvalSettings",
    "Prediction",
    "accuracy_along",
    "board_accuracy",
    "cell_accuracy",
    "energy_scores",
    "evaluate",
    "predict",
    "predict_digits",
    "select_by_energy",
    "solved",
    "vote",
]

FILENAME = "sudoku.h5"
#: Energy scores of a copy: the last logged energy or the sum over all logged steps.
SCORES = ("last", "sum")
#: Evaluation splits: in-distribution test boards and the harder out-of-distribution boards.
SPLITS = ("id", "ood")
_SPLIT_NAMES = {"id": "in-distribution test boards", "ood": "out-of-distribution (fewer givens) boards"}
_MAX_ITEMS = 4096  # forward passes per chunk, whatever the memory budget

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
    k: tuple[int, ...] = param((1, 10, 100), "copies K among which the lowest-energy one is selected")
    scores: tuple[Literal["last", "sum"], ...] = param(
        SCORES, "energy score of a copy: last logged energy, or the sum over all steps")
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
    method: Literal[LAYER_METHODS] | None = param(None,  # type: ignore[valid-type] "run the trained AKOrN layers with this fixed-step integrator at test time "
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


# --------------------------------------------------------------------------- metrics


def _as_boards(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor or numpy array [M, S, S], got {type(x).__name__}")
    if x.dim() != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"{name}: expected boards [M, S, S], got shape {tuple(x.shape)}")
    return x


def _check_triple(pred: Any, solutions: Any, given: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pred, solutions, given = (_as_boards(pred, "pred"), _as_boards(solutions, "solutions"),
                              _as_boards(given, "given"))
    if pred.shape != solutions.shape or given.shape != solutions.shape:
        raise ValueError(f"pred, solutions, given: shapes differ: {tuple(pred.shape)}, {tuple(solutions.shape)}, "
                         f"{tuple(given.shape)}")
    if given.dtype != torch.bool:
        raise TypeError(f"given: expected a bool mask, got dtype {given.dtype}")
    if pred.is_floating_point() or solutions.is_floating_point():
        raise TypeError("pred, solutions: expected integer digit boards (1..S), got floating-point values")
    return pred.long(), solutions.long().to(pred.device), given.to(pred.device)


def solved(pred: Any, solutions: Any, given: Any) -> torch.Tensor:
    """Which boards have every blank cell right (givens are not checked).

    Args:
        pred: predicted digits ``[M, S, S]`` (1..S; what a model puts on given cells is ignored).
        solutions: true digits ``[M, S, S]``.
        given: bool ``[M, S, S]``, True on given cells.

    Returns:
        bool ``[M]``.

    Raises:
        TypeError, ValueError: wrong types or shapes (the argument is named).
    """
    pred, solutions, given = _check_triple(pred, solutions, given)
    return ((pred == solutions) | given).flatten(1).all(1)


def board_accuracy(pred: Any, solutions: Any, given: Any) -> float:
    """Fraction of boards whose every blank cell is right (AKORN.md §5.1); arguments as :func:`solved`.

    Returns:
        A float in [0, 1] (NaN for zero boards).
    """
    ok = solved(pred, solutions, given)
    return float(ok.double().mean()) if ok.numel() else math.nan


def cell_accuracy(pred: Any, solutions: Any, given: Any) -> float:
    """Fraction of blank cells predicted right, pooled over all boards; arguments as :func:`solved`.

    Returns:
        A float in [0, 1] (NaN when there is no blank cell).
    """
    pred, solutions, given = _check_triple(pred, solutions, given)
    blank = ~given
    n = int(blank.sum())
    return float(((pred == solutions) & blank).sum()) / n if n else math.nan


def energy_scores(energy: torch.Tensor, score: str) -> torch.Tensor:
    """Score of every sample from the logged energies of its last Kuramoto layer.

    Args:
        energy: ``[T+1, N]`` as returned by ``SudokuAKOrN(..., return_energy=True)``
            (entry 0 is zero, entry ``t`` the energy of the state before step ``t``).
        score: ``"last"`` (entry T, i.e. E(x_{T-1})) or ``"sum"`` (sum over all entries).

    Returns:
        ``[N]``; lower is better.
    """
    if not isinstance(energy, torch.Tensor) or energy.dim() != 2:
        raise ValueError(f"energy: expected a tensor [T+1, N], got {getattr(energy, 'shape', type(energy).__name__)}")
    if score == "last":
        return energy[-1]
    if score == "sum":
        return energy.sum(0)
    raise ValueError(f"score: expected one of {SCORES}, got {score!r}")


def select_by_energy(candidates: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every board, the candidate of lowest score among its K copies.

    Args:
        candidates: ``[K, B, ...]`` (predicted digits, logits, ...); copy axis first.
        scores: ``[K, B]`` energy scores.

    Returns:
        ``(selected [B, ...], index [B] int64)``; ties go to the lowest copy index.

    Raises:
        ValueError: shapes do not match.
    """
    if not isinstance(candidates, torch.Tensor) or not isinstance(scores, torch.Tensor):
        raise TypeError("candidates, scores: expected tensors")
    if scores.dim() != 2 or candidates.dim() < 2 or candidates.shape[:2] != scores.shape:
        raise ValueError(f"candidates, scores: expected [K, B, ...] and [K, B], got {tuple(candidates.shape)} and "
                         f"{tuple(scores.shape)}")
    index = scores.argmin(dim=0)  # first minimum on ties
    selected = candidates[index, torch.arange(candidates.shape[1], device=candidates.device)]
    return selected, index


class Prediction(NamedTuple):
    """Predictions of K copies of B boards.

    Attributes:
        digits: ``[K, B, S, S]`` int64, predicted digits 1..S.
        scores: ``{score: [K, B]}`` energy scores, or ``None`` when energies were not computed.
    """

    digits: torch.Tensor
    scores: dict[str, torch.Tensor] | None


def _accepts(model: nn.Module, name: str) -> bool:
    from studies.training import unwrap

    return name in inspect.signature(unwrap(model).forward).parameters


def has_energy(model: nn.Module) -> bool:
    """True when ``model.forward`` can return energies (``return_energy=True``)."""
    return _accepts(model, "return_energy")


@torch.no_grad()
def predict(model: nn.Module, boards: torch.Tensor, *, steps: int | None = None, copies: int = 1,
            generator: torch.Generator | None = None, energy: bool | None = None) -> Prediction:
    """Run ``copies`` copies of every board in one batch.

    Args:
        model: a Sudoku network (``forward(board, *, steps, [generator, return_energy])``).
        boards: integer grids ``[B, S, S]`` (0 = blank).
        steps: steps T per block (default: the model's).
        copies: K, copies of every board (each with its own noise).
        generator: random generator of the initial-state noise (models without noise ignore it).
        energy: compute energy scores (default: when ``copies > 1``).

    Returns:
        A :class:`Prediction` with digits ``[K, B, S, S]`` and, with energies, scores ``[K, B]``.

    Raises:
        ValueError: ``copies < 1``, or energies asked of a model that has none.
    """
    boards = _as_boards(boards, "boards")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies: expected a positive int, got {copies!r}")
    energy = copies > 1 if energy is None else energy
    if energy and not has_energy(model):
        raise ValueError(f"energy: {type(model).__name__} returns no energies, so copies cannot be selected by energy")
    device = next(model.parameters()).device
    b = boards.shape[0]
    batch = boards.to(device).repeat(copies, 1, 1)  # copy-major: item k * B + b
    kwargs: dict[str, Any] = {"steps": steps}
    if _accepts(model, "generator"):
        kwargs["generator"] = generator
    if energy:
        logits, logged = model(batch, return_energy=True, **kwargs)
        scores = {name: energy_scores(logged, name).view(copies, b).float().cpu() for name in SCORES}
    else:
        logits, scores = model(batch, **kwargs), None
    digits = (logits.argmax(-1) + 1).view(copies, b, *boards.shape[1:]).cpu()
    return Prediction(digits, scores)


def accuracy_along(model: nn.Module, data: SudokuData, *, steps: int, seed: int = 0,
                   chunk: int = 256) -> xr.Dataset:
    """Accuracy of the answer read out at every step ``t = 0 … T`` of one run per board.

    One ``T``-step run gives the answers of every shorter run from the same noise, so this shows
    what more steps do (settling into a minimum, or drifting away from the training T's answer)
    at the cost of one evaluation at ``T``. Needs a model with ``logits_along`` (AKOrN).

    Args:
        model: a :class:`~networks.models.sudoku.SudokuAKOrN` (put it in ``eval()`` mode).
        data: the boards.
        steps: T, the last step read out.
        seed: seed of the initial-state noise.
        chunk: boards per forward pass.

    Returns:
        A Dataset over ``t`` with ``board_acc``, ``cell_acc`` (blank cells) and ``energy`` (the
        paper's ``E(x_t)``, mean over boards).

    Raises:
        TypeError: the model has no ``logits_along`` or ``data`` is not a :class:`SudokuData`.
        ValueError: ``steps`` or ``chunk`` is not a positive integer.
    """
    if not callable(getattr(model, "logits_along", None)):
        raise TypeError(f"model: expected a model with logits_along (SudokuAKOrN), got {type(model).__name__}")
    if not isinstance(data, SudokuData):
        raise TypeError(f"data: expected SudokuData, got {type(data).__name__}")
    for name, value in (("steps", steps), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    puzzles, solutions, given = data.grids("puzzles"), data.grids("solutions"), data.is_given()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    digits, energies = [], []
    with torch.no_grad():
        for i in range(0, len(data), chunk):
            logits, energy = model.logits_along(puzzles[i:i + chunk].to(device), steps=steps, generator=generator)
            digits.append((logits.argmax(-1) + 1).cpu())
            energies.append(energy.double().cpu())
    pred = torch.cat(digits, dim=1)  # [T+1, B, S, S]
    board_acc = np.array([board_accuracy(p, solutions, given) for p in pred])
    cell_acc = np.array([cell_accuracy(p, solutions, given) for p in pred])
    energy = torch.cat(energies, dim=1).mean(1)
    t = np.arange(steps + 1)
    return xr.Dataset(
        {"board_acc": ("t", board_acc, {"long_name": "board accuracy (every blank cell right)"}),
         "cell_acc": ("t", cell_acc, {"long_name": "accuracy over blank cells"}),
         "energy": ("t", energy.numpy(), {"long_name": "mean energy E(x_t) of the last Kuramoto layer"})},
        coords={"t": ("t", t, {"long_name": "Kuramoto step read out"})},
        attrs={"boards": len(data), "seed": seed})


def vote(prediction: Prediction, k: int, score: str) -> torch.Tensor:
    """Digits of the lowest-energy copy among the first ``k`` copies of every board.

    Args:
        prediction: from :func:`predict` with at least ``k`` copies (and energies if ``k > 1``).
        k: number of copies to choose from.
        score: ``"last"`` or ``"sum"``.

    Returns:
        ``[B, S, S]`` int64.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= prediction.digits.shape[0]:
        raise ValueError(f"k: expected an int in 1..{prediction.digits.shape[0]} (copies run), got {k!r}")
    if k == 1:
        return prediction.digits[0]
    if prediction.scores is None:
        raise ValueError("prediction: has no energy scores; run predict(..., energy=True)")
    if score not in prediction.scores:
        raise ValueError(f"score: expected one of {sorted(prediction.scores)}, got {score!r}")
    return select_by_energy(prediction.digits[:k], prediction.scores[score][:k])[0]


@torch.no_grad()
def predict_digits(model: nn.Module, puzzles: torch.Tensor, *, steps: int | None = None, seed: int = 0,
                   batch_size: int = 500) -> torch.Tensor:
    """One plain prediction per board, in batches, with noise from a generator seeded by ``seed``.

    Args:
        model: a Sudoku network.
        puzzles: ``[M, S, S]`` integer grids.
        steps: steps T per block (default: the model's).
        seed: seed of the initial-state noise.
        batch_size: boards per forward pass.

    Returns:
        ``[M, S, S]`` int64 digits (on the CPU).
    """
    puzzles = _as_boards(puzzles, "puzzles")
    generator = torch.Generator().manual_seed(seed)
    parts = [predict(model, puzzles[i:i + batch_size], steps=steps, generator=generator).digits[0]
             for i in range(0, puzzles.shape[0], batch_size)]
    return torch.cat(parts) if parts else puzzles.new_zeros(puzzles.shape, dtype=torch.int64)


# --------------------------------------------------------------------------- the evaluation run


def _cell_seed(seed: int, *parts: Any) -> int:
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % 2**63


def _items_per_chunk(width: int, side: int, steps: int, energy: bool, memory_gb: float) -> int:
    """Forward passes per chunk under a memory budget (energies keep all T+1 states)."""
    per_item = 4.0 * width * side * side * (32 + (1.5 * (steps + 1) if energy else 0))
    return int(max(1, min(_MAX_ITEMS, memory_gb * 1e9 // per_item)))


def _model_steps(kind: str, settings: TrainSettings, config: EvalSettings) -> list[int]:
    if kind == "transformer":  # not iterative: its T is part of the architecture
        return [settings.model_steps]
    return sorted(set(config.t_eval) | {settings.model_steps})


@dataclasses.dataclass
class _Run:
    """One trained model to evaluate."""

    kind: str
    settings: TrainSettings
    run_dir: Path
    identity: str  # changes when the checkpoint changes
    history: xr.Dataset | None


def _open_runs(config: EvalSettings, runs: Mapping[str, str | os.PathLike]) -> list[_Run]:
    from studies.training import CHECKPOINT_NAME

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
        out.append(_Run(kind, settings, run_dir, f"{st.st_size}-{st.st_mtime_ns}", history))
    boxes = {tuple(r.settings.box) for r in out}
    if len(boxes) > 1:
        raise ValueError(f"runs: the models were trained on different boards {sorted(boxes)}; evaluate them separately")
    data_keys = {(r.settings.data_seed, r.settings.satnet_dir) for r in out}
    if len(data_keys) > 1:
        raise ValueError(f"runs: the models were trained on different data (data_seed, satnet_dir) {sorted(data_keys)}")
    return out


def _load_model(run: _Run, ema: bool, device: torch.device, step_scale: float = 1.0,
                method: str | None = None) -> nn.Module:
    from networks.layer import KuramotoLayer
    from studies.training import load_model_weights

    model = build_model(run.settings)
    load_model_weights(run.run_dir, model, ema=ema and run.settings.ema_decay is not None)
    if step_scale != 1 or method is not None:
        for module in model.modules():
            if isinstance(module, KuramotoLayer):
                module.use_integrator(method, step_scale=step_scale)
    return model.to(device).eval()


class _Partial:
    """Finished evaluation cells, kept in a side file so an interrupted evaluation resumes."""

    def __init__(self, path: Path, key: str) -> None:
        from studies.cache import read_arrays

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
        from studies.cache import write_arrays

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
    """Selection accuracies [K, score] and the sample boards' selected digits [K, score, sample, S, S]."""
    copies = max(ks)
    puzzles, solutions, given = data.grids("puzzles"), data.grids("solutions"), data.is_given()
    generator = torch.Generator().manual_seed(seed)
    boards_per_chunk = max(1, chunk // copies)
    copies_per_pass = min(copies, chunk)  # K beyond the budget (K = 4096): the copies of a board in several passes
    right_boards = np.zeros((len(ks), len(scores)))
    right_cells = np.zeros((len(ks), len(scores)))
    side = puzzles.shape[-1]
    sample_digits = np.zeros((len(ks), len(scores), min(samples, len(data)), side, side), np.int8)
    for i in range(0, len(data), boards_per_chunk):
        sl = slice(i, i + boards_per_chunk)
        parts = [predict(model, puzzles[sl], steps=steps, copies=min(copies_per_pass, copies - j),
                         generator=generator, energy=True) for j in range(0, copies, copies_per_pass)]
        pred = parts[0] if len(parts) == 1 else Prediction(
            torch.cat([p.digits for p in parts]), {n: torch.cat([p.scores[n] for p in parts]) for n in SCORES})
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
    return {"board_acc": right_boards / len(data), "cell_acc": right_cells / blanks, "samples": sample_digits}


def _overlap(train: SudokuData, test: SudokuData) -> tuple[float, float]:
    """Fractions of test puzzles, and of test solution grids, that also occur in the training set."""
    def rows(x: np.ndarray) -> np.ndarray:
        flat = np.ascontiguousarray(x.reshape(x.shape[0], -1))
        return flat.view(np.dtype((np.void, flat.shape[1])))[:, 0]

    return (float(np.isin(rows(test.puzzles), rows(train.puzzles)).mean()),
            float(np.isin(rows(test.solutions), rows(train.solutions)).mean()))


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
    from studies.storage import result_attrs, write_dataset

    if not isinstance(config, EvalSettings):
        raise TypeError(f"config: expected EvalSettings, got {type(config).__name__}")
    if isinstance(memory_gb, bool) or not isinstance(memory_gb, (int, float)) or not memory_gb > 0:
        raise ValueError(f"memory_gb: expected a positive number, got {memory_gb!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {device!r}")
    started = time.perf_counter()
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    opened = _open_runs(config, runs)
    ref = opened[0].settings
    data = load_eval_data(ref, config.test_boards, rrn_csv=config.rrn_csv, workers=workers, cache_dir=cache_dir,
                          progress=progress)
    train_data, _ = load_train_data(ref, workers=workers, cache_dir=cache_dir, progress=progress)
    n_vote = {s: len(d) if config.vote_boards is None else min(config.vote_boards, len(d)) for s, d in data.items()}
    samples = {s: min(config.samples, n_vote[s]) for s in SPLITS}
    side = ref.side
    voting = {r.kind: [t for t in config.vote_steps if t in _model_steps(r.kind, r.settings, config)]
              for r in opened}
    key = json.dumps({"config": config.to_dict(), "runs": {r.kind: [r.settings.to_dict(), r.identity] for r in opened},
                      "memory_gb": memory_gb}, sort_keys=True)
    partial = _Partial(Path(path).with_suffix(".partial.h5"), key) if path is not None else None

    total = 0
    for r in opened:
        has_e = r.kind == "akorn"
        for split in SPLITS:
            total += sum(len(data[split]) * t for t in _model_steps(r.kind, r.settings, config))
            if has_e:
                total += sum(n_vote[split] * config.copies * t for t in voting[r.kind])
                total += n_vote[split] * max(_model_steps(r.kind, r.settings, config))
    bar = tqdm(total=total, desc="sudoku eval", unit="board-step", unit_scale=True, disable=not progress,
               dynamic_ncols=True)
    plain: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
    voted: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
    along: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    try:
        for r in opened:
            model = _load_model(r, config.ema, dev, config.step_scale, config.method)
            energetic = has_energy(model)
            t_max = max(_model_steps(r.kind, r.settings, config))
            for split in SPLITS:
                for t in _model_steps(r.kind, r.settings, config):
                    name = f"{r.kind}:{split}:{t}:plain"
                    bar.set_postfix_str(f"{r.kind} {split} T={t}", refresh=False)
                    cell = partial.get(name) if partial else None
                    if cell is None:
                        chunk = _items_per_chunk(r.settings.width, side, t, False, memory_gb)
                        cell = _run_plain(model, data[split], t, _cell_seed(config.seed, split, t, "plain"), chunk,
                                          samples[split], bar)
                        if partial:
                            partial.put(name, cell)
                        bar.write(f"{r.kind} {split} T={t}: board accuracy {float(cell['board_acc']):.3f}, "
                                  f"cell accuracy {float(cell['cell_acc']):.3f} ({len(data[split])} boards)")
                    else:
                        bar.update(len(data[split]) * t)
                    plain[(r.kind, split, t)] = cell
                if not energetic:
                    continue
                subset = data[split].subset(slice(0, n_vote[split]))
                if callable(getattr(model, "logits_along", None)):
                    name = f"{r.kind}:{split}:along"
                    cell = partial.get(name) if partial else None
                    if cell is None:
                        chunk = _items_per_chunk(r.settings.width, side, t_max, True, memory_gb)
                        curve = accuracy_along(model, subset, steps=t_max, seed=_cell_seed(config.seed, split,
                                                                                           "along"), chunk=chunk)
                        cell = {v: curve[v].values for v in ("board_acc", "energy")}
                        if partial:
                            partial.put(name, cell)
                        best = int(np.argmax(cell["board_acc"]))
                        bar.write(f"{r.kind} {split} along one T={t_max} run ({n_vote[split]} boards): board "
                                  f"accuracy {cell['board_acc'][-1]:.3f} at t={t_max}, best "
                                  f"{cell['board_acc'][best]:.3f} at t={best}")
                    bar.update(n_vote[split] * t_max)
                    along[(r.kind, split)] = cell
                for t in voting[r.kind]:
                    name = f"{r.kind}:{split}:{t}:vote"
                    bar.set_postfix_str(f"{r.kind} {split} T={t} K={config.copies}", refresh=False)
                    cell = partial.get(name) if partial else None
                    if cell is None:
                        chunk = _items_per_chunk(r.settings.width, side, t, True, memory_gb)
                        cell = _run_vote(model, subset, t, config.k, config.scores,
                                         _cell_seed(config.seed, split, t, "vote"), chunk, samples[split], bar)
                        if partial:
                            partial.put(name, cell)
                        accs = ", ".join(f"K={k} {sc} {cell['board_acc'][a, c]:.3f}" for a, k in enumerate(config.k)
                                         for c, sc in enumerate(config.scores))
                        bar.write(f"{r.kind} {split} T={t} energy selection ({n_vote[split]} boards): board "
                                  f"accuracy {accs}")
                    else:
                        bar.update(n_vote[split] * config.copies * t)
                    voted[(r.kind, split, t)] = cell
    finally:
        bar.close()

    ds = _assemble(config, opened, data, train_data, plain, voted, along, n_vote, samples)
    ds.attrs.update(result_attrs("sudoku", config, config.seed, train_settings=json.dumps(
        {r.kind: r.settings.to_dict() for r in opened}, sort_keys=True), box=list(ref.box), memory_gb=memory_gb,
        weights="ema" if config.ema else "raw", device=str(dev), eval_seconds=time.perf_counter() - started,
        complete=1))
    if path is not None:
        write_dataset(ds, path)
        partial.remove()
    return ds


def _assemble(config: EvalSettings, runs: list[_Run], data: dict[str, SudokuData], train_data: SudokuData,
              plain: dict, voted: dict, along: dict, n_vote: dict[str, int], samples: dict[str, int]) -> xr.Dataset:
    kinds = [r.kind for r in runs]
    steps = sorted({t for r in runs for t in _model_steps(r.kind, r.settings, config)})
    along_len = max([cell["board_acc"].size for cell in along.values()] + [1])
    along_acc = np.full((len(kinds), len(SPLITS), along_len), np.nan)
    along_energy = np.full_like(along_acc, np.nan)
    for (kind, split), cell in along.items():
        i, j = kinds.index(kind), SPLITS.index(split)
        along_acc[i, j, :cell["board_acc"].size] = cell["board_acc"]
        along_energy[i, j, :cell["energy"].size] = cell["energy"]
    ks, scores = list(config.k), list(config.scores)
    side = runs[0].settings.side
    n_samples = max(samples.values())
    shape = (len(kinds), len(SPLITS), len(steps))
    acc = {v: np.full(shape, np.nan) for v in ("board_acc", "cell_acc")}
    vacc = {v: np.full(shape + (len(ks), len(scores)), np.nan) for v in ("board_acc", "cell_acc")}
    pred = np.zeros(shape + (n_samples, side, side), np.int8)
    vpred = np.zeros(shape + (len(ks), len(scores), n_samples, side, side), np.int8)
    for (kind, split, t), cell in plain.items():
        i, j, m = kinds.index(kind), SPLITS.index(split), steps.index(t)
        for v in acc:
            acc[v][i, j, m] = float(cell[v])
        pred[i, j, m, :cell["samples"].shape[0]] = cell["samples"]
    for (kind, split, t), cell in voted.items():
        i, j, m = kinds.index(kind), SPLITS.index(split), steps.index(t)
        for v in vacc:
            vacc[v][i, j, m] = cell[v]
        vpred[i, j, m, :, :, :cell["samples"].shape[2]] = cell["samples"]

    def var(dims: tuple[str, ...], values: Any, long_name: str, units: str | None = "1", **attrs: Any) -> xr.Variable:
        a = {"long_name": long_name, **attrs}
        if units is not None:
            a["units"] = units
        return xr.Variable(dims, values, attrs=a)

    acc_dims = ("model", "split", "T")
    vote_dims = acc_dims + ("K", "score")
    data_vars: dict[str, xr.Variable] = {
        "board_acc": var(acc_dims, acc["board_acc"], "board accuracy: fraction of boards with every blank cell right "
                         "(one initial state per board, all test boards)"),
        "cell_acc": var(acc_dims, acc["cell_acc"], "fraction of blank cells right (one initial state per board)"),
        "vote_board_acc": var(vote_dims, vacc["board_acc"], "board accuracy of the lowest-energy copy among K "
                              "(first n_vote boards)", comment="NaN: not run (model without energy, or T not in "
                              "the selection steps)"),
        "vote_cell_acc": var(vote_dims, vacc["cell_acc"], "fraction of blank cells right for the lowest-energy copy "
                             "among K (first n_vote boards)"),
        "along_board_acc": var(("model", "split", "t"), along_acc, "board accuracy of the answer read out at step t "
                               "of one run of the largest T (first n_vote boards)", comment="NaN: model without "
                               "per-step readout (only AKOrN has one)"),
        "along_energy": var(("model", "split", "t"), along_energy, "mean energy E(x_t) of the last Kuramoto layer "
                            "along the same run"),
        "n_boards": var(("split",), np.array([len(data[s]) for s in SPLITS]), "test boards per split"),
        "n_vote": var(("split",), np.array([n_vote[s] for s in SPLITS]), "boards per split used for energy selection"),
        "givens_mean": var(("split",), np.array([float(data[s].givens.mean()) for s in SPLITS]),
                           "mean number of given cells"),
        "givens_min": var(("split",), np.array([int(data[s].givens.min()) for s in SPLITS]), "fewest given cells"),
        "givens_max": var(("split",), np.array([int(data[s].givens.max()) for s in SPLITS]), "most given cells"),
    }
    overlaps = [_overlap(train_data, data[s]) for s in SPLITS]
    data_vars["overlap_puzzles"] = var(("split",), np.array([o[0] for o in overlaps]),
                                       "fraction of test puzzles that are also training puzzles")
    data_vars["overlap_solutions"] = var(("split",), np.array([o[1] for o in overlaps]),
                                         "fraction of test solution grids that also solve a training puzzle")
    data_vars["train_steps"] = var(("model",), np.array([r.settings.model_steps for r in runs]),
                                   "steps T per block used in training")
    data_vars["width"] = var(("model",), np.array([r.settings.width for r in runs]), "channels per cell")
    data_vars["depth"] = var(("model",), np.array([r.settings.model_depth for r in runs]), "blocks L")
    data_vars["params"] = var(("model",), np.array([sum(p.numel() for p in build_model(r.settings).parameters())
                                                    for r in runs]), "trainable parameters")
    data_vars["seed"] = var(("model",), np.array([r.settings.seed for r in runs]), "training seed")
    # training curves, NaN-padded to the longest run
    epochs = max([r.history.sizes.get("epoch", 0) for r in runs if r.history is not None] + [0])
    curves = {"train_loss": ("epoch_loss", "training loss, mean over the epoch"),
              "train_board_acc": ("epoch_board_acc", "board accuracy of the training batches, mean over the epoch"),
              "val_board_acc": (None, "validation board accuracy at the training T (evaluated weights)"),
              "val_board_acc_raw": ("eval_board_acc", "validation board accuracy at the training T (raw weights)"),
              "epoch_seconds": ("epoch_seconds", "wall-clock time of the epoch")}
    for out_name, (src, long_name) in curves.items():
        values = np.full((len(runs), epochs), np.nan)
        for i, r in enumerate(runs):
            if r.history is None:
                continue
            name = src or ("eval_ema_board_acc" if config.ema and r.settings.ema_decay is not None
                           else "eval_board_acc")
            if name in r.history:
                v = r.history[name].values
                values[i, :v.size] = v
        data_vars[out_name] = var(("model", "epoch"), values, long_name, "s" if out_name == "epoch_seconds" else "1")
    data_vars["epochs_trained"] = var(("model",), np.array([r.history.sizes.get("epoch", 0) if r.history is not None
                                                            else 0 for r in runs]), "epochs trained")
    sample_dims = ("split", "sample", "row", "col")
    puzzles = np.zeros((len(SPLITS), n_samples, side, side), np.int8)
    solutions = np.zeros_like(puzzles)
    for j, s in enumerate(SPLITS):
        puzzles[j, :samples[s]] = data[s].puzzles[:samples[s]]
        solutions[j, :samples[s]] = data[s].solutions[:samples[s]]
    data_vars["sample_puzzle"] = var(sample_dims, puzzles, "sample boards (0 = blank)")
    data_vars["sample_solution"] = var(sample_dims, solutions, "solutions of the sample boards")
    data_vars["prediction"] = var(acc_dims + sample_dims[1:], pred, "predicted digits of the sample boards "
                                  "(one initial state; 0 = not evaluated)")
    data_vars["vote_prediction"] = var(vote_dims + sample_dims[1:], vpred, "predicted digits of the sample boards "
                                       "after energy selection (0 = not evaluated)")
    coords = {
        "model": var(("model",), np.array(kinds, dtype=object), "network", None),
        "split": var(("split",), np.array(SPLITS, dtype=object), "evaluation split", None,
                     description="; ".join(f"{k}: {v}" for k, v in _SPLIT_NAMES.items())),
        "T": var(("T",), np.array(steps), "steps per block at test time"),
        "t": var(("t",), np.arange(along_len), "step read out along one run"),
        "K": var(("K",), np.array(ks), "copies selected among by energy"),
        "score": var(("score",), np.array(scores, dtype=object), "energy score of a copy", None,
                     description="last: last logged energy E(x_{T-1}); sum: sum of all logged energies"),
        "epoch": var(("epoch",), np.arange(1, epochs + 1), "epochs completed"),
        "sample": var(("sample",), np.arange(n_samples), "sample board index"),
        "row": var(("row",), np.arange(side), "board row"),
        "col": var(("col",), np.arange(side), "board column"),
    }
    return xr.Dataset(data_vars, coords=coords)
