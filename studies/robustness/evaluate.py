"""Evaluation of trained classifiers: clean accuracy, calibration, ensembles, corruptions, attacks.

:func:`evaluate` takes one or more run directories of ``akorn robustness train`` and an
:class:`RobustnessEvalConfig`, and measures on a fixed, seeded subset of the test split:

* **clean**: ``passes`` forward passes per image (each with its own random initial
  oscillator state; a deterministic model is run once). Pass 0 gives the accuracy, the
  expected calibration error (``n_bins`` equal-width bins) and the reliability diagram; the
  softmax averaged over the first ``k`` passes gives the ensemble accuracy and ECE;
* **corruptions**: accuracy per corruption and severity 1..5 on the first
  ``corruption_images`` images (severity 0 is the clean pass-0 accuracy of those images);
* **attacks** (L∞, on the first ``*_images`` images of the subset): random-sign noise, FGSM,
  PGD (``pgd_steps`` steps of ε/3, no random start, gradients summed over ``eot`` random
  initial states for a stochastic model), AutoAttack in its ``standard`` version (APGD-CE,
  APGD-T, FAB-T, Square; what the issue asks for and the official code calls) and in its
  ``rand`` version (APGD-CE and APGD-DLR with 20 EoT passes per gradient, the appropriate one
  for a stochastic model such as AKOrN, AKORN.md §5.3), each at its own list of ε (in units of
  1/255). ε = 0 leaves the images unchanged.

**Reproducibility.** Every prediction runs under a forked torch RNG seeded from ``(seed, pass,
first image of the batch)``, and every attack batch under one seeded from ``(seed, attack, ε,
first image)``; the subsets are prefixes of one seeded permutation of the test split. So an
image gets the same random initial state in the clean pass 0, under a corruption and after an
attack, and an attack at ε = 0 reproduces the clean pass-0 predictions exactly.

**Cost and resume.** Attacks on AKOrN cost a full forward and backward pass through every
Kuramoto step per gradient, which is why each attack has its own image count. Results are
cached per model and part (clean, one corruption at one severity, one attack at one ε) in
``<out>/robustness-parts/``, written atomically after every part, so an interrupted evaluation
resumes at the part it was in. A part is keyed by the settings it depends on (raising
``autoattack_images`` reruns AutoAttack only), and a cache file by the training config and the
checkpoint's step, so a retrained model is evaluated afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import xarray as xr

from studies.config import ConfigError, StudyConfig, param

from .attacks import autoattack, fgsm, pgd_linf, random_sign_noise
from .corruptions import CORRUPTIONS, corrupt
from .data import ImageData
from .metrics import reliability_diagram
from .train import RobustnessTrainConfig, RunError, load_images, load_run

__all__ = ["ATTACK_NAMES", "PAPER_REFERENCE", "RobustnessEvalConfig", "evaluate", "evaluate_model",
           "test_subset"]

ATTACK_NAMES = ("random_sign", "fgsm", "pgd", "autoattack", "autoattack_rand")
"""Attacks of the study, in the order they are run and stored."""

PAPER_REFERENCE = {
    "AKOrN^mix (paper, CIFAR-10)": {"clean": 0.9123, "autoattack": 0.5891, "ece": 0.013},
    "ResNet-18 (paper, CIFAR-10)": {"clean": 0.9441, "autoattack": 0.0, "ece": 0.089},
}
"""The paper's Table 4 numbers (AKORN.md §7.5) as fractions, for context in summaries and plots."""

_PARTS_DIR = "robustness-parts"
_CORRUPTION_NAMES = tuple(CORRUPTIONS)


