"""``akorn robustness``: train image classifiers, then attack, corrupt and calibrate them (AKOrN vs a CNN).

The paper's third claim (AKORN.md §4.1, §5.3, §7.5): an AKOrN classifier keeps much of its
accuracy under adversarial attacks and random corruptions and is far better calibrated than a
convolutional network of similar size. ``akorn robustness train --model akorn`` (or
``akorn-mix``, ``convnet``) trains one classifier into a run directory (atomic checkpoints after
every epoch, exact resume by rerunning the command, DDP under ``torchrun``);
``akorn robustness eval RUN [RUN ...]`` measures clean accuracy, expected calibration error and
reliability diagrams, the ensemble over random initial states, accuracy per corruption and
severity, and accuracy under random-sign noise, FGSM, PGD-L∞ with EoT and AutoAttack, and
writes one Dataset (``robustness.h5``), a figure and per-model reliability diagrams.

Quick preset (the default): Fashion-MNIST, a quarter-width AKOrN (16/32/64 channels, coupling
kernels 5/5/3, 0.34 M parameters) and a ConvNet of the same size (0.39 M) trained on 20,000
images for 6 epochs; the evaluation attacks fixed prefixes of a seeded test subset (200 images
for noise and FGSM, 100 for PGD, 32 for both AutoAttack versions; the counts are stored in the
Dataset). Example: ``akorn robustness train --model akorn`` then
``akorn robustness eval results/robustness/akorn results/robustness/convnet``.

Run directories: ``config.json``, ``checkpoint.pt``, ``train.h5`` (see
:mod:`studies.robustness.train`). The evaluation and its Dataset are described in
:mod:`studies.robustness.evaluate`; the figures in :mod:`studies.robustness.plots`.

Measured costs behind the quick preset (torch 2.13 CPU, 2 threads, a 2-core machine shared with
other jobs). Per image, idle machine (load 0.2) / loaded (load average 8.5): AKOrN quick
training step 7 / 52 ms, forward 3.4 / 17 ms, input gradient 6.7 / 47 ms; ConvNet quick 3.7 /
34, 1.2 / 13, 2.5 / 23 ms; AKOrN with the paper's kernels 9/7/5 84, 40, 81 ms loaded. One quick
epoch (idle): AKOrN 2.4 min, ConvNet 1.6 min. The quick evaluation (idle): AKOrN 9.5 min, of
which AutoAttack standard 5.2 min (its Square attack spends 5,000 forward passes on every image
that survives the gradient attacks), AutoAttack rand 1.4, PGD 2.1; ConvNet 4.2 min. So one
model trains (6 epochs) and is evaluated in about 25 (AKOrN) and 14 (ConvNet) minutes on an idle
machine, and several times longer under heavy load.
The AutoAttack image count is the knob that bounds the evaluation time.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from studies.cli import config_from_args, run_command

from .evaluate import RobustnessEvalConfig, evaluate
from .plots import plot, plot_reliability_diagrams, summarize
from .train import RobustnessTrainConfig, RunError, train

__all__ = ["DEFAULT_OUT", "FILENAME", "add_arguments", "main", "plot", "summarize"]

FILENAME = "robustness.h5"
"""File name of the evaluation Dataset inside ``--out``."""

DEFAULT_OUT = Path("results") / "robustness"
"""Default output directory: runs go to ``<DEFAULT_OUT>/<model>``, the evaluation to ``<DEFAULT_OUT>``."""

_PRESET_HELP = {
    "train": "parameter preset: 'quick' trains on Fashion-MNIST on a 2-core CPU (AKOrN 15 min idle, about 2 "
             "h under heavy load; ConvNet 10 min and 75 min), 'paper' is the published CIFAR-10 recipe for a GPU "
             "(default: quick)",
    "eval": "parameter preset: 'quick' bounds the attack cost with image subsets (quick AKOrN on a 2-core CPU: "
            "10 min idle, about 70 min under heavy load), 'paper' uses the whole test split (GPU) (default: quick)",
}


def _add_config_options(parser: argparse.ArgumentParser, config_cls: type, action: str) -> None:
    from studies.cli import add_config_arguments

    add_config_arguments(parser, config_cls)
    # The sub-parser resolves conflicts, so this replaces the generic --preset (its help speaks of minutes).
    parser.add_argument("--preset", choices=list(config_cls.PRESETS), default="quick", help=_PRESET_HELP[action])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands ``train`` and ``eval`` of ``akorn robustness`` with their options."""
    sub = parser.add_subparsers(dest="action", metavar="{train,eval}", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    tr = sub.add_parser("train", help="train one classifier into a run directory (resumes a run found there)",
                        description="Train AKOrN, AKOrN^mix or the ConvNet baseline with Adam and a weight average; "
                                    "a checkpoint is written after every epoch and rerunning the same command "
                                    "continues from it. Under torchrun --nproc_per_node=K the batch is split over "
                                    "K processes.", formatter_class=fmt, conflict_handler="resolve")
    _add_config_options(tr, RobustnessTrainConfig, "train")
    run = tr.add_argument_group("running")
    run.add_argument("--out", default=None, metavar="DIR",
                     help=f"run directory (default: {DEFAULT_OUT}/<model>)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    tr.set_defaults(_parser=tr)

    ev = sub.add_parser("eval", help="attack, corrupt and calibrate trained classifiers; one Dataset and figures",
                        description="Evaluate run directories of 'akorn robustness train' on a seeded subset of "
                                    "the test split. Finished parts are cached, so rerunning an interrupted "
                                    "command resumes it.", formatter_class=fmt, conflict_handler="resolve")
    ev.add_argument("runs", nargs="+", metavar="RUN", help="run directories (the --out of 'train')")
    _add_config_options(ev, RobustnessEvalConfig, "eval")
    run = ev.add_argument_group("running")
    run.add_argument("--labels", nargs="+", default=None, metavar="NAME",
                     help="names of the runs in the results (default: their model names)")
    run.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR",
                     help=f"directory of {FILENAME}, its figure and the cached parts (default: {DEFAULT_OUT})")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    run.add_argument("--no-plot", dest="plot", action="store_false", help="write no figures")
    ev.set_defaults(_parser=ev)


def _train(args: argparse.Namespace) -> int:
    import time

    from studies.training import cleanup_distributed, is_main_process

    config = config_from_args(args._parser, RobustnessTrainConfig, args)
    out = Path(args.out) if args.out else DEFAULT_OUT / config.model
    started = time.perf_counter()
    try:
        history = train(config, out, progress=args.progress)
        main_process = is_main_process()  # asked before the process group is torn down
    finally:
        cleanup_distributed()
    if main_process:
        last = {k: float(history[k].values[-1]) for k in ("epoch_loss", "epoch_acc", "eval_ema_acc", "eval_acc")
                if k in history and history.sizes.get("epoch", 0)}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items())
        print(f"trained {config.model}: epoch {history.sizes.get('epoch', 0)}/{config.epochs} in {out} ({shown}); "
              f"this command took {(time.perf_counter() - started) / 60:.1f} min")
        print(f"next: akorn robustness eval {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import time

    config = config_from_args(args._parser, RobustnessEvalConfig, args)
    out = Path(args.out)
    path = out / FILENAME
    started = time.perf_counter()
    ds = evaluate(args.runs, config, path=path, labels=args.labels, progress=args.progress)
    print(f"wrote {path}")
    if args.plot:
        print(f"wrote {plot(ds, path.with_suffix('.png'))}")
        for p in plot_reliability_diagrams(ds, out, stem=path.stem):
            print(f"wrote {p}")
    print(summarize(ds))
    print(f"time: {(time.perf_counter() - started) / 60:.1f} min")
    return 0


def main(args: argparse.Namespace) -> int:
    """Run ``akorn robustness train|eval`` with parsed arguments; returns the exit status.

    Returns:
        0 on success, 1 for missing data, runs or a run made with another config, 130 when
        interrupted (rerun the same command to resume); a bad option value exits with 2.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    action = {"train": _train, "eval": _eval}[args.action]
    return run_command(f"akorn robustness {args.action}", args._parser, lambda: action(args),
                       errors=(FileNotFoundError, RunError))
