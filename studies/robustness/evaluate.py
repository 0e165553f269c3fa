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
  for a stochastic model such as AKOrN, docs/AKORN.md §5.3), each at its own list of ε (in units of
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
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from studies.cache import cache_key, read_arrays, write_arrays
from studies.config import ConfigError
from studies.files import exclusive
from studies.protocol import Outcome
from studies.robustness.attacks import autoattack, fgsm, pgd_linf, random_sign_noise
from studies.robustness.config import (
    _PARTS_DIR,
    ATTACK_NAMES,
    FILENAME,
    RobustnessEvalConfig,
    RunError,
)
from studies.robustness.corruptions import corrupt
from studies.robustness.data import ImageData
from studies.robustness.models import load_run
from studies.robustness.plots import plot_reliability_diagrams
from studies.robustness.results import _build_dataset, _model_arrays
from studies.robustness.train import load_images
from studies.storage import write_dataset

__all__ = ["eval_command", "evaluate", "evaluate_model", "test_subset"]






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
    kind = part[1] if part[0] == "attack" else part[0]
    fields = {name: getattr(config, name) for name in _PART_FIELDS[kind] + ("seed", "batch_size")}
    return ":".join(part) + "@" + cache_key({**fields, "device": device.type})[:10]


def _part_names(config: RobustnessEvalConfig) -> list[tuple[str, ...]]:
    parts: list[tuple[str, ...]] = [("clean",)]
    parts += [("corruption", name, str(sev)) for name in config.corruptions for sev in range(1, 6)]
    parts += [("attack", attack, f"{eps:g}") for attack in ATTACK_NAMES if attack in config.attacks
              for eps in config.eps_of(attack)]
    return parts


def _predict_seed(config: RobustnessEvalConfig, p: int, start: int) -> int:
    return _seed(config.seed, "predict", p, start)


def _run_part(part: tuple[str, ...], model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
              config: RobustnessEvalConfig, stochastic: bool, n_classes: int, device: torch.device) -> np.ndarray:
    """One part of the evaluation: the clean passes, one corruption at one severity, or one attack at one ε."""
    if part[0] == "clean":
        return _clean(model, images, config, stochastic, n_classes, device)
    if part[0] == "corruption":
        return _corrupted(model, images, labels, config, part[1], int(part[2]), device)
    result = _attacked(model, images, labels, config, part, stochastic, n_classes, device)
    model.eval()  # torchattacks restores the mode it found; keep eval explicitly
    return result


def _clean(model: torch.nn.Module, images: torch.Tensor, config: RobustnessEvalConfig, stochastic: bool,
           n_classes: int, device: torch.device) -> np.ndarray:
    """Softmax probabilities ``[passes, N, n_classes]`` of the clean images."""
    batch = config.batch_size
    n_passes = config.passes if stochastic else 1
    probs = np.empty((config.passes, len(images), n_classes), dtype=np.float32)
    for p in range(n_passes):
        for start in range(0, len(images), batch):
            probs[p, start:start + batch] = _predict(model, images[start:start + batch],
                                                     _predict_seed(config, p, start), device).numpy()
    probs[n_passes:] = probs[0]  # a deterministic model: further passes are copies
    return probs


def _corrupted(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, config: RobustnessEvalConfig,
               corruption: str, severity: int, device: torch.device) -> np.ndarray:
    """Correctness ``[corruption_images]`` under one corruption at one severity."""
    batch = config.batch_size
    generator = torch.Generator().manual_seed(_seed(config.seed, "corrupt", corruption, severity))
    n = config.corruption_images
    result = np.empty(n, dtype=np.int8)
    for start in range(0, n, batch):
        x = corrupt(images[start:min(start + batch, n)], corruption, severity, generator=generator)
        pred = _predict(model, x, _predict_seed(config, 0, start), device).argmax(dim=1)
        result[start:start + len(x)] = (pred == labels[start:start + len(x)]).numpy()
    return result


def _attacked(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, config: RobustnessEvalConfig,
              part: tuple[str, ...], stochastic: bool, n_classes: int, device: torch.device) -> np.ndarray:
    """Correctness ``[images_of(attack)]`` after one attack at one ε (in units of 1/255)."""
    batch = config.batch_size
    attack, eps_255 = part[1], float(part[2])
    n = config.images_of(attack)
    result = np.empty(n, dtype=np.int8)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        x, y = images[start:stop].to(device), labels[start:stop].to(device)
        x_adv = _attack_batch(model, attack, x, y, eps_255 / 255.0,
                              _seed(config.seed, "attack", attack, part[2], start),
                              config, stochastic, n_classes, device)
        pred = _predict(model, x_adv, _predict_seed(config, 0, start), device).argmax(dim=1)
        result[start:stop] = (pred == labels[start:stop]).numpy()
    return result


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
    n_classes = data.n_classes
    parts = _Parts(Path(cache) if cache is not None else None, cache_key)

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
            result = _run_part(part, model, images, labels, config, stochastic, n_classes, device)
            seconds = time.perf_counter() - started
            parts.put(stored, result, seconds)
            done[name], done[f"{name}.seconds"] = result, np.asarray(seconds)
    finally:
        bar.close()
    return done


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

    if not isinstance(config, RobustnessEvalConfig):
        raise TypeError(f"config: expected a RobustnessEvalConfig, got {type(config).__name__}")
    runs = [str(r) for r in runs]
    if not runs:
        raise RunError("runs", "expected at least one run directory of 'akorn robustness train'")
    path = Path(path)
    device = _resolve_device(config.device)
    loaded = [load_run(r, device="cpu") for r in runs]
    train_configs = [cfg for _, cfg, _ in loaded]
    if labels is None:
        labels = [cfg.model for cfg in train_configs]
    labels = [str(label) for label in labels]
    if len(labels) != len(runs):
        raise RunError("labels", f"expected one label per run ({len(runs)}), got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise RunError("labels", f"runs need distinct names, got {', '.join(labels)}; name them with --labels")
    datasets = {(cfg.data, cfg.data_root) for cfg in train_configs}
    if len({d for d, _ in datasets}) > 1:
        raise RunError("runs", f"trained on different data sets ({', '.join(sorted({d for d, _ in datasets}))}); "
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


def eval_command(config: RobustnessEvalConfig, args: Any) -> Outcome:
    """``akorn robustness eval RUN ...``: evaluate the runs into ``<out>/robustness.h5`` (reliability diagrams
    beside it)."""
    out = Path(args.out)
    path = out / FILENAME
    with exclusive(path):  # one writer per result file and its partial file
        ds = evaluate(args.runs, config, path=path, labels=args.labels, progress=args.progress)
    lines = [f"wrote {p}" for p in plot_reliability_diagrams(ds, out, stem=path.stem)] if args.plot else []
    return Outcome(lines=lines, dataset=ds, path=path)
