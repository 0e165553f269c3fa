"""The result Dataset of ``akorn robustness eval`` (``robustness.h5``): per-model accuracies, calibration,
ensembles, corruptions and attacks with their image counts, and the training record of each run.
"""

from __future__ import annotations

import json
import math
from importlib import metadata
from typing import Any

import numpy as np
import xarray as xr

from studies.robustness.config import (
    PAPER_REFERENCE,
    RobustnessEvalConfig,
    RobustnessTrainConfig,
)
from studies.robustness.data import ImageData
from studies.robustness.metrics import reliability_diagram
from studies.storage import result_attrs

__all__ = []


def _var(dims: tuple[str, ...], values: Any, long_name: str, units: str | None = "1", comment: str | None = None
         ) -> xr.Variable:
    attrs = {"long_name": long_name}
    if units is not None:
        attrs["units"] = units
    if comment is not None:
        attrs["comment"] = comment
    return xr.Variable(dims, values, attrs=attrs)


def _model_arrays(results: dict[str, np.ndarray], labels: np.ndarray, config: RobustnessEvalConfig,
                  eps_grid: np.ndarray, attack_n: int) -> dict[str, np.ndarray]:
    probs = results["clean"]
    diagram = reliability_diagram(probs[0], labels, n_bins=config.n_bins, kind="probs")
    out: dict[str, Any] = {
        "accuracy": float(np.mean(probs[0].argmax(axis=1) == labels)),
        "ece": diagram.ece,
        "mean_confidence": diagram.mean_confidence,
        "calibration_count": diagram.count,
        "calibration_confidence": diagram.confidence,
        "calibration_accuracy": diagram.accuracy,
        "clean_seconds": float(results["clean.seconds"]),
    }
    ens_acc, ens_ece = [], []
    for k in config.ensemble_sizes:
        mean = probs[:k].mean(axis=0, dtype=np.float64)
        ens_acc.append(float(np.mean(mean.argmax(axis=1) == labels)))
        ens_ece.append(reliability_diagram(mean, labels, n_bins=config.n_bins, kind="probs").ece)
    out["ensemble_accuracy"], out["ensemble_ece"] = np.array(ens_acc), np.array(ens_ece)

    clean_correct = (probs[0].argmax(axis=1) == labels).astype(np.float64)
    corr = np.full((len(config.corruptions), 6), np.nan)
    corr_seconds = 0.0
    for i, name in enumerate(config.corruptions):
        corr[i, 0] = clean_correct[:config.corruption_images].mean()
        for sev in range(1, 6):
            corr[i, sev] = results[f"corruption:{name}:{sev}"].mean()
            corr_seconds += float(results[f"corruption:{name}:{sev}.seconds"])
    out["corruption_accuracy"], out["corruption_seconds"] = corr, corr_seconds

    acc = np.full((len(config.attacks), len(eps_grid)), np.nan)
    seconds = np.full_like(acc, np.nan)
    correct = np.full((len(config.attacks), len(eps_grid), attack_n), np.nan, dtype=np.float32)
    for a, attack in enumerate(config.attacks):
        for eps in config.eps_of(attack):
            e = int(np.flatnonzero(np.isclose(eps_grid, eps))[0])
            values = results[f"attack:{attack}:{eps:g}"]
            acc[a, e] = values.mean()
            seconds[a, e] = float(results[f"attack:{attack}:{eps:g}.seconds"])
            correct[a, e, :len(values)] = values
    out["attack_accuracy"], out["attack_seconds"], out["attack_correct"] = acc, seconds, correct
    return out


