"""One training loop for every study: Adam, gradient clipping, EMA, checkpoints, DDP.

A study supplies its model, a ``torch.utils.data.Dataset`` and an objective
``loss_fn(model, batch) -> (loss, metrics)``; :class:`Trainer` does the rest::

    cfg = TrainConfig(epochs=100, batch_size=100, lr=1e-3, grad_clip=1.0,
                      ema_decay=0.995, ema_every=10, ema_after=100, seed=0)
    trainer = Trainer(model, sudoku_loss, train_set, cfg, out_dir="runs/sudoku",
                      eval_fn=board_accuracy, eval_every=10)
    history = trainer.fit()                          # xarray.Dataset, also runs/sudoku/train.h5
    load_model_weights("runs/sudoku", model, ema=True)   # the weights the paper evaluates

**EMA.** The average is kept by :class:`torch.optim.swa_utils.AveragedModel` with an
update rule built on :func:`torch.optim.swa_utils.get_ema_multi_avg_fn`. Its parameters *and*
buffers are averaged (``use_buffers=True``); integer buffers (BatchNorm's
``num_batches_tracked``) are copied, because a lerp on integers would truncate. After
optimizer step ``s`` (1-based):

- ``s <= ema_after``: the copy is set to the weights (it tracks them during the warm-up);
- ``s > ema_after`` and ``s % ema_every == 0``: ``ema <- b * ema + (1 - b) * w``, with
  ``b = ema_decay``, or ``b = min(ema_decay, 1 - (s - ema_after) ** -ema_warmup_power)`` when
  ``ema_warmup_power`` is set.

The official AKOrN scripts use the ``ema_pytorch`` package, whose default decay warm-up is
this schedule with power 2/3 (inverse gamma 1); set ``ema_warmup_power=2/3`` to follow it
(up to off-by-one details: that package counts its calls from 0 and, during the warm-up,
copies the weights only on every ``k``-th call).
With ``ema_decay=0.995`` it reaches the cap about 2,800 steps after the warm-up, a third of
a 100-epoch Sudoku run, so the two settings give different EMA weights.

**Data order.** Batches come from a ``DistributedSampler`` also in a single process (one
replica), so the order of epoch ``e`` depends only on ``(seed, e)``: it survives a resume,
and a ``K``-process run sees, at every step, exactly the union of samples that a
1-process run sees with the same global batch size. An explicit ``torch.Generator`` feeds the
``DataLoader`` (it seeds the worker processes) and is checkpointed with the other RNGs.
Workers are started afresh every epoch (no ``persistent_workers``) so that their seeds come
from that checkpointed generator and a resume stays exact with ``num_workers > 0``.

**Resume.** A checkpoint is written atomically (:func:`studies.cache.atomic_path`) at the
end of every ``checkpoint_every``-th epoch and of the last one. It holds the model, EMA,
optimizer and scheduler state, every RNG (torch CPU and CUDA, numpy, Python, the data
generator; one set per rank), the counters, the config and the history, so a run resumed
from it continues bit for bit like one that was never stopped (same world size and
hardware). Evaluation runs inside a forked RNG state, so evaluating or not does not change
the training trajectory.

**DDP.** Under ``torchrun --nproc_per_node=K`` the same code runs ``K`` processes:
:func:`setup_distributed` reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, uses gloo on CPU and
NCCL on CUDA; the model is wrapped in ``DistributedDataParallel``; each rank gets
``batch_size / K`` samples per step; logged metrics are averaged over ranks; only rank 0
writes files and shows progress bars. The objective is evaluated per rank, so an objective
that couples the samples of a batch (SimCLR's InfoNCE) must gather them across ranks itself
(``torch.distributed.nn.all_gather``) to match a single-process run.
"""

from studies.training.config import TrainConfig
from studies.training.distributed import (
    DistributedContext,
    cleanup_distributed,
    is_main_process,
    setup_distributed,
    unwrap,
)
from studies.training.state import CHECKPOINT_NAME, load_model_weights, seed_everything
from studies.training.trainer import Trainer, train

__all__ = [
    "CHECKPOINT_NAME",
    "DistributedContext",
    "TrainConfig",
    "Trainer",
    "cleanup_distributed",
    "is_main_process",
    "load_model_weights",
    "seed_everything",
    "setup_distributed",
    "train",
    "unwrap",
]
