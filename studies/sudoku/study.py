"""``akorn sudoku``: the paper's reasoning study — train AKOrN, ItrSA and a Transformer on Sudoku, then
test them with more steps and with energy-based selection on harder, out-of-distribution boards.

``akorn sudoku train --model akorn|itrsa|transformer`` trains one model into
``<out>/<tag>/<model>/`` (checkpoint every epoch, resumed automatically; run it under
``torchrun`` for DDP). ``akorn sudoku eval`` evaluates the trained models on the
in-distribution and the OOD boards for every T and K and writes ``<out>/<tag>/sudoku.h5``
with ``sudoku.png`` and ``sudoku_boards.png``. Presets: ``quick`` (6×6 boards, width 64, 30
epochs: about an hour per model on one core), ``cpu`` (9×9 at width 128, resumed across
sessions until it converges), ``paper`` (the official 9×9 recipe at width 512, for a GPU).

Everything works for boards of any ``b_r × b_c`` boxes (``--box 2 2`` for 4×4, ``--box 3 3`` for 9×9). Training,
evaluation and plots live in :mod:`studies.sudoku.train`, :mod:`studies.sudoku.evaluate` and
:mod:`studies.sudoku.plots`; this module is the command line and re-exports their API.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from studies.sudoku.evaluate import (
    FILENAME,
    SCORES,
    EvalSettings,
    Prediction,
    accuracy_along,
    board_accuracy,
    cell_accuracy,
    energy_scores,
    evaluate,
    predict,
    predict_digits,
    select_by_energy,
    solved,
    vote,
)
from studies.sudoku.plots import plot, plot_boards, summarize
from studies.sudoku.train import (
    MODELS,
    TrainResult,
    TrainSettings,
    build_model,
    converged,
    read_settings,
    sudoku_loss,
    train_model,
    training_summary,
)

__all__ = [
    "DEFAULT_OUT",
    "FILENAME",
    "MODELS",
    "SCORES",
    "EvalSettings",
    "Prediction",
    "accuracy_along",
    "TrainResult",
    "TrainSettings",
    "add_arguments",
    "board_accuracy",
    "build_model",
    "cell_accuracy",
    "converged",
    "energy_scores",
    "evaluate",
    "main",
    "plot",
    "plot_boards",
    "predict",
    "predict_digits",
    "read_settings",
    "run_dirs",
    "select_by_energy",
    "solved",
    "sudoku_loss",
    "summarize",
    "train_model",
    "vote",
]

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

An interrupted evaluation resumes from <out>/<tag>/sudoku.partial.h5."""


def run_dirs(out: str | os.PathLike, tag: str, models: tuple[str, ...] = MODELS) -> dict[str, Path]:
    """Run directories ``<out>/<tag>/<model>`` of the given models."""
    return {m: Path(out) / tag / m for m in models}


