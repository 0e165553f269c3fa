"""Training of the robustness study's classifiers: AKOrN, AKOrN^mix and a convolutional baseline.

``akorn robustness train --model {akorn,akorn-mix,convnet}`` builds the model from a
:class:`RobustnessTrainConfig`, loads the training split (Fashion-MNIST by default), and hands
model, cross-entropy objective and data to :class:`studies.training.Trainer`, which provides
Adam, EMA, atomic checkpoints after every epoch, exact resume and DDP under ``torchrun``.

A run directory holds ``config.json`` (this config; what ``akorn robustness eval`` rebuilds the
model from), ``checkpoint.pt`` (weights, EMA, optimizer and RNG states) and ``train.h5``
(the per-step and per-epoch history). Running the same command again continues from the last
complete epoch; ``--epochs`` may be raised to train further, every other field must match.

Images are held as uint8 ``[N, 3, 32, 32]`` tensors (a fifth of the float32 size) and turned
into floats in [0, 1] per batch; augmentation (random crop from a zero-padded image and a
horizontal flip) runs batched on the training device and draws from the global torch
generator, which the trainer seeds and checkpoints, so a resumed run sees the same crops.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studies.config import ConfigError, StudyConfig, param

from .data import ImageData, load_cifar10, load_fashion_mnist, textured_shapes

__all__ = [
    "CONFIG_NAME",
    "MODELS",
    "RobustnessTrainConfig",
    "RunError",
    "augment",
    "build_model",
    "classification_loss",
    "is_stochastic",
    "load_images",
    "load_run",
    "read_run_config",
    "to_uint8",
    "train",
]

CONFIG_NAME = "config.json"
"""File name of the study config inside a run directory."""

MODELS = ("akorn", "akorn-mix", "convnet")
"""Model names accepted by ``--model``."""

_STOCHASTIC = frozenset({"akorn", "akorn-mix"})
# Fields that may differ between a run directory's config.json and the command resuming it:
# they change neither the model nor the training trajectory.
_RESUMABLE = frozenset({"epochs", "checkpoint_every", "device", "val_images"})


class RunError(ValueError):
    """A run directory cannot be used: it was made with another config, or its config is unreadable."""


@dataclasses.dataclass(frozen=True)
class RobustnessTrainConfig(StudyConfig):
    """How to train one classifier of the robustness study (defaults: the quick preset).

    The quick preset trains a quarter-width AKOrN (16/32/64 channels, n = 2, T = 3, γ = 1) with
    coupling kernels 5/5/3 and a ConvNet of the same parameter count (≈0.4 M) for two epochs on
    20,000 Fashion-MNIST images; on the 2-core CPU this was written on that is about 5 min for
    AKOrN and 3 min for the ConvNet when the machine is idle, 40 and 25 min under heavy load from
    other jobs (see :mod:`studies.robustness.study` for the measurements; ``--epochs`` can be
    raised later to continue a run). The paper preset is the published CIFAR-10 recipe
    (AKORN.md §4.1, §5.3): width 64, kernels 9/7/5, Adam 1e-4, batch 128, 400 epochs, EMA 0.99
    every 10 steps after 200, and a ResNet-18-shaped ConvNet (64-512 channels, 4 stages of 2
    blocks); its augmentation is crop-and-flip, not the paper's AugMix pipeline.
    """

    study: ClassVar[str] = "robustness"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"data": "cifar10", "train_images": None, "val_images": 1000, "width": 64,
                  "kernel_sizes": (9, 7, 5), "heads": 8, "convnet_width": 64, "convnet_depth": 4, "epochs": 400,
                  "batch_size": 128, "lr": 1e-4, "ema_every": 10, "ema_after": 200, "crop_padding": 4,
                  "checkpoint_every": 10},
    }

    model: Literal["akorn", "akorn-mix", "convnet"] = param(
        "akorn", "classifier: AKOrN (conv coupling in every block), AKOrN^mix (attention coupling in the last "
                 "block) or the convolutional baseline (pre-activation ResNet)")
    data: Literal["fashion-mnist", "textured-shapes", "cifar10"] = param(
        "fashion-mnist", "image set: Fashion-MNIST (Debian package dataset-fashion-mnist), the generated textured "
                         "shapes, or CIFAR-10 (files under --data-root or $AKORN_CIFAR10)")
    data_root: str | None = param(None, "directory of the data files (default: the loader's standard place)",
                                  metavar="DIR")
    train_images: int | None = param(20000, "training images: a seeded random subset of the training split "
                                            "(none: all of it; for textured shapes the number rendered)")
    val_images: int = param(500, "test images whose accuracy is logged after every epoch (0: none); a monitor "
                                 "only, the full evaluation is 'akorn robustness eval'")
    width: int = param(16, "AKOrN: channels of the first block (doubled in every further block)")
    depth: int = param(3, "AKOrN: number of Kuramoto blocks L")
    n: int = param(2, "AKOrN: oscillator dimension (2 is the paper's robust setting)")
    steps: int = param(3, "AKOrN: Kuramoto steps T per block")
    gamma: float = param(1.0, "AKOrN: step size γ of the Kuramoto update", units="1")
    kernel_sizes: tuple[int, ...] = param((5, 5, 3), "AKOrN: conv-coupling kernel per block (one value: all "
                                                     "blocks)", metavar="INT")
    heads: int = param(4, "AKOrN^mix: attention heads of the last block")
    convnet_width: int = param(24, "ConvNet: channels of the first stage (doubled per stage)")
    convnet_depth: int = param(3, "ConvNet: number of stages")
    convnet_blocks: int = param(2, "ConvNet: basic blocks per stage")
    epochs: int = param(6, "passes over the training images (may be raised to continue a finished run)")
    batch_size: int = param(64, "global batch size (split over DDP processes)")
    lr: float = param(1e-3, "Adam learning rate (constant)", units="1")
    weight_decay: float = param(0.0, "Adam L2 penalty", units="1")
    grad_clip: float | None = param(None, "clip the gradient's global L2 norm to this value (none: no clipping)",
                                    units="1")
    ema_decay: float | None = param(0.99, "decay of the weight average that is evaluated (none: evaluate the raw "
                                          "weights)", units="1")
    ema_every: int = param(1, "update the weight average every this many optimizer steps")
    ema_after: int = param(100, "optimizer steps during which the average just copies the weights")
    augment: Literal["none", "crop", "flip", "crop-flip"] = param(
        "crop-flip", "training augmentation: random crop from a zero-padded image and/or horizontal flip")
    crop_padding: int = param(2, "zero padding of the random crop, in pixels", units="pixel")
    seed: int = param(0, "seed of the weights, the data order, the augmentation and the training subset")
    device: Literal["auto", "cpu", "cuda"] = param("auto", "training device (auto: CUDA when available)")
    checkpoint_every: int = param(1, "write a checkpoint every this many epochs (and after the last)")
    log_every: int = param(10, "a row of the per-step history every this many steps")

    def validate(self) -> None:
        self._positive("width", "depth", "steps", "gamma", "heads", "convnet_width", "convnet_depth",
                       "convnet_blocks", "epochs", "batch_size", "lr", "ema_every", "checkpoint_every", "log_every",
                       "train_images", "grad_clip")
        self._positive("val_images", "weight_decay", "ema_after", "crop_padding", "seed", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected an oscillator dimension >= 2, got {self.n}")
        if self.n % 2:
            raise ConfigError("n", f"the learned rotation Ω pairs components, so n must be even, got {self.n}")
        if self.width % self.n:
            raise ConfigError("width", f"must be a multiple of n={self.n} (channels are grouped into oscillators), "
                                       f"got {self.width}")
        if self.depth > 6:
            raise ConfigError("depth", f"32×32 images allow at most 6 blocks (each after the first halves the "
                                       f"side), got {self.depth}")
        if len(self.kernel_sizes) not in (1, self.depth):
            raise ConfigError("kernel_sizes", f"expected one value or one per block (depth={self.depth}), got "
                                              f"{len(self.kernel_sizes)} values {self.kernel_sizes}")
        for k in self.kernel_sizes:
            if k < 1 or k % 2 == 0:
                raise ConfigError("kernel_sizes", f"expected odd positive kernel sizes (they keep H×W), got {k}")
        if self.model == "akorn-mix" and (self.width * 2 ** (self.depth - 1)) % self.heads:
            raise ConfigError("heads", f"the last block has {self.width * 2 ** (self.depth - 1)} channels, which "
                                       f"must be a multiple of heads, got {self.heads}")
        if self.convnet_depth > 6:
            raise ConfigError("convnet_depth", f"32×32 images allow at most 6 stages, got {self.convnet_depth}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay", f"expected a value in [0, 1) or none, got {self.ema_decay}")
        if self.seed >= 2**31:
            raise ConfigError("seed", f"expected a value below 2**31, got {self.seed}")

    @property
    def stochastic(self) -> bool:
        """Whether the model draws random initial states on every forward pass."""
        return self.model in _STOCHASTIC

    def training_config(self) -> Any:
        """The :class:`studies.training.TrainConfig` of this run."""
        from studies.training import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, grad_clip=self.grad_clip, ema_decay=self.ema_decay,
                           ema_every=self.ema_every, ema_after=self.ema_after, seed=self.seed, num_workers=0,
                           log_every=self.log_every, device=self.device, checkpoint_every=self.checkpoint_every)


def is_stochastic(config: RobustnessTrainConfig) -> bool:
    """Whether ``config``'s model is stochastic (AKOrN draws random initial oscillators)."""
    if not isinstance(config, RobustnessTrainConfig):
        raise TypeError(f"config: expected a RobustnessTrainConfig, got {type(config).__name__}")
    return config.stochastic


