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

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kuramoto.checks import is_int
from studies.config import ConfigError
from studies.protocol import Outcome
from studies.robustness.config import (
    DEFAULT_OUT,
    RESUMABLE,
    RobustnessTrainConfig,
    RunError,
)
from studies.robustness.data import ImageData, load_cifar10, load_fashion_mnist, textured_shapes
from studies.robustness.models import build_model, read_run_config
from studies.rundir import check_resumable, claim, config_path, is_writer, start_over, write_config
from studies.training import TrainConfig, Trainer, is_main_process, seed_everything

__all__ = ["train_command", "augment", "classification_loss", "load_images", "to_uint8", "train"]






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
    if not is_int(padding) or padding < 0:
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


def training_config(config: RobustnessTrainConfig) -> TrainConfig:
    """The :class:`studies.training.TrainConfig` of a run."""
    return TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                       weight_decay=config.weight_decay, grad_clip=config.grad_clip, ema_decay=config.ema_decay,
                       ema_every=config.ema_every, ema_after=config.ema_after, seed=config.seed, num_workers=0,
                       log_every=config.log_every, device=config.device, checkpoint_every=config.checkpoint_every)


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

    if not isinstance(config, RobustnessTrainConfig):
        raise TypeError(f"config: expected a RobustnessTrainConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    if config_path(out_dir).is_file():
        check_resumable(read_run_config(out_dir).to_dict(), config.to_dict(), RESUMABLE, where=str(out_dir),
                        fix="Use another --out for a new run.")

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
        trainer = Trainer(model, classification_loss(config), dataset, training_config(config), out_dir=out_dir,
                          eval_fn=eval_fn, eval_every=eval_every, progress=progress)
    except ValueError as exc:  # an unreadable checkpoint, or one past --epochs: a problem of the run directory
        raise RunError("out", str(exc)) from exc
    if is_main_process():
        write_config(out_dir, config)
    return trainer.fit()


def train_command(config: RobustnessTrainConfig, args: Any) -> Outcome:
    """``akorn robustness train``: train ``config.model`` into ``--out`` (default ``results/robustness/<model>``)."""
    started = time.perf_counter()
    out = Path(args.out) if args.out else Path(DEFAULT_OUT) / config.model
    with claim(out, writer=is_writer()):  # one writer per run directory
        if getattr(args, "overwrite", False) and is_writer():
            start_over(out, extra=("train.h5",))
        history = train(config, out, progress=args.progress)
    last = {k: float(history[k].values[-1]) for k in ("epoch_loss", "epoch_acc", "eval_ema_acc", "eval_acc")
            if k in history and history.sizes.get("epoch", 0)}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items())
    return Outcome(lines=[f"trained {config.model}: epoch {history.sizes.get('epoch', 0)}/{config.epochs} in {out} "
                          f"({shown}); this command took {(time.perf_counter() - started) / 60:.1f} min",
                          f"next: akorn robustness eval {out}"])
