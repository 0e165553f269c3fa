"""The training loop: :class:`Trainer` (Adam, clipping, EMA, checkpoints, DDP) and :func:`train`.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geoopt
import torch
import torch.distributed as dist
import xarray as xr
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset
from tqdm import tqdm

from kuramoto.checks import check_bool, check_int
from studies.cache import atomic_path
from studies.files import write_bytes
from studies.storage import netcdf_bytes
from studies.rundir import changed_fields
from studies.training.config import RESUMABLE_FIELDS, TrainConfig
from studies.training.distributed import (
    _current_context,
    _env_int,
    setup_distributed,
    unwrap,
)
from studies.training.history import (
    _RESERVED,
    _check_name,
    _EMAUpdate,
    _history_dataset,
    _RunningSum,
    _scalar,
    _to_device,
)
from studies.training.state import (
    _FORMAT,
    _VERSION,
    CHECKPOINT_NAME,
    _format_diffs,
    _isolated_rng,
    read_checkpoint,
    _rng_state,
    _seed_all,
    _set_rng_state,
    _state_dict_differences,
    with_digest,
)

__all__ = ["EvalFn", "LossFn", "SchedulerFactory", "Trainer", "train"]

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, Mapping[str, Any]] | torch.Tensor"]


EvalFn = Callable[[nn.Module], Mapping[str, Any]]

SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


def _check_arguments(model: Any, loss_fn: Any, train_data: Any, config: Any, eval_fn: Any, eval_every: Any,
                     metrics_name: Any, scheduler: Any) -> None:
    """The checks of :class:`Trainer`'s arguments (each error names its argument)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable loss_fn(model, batch), got {type(loss_fn).__name__}")
    if not isinstance(train_data, Dataset) or isinstance(train_data, IterableDataset):
        raise TypeError(f"train_data: expected a map-style torch Dataset, got {type(train_data).__name__}")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn: expected a callable eval_fn(model), got {type(eval_fn).__name__}")
    if (eval_fn is None) != (eval_every is None):
        raise ValueError("eval_fn, eval_every: give both (evaluate every eval_every epochs) or neither; "
                         f"got eval_fn={'set' if eval_fn is not None else None}, eval_every={eval_every!r}")
    if eval_every is not None:
        check_int(eval_every, "eval_every", minimum=1)
    if not isinstance(metrics_name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", metrics_name):
        raise ValueError(f"metrics_name: expected a file-name-safe string like 'train', got {metrics_name!r}")
    if scheduler is not None and not callable(scheduler):
        raise TypeError(f"scheduler: expected a factory scheduler(optimizer), got {type(scheduler).__name__}")


def _check_units(metric_units: Mapping[str, str] | None) -> dict[str, str]:
    units = dict(metric_units or {})
    for key, value in units.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metric_units: expected str -> str, got {key!r}: {value!r}")
    return units


class Trainer:
    """Train a model on a map-style dataset with Adam, clipping, EMA, checkpoints and DDP.

    Everything is set up (and a checkpoint, if any, loaded and checked) in the constructor;
    :meth:`fit` runs the remaining epochs.

    Args:
        model: the network; it is moved to the configured device (its dtype is kept). The
            trainer holds the same object, so after :meth:`fit` it carries the trained weights.
        loss_fn: ``loss_fn(model, batch) -> (loss, metrics)``; ``loss`` is a scalar tensor to
            minimise, ``metrics`` maps names to scalars (floats or 0-d tensors) logged as
            batch means; returning the loss alone means no metrics. ``model`` is the DDP
            wrapper under DDP (call it, don't reach into it); ``batch`` is what the DataLoader
            yields, with every tensor moved to the training device (dtypes unchanged).
        train_data: a map-style ``torch.utils.data.Dataset``.
        config: the run's :class:`TrainConfig`.
        eval_fn: optional ``eval_fn(model) -> {name: scalar}``, called in eval mode on rank 0
            every ``eval_every`` epochs with the raw weights and, with EMA, the EMA weights
            (logged as ``eval_<name>`` and ``eval_ema_<name>``). It runs under a forked RNG
            and without ``torch.no_grad`` (attacks need gradients): add it yourself if wanted.
            Under DDP the other ranks wait in a collective meanwhile, so keep it within the
            process-group timeout (10 min for NCCL by default); run long evaluations (full
            test sets, AutoAttack) after training with :func:`load_model_weights`.
        eval_every: evaluate after epochs ``eval_every, 2 * eval_every, ...``; required
            exactly when ``eval_fn`` is given.
        out_dir: directory of ``checkpoint.pt`` and ``<metrics_name>.h5``.
        metrics_name: file name (without ``.h5``) of the metrics file.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists. With ``False`` an
            existing checkpoint is an error (it is never overwritten by a fresh run).
        progress: show a tqdm bar per epoch (rank 0 only, and only when stderr is a terminal).
        scheduler: optional ``factory(optimizer) -> LR scheduler``, stepped after every
            optimizer step and checkpointed.
        collate_fn: passed to the DataLoader.
        metric_units: CF ``units`` of metrics (default ``"1"``, dimensionless).

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
        FileExistsError: ``resume=False`` and a checkpoint exists in ``out_dir``.
        ValueError: the checkpoint is unreadable, or was made with a different config
            (fields other than ``epochs``, ``checkpoint_every``, ``device``,
            ``find_unused_parameters``) or model (names, shapes, dtypes), or is already
            past ``config.epochs``.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, train_data: Dataset, config: TrainConfig, *,
                 out_dir: str | os.PathLike, eval_fn: EvalFn | None = None, eval_every: int | None = None,
                 metrics_name: str = "train", resume: bool = True, progress: bool = True,
                 scheduler: SchedulerFactory | None = None, collate_fn: Callable[[list[Any]], Any] | None = None,
                 metric_units: Mapping[str, str] | None = None) -> None:
        _check_arguments(model, loss_fn, train_data, config, eval_fn, eval_every, metrics_name, scheduler)
        check_bool(resume, "resume")
        check_bool(progress, "progress")
        units = _check_units(metric_units)
        self.config = config
        self.loss_fn, self.eval_fn, self.eval_every = loss_fn, eval_fn, eval_every
        self.out_dir = Path(out_dir)
        self.checkpoint_path = self.out_dir / CHECKPOINT_NAME
        self.metrics_path = self.out_dir / f"{metrics_name}.h5"
        self.progress = progress
        self._units = units

        self.device = self._resolve_device(config.device)
        ctx = _current_context()
        if not ctx.distributed and _env_int("WORLD_SIZE", 1) > 1:
            ctx = setup_distributed("nccl" if self.device.type == "cuda" else "gloo")
        self.ctx = ctx
        if ctx.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", ctx.local_rank)
        if config.batch_size % ctx.world_size:
            raise ValueError(f"batch_size: the global batch {config.batch_size} must be divisible by the number of "
                             f"processes ({ctx.world_size})")

        self.model = unwrap(model).to(self.device)
        self.optimizer = self._build_optimizer()
        self.scheduler = scheduler(self.optimizer) if scheduler is not None else None
        self._ema_update: _EMAUpdate | None = None
        self.ema: AveragedModel | None = None
        if config.ema_decay is not None:
            self._ema_update = _EMAUpdate(float(config.ema_decay))
            self.ema = AveragedModel(self.model, multi_avg_fn=self._ema_update, use_buffers=True)

        self.generator = torch.Generator()
        self.sampler = DistributedSampler(train_data, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=config.seed, drop_last=False)
        self.loader = DataLoader(train_data, batch_size=config.batch_size // ctx.world_size, sampler=self.sampler,
                                 num_workers=config.num_workers, collate_fn=collate_fn, drop_last=config.drop_last,
                                 generator=self.generator, pin_memory=self.device.type == "cuda")
        if len(self.loader) == 0:
            raise ValueError(f"train_data: {len(train_data)} samples give no batch of "
                             f"{config.batch_size // ctx.world_size} per process with drop_last=True")

        self.epoch = 0
        self.step = 0
        self._step_rows: list[dict[str, float]] = []
        self._epoch_rows: list[dict[str, float]] = []
        self._window = _RunningSum()

        if self.checkpoint_path.exists() and not resume:
            raise FileExistsError(f"resume=False but {str(self.checkpoint_path)!r} exists; pass resume=True to "
                                  "continue that run, or use another out_dir (a checkpoint is never overwritten "
                                  "by a fresh run)")
        if resume and self.checkpoint_path.exists():
            self._restore(read_checkpoint(self.checkpoint_path))
        else:
            _seed_all(config.seed + ctx.rank, self.generator)
            if self.ema is not None:
                self.ema.update_parameters(self.model)  # first call copies: EMA starts at the initial weights

        self._train_model: nn.Module = self.model
        if ctx.distributed:
            kwargs: dict[str, Any] = {"find_unused_parameters": config.find_unused_parameters}
            if self.device.type == "cuda":
                kwargs["device_ids"] = [self.device.index]
            self._train_model = nn.parallel.DistributedDataParallel(self.model, **kwargs)

    @staticmethod
    def _resolve_device(name: str) -> torch.device:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: 'cuda' requested but CUDA is not available; use 'cpu' or 'auto'")
        return torch.device(name)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model: has no parameters with requires_grad=True")
        if cfg.optimizer == "riemannian_adam":

            return geoopt.optim.RiemannianAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        geoopt_mod = sys.modules.get("geoopt")  # no geoopt imported => no ManifoldParameter can exist
        if geoopt_mod is not None and any(isinstance(p, geoopt_mod.ManifoldParameter) for p in params):
            raise ValueError("optimizer: the model has geoopt ManifoldParameters, which plain Adam would move off "
                             "their manifold; use optimizer='riemannian_adam'")
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        path = str(self.checkpoint_path)
        if ckpt.get("model") is None or "optimizer" not in ckpt:
            raise ValueError(f"checkpoint {path!r} holds weights only (shipped weights, for evaluation): it cannot "
                             f"resume training; train into another directory")
        saved_cfg = ckpt["config"]
        current = self.config.to_dict()
        changed = [f"{k}: checkpoint {saved_cfg.get(k, '<missing>')!r} vs now {current.get(k, '<missing>')!r}"
                   for k in changed_fields(saved_cfg, current, RESUMABLE_FIELDS)]
        if changed:
            raise ValueError(f"config: differs from the checkpoint {path!r} ({'; '.join(changed)}); only "
                             f"{sorted(RESUMABLE_FIELDS)} may change on resume. Use another out_dir for a new run.")
        diffs = _state_dict_differences(ckpt["model"], self.model.state_dict())
        if diffs:
            raise ValueError(f"model: does not match the checkpoint {path!r}: {_format_diffs(diffs)}. "
                             "Use another out_dir for a different model.")
        if (ckpt["scheduler"] is None) != (self.scheduler is None):
            raise ValueError(f"scheduler: the checkpoint {path!r} was made "
                             f"{'without' if ckpt['scheduler'] is None else 'with'} an LR scheduler, this run "
                             f"{'has' if self.scheduler is not None else 'has none'}")
        if ckpt["epoch"] > self.config.epochs:
            raise ValueError(f"epochs: the checkpoint {path!r} is already at epoch {ckpt['epoch']}, past "
                             f"epochs={self.config.epochs}")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.ema is not None:
            self.ema.module.load_state_dict(ckpt["ema"])
            self.ema.n_averaged.fill_(int(ckpt["ema_n_averaged"]))
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self._step_rows = [dict(r) for r in ckpt["history"]["step"]]
        self._epoch_rows = [dict(r) for r in ckpt["history"]["epoch"]]
        rank_states = ckpt["rank_states"]
        if self.ctx.rank < len(rank_states) and len(rank_states) == self.ctx.world_size:
            _set_rng_state(rank_states[self.ctx.rank]["rng"], self.generator)
            self._window.load(rank_states[self.ctx.rank]["window"], self.device)
        else:
            # A different world size cannot continue bit for bit; reseed so ranks still differ.
            _seed_all((self.config.seed + self.ctx.rank + 7919 * self.step) % (2**32 - 1), self.generator)

    @property
    def ema_model(self) -> nn.Module | None:
        """The EMA copy of the model (a plain module), or ``None`` without EMA."""
        return None if self.ema is None else self.ema.module

    @property
    def history(self) -> xr.Dataset:
        """Per-step (dim ``step``) and per-epoch (dim ``epoch``) metrics so far.

        Variables on ``step`` (every ``log_every`` steps, means since the previous row):
        ``loss``, ``grad_norm`` (before clipping), ``lr``, and each metric of ``loss_fn``.
        On ``epoch``: ``epoch_loss``, ``epoch_grad_norm``, ``epoch_<metric>`` (epoch means),
        ``eval_<name>``/``eval_ema_<name>`` (NaN where not evaluated), ``epoch_seconds``
        (wall clock: the only variable that is not reproducible). Every variable has CF
        ``long_name`` and ``units``; the config is in the ``config`` attribute as JSON.
        """
        attrs = {
            "title": "AKOrN training history",
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "world_size": self.ctx.world_size,
            "torch_version": str(torch.__version__),
            "history_format": "akorn-training-history/1",
        }
        return _history_dataset(self._step_rows, self._epoch_rows, attrs, self._units)

    def fit(self) -> xr.Dataset:
        """Run the epochs left until ``config.epochs`` and return the history.

        Checkpoint and metrics file are written after every ``checkpoint_every``-th epoch and
        after the last one.

        Returns:
            :attr:`history`.

        Raises:
            FloatingPointError: an epoch's mean loss is not finite (the last checkpoint is kept).
        """
        cfg = self.config
        while self.epoch < cfg.epochs:
            started = time.perf_counter()
            epoch_means = self._run_epoch()
            self.epoch += 1
            if not math.isfinite(epoch_means["loss"]):
                raise FloatingPointError(f"loss_fn: the mean loss of epoch {self.epoch} is {epoch_means['loss']}; "
                                         f"the last checkpoint in {str(self.out_dir)!r} is kept")
            row: dict[str, float] = {"epoch": self.epoch}
            row.update({f"epoch_{k}": v for k, v in epoch_means.items()})
            if self.eval_every is not None and self.epoch % self.eval_every == 0:
                row.update(self._evaluate())
            row["epoch_seconds"] = time.perf_counter() - started
            self._epoch_rows.append(row)
            if self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs:
                self._save_checkpoint()
        return self.history

    def _save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` and the metrics file atomically (rank 0), then a barrier under DDP.

        Only valid at the end of an epoch (that is where a resume restarts). Every rank must
        call it: the per-rank RNG states are gathered.
        """
        rank_state = {"rng": _rng_state(self.generator), "window": self._window.state()}
        if self.ctx.distributed:
            states: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(states, rank_state)
        else:
            states = [rank_state]
        if self.ctx.is_main:
            payload = {
                "format": _FORMAT,
                "version": _VERSION,
                "epoch": self.epoch,
                "step": self.step,
                "config": self.config.to_dict(),
                "world_size": self.ctx.world_size,
                "torch_version": str(torch.__version__),
                "model": self.model.state_dict(),
                "ema": None if self.ema is None else self.ema.module.state_dict(),
                "ema_n_averaged": 0 if self.ema is None else int(self.ema.n_averaged),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "rank_states": states,
                "history": {"step": self._step_rows, "epoch": self._epoch_rows},
            }
            with atomic_path(self.checkpoint_path) as tmp:
                torch.save(with_digest(payload), tmp)
            # built in memory: HDF5 writing straight to a full disk can crash the interpreter. (No
            # checksum: the history is a copy of the checkpoint's, which is checked and is what resumes.)
            write_bytes(self.metrics_path, netcdf_bytes(self.history))
        if self.ctx.distributed:
            dist.barrier()

    def _run_epoch(self) -> dict[str, float]:
        cfg = self.config
        self.sampler.set_epoch(self.epoch)
        self._train_model.train()
        epoch_sum = _RunningSum()
        bar = tqdm(self.loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=None if self.progress and self.ctx.is_main else True, dynamic_ncols=True)
        non_blocking = self.device.type == "cuda"
        try:
            for batch in bar:
                names, values, lr = self._train_step(_to_device(batch, self.device, non_blocking))
                self._window.add(names, values)
                epoch_sum.add(names, values)
                if self.step % cfg.log_every == 0:
                    row: dict[str, float] = {"step": self.step, **self._window.means(self.ctx), "lr": lr}
                    self._window.reset()
                    self._step_rows.append(row)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
            means = epoch_sum.means(self.ctx)
            bar.set_postfix(epoch_loss=f"{means['loss']:.4g}")  # the line left on screen
        finally:
            bar.close()
        return means

    def _train_step(self, batch: Any) -> tuple[list[str], torch.Tensor, float]:
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        out = self.loss_fn(self._train_model, batch)
        if isinstance(out, torch.Tensor):
            loss, metrics = out, {}
        elif isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
            loss, metrics = out
        else:
            raise TypeError(f"loss_fn: must return (loss, metrics dict) or a loss tensor, got {type(out).__name__}")
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise TypeError("loss_fn: the loss must be a scalar tensor that requires grad, got "
                            f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if cfg.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        self._update_ema()

        names = ["loss", "grad_norm"]
        values = [loss.detach().reshape(()).to(torch.float64), grad_norm.detach().to(self.device, torch.float64)]
        for key, value in metrics.items():
            _check_name("loss_fn", key)
            if key in _RESERVED or key.startswith(("eval_", "epoch_")):
                raise ValueError(f"loss_fn: metric name {key!r} is reserved (also names starting with eval_/epoch_)")
            names.append(key)
            values.append(_scalar(f"loss_fn: metric {key!r}", value, self.device))
        return names, torch.stack(values), lr

    def _update_ema(self) -> None:
        if self.ema is None or self._ema_update is None:
            return
        cfg, s = self.config, self.step
        if s <= cfg.ema_after:
            self.ema.n_averaged.zero_()  # AveragedModel copies the weights when n_averaged == 0
            self.ema.update_parameters(self.model)
        elif s % cfg.ema_every == 0:
            decay = float(cfg.ema_decay)  # type: ignore[arg-type]
            if cfg.ema_warmup_power is not None:
                decay = min(decay, 1.0 - (s - cfg.ema_after) ** -cfg.ema_warmup_power)
            self._ema_update.decay = decay
            self.ema.update_parameters(self.model)

    def _evaluate(self) -> dict[str, float]:
        results: dict[str, float] = {}
        if self.ctx.is_main and self.eval_fn is not None:
            with _isolated_rng(self.device):
                results.update({f"eval_{k}": v for k, v in self._call_eval(self.model).items()})
                if self.ema is not None:
                    results.update({f"eval_ema_{k}": v for k, v in self._call_eval(self.ema.module).items()})
        if self.ctx.distributed:
            box: list[Any] = [results]
            dist.broadcast_object_list(box, src=0)
            results = box[0]
        return results

    def _call_eval(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            out = self.eval_fn(model)  # type: ignore[misc]
        finally:
            model.train(was_training)
        if not isinstance(out, Mapping):
            raise TypeError(f"eval_fn: must return a mapping name -> scalar, got {type(out).__name__}")
        return {_check_name("eval_fn", k): float(_scalar(f"eval_fn: metric {k!r}", v, torch.device("cpu")))
                for k, v in out.items()}


def train(model: nn.Module, loss_fn: LossFn, train_data: Dataset, config: TrainConfig, **kwargs: Any) -> xr.Dataset:
    """``Trainer(model, loss_fn, train_data, config, **kwargs).fit()``: train and return the history."""
    return Trainer(model, loss_fn, train_data, config, **kwargs).fit()