# -- models --------------------------------------------------------------------------------------

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
    from networks.models.baselines import ConvNet
    from networks.models.classifier import AKOrNClassifier

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


# -- data ----------------------------------------------------------------------------------------

def load_images(data: str, split: str, data_root: str | None = None, n: int | None = None) -> ImageData:
    """A split of one of the study's image sets.

    Args:
        data: ``"fashion-mnist"``, ``"textured-shapes"`` or ``"cifar10"``.
        split: ``"train"`` or ``"test"``.
        data_root: directory of the files (Fashion-MNIST, CIFAR-10) or the cache directory of
            the generated textured shapes; ``None`` for the loaders' defaults.
        n: textured shapes only: number of images to render (default: the generator's,
            20,000 / 4,000). The other sets are returned whole.

    Returns:
        The split as :class:`~studies.robustness.data.ImageData` (float32 ``[N, 3, 32, 32]``).
    """
    if data == "fashion-mnist":
        return load_fashion_mnist(split, root=data_root)
    if data == "cifar10":
        return load_cifar10(split, root=data_root)
    if data == "textured-shapes":
        return textured_shapes(split, n=n, cache_dir=data_root)
    raise ValueError(f"data: expected 'fashion-mnist', 'textured-shapes' or 'cifar10', got {data!r}")


