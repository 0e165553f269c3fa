"""SimCLR training of the object-discovery models (docs/AKORN.md §5.2, §6).

:func:`info_nce` is the official objective: the ``2B`` embeddings of ``B`` images' two views
are L2-normalised, every pair's inner product divided by τ is a logit, each embedding's own
logit is masked out, and row ``i`` is classified against its other view. Under DDP
:class:`SimCLRObjective` all-gathers the embeddings of every rank first (differentiably), so
every rank computes the loss of the global batch and the averaged gradient equals the
single-process one.

:func:`train_run` builds data, model and :class:`~studies.training.Trainer` from a
:class:`~studies.objects.config.Config` and trains (or resumes) a run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from kuramoto.checks import is_real
from studies.objects.augment import SimCLRAugment
from studies.objects.config import Config, check_run_config, run_dir
from studies.objects.data import load_scenes
from studies.objects.evaluate import MODEL_NAMES, evaluate_run, predict_masks
from studies.objects.metrics import fg_ari, mbo
from studies.objects.models import build_model
from studies.objects.plots import plot_training
from studies.objects.scenes import SceneData
from studies.protocol import Outcome
from studies.rundir import CONFIG_NAME, claim, is_writer, start_over, write_config
from studies.training import TrainConfig, Trainer, seed_everything

__all__ = ["SimCLRObjective", "build_model", "history_text", "info_nce", "run", "train_command", "train_run"]


def _simclr_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked logits ``[2B, 2B]`` and targets ``[2B]`` of the InfoNCE classification."""
    if not isinstance(z1, torch.Tensor) or not isinstance(z2, torch.Tensor):
        raise TypeError("z1, z2: expected torch tensors")
    if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 1:
        raise ValueError(f"z1, z2: expected two embeddings [B, D] of the same shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if not is_real(temperature) or not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    logits = (z @ z.T) / temperature
    eye = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))   # an embedding is never its own candidate
    target = torch.arange(2 * b, device=z.device).roll(b)   # row i's positive is row (i + B) mod 2B
    return logits, target


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's InfoNCE (NT-Xent) loss of paired embeddings.

    With ``z = normalise(cat(z1, z2))`` (``2B`` unit rows) and ``s_ij = z_i · z_j / τ``:
    ``L = mean_i [ -s_{i,p(i)} + log Σ_{j ≠ i} exp(s_ij) ]`` where ``p(i) = (i + B) mod 2B`` is
    the other view of the same image. Its minimum over ``z2`` for given negatives puts each
    positive on its anchor (cosine 1).

    Args:
        z1: ``[B, D]`` embeddings of the first views.
        z2: ``[B, D]`` embeddings of the second views (row ``i`` pairs with ``z1[i]``).
        temperature: τ (0.1 in the paper).

    Returns:
        The scalar loss (mean over the ``2B`` rows).

    References:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
        ICML 2020, Eq. 1; docs/AKORN.md §5.2.
    """
    logits, target = _simclr_logits(z1, z2, temperature)
    return F.cross_entropy(logits, target)


def _gather(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` over DDP ranks (rank order, differentiable), or return it in a single process.

    The backward pass sums every rank's gradient for each rank's slice (as
    ``torch.distributed.nn.all_gather``, which torch 2.13 deprecates in favour of the
    functional collective used here; older torch falls back to it).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    try:
        from torch.distributed._functional_collectives import all_gather_single_autograd
    except ImportError:
        from torch.distributed.nn import all_gather

        return torch.cat(all_gather(z), dim=0)
    return all_gather_single_autograd(z.contiguous(), gather_dim=0, group=dist.group.WORLD)


class SimCLRObjective:
    """``loss_fn(model, batch)`` for :class:`~studies.training.Trainer`: two views, InfoNCE.

    Each call draws a seed from torch's global generator (which the trainer seeds per rank and
    checkpoints, so a resumed run draws the same views) and makes both views with a CPU
    generator seeded by it. Reported metrics: ``acc``, the fraction of embeddings whose most
    similar other embedding is their positive (top-1 of the InfoNCE classification).

    Args:
        augment: the view generator.
        temperature: InfoNCE τ.
        compile_step: run the model through ``torch.compile`` (compiled on first use).
    """

    def __init__(self, augment: SimCLRAugment, temperature: float = 0.1, *, compile_step: bool = False) -> None:
        if not isinstance(augment, SimCLRAugment):
            raise TypeError(f"augment: expected a SimCLRAugment, got {type(augment).__name__}")
        if not is_real(temperature) or not temperature > 0:
            raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
        self.augment, self.temperature, self.compile_step = augment, float(temperature), bool(compile_step)
        self._compiled: tuple[nn.Module, Any] | None = None

    def _net(self, model: nn.Module) -> Any:
        if not self.compile_step:
            return model
        if self._compiled is None or self._compiled[0] is not model:
            self._compiled = (model, torch.compile(model))
        return self._compiled[1]

    def __call__(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        seed = int(torch.randint(0, 2**62, (1,)).item())
        v1, v2 = self.augment.views(images, torch.Generator().manual_seed(seed))
        z = self._net(model)(torch.cat([v1, v2], dim=0))
        z1, z2 = z.chunk(2, dim=0)
        logits, target = _simclr_logits(_gather(z1), _gather(z2), self.temperature)
        loss = F.cross_entropy(logits, target)
        acc = (logits.detach().argmax(dim=1) == target).to(torch.float64).mean()
        return loss, {"acc": acc}


def _monitor_fn(config: Config, scenes: SceneData):
    """``eval_fn(model)``: FG-ARI and MBO (means over the monitoring scenes)."""
    cfg = config.resolved()
    images = torch.from_numpy(scenes.images)

    def monitor(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        pred = predict_masks(model, images, clusters=cfg.clusters, pca_dim=cfg.pca_dim, batch_size=cfg.eval_batch,
                             generator=torch.Generator(device=device).manual_seed(cfg.eval_seed))
        return {"fg_ari": float(np.nanmean(fg_ari(scenes.masks, pred))),
                "mbo": float(np.nanmean(mbo(scenes.masks, pred)))}

    return monitor


def train_run(config: Config, directory: str | Path, *, progress: bool = True, device: str = "auto",
              compile_step: bool = False, num_workers: int = 0, checkpoint_every: int = 1) -> xr.Dataset:
    """Train ``config``'s model in ``directory`` (resuming a checkpoint there) and return the history.

    Writes ``config.json`` (first), ``checkpoint.pt`` and ``train.h5`` (every
    ``checkpoint_every`` epochs and at the end, by the trainer) and ``train.png``, all
    atomically and on rank 0 only.

    Args:
        config: the study config.
        directory: the run directory.
        progress: tqdm bars per epoch.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        compile_step: ``torch.compile`` the model in the training step.
        num_workers: DataLoader workers.
        checkpoint_every: epochs between checkpoints.

    Returns:
        The trainer's history (``step`` and ``epoch`` variables; see
        :attr:`studies.training.Trainer.history`).
    """
    if not isinstance(config, Config):
        raise TypeError(f"config: expected an objects Config, got {type(config).__name__}")
    cfg = config.resolved()
    directory = Path(directory)
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, grad_clip=cfg.grad_clip,
                            ema_decay=cfg.ema_decay, ema_every=cfg.ema_every, ema_after=cfg.ema_after, seed=cfg.seed,
                            num_workers=num_workers, log_every=10, device=device, checkpoint_every=checkpoint_every,
                            drop_last=True)
    scenes = load_scenes(cfg, "train")
    if len(scenes) < cfg.batch_size:
        raise ValueError(f"num_train: {len(scenes)} training scenes give no full batch of batch_size="
                         f"{cfg.batch_size}")
    train_data = torch.utils.data.TensorDataset(torch.from_numpy(scenes.images))
    seed_everything(cfg.seed)
    model = build_model(cfg)
    augment = SimCLRAugment(size=(cfg.image_size, cfg.image_size), scale=(cfg.crop_scale, 1.0), hflip=cfg.hflip)
    objective = SimCLRObjective(augment, cfg.temperature, compile_step=compile_step)
    monitor: dict[str, Any] = {}
    if cfg.monitor_every is not None:
        monitor = {"eval_fn": _monitor_fn(cfg, load_scenes(cfg, "monitor")), "eval_every": cfg.monitor_every}
    # the trainer sets up DDP under torchrun, so only after it exists is "rank 0" known
    trainer = Trainer(model, objective, train_data, train_cfg, out_dir=directory, progress=progress, **monitor)
    if trainer.ctx.is_main and not (directory / CONFIG_NAME).is_file():
        write_config(directory, config)
    history = trainer.fit()
    history.attrs["steps_per_epoch"] = len(trainer.loader)
    if trainer.ctx.is_main:
        plot_training(history, directory / "train.png", title=_run_title(cfg),
                      steps_per_epoch=len(trainer.loader))
    return history


def _run_title(cfg: Config) -> str:
    name = MODEL_NAMES[cfg.model]
    steps = "" if cfg.model == "vit" else f", T={cfg.steps}"
    return f"{name} (C={cfg.width}, L={cfg.depth}{steps}, patch {cfg.patch_size}) on {cfg.dataset}, seed {cfg.seed}"


def history_text(history: xr.Dataset) -> str:
    """A short report of a training history: last epoch's loss, contrastive accuracy, monitoring scores, time."""
    if not isinstance(history, xr.Dataset) or "epoch_loss" not in history:
        raise ValueError("history: expected a Trainer history with an 'epoch_loss' variable")
    ep = history["epoch"].values
    per_epoch = history.attrs.get("steps_per_epoch")
    steps = f" of {int(per_epoch)} steps" if per_epoch is not None else ""
    lines = [f"epochs: {int(ep[-1])}{steps}, loss {float(history['epoch_loss'].values[0]):.4f} (epoch 1) -> "
             f"{float(history['epoch_loss'].values[-1]):.4f} (epoch {int(ep[-1])})"]
    if "epoch_acc" in history:
        lines.append(f"contrastive top-1 accuracy (last epoch): {100 * float(history['epoch_acc'].values[-1]):.1f}%")
    for key, label in (("eval_ema_fg_ari", "FG-ARI"), ("eval_ema_mbo", "MBO")):
        if key in history:
            v = history[key].values
            ok = np.flatnonzero(~np.isnan(v))
            if ok.size:
                lines.append(f"monitoring {label} (EMA weights, epoch {int(ep[ok[-1]])}): {100 * v[ok[-1]]:.1f}")
    secs = history["epoch_seconds"].values
    lines.append(f"time per epoch: {np.mean(secs):.1f} s (mean over {secs.size} epochs)")
    return "\n".join(lines)