def _add_common(parser: argparse.ArgumentParser, config_cls: type, epilog_outputs: str) -> Any:
    from studies.cli import add_config_arguments

    add_config_arguments(parser, config_cls)
    # conflict_handler="resolve" on the sub-parser lets this replace the generic --preset help
    parser.add_argument("--preset", choices=list(config_cls.PRESETS), default="quick", help=_PRESET_HELP)
    group = parser.add_argument_group("running")
    group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                       help=f"results directory (default: {DEFAULT_OUT}); {epilog_outputs}")
    group.add_argument("--tag", default=None, metavar="NAME",
                       help="name of the run directory under --out (default: the preset's name)")
    group.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                       help="where to run (default: auto = CUDA when available)")
    group.add_argument("--threads", type=int, default=None, metavar="INT",
                       help="torch CPU threads (default: torch's choice)")
    group.add_argument("--workers", type=int, default=None, metavar="INT",
                       help="processes generating boards on first use (default: up to 2; 1 = this process)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    return group


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands ``train`` and ``eval`` of ``akorn sudoku``."""
    sub = parser.add_subparsers(dest="action", metavar="{train,eval}")
    train = sub.add_parser("train", help="train one model (resumes from its last checkpoint)",
                           description="Train one Sudoku model (AKORN.md §5.1) into <out>/<tag>/<model>/: "
                                       "checkpoint.pt every epoch, train.h5 with the loss and accuracy curves.",
                           epilog=_TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                           conflict_handler="resolve")
    group = _add_common(train, TrainSettings, "the run goes to <out>/<tag>/<model>/")
    group.add_argument("--max-hours", type=float, default=None, metavar="FLOAT",
                       help="stop after the first epoch that ends past this many hours (rerun to continue)")
    group.add_argument("--max-epochs", type=int, default=None, metavar="INT",
                       help="stop once the run has this many epochs in total (rerun with a larger value to continue)")
    train.set_defaults(_parser=train)
    ev = sub.add_parser("eval", help="evaluate the trained models: accuracy vs T and vs K, plots",
                        description="Evaluate trained Sudoku models on in-distribution and OOD boards for every "
                                    "T and K (energy-based selection); write sudoku.h5, sudoku.png and "
                                    "sudoku_boards.png.",
                        epilog=_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                        conflict_handler="resolve")
    group = _add_common(ev, EvalSettings, "reads <out>/<tag>/<model>/ and writes <out>/<tag>/sudoku.h5 and its "
                                          "plots")
    group.add_argument("--memory-gb", type=float, default=1.0, metavar="FLOAT",
                    help="memory budget of one forward pass; sets the chunk size (default: 1.0)")
    group.add_argument("--no-plot", dest="plot", action="store_false", help="do not write the PNG figures")
    ev.set_defaults(_parser=ev)
    parser.set_defaults(_parser=parser)


def _runtime(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    import torch

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"argument --threads: expected a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.workers is not None and args.workers < 1:
        parser.error(f"argument --workers: expected a positive integer, got {args.workers}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: 'cuda' requested but CUDA is not available")


def _main_train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from studies.cli import config_from_args, run_command
    from studies.training import cleanup_distributed, is_main_process

    settings = config_from_args(parser, TrainSettings, args)
    _runtime(parser, args)
    if args.max_hours is not None and not args.max_hours > 0:
        parser.error(f"argument --max-hours: expected a positive number, got {args.max_hours}")
    if args.max_epochs is not None and args.max_epochs < 1:
        parser.error(f"argument --max-epochs: expected a positive integer, got {args.max_epochs}")
    run_dir = Path(args.out) / (args.tag or args.preset) / settings.model

    def action() -> int:
        try:
            result = train_model(settings, run_dir, max_epochs=args.max_epochs, max_hours=args.max_hours,
                                 device=args.device, workers=args.workers, progress=args.progress)
            main_process = is_main_process()  # before the process group is destroyed
        finally:
            cleanup_distributed()
        if main_process:
            print(training_summary(result, settings, run_dir))
        return 0

    # FileNotFoundError, ValueError: unreadable data or checkpoint; the message says which
    return run_command("akorn sudoku train", parser, action,
                       resume=f"rerun the same command to resume from the last checkpoint in {run_dir}")


def _main_eval(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from studies.cli import config_from_args, run_command

    config = config_from_args(parser, EvalSettings, args)
    _runtime(parser, args)
    if not args.memory_gb > 0:
        parser.error(f"argument --memory-gb: expected a positive number, got {args.memory_gb}")
    path = Path(args.out) / (args.tag or args.preset) / config.filename

    def action() -> int:
        wall = time.perf_counter()
        ds = evaluate(config, run_dirs(args.out, args.tag or args.preset, config.models), path=path,
                      device=args.device, memory_gb=args.memory_gb, workers=args.workers, progress=args.progress)
        print(f"wrote {path}")
        if args.plot:
            png = plot(ds, path.with_suffix(".png"))
            print(f"wrote {png} and {png.with_name(png.stem + '_boards.png')}")
        print(summarize(ds))
        print(f"time: {(time.perf_counter() - wall) / 60:.1f} min")
        return 0

    return run_command("akorn sudoku eval", parser, action,
                       resume=f"rerun the same command to resume (finished cells are in "
                              f"{path.with_suffix('.partial.h5')})")


def main(args: argparse.Namespace) -> int:
    """Run ``akorn sudoku train|eval`` with parsed arguments; returns the exit status."""
    action = getattr(args, "action", None)
    if action == "train":
        return _main_train(args._parser, args)
    if action == "eval":
        return _main_eval(args._parser, args)
    args._parser.print_help()
    return 2


def _standalone(argv: list[str] | None = None) -> int:
    """``python -m studies.sudoku.study ...`` without the ``akorn`` registry entry."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(prog="akorn sudoku", description=(__doc__ or "").split("\n\n")[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