def to_uint8(images: np.ndarray) -> torch.Tensor:
    """Float images in [0, 1] → uint8 tensor (exact for 8-bit sources, whose values are k/255)."""
    return torch.from_numpy(np.rint(np.asarray(images, dtype=np.float32) * 255.0).astype(np.uint8))


def _training_subset(config: RobustnessTrainConfig) -> ImageData:
    n_render = config.train_images if config.data == "textured-shapes" else None
    train = load_images(config.data, "train", config.data_root, n=n_render)
    if config.train_images is not None and config.train_images < len(train):
        train = train.take(config.train_images, seed=config.seed)
    elif config.train_images is not None and config.train_images > len(train):
        raise ConfigError("train_images", f"the {config.data} training split has {len(train)} images, "
                                          f"got train_images={config.train_images}")
    return train


def augment(images: torch.Tensor, *, padding: int = 0, flip: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop from a zero-padded image and random horizontal flip, batched.

    Every image gets its own offset ``(dy, dx)`` uniform in ``{0, ..., 2 padding}²`` into the
    image padded by ``padding`` zeros on each side (a shift by ``dy - padding`` rows and
    ``dx - padding`` columns with the uncovered border black), and is mirrored left-right
    with probability 1/2.

    Args:
        images: ``[B, C, H, W]`` floating tensor.
        padding: zero padding in pixels (0: no crop).
        flip: mirror half of the images.
        generator: random source (default: torch's global generator on the images' device).

    Returns:
        The augmented images ``[B, C, H, W]``, same dtype and device.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise TypeError(f"images: expected a floating tensor [B, C, H, W], got "
                        f"{type(images).__name__} {tuple(getattr(images, 'shape', ()))}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding: expected an int >= 0, got {padding!r}")
    if not isinstance(flip, bool):
        raise TypeError(f"flip: expected a bool, got {type(flip).__name__}")
    b, _, h, w = images.shape
    device = images.device
    out = images
    if padding:
        padded = F.pad(images, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device)
        dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device)
        rows = dy[:, None] + torch.arange(h, device=device)            # [B, H]
        cols = dx[:, None] + torch.arange(w, device=device)            # [B, W]
        batch = torch.arange(b, device=device)[:, None, None]
        # Advanced indexing on [B, H', W', C] picks pixel (rows[b, i], cols[b, j]) of image b.
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        out = out.contiguous()
    if flip:
        mirror = torch.rand(b, generator=generator, device=device) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out


