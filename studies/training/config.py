"""The settings of one training run (:class:`TrainConfig`), validated when built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kuramoto.checks import check_bool, check_float, check_int, check_positive

__all__ = ["RESUMABLE_FIELDS", "TrainConfig"]

_OPTIMIZERS = ("adam", "riemannian_adam")


_DEVICES = ("cpu", "cuda", "auto")


# Fields that may differ between a checkpoint and the run resuming it: they do not change
# the trajectory (``device`` changes round-off only, which is the user's call).
RESUMABLE_FIELDS = frozenset({"epochs", "checkpoint_every", "device", "find_unused_parameters"})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (validated when built).

    The paper's recipes (docs/AKORN.md §6): Sudoku ``lr=1e-3, batch_size=100, epochs=100,
    grad_clip=1.0, ema_decay=0.995, ema_every=10, ema_after=100``; CIFAR-10 ``lr=1e-4,
    batch_size=128, epochs=400, ema_decay=0.99, ema_every=10, ema_after=200``; CLEVRTex
    ``lr=1e-3, batch_size=256, epochs=500, ema_decay=0.998, ema_every=10, ema_after=200``.

    Attributes:
        epochs: number of passes over the training set.
        batch_size: global batch size (divided by the number of DDP processes).
        lr: learning rate of Adam.
        weight_decay: Adam's L2 penalty (not decoupled; 0 in the paper).
        grad_clip: max global L2 norm of the gradient, or ``None`` for no clipping.
        ema_decay: EMA factor β in [0, 1), or ``None`` for no EMA copy.
        ema_every: the EMA is updated every this many optimizer steps.
        ema_after: optimizer steps of warm-up during which the EMA copy equals the weights.
        ema_warmup_power: ``None`` for a constant β, or ``p`` for the ``ema_pytorch``
            decay warm-up ``min(β, 1 - (s - ema_after) ** -p)`` (the package default is 2/3).
        seed: seeds every RNG at the start of a fresh run (rank ``r`` uses ``seed + r`` for
            the global RNGs; the data order uses ``seed`` on every rank).
        num_workers: DataLoader worker processes.
        log_every: a row of the per-step history every this many steps (means over the
            steps since the previous row).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available). Under DDP on
            CUDA, each process uses ``cuda:LOCAL_RANK``.
        checkpoint_every: write a checkpoint every this many epochs (and after the last).
        optimizer: ``"adam"`` (``torch.optim.Adam``) or ``"riemannian_adam"``
            (``geoopt.optim.RiemannianAdam``; needed for ``ManifoldParameter``s, plain
            parameters are treated as Euclidean).
        drop_last: drop the last incomplete batch of each epoch.
        find_unused_parameters: passed to ``DistributedDataParallel`` (needed when some
            parameters get no gradient).
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    ema_decay: float | None = None
    ema_every: int = 1
    ema_after: int = 0
    ema_warmup_power: float | None = None
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    device: str = "auto"
    checkpoint_every: int = 1
    optimizer: str = "adam"
    drop_last: bool = False
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_positive(self.lr, "lr")
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_positive(self.grad_clip, "grad_clip", optional=True)
        check_float(self.ema_decay, "ema_decay", low=0.0, high=1.0, high_open=True, optional=True)
        check_int(self.ema_every, "ema_every", minimum=1)
        check_int(self.ema_after, "ema_after", minimum=0)
        check_positive(self.ema_warmup_power, "ema_warmup_power", optional=True)
        # numpy accepts seeds < 2**32; ranks add their index
        check_int(self.seed, "seed", minimum=0, maximum=2**32 - 1025)
        check_int(self.num_workers, "num_workers", minimum=0)
        check_int(self.log_every, "log_every", minimum=1)
        if not isinstance(self.device, str) or self.device not in _DEVICES:
            raise ValueError(f"device: must be one of {_DEVICES}, got {self.device!r}")
        check_int(self.checkpoint_every, "checkpoint_every", minimum=1)
        if not isinstance(self.optimizer, str) or self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer: must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        check_bool(self.drop_last, "drop_last")
        check_bool(self.find_unused_parameters, "find_unused_parameters")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (stored in checkpoints and metric files)."""
        return dataclasses.asdict(self)