@dataclasses.dataclass(frozen=True)
class RobustnessEvalConfig(StudyConfig):
    """What ``akorn robustness eval`` measures (defaults: the quick preset).

    The quick preset bounds the cost of the expensive parts for a small AKOrN on a 2-core
    CPU: 2,000 test images for accuracy and calibration (4 random initial states each), 200
    per corruption and severity, 200 for random noise and FGSM, 100 for PGD (ε = 4 and 8 /255,
    20 steps, EoT over 4 initial states) and 32 for both AutoAttack versions at ε = 8/255. The
    paper preset uses the whole test split for everything but PGD and AutoAttack (1,000 images
    each).
    """

    study: ClassVar[str] = "robustness"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"test_images": 10000, "passes": 16, "corruption_images": 10000, "attack_images": 10000,
                  "pgd_images": 1000, "pgd_eps": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0), "eot": 8,
                  "autoattack_images": 1000, "autoattack_eps": (0.0, 4.0, 8.0),
                  "autoattack_rand_eps": (0.0, 4.0, 8.0)},
    }

    test_images: int = param(2000, "test images for accuracy, calibration and the ensemble (a seeded random "
                                   "subset of the test split; the other parts use its first images)")
    passes: int = param(4, "random initial states per image (softmax-averaged for the ensemble; deterministic "
                           "models are run once)")
    n_bins: int = param(15, "equal-width confidence bins of the expected calibration error")
    corruptions: tuple[Literal["gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "brightness"], ...] = \
        param(_CORRUPTION_NAMES, "corruptions, each at severities 1..5", metavar="NAME")
    corruption_images: int = param(200, "images per corruption and severity")
    attacks: tuple[Literal["random_sign", "fgsm", "pgd", "autoattack", "autoattack_rand"], ...] = param(
        ATTACK_NAMES, "attacks to run: random-sign noise, FGSM, PGD with EoT, AutoAttack standard, AutoAttack rand "
                      "(with EoT)", metavar="NAME")
    attack_images: int = param(200, "images attacked with random-sign noise and FGSM")
    random_sign_eps: tuple[float, ...] = param((0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
                                               "L∞ sizes of the random-sign noise", units="1/255", metavar="EPS")
    fgsm_eps: tuple[float, ...] = param((0.0, 1.0, 2.0, 4.0, 8.0, 16.0), "L∞ radii of FGSM", units="1/255",
                                        metavar="EPS")
    pgd_images: int = param(100, "images attacked with PGD")
    pgd_eps: tuple[float, ...] = param((0.0, 4.0, 8.0), "L∞ radii of PGD", units="1/255", metavar="EPS")
    pgd_steps: int = param(20, "PGD iterations (step size ε/3, no random start)")
    eot: int = param(4, "PGD on a stochastic model: forward/backward passes (random initial states) whose "
                        "gradients are summed per step")
    autoattack_images: int = param(32, "images attacked with either AutoAttack version")
    autoattack_eps: tuple[float, ...] = param((0.0, 8.0), "L∞ radii of AutoAttack standard (APGD-CE, APGD-T, "
                                                          "FAB-T, Square)", units="1/255", metavar="EPS")
    autoattack_rand_eps: tuple[float, ...] = param((0.0, 8.0), "L∞ radii of AutoAttack rand (APGD-CE and "
                                                               "APGD-DLR, 20 EoT passes each)", units="1/255",
                                                   metavar="EPS")
    batch_size: int = param(100, "images per forward pass and per attack batch")
    seed: int = param(0, "seed of the test subset, the initial states, the corruptions and the attacks")
    device: Literal["auto", "cpu", "cuda"] = param("auto", "evaluation device (auto: CUDA when available)")

    def validate(self) -> None:
        self._positive("test_images", "passes", "n_bins", "corruption_images", "attack_images", "pgd_images",
                       "pgd_steps", "eot", "autoattack_images", "batch_size")
        self._positive("seed", strict=False)
        for name in ("corruption_images", "attack_images", "pgd_images", "autoattack_images"):
            if getattr(self, name) > self.test_images:
                raise ConfigError(name, f"the attacked and corrupted images are taken from the {self.test_images} "
                                        f"test images (test_images), got {getattr(self, name)}")
        for name in ("corruptions", "attacks"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(name, f"expected distinct values, got {' '.join(values)}")
        for name in ("random_sign_eps", "fgsm_eps", "pgd_eps", "autoattack_eps", "autoattack_rand_eps"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(name, f"expected distinct values, got {values}")
            for v in values:
                if not 0.0 <= v <= 255.0:
                    raise ConfigError(name, f"expected radii in [0, 255] (units of 1/255), got {v:g}")
        if self.seed >= 2**31:
            raise ConfigError("seed", f"expected a value below 2**31, got {self.seed}")

    def eps_of(self, attack: str) -> tuple[float, ...]:
        """The ε list (units of 1/255) of ``attack``."""
        return getattr(self, f"{attack}_eps")

    def images_of(self, attack: str) -> int:
        """How many images ``attack`` is run on."""
        return {"random_sign": self.attack_images, "fgsm": self.attack_images, "pgd": self.pgd_images,
                "autoattack": self.autoattack_images, "autoattack_rand": self.autoattack_images}[attack]

    @property
    def ensemble_sizes(self) -> tuple[int, ...]:
        """Ensemble sizes reported: powers of two up to ``passes``, and ``passes``."""
        sizes = {2 ** i for i in range(int(math.log2(self.passes)) + 1)} | {self.passes}
        return tuple(sorted(sizes))


def _seed(*parts: Any) -> int:
    """A 31-bit seed derived from ``parts`` (stable across runs and platforms)."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block under a forked global torch RNG seeded with ``seed``."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def test_subset(test: ImageData, n: int, seed: int) -> tuple[ImageData, np.ndarray]:
    """The first ``n`` images of a seeded random permutation of ``test``, and their indices.

    Every part of the evaluation uses a prefix of this subset, so the subsets are nested.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(test):
        raise ConfigError("test_images", f"the test split has {len(test)} images, got {n!r}")
    index = np.random.default_rng(seed).permutation(len(test))[:n].astype(np.int64)
    return test.subset(index, name=f"{test.name}[{n}@{seed}]"), index


class _Parts:
    """Finished parts of one model's evaluation, mirrored to an HDF5 file after every part."""

    def __init__(self, path: Path | None, key: str) -> None:
        self.path, self.key = path, key
        self.arrays: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            from studies.cache import read_arrays

            try:
                arrays, attrs = read_arrays(path)
            except (ValueError, TypeError, KeyError, OSError):  # unreadable: recompute, it is only a cache
                arrays, attrs = {}, {}
            if attrs.get("key") == key:
                self.arrays = arrays

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def put(self, name: str, value: np.ndarray, seconds: float) -> None:
        self.arrays[name] = np.asarray(value)
        self.arrays[f"{name}.seconds"] = np.asarray(seconds, dtype=np.float64)
        if self.path is not None:
            from studies.cache import write_arrays

            write_arrays(self.path, self.arrays, {"key": self.key})


def _predict(model: torch.nn.Module, x: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
    """Softmax probabilities (float32, CPU) of one batch under a seeded forked RNG."""
    with _seeded(seed, device), torch.no_grad():
        logits = model(x.to(device))
    return torch.softmax(logits.double(), dim=1).float().cpu()


def _attack_batch(model: torch.nn.Module, attack: str, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
                  config: RobustnessEvalConfig, stochastic: bool, n_classes: int,
                  device: torch.device) -> torch.Tensor:
    if attack == "random_sign":
        return random_sign_noise(model, x, y, eps=eps, generator=seed)
    if attack == "fgsm":
        with _seeded(seed, device):
            return fgsm(model, x, y, eps=eps)
    if attack == "pgd":
        return pgd_linf(model, x, y, eps=eps, steps=config.pgd_steps, eot=config.eot if stochastic else 1,
                        seed=seed)
    if attack in ("autoattack", "autoattack_rand"):
        version = "rand" if attack == "autoattack_rand" else "standard"
        return autoattack(model, x, y, eps=eps, version=version, n_classes=n_classes, seed=seed)
    raise ValueError(f"attack: unknown attack {attack!r}; valid: {', '.join(ATTACK_NAMES)}")


# The config fields each kind of part depends on (besides seed, batch_size and the device); a
# part is cached under its name plus a hash of these, so changing one attack's settings
# recomputes that attack only.
_PART_FIELDS = {
    "clean": ("test_images", "passes"),
    "corruption": ("corruption_images",),
    "random_sign": ("attack_images",),
    "fgsm": ("attack_images",),
    "pgd": ("pgd_images", "pgd_steps", "eot"),
    "autoattack": ("autoattack_images",),
    "autoattack_rand": ("autoattack_images",),
}


def _part_key(config: RobustnessEvalConfig, part: tuple[str, ...], device: torch.device) -> str:
    from studies.cache import cache_key

    kind = part[1] if part[0] == "attack" else part[0]
    fields = {name: getattr(config, name) for name in _PART_FIELDS[kind] + ("seed", "batch_size")}
    return ":".join(part) + "@" + cache_key({**fields, "device": device.type})[:10]


def _part_names(config: RobustnessEvalConfig) -> list[tuple[str, ...]]:
    parts: list[tuple[str, ...]] = [("clean",)]
    parts += [("corruption", name, str(sev)) for name in config.corruptions for sev in range(1, 6)]
    parts += [("attack", attack, f"{eps:g}") for attack in ATTACK_NAMES if attack in config.attacks
              for eps in config.eps_of(attack)]
    return parts


def evaluate_model(model: torch.nn.Module, data: ImageData, config: RobustnessEvalConfig, *, stochastic: bool,
                   device: str | torch.device = "cpu", cache: str | os.PathLike | None = None,
                   cache_key: str = "", progress: bool = True, label: str = "model") -> dict[str, np.ndarray]:
    """Run every part of the evaluation on one model.

    Args:
        model: classifier returning logits for images in [0, 1]; put in eval mode.
        data: the test subset (the first ``config.test_images`` images are used, in order).
        config: what to measure.
        stochastic: whether ``model`` draws random initial states (then ``passes`` clean passes
            and ``eot`` gradient samples per PGD step are used).
        device: where to compute.
        cache: HDF5 file of finished parts (read, and rewritten after every part); ``None``: none.
            Parts are stored under their name and a hash of the settings they depend on, so a
            file serves later evaluations with partly different settings.
        cache_key: identity of the model (weights); a cache file with another key is ignored.
        progress: show a progress bar over the parts.
        label: the model's name in the progress bar.

    Returns:
        ``{part: array}``: ``"clean"`` float32 ``[passes, N, n_classes]`` probabilities,
        ``"corruption:<name>:<severity>"`` and ``"attack:<name>:<eps>"`` int8 correctness
        ``[n_images]``, and ``"<part>.seconds"`` wall-clock times.
    """
    from tqdm import tqdm

    if not isinstance(config, RobustnessEvalConfig):
        raise TypeError(f"config: expected a RobustnessEvalConfig, got {type(config).__name__}")
    if not isinstance(data, ImageData):
        raise TypeError(f"data: expected an ImageData, got {type(data).__name__}")
    if len(data) < config.test_images:
        raise ConfigError("test_images", f"the test set has {len(data)} images, got {config.test_images}")
    device = torch.device(device)
    model = model.to(device).eval()
    images = torch.from_numpy(data.images[:config.test_images])
    labels = torch.from_numpy(data.labels[:config.test_images])
    n_classes, batch = data.n_classes, config.batch_size
    parts = _Parts(Path(cache) if cache is not None else None, cache_key)

    def predict_seed(p: int, start: int) -> int:
        return _seed(config.seed, "predict", p, start)

    names = _part_names(config)
    bar = tqdm(names, desc=label, unit="part", disable=not progress, dynamic_ncols=True)
    done: dict[str, np.ndarray] = {}
    try:
        for part in bar:
            name = ":".join(part)  # no "/": HDF5 would read it as a group path
            stored = _part_key(config, part, device)
            if stored in parts:
                done[name], done[f"{name}.seconds"] = parts[stored], parts[f"{stored}.seconds"]
                continue
            bar.set_postfix_str(" ".join(part), refresh=True)
            started = time.perf_counter()
            if part[0] == "clean":
                n_passes = config.passes if stochastic else 1
                probs = np.empty((config.passes, len(images), n_classes), dtype=np.float32)
                for p in range(n_passes):
                    for start in range(0, len(images), batch):
                        probs[p, start:start + batch] = _predict(model, images[start:start + batch],
                                                                 predict_seed(p, start), device).numpy()
                probs[n_passes:] = probs[0]  # a deterministic model: further passes are copies
                result = probs
            elif part[0] == "corruption":
                corruption, severity = part[1], int(part[2])
                generator = torch.Generator().manual_seed(_seed(config.seed, "corrupt", corruption, severity))
                n = config.corruption_images
                result = np.empty(n, dtype=np.int8)
                for start in range(0, n, batch):
                    x = corrupt(images[start:min(start + batch, n)], corruption, severity, generator=generator)
                    pred = _predict(model, x, predict_seed(0, start), device).argmax(dim=1)
                    result[start:start + len(x)] = (pred == labels[start:start + len(x)]).numpy()
            else:
                attack, eps_255 = part[1], float(part[2])
                n = config.images_of(attack)
                result = np.empty(n, dtype=np.int8)
                for start in range(0, n, batch):
                    stop = min(start + batch, n)
                    x, y = images[start:stop].to(device), labels[start:stop].to(device)
                    x_adv = _attack_batch(model, attack, x, y, eps_255 / 255.0,
                                          _seed(config.seed, "attack", attack, part[2], start), config, stochastic,
                                          n_classes, device)
                    pred = _predict(model, x_adv, predict_seed(0, start), device).argmax(dim=1)
                    result[start:stop] = (pred == labels[start:stop]).numpy()
                model.eval()  # torchattacks restores the mode it found; keep eval explicitly
            seconds = time.perf_counter() - started
            parts.put(stored, result, seconds)
            done[name], done[f"{name}.seconds"] = result, np.asarray(seconds)
    finally:
        bar.close()
    return done


# -- the Dataset ---------------------------------------------------------------------------------

def _var(dims: tuple[str, ...], values: Any, long_name: str, units: str | None = "1") -> xr.Variable:
    attrs = {"long_name": long_name}
    if units is not None:
        attrs["units"] = units
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
    from studies.storage import result_attrs

    def stack(name: str) -> np.ndarray:
        return np.stack([np.asarray(m[name]) for m in per_model])

    edges = np.linspace(0.0, 1.0, config.n_bins + 1)
    M = ("model",)
    ds = xr.Dataset(
        {
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
                                   "wall-clock time of the attack and the predictions", "s"),
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
        },
        coords={
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
        },
        attrs=result_attrs(
            "robustness", config, config.seed, data=train_configs[0].data, test_split_size=int(split_size),
            train_configs=json.dumps({m: c.to_dict() for m, c in zip(models, train_configs)}, sort_keys=True),
            pgd_step="eps/3", pgd_random_start=0, torchattacks_version=_torchattacks_version(),
            paper_reference=json.dumps(PAPER_REFERENCE, sort_keys=True)),
    )
    return ds


def _train_count(config: RobustnessTrainConfig) -> float:
    return math.nan if config.train_images is None else float(config.train_images)


def _torchattacks_version() -> str:
    try:
        from importlib import metadata

        return metadata.version("torchattacks")
    except Exception:  # the package is optional; its absence is not an error here
        return "absent"


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "'cuda' requested but CUDA is not available; use cpu or auto")
    return torch.device(name)


def evaluate(runs: Sequence[str | os.PathLike], config: RobustnessEvalConfig, *, path: str | os.PathLike,
             labels: Sequence[str] | None = None, progress: bool = True) -> xr.Dataset:
    """Evaluate trained runs and write one Dataset (netCDF4/HDF5) to ``path``.

    Args:
        runs: run directories of ``akorn robustness train`` (all trained on the same data set).
        config: what to measure.
        path: the result file (``robustness.h5``); finished parts are cached in
            ``<path's directory>/robustness-parts/``.
        labels: names of the runs in the ``model`` coordinate (default: the model names).
        progress: show progress bars.

    Returns:
        The Dataset, with dimensions ``model``, ``attack`` × ``eps`` (× ``attack_image``),
        ``corruption`` × ``severity``, ``bin``, ``ensemble``, ``pass`` × ``image`` × ``class``.

    Raises:
        ConfigError: a field does not fit the data.
        RunError: no runs, duplicate labels, runs trained on different data sets, or an unreadable
            run config.
        FileNotFoundError: a run directory without config or checkpoint, or missing data files.
    """
    from studies.cache import cache_key
    from studies.storage import write_dataset

    if not isinstance(config, RobustnessEvalConfig):
        raise TypeError(f"config: expected a RobustnessEvalConfig, got {type(config).__name__}")
    runs = [str(r) for r in runs]
    if not runs:
        raise RunError("runs: expected at least one run directory of 'akorn robustness train'")
    path = Path(path)
    device = _resolve_device(config.device)
    loaded = [load_run(r, device="cpu") for r in runs]
    train_configs = [cfg for _, cfg, _ in loaded]
    if labels is None:
        labels = [cfg.model for cfg in train_configs]
    labels = [str(label) for label in labels]
    if len(labels) != len(runs):
        raise RunError(f"labels: expected one label per run ({len(runs)}), got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise RunError(f"labels: runs need distinct names, got {', '.join(labels)}; name them with --labels")
    datasets = {(cfg.data, cfg.data_root) for cfg in train_configs}
    if len({d for d, _ in datasets}) > 1:
        raise RunError(f"runs: trained on different data sets ({', '.join(sorted({d for d, _ in datasets}))}); "
                         f"evaluate them separately")
    first = train_configs[0]
    test = load_images(first.data, "test", first.data_root)
    data, index = test_subset(test, config.test_images, config.seed)
    split_size = len(test)
    del test

    eps_grid = np.array(sorted({float(e) for a in config.attacks for e in config.eps_of(a)}), dtype=np.float64)
    attack_n = max([config.images_of(a) for a in config.attacks], default=1)
    per_model, probs = [], []
    for (model, cfg, info), label in zip(loaded, labels):
        key = cache_key({"train": cfg.to_dict(), "step": info["step"], "weights": info["weights"], "version": 1})
        cache = path.parent / _PARTS_DIR / f"{label}-{key}.h5"
        results = evaluate_model(model, data, config, stochastic=cfg.stochastic, device=device, cache=cache,
                                 cache_key=key, progress=progress, label=label)
        per_model.append(_model_arrays(results, data.labels, config, eps_grid, attack_n))
        probs.append(results["clean"])
    ds = _build_dataset(per_model, labels, [i for _, _, i in loaded], train_configs, runs, data, split_size, index,
                        probs, config, eps_grid, attack_n)
    write_dataset(ds, path)
    return ds
