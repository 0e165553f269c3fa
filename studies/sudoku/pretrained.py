"""Shipped weights of trained Sudoku models: ``akorn sudoku eval --pretrained`` evaluates them.

The weights live in the package, ``studies/sudoku/weights/<set>/<model>/``, each folder laid out
like a run directory that :mod:`studies.sudoku.evaluate` reads:

- ``checkpoint.pt``: a weights-only training checkpoint (format ``akorn-training-checkpoint``,
  version 2, with its sha256): the EMA weights the evaluation uses, no optimizer state, and a
  ``provenance`` entry saying how they were trained (the config, seed, commit, epochs and the
  validation accuracy at the stop);
- ``config.json``: the run's :class:`~studies.sudoku.config.TrainSettings` (what builds the model);
- ``trained.json``: the same provenance, readable without torch.

``python -m studies.sudoku.pretrained export RUN_DIR --set quick --trained-commit SHA`` writes one
folder from a finished run directory (``<out>/<tag>/<model>/``). A weights-only checkpoint cannot
resume training: the trainer refuses it (it has no optimizer state).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from studies.files import atomic_path
from studies.provenance import provenance
from studies.rundir import CHECKPOINT_NAME, write_config
from studies.sudoku.config import MODELS
from studies.sudoku.train import read_settings
from studies.training.state import read_checkpoint, with_digest

__all__ = ["WEIGHTS_DIR", "available", "export", "pretrained_runs"]

#: Where the shipped weights are: ``WEIGHTS_DIR / <set> / <model>``.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PROVENANCE_NAME = "trained.json"


def available(weight_set: str = "quick") -> list[str]:
    """The models with shipped weights in ``weight_set`` (empty when the set does not exist)."""
    root = WEIGHTS_DIR / weight_set
    return sorted(m for m in MODELS if (root / m / CHECKPOINT_NAME).is_file())


def pretrained_runs(models: tuple[str, ...], weight_set: str = "quick") -> dict[str, Path]:
    """Run directories of the shipped weights of ``models`` (what :func:`~studies.sudoku.evaluate.evaluate` takes).

    Raises:
        ValueError: ``weight_set`` is not a folder name, or a model has no shipped weights (the
            message lists those that do).
    """
    if not isinstance(weight_set, str) or not weight_set or Path(weight_set).name != weight_set:
        raise ValueError(f"weight_set: expected the name of a folder in {WEIGHTS_DIR}, got {weight_set!r}")
    have = available(weight_set)
    if not have:
        shipped = sorted(p.name for p in WEIGHTS_DIR.iterdir() if available(p.name)) if WEIGHTS_DIR.is_dir() else []
        raise ValueError(f"weight_set: no weights are shipped for {weight_set!r}; shipped sets: "
                         f"{', '.join(shipped) or 'none'}")
    missing = [m for m in models if m not in have]
    if missing:
        raise ValueError(f"models: no shipped {weight_set!r} weights for {', '.join(missing)}; shipped: "
                         f"{', '.join(have)} (pass --models {' '.join(have)})")
    return {m: WEIGHTS_DIR / weight_set / m for m in models}


def _history_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "train.h5"
    if not path.is_file():
        return {}
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        out: dict[str, Any] = {"epochs": int(ds.sizes.get("epoch", 0))}
        for name in ("eval_ema_board_acc", "eval_board_acc"):
            if name in ds and ds.sizes.get("epoch", 0):
                values = ds[name].values
                out[f"final_{name}"] = float(values[-1])
                out[f"best_{name}"] = float(values.max())
        if "epoch_seconds" in ds:
            out["training_seconds"] = float(ds["epoch_seconds"].sum())
    return out


def export(run_dir: str | os.PathLike, weight_set: str = "quick", *, trained_commit: str | None = None,
           note: str = "", dest_root: str | os.PathLike | None = None) -> Path:
    """Write the EMA weights of a finished run as shipped weights; return their folder.

    Args:
        run_dir: a run directory ``<out>/<tag>/<model>/`` (checkpoint and config).
        weight_set: the set's folder name under ``dest_root``.
        trained_commit: the commit of the code that trained the run (recorded; the checkpoint
            itself does not hold it). ``None`` records ``"unknown"``.
        note: a free-text line recorded with the provenance (e.g. the command that trained it).
        dest_root: where the sets are (default :data:`WEIGHTS_DIR`).

    Raises:
        FileNotFoundError, ValueError: no run, a damaged checkpoint, or one without EMA weights.
    """
    run_dir = Path(run_dir)
    settings = read_settings(run_dir)
    ckpt = read_checkpoint(run_dir / CHECKPOINT_NAME)
    if ckpt.get("ema") is None:
        raise ValueError(f"run_dir: {str(run_dir)!r} was trained without EMA; the evaluation reads EMA weights")
    record = {"model": settings.model, "config": settings.to_dict(), "seed": settings.seed,
              "data_seed": settings.data_seed, "trained_commit": trained_commit or "unknown",
              "checkpoint_epoch": int(ckpt.get("epoch", 0)), **_history_summary(run_dir),
              "exported_with": provenance(), "note": note}
    dest = Path(dest_root if dest_root is not None else WEIGHTS_DIR) / weight_set / settings.model
    dest.mkdir(parents=True, exist_ok=True)
    payload = {"format": ckpt["format"], "version": 2, "epoch": int(ckpt.get("epoch", 0)), "model": None,
               "ema": {k: v.detach().clone() for k, v in ckpt["ema"].items()}, "provenance": record}
    with atomic_path(dest / CHECKPOINT_NAME) as tmp:
        torch.save(with_digest(payload), tmp)
    write_config(dest, settings)
    with atomic_path(dest / PROVENANCE_NAME) as tmp:
        tmp.write_text(json.dumps(record, sort_keys=True, indent=1) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m studies.sudoku.pretrained export RUN_DIR [--set quick] [--trained-commit SHA] [--note TEXT]``."""
    parser = argparse.ArgumentParser(prog="python -m studies.sudoku.pretrained", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    ex = sub.add_parser("export", help="write a finished run's EMA weights into the package")
    ex.add_argument("run_dir", type=Path, help="the run directory <out>/<tag>/<model>/")
    ex.add_argument("--set", dest="weight_set", default="quick", help="weight set (default: quick)")
    ex.add_argument("--trained-commit", default=None, help="commit of the code that trained the run")
    ex.add_argument("--note", default="", help="free text recorded with the weights (e.g. the training command)")
    args = parser.parse_args(argv)
    try:
        dest = export(args.run_dir, args.weight_set, trained_commit=args.trained_commit, note=args.note)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