def classification_loss(config: RobustnessTrainConfig):
    """The objective ``loss_fn(model, (images_uint8, labels)) -> (cross-entropy, {"acc": ...})`` of a run."""
    padding = config.crop_padding if config.augment in ("crop", "crop-flip") else 0
    flip = config.augment in ("flip", "crop-flip")

    def loss_fn(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, labels = batch
        x = augment(images.float() / 255.0, padding=padding, flip=flip)
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.detach().argmax(dim=1) == labels).float().mean()
        return loss, {"acc": acc}

    return loss_fn


def _accuracy_fn(images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    def eval_fn(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        correct = 0
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                x = images[start:start + batch_size].to(device).float() / 255.0
                y = labels[start:start + batch_size].to(device)
                correct += int((model(x).argmax(dim=1) == y).sum())
        return {"acc": correct / images.shape[0]}

    return eval_fn


# -- runs ----------------------------------------------------------------------------------------

def read_run_config(run_dir: str | os.PathLike) -> RobustnessTrainConfig:
    """The config a run directory was trained with (its ``config.json``).

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``config.json``.
        RunError: the file is not a valid config.
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"run: {str(run_dir)!r} holds no {CONFIG_NAME}; is it the --out directory of "
                                f"'akorn robustness train'?")
    try:
        return RobustnessTrainConfig.from_json(path.read_text())
    except (ValueError, TypeError) as exc:
        raise RunError(f"run: {str(path)!r} is not a robustness training config ({exc})") from exc


def _check_resumable(saved: RobustnessTrainConfig, config: RobustnessTrainConfig, out_dir: Path) -> None:
    old, new = saved.to_dict(), config.to_dict()
    changed = [f"{k}: {old[k]!r} in the run, {new[k]!r} now" for k in sorted(new)
               if k not in _RESUMABLE and old.get(k) != new[k]]
    if changed:
        raise RunError(f"out: {str(out_dir)!r} holds a run with a different config ({'; '.join(changed)}); only "
                         f"{', '.join(sorted(_RESUMABLE))} may change when continuing a run. Use another --out "
                         f"for a new run.")


def train(config: RobustnessTrainConfig, out_dir: str | os.PathLike, *, progress: bool = True) -> Any:
    """Train ``config.model`` into ``out_dir`` (resuming a run found there) and return the history.

    Args:
        config: what to train.
        out_dir: the run directory (``config.json``, ``checkpoint.pt``, ``train.h5``).
        progress: show a tqdm bar per epoch.

    Returns:
        The training history (``xarray.Dataset``, see :attr:`studies.training.Trainer.history`).

    Raises:
        ConfigError: a field does not fit the data or the model.
        RunError: ``out_dir`` holds a run made with a different config, an unreadable checkpoint,
            or one already past ``config.epochs``.
        FileNotFoundError: the data files are missing (the message says how to get them).
    """
    from studies.cache import atomic_path
    from studies.training import Trainer, is_main_process, seed_everything

    if not isinstance(config, RobustnessTrainConfig):
        raise TypeError(f"config: expected a RobustnessTrainConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    config_path = out_dir / CONFIG_NAME
    if config_path.is_file():
        _check_resumable(read_run_config(out_dir), config, out_dir)

    train_set = _training_subset(config)
    seed_everything(config.seed)  # the initial weights; a resumed run loads them from the checkpoint
    model = build_model(config, num_classes=train_set.n_classes)
    images, labels = to_uint8(train_set.images), torch.from_numpy(train_set.labels)
    del train_set
    dataset = torch.utils.data.TensorDataset(images, labels)

    eval_fn = eval_every = None
    if config.val_images:
        test = load_images(config.data, "test", config.data_root)
        if config.val_images > len(test):
            raise ConfigError("val_images", f"the test split has {len(test)} images, got {config.val_images}")
        val = test.take(config.val_images, seed=config.seed)
        eval_fn = _accuracy_fn(to_uint8(val.images), torch.from_numpy(val.labels), 250)
        eval_every = 1

    try:
        trainer = Trainer(model, classification_loss(config), dataset, config.training_config(), out_dir=out_dir,
                          eval_fn=eval_fn, eval_every=eval_every, progress=progress)
    except ValueError as exc:  # an unreadable checkpoint, or one past --epochs: a problem of the run directory
        raise RunError(f"out: {exc}") from exc
    if is_main_process():
        with atomic_path(config_path) as tmp:
            tmp.write_text(json.dumps(config.to_dict(), sort_keys=True, indent=1) + "\n")
    return trainer.fit()


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
    import xarray as xr

    from studies.training import CHECKPOINT_NAME, load_model_weights

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
