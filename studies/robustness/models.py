"""The classifiers of the robustness study (AKOrN, AKOrN^mix, a ConvNet) built from a run's config,
and a trained run rebuilt from its directory with the weights that are evaluated.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from torch import nn

from networks.models.baselines import ConvNet
from networks.models.classifier import AKOrNClassifier
from studies.config import ConfigError
from studies.robustness.config import (
    RobustnessTrainConfig,
)
from studies.rundir import read_config
from studies.training import CHECKPOINT_NAME, load_model_weights

__all__ = ["build_model", "is_stochastic", "load_run"]


def is_stochastic(config: RobustnessTrainConfig) -> bool:
    """Whether ``config``'s model is stochastic (AKOrN draws random initial oscillators)."""
    if not isinstance(config, RobustnessTrainConfig):
        raise TypeError(f"config: expected a RobustnessTrainConfig, got {type(config).__name__}")
    return config.stochastic


def build_model(config: RobustnessTrainConfig, num_classes: int = 10) -> nn.Module:
    """The classifier ``config.model`` with ``config``'s sizes (inputs in [0, 1], ``[B, 3, 32, 32]``).

    Args:
        config: the training config.
        num_classes: number of classes of the data set.

    Returns:
        An :class:`~networks.models.classifier.AKOrNClassifier` (``akorn``, ``akorn-mix``) or a
        :class:`~networks.models.baselines.ConvNet` (``convnet``), on the CPU, freshly initialised
        from torch's global generator.

    Raises:
        ConfigError: the model rejects a size (the error names the config field).
    """

    if not isinstance(config, RobustnessTrainConfig):
        raise TypeError(f"config: expected a RobustnessTrainConfig, got {type(config).__name__}")
    try:
        if config.model == "convnet":
            return ConvNet(num_classes=num_classes, width=config.convnet_width, depth=config.convnet_depth,
                           blocks=config.convnet_blocks)
        kernels = config.kernel_sizes if len(config.kernel_sizes) > 1 else config.kernel_sizes[0]
        kwargs = dict(num_classes=num_classes, width=config.width, depth=config.depth, n=config.n,
                      steps=config.steps, gamma=config.gamma, kernel_sizes=kernels, heads=config.heads)
        if config.model == "akorn-mix":
            return AKOrNClassifier.mix(**kwargs)
        return AKOrNClassifier(coupling="conv", **kwargs)
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        names = {f.name for f in dataclasses.fields(config)}
        if config.model == "convnet" and field in ("width", "depth", "blocks"):
            field = f"convnet_{field}"
        raise ConfigError(field if field in names else "model", reason or str(exc)) from exc


def read_run_config(run_dir: str | os.PathLike) -> RobustnessTrainConfig:
    """The config a run directory was trained with (its ``config.json``).

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``config.json``.
        ValueError: the file is not a valid config.
    """
    return read_config(run_dir, RobustnessTrainConfig,
                       hint="is it the --out directory of 'akorn robustness train'?")


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, RobustnessTrainConfig,
                                                                                     dict[str, Any]]:
    """Rebuild a trained classifier from its run directory, with the weights that are evaluated.

    The EMA weights are loaded when the run kept an average (``ema_decay`` not none), the raw
    weights otherwise; the model is returned in eval mode.

    Args:
        run_dir: the ``--out`` directory of ``akorn robustness train``.
        device: where to put the model.

    Returns:
        ``(model, config, info)``; ``info`` holds ``epoch`` and ``step`` (training progress of
        the checkpoint), ``parameters`` (count), ``weights`` (``"ema"`` or ``"raw"``),
        ``train_seconds`` (sum of the epochs' wall-clock times) and ``val_accuracy`` (the last
        logged monitor accuracy of the evaluated weights, NaN if none).

    Raises:
        FileNotFoundError: no config or checkpoint in ``run_dir``.
        ValueError: the checkpoint does not match the config.
    """

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"run: {str(run_dir)!r} has a config but no {CHECKPOINT_NAME} yet; train first "
                                f"(rerun 'akorn robustness train' with --out {run_dir})")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    num_classes = int(ckpt["model"]["fc.weight"].shape[0])
    model = build_model(config, num_classes=num_classes)
    use_ema = config.ema_decay is not None
    load_model_weights(ckpt_path, model, ema=use_ema)
    info: dict[str, Any] = {"epoch": int(ckpt["epoch"]), "step": int(ckpt["step"]),
                            "parameters": int(sum(p.numel() for p in model.parameters())),
                            "weights": "ema" if use_ema else "raw", "train_seconds": math.nan,
                            "val_accuracy": math.nan}
    del ckpt
    history = run_dir / "train.h5"
    if history.is_file():
        with xr.open_dataset(history, engine="h5netcdf") as hist:
            if "epoch_seconds" in hist:
                info["train_seconds"] = float(hist["epoch_seconds"].sum())
            name = "eval_ema_acc" if use_ema else "eval_acc"
            if name in hist and hist.sizes.get("epoch", 0):
                info["val_accuracy"] = float(hist[name].values[-1])
    return model.to(device).eval(), config, info