def run(config: Config, *, out: str | Path = "results/objects", progress: bool = True, device: str = "auto",
        compile_step: bool = False) -> xr.Dataset:
    """Train (or resume) and evaluate; returns the evaluation Dataset (also written to its ``eval_path``).

    Args:
        config: the study config.
        out: parent of the run directory (:func:`~studies.objects.config.run_dir`).
        progress: show progress bars.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        compile_step: ``torch.compile`` the training forward pass.
    """
    directory = run_dir(config, out)
    check_run_config(config, directory, for_eval=False)
    train_run(config, directory, progress=progress, device=device, compile_step=compile_step)
    return evaluate_run(config, directory, progress=progress, device=device)


def train_command(config: Config, args: Any) -> Outcome:
    """``akorn objects train``: train (or resume) the run directory of ``config`` under ``--out``."""
    directory = run_dir(config, args.out)
    with claim(directory, writer=is_writer()):  # one writer per run directory
        if getattr(args, "overwrite", False) and is_writer():
            start_over(directory, extra=("train.h5", "train.png"))
        check_run_config(config, directory, for_eval=False)
        history = train_run(config, directory, progress=args.progress, device=args.device,
                            compile_step=args.compile, num_workers=args.workers,
                            checkpoint_every=args.checkpoint_every)
    return Outcome(lines=[history_text(history), f"run: {directory}"])