def _build_dataset(per_model: list[dict[str, Any]], models: list[str], infos: list[dict[str, Any]],
                   train_configs: list[RobustnessTrainConfig], runs: list[str], data: ImageData, split_size: int,
                   index: np.ndarray, probs: list[np.ndarray], config: RobustnessEvalConfig, eps_grid: np.ndarray,
                   attack_n: int) -> xr.Dataset:
    edges = np.linspace(0.0, 1.0, config.n_bins + 1)
    M = ("model",)
    data_vars = {**_measure_vars(per_model, probs, data, config), **_run_vars(train_configs, infos)}
    coords = {
        "model": _var(M, np.array(models, dtype=object), "model (run label)", None),
        "run": _var(M, np.array(runs, dtype=object), "training run directory", None),
        "weights": _var(M, np.array([i["weights"] for i in infos], dtype=object),
                        "weights evaluated (ema: the training's weight average)", None),
        "attack": _var(("attack",), np.array(config.attacks, dtype=object), "attack", None),
        "eps": _var(("eps",), eps_grid / 255.0, "L-infinity radius in pixel units (images in [0, 1])"),
        "eps_255": _var(("eps",), eps_grid, "L-infinity radius in units of 1/255", "1/255"),
        "corruption": _var(("corruption",), np.array(config.corruptions, dtype=object), "corruption", None),
        "severity": _var(("severity",), np.arange(6, dtype=np.int64), "corruption severity (0: none)"),
        "bin": _var(("bin",), np.arange(config.n_bins, dtype=np.int64), "confidence bin"),
        "bin_lower": _var(("bin",), edges[:-1], "lower edge of the confidence bin (exclusive)"),
        "bin_upper": _var(("bin",), edges[1:], "upper edge of the confidence bin (inclusive)"),
        "ensemble": _var(("ensemble",), np.array(config.ensemble_sizes, dtype=np.int64),
                         "number of random initial states averaged"),
        "pass": _var(("pass",), np.arange(config.passes, dtype=np.int64), "random initial state"),
        "image": _var(("image",), index, "index of the image in the test split"),
        "attack_image": _var(("attack_image",), index[:attack_n],
                             "index in the test split of an attacked image (the first images of 'image')"),
        "class": _var(("class",), np.array(data.class_names, dtype=object), "class name", None),
    }
    attrs = result_attrs(
        "robustness", config, config.seed, data=train_configs[0].data, test_split_size=int(split_size),
        train_configs=json.dumps({m: c.to_dict() for m, c in zip(models, train_configs)}, sort_keys=True),
        pgd_step="eps/3", pgd_random_start=0, torchattacks_version=_torchattacks_version(),
        paper_reference=json.dumps(PAPER_REFERENCE, sort_keys=True))
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _measure_vars(per_model: list[dict[str, Any]], probs: list[np.ndarray], data: ImageData,
                  config: RobustnessEvalConfig) -> dict[str, xr.Variable]:
    """Clean accuracy, calibration, ensembles, attacks and corruptions of every model."""
    def stack(name: str) -> np.ndarray:
        return np.stack([np.asarray(m[name]) for m in per_model])

    M = ("model",)
    return {
        "accuracy": _var(M, stack("accuracy"), "clean accuracy (one random initial state per image, pass 0)"),
        "ece": _var(M, stack("ece"), f"expected calibration error of pass 0 ({config.n_bins} equal-width "
                                     f"confidence bins; a fraction, the paper quotes percent)"),
        "mean_confidence": _var(M, stack("mean_confidence"), "mean top-class probability of pass 0"),
        "calibration_count": _var(M + ("bin",), stack("calibration_count").astype(np.int64),
                                  "test images whose pass-0 confidence falls in the bin"),
        "calibration_confidence": _var(M + ("bin",), stack("calibration_confidence"),
                                       "mean pass-0 confidence in the bin (NaN if empty)"),
        "calibration_accuracy": _var(M + ("bin",), stack("calibration_accuracy"),
                                     "pass-0 accuracy in the bin (NaN if empty)"),
        "ensemble_accuracy": _var(M + ("ensemble",), stack("ensemble_accuracy"),
                                  "accuracy of the softmax averaged over the first k random initial states"),
        "ensemble_ece": _var(M + ("ensemble",), stack("ensemble_ece"),
                             "expected calibration error of the softmax averaged over the first k passes"),
        "attack_accuracy": _var(M + ("attack", "eps"), stack("attack_accuracy"),
                                "accuracy on the attacked images (NaN: attack not run at this eps)"),
        "attack_correct": _var(M + ("attack", "eps", "attack_image"), stack("attack_correct"),
                               "1 if the attacked image is still classified correctly, 0 if not, NaN if not "
                               "attacked"),
        "attack_seconds": _var(M + ("attack", "eps"), stack("attack_seconds"),
                               "wall-clock time of the attack and the predictions", "s",
                               "NaN: attack not run at this eps"),
        "attack_images": _var(("attack",), np.array([config.images_of(a) for a in config.attacks],
                                                    dtype=np.int64),
                              "number of test images the attack is run on (the first of the subset)"),
        "corruption_accuracy": _var(M + ("corruption", "severity"), stack("corruption_accuracy"),
                                    "accuracy on corrupted images (severity 0: uncorrupted)"),
        "corruption_images": _var((), np.int64(config.corruption_images),
                                  "number of test images per corruption and severity"),
        "corruption_seconds": _var(M, stack("corruption_seconds"), "wall-clock time of all corruptions", "s"),
        "clean_seconds": _var(M, stack("clean_seconds"), "wall-clock time of the clean passes", "s"),
        "clean_probs": _var(M + ("pass", "image", "class"), np.stack(probs).astype(np.float32),
                            "softmax probabilities per random initial state (copies for a deterministic "
                            "model)"),
        "label": _var(("image",), data.labels[:config.test_images].astype(np.int64), "true class index"),
    }


def _run_vars(train_configs: list[RobustnessTrainConfig], infos: list[dict[str, Any]]) -> dict[str, xr.Variable]:
    """What each evaluated run is: stochastic or not, size, training record."""
    M = ("model",)
    return {
        "stochastic": _var(M, np.array([c.stochastic for c in train_configs], dtype=np.int8),
                           "1 if the model draws random initial states on every forward pass"),
        "parameters": _var(M, np.array([i["parameters"] for i in infos], dtype=np.int64),
                           "number of trainable parameters"),
        "train_epochs": _var(M, np.array([i["epoch"] for i in infos], dtype=np.int64),
                             "epochs trained (checkpoint)"),
        "train_steps": _var(M, np.array([i["step"] for i in infos], dtype=np.int64),
                            "optimizer steps trained (checkpoint)"),
        "train_images": _var(M, np.array([_train_count(c) for c in train_configs], dtype=np.float64),
                             "training images (NaN: the whole training split)"),
        "train_seconds": _var(M, np.array([i["train_seconds"] for i in infos]),
                              "wall-clock training time (sum over epochs)", "s"),
        "val_accuracy": _var(M, np.array([i["val_accuracy"] for i in infos]),
                             "last in-training monitor accuracy of the evaluated weights"),
    }


def _train_count(config: RobustnessTrainConfig) -> float:
    return math.nan if config.train_images is None else float(config.train_images)


def _torchattacks_version() -> str:
    try:

        return metadata.version("torchattacks")
    except Exception:  # the package is optional; its absence is not an error here
        return "absent"
