"""The AKOrN image classifier (CIFAR-10; docs/AKORN.md §4.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kuramoto.checks import check_count

from ..akorn_block import check_coupling_name, kuramoto_block
from ..blocks import (
    FF,
    BNReLUConv2d,
    ReadOut,
    ResBlock,
    RGBNormalize,
    _feature_map,
)
from ..states import initial_state

__all__ = ["AKOrNClassifier"]


def _per_block(value: object, depth: int, name: str, kind: type) -> list:
    """Broadcast a scalar to ``depth`` entries or check a sequence's length."""
    if isinstance(value, kind) and not isinstance(value, bool):
        return [value] * depth
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == depth:
        if all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
            return list(value)
    raise ValueError(f"{name}: expected a {kind.__name__} or a sequence of {depth} (one per block), got {value!r}")


class AKOrNClassifier(nn.Module):
    """AKOrN image classifier: ``depth`` Kuramoto blocks of widths ``width · 2^l``.

    Stem ``RGBNormalize(0.5, 0.5) → conv 3×3 (no bias)`` gives the first stimulus ``c``; the
    oscillators ``x`` start at random points. Block ``l`` (for ``l ≥ 1``) first applies one
    strided conv ``3×3, stride 2`` with **the same weights** to ``x`` and to ``c`` (``x`` is then
    renormalised), runs a Kuramoto layer (coupling ``J_l``, GroupNorm-ed stimulus, global learned
    Ω) and reads out ``c ← BNReLUConv(ResBlock(FF(ReadOut(x_T))))``. The head is a global
    average pool of the last ``c`` and a linear layer.

    Each forward pass draws new initial oscillators, so the model is stochastic;
    ``ensemble=E`` averages the logits of ``E`` independent draws (computed as one batch of
    ``E · B``).

    Args:
        num_classes: number of classes (10).
        in_channels: image channels (3).
        width: channels of the first block (64); block ``l`` has ``width · 2^l``.
        depth: number of blocks L (3).
        n: oscillator dimension (2).
        steps: Kuramoto steps T per block (3).
        gamma: step size γ (1.0, fixed).
        coupling: ``"conv"`` or ``"attn"``, or one per block; :meth:`mix` puts attention in the
            last block (the paper's AKOrN^mix, as we read it).
        kernel_sizes: conv-coupling kernel per block (9, 7, 5), or one int for all blocks.
        heads: attention heads (for ``"attn"`` blocks).
        gta: GTA in attention blocks (needs ``image_size``).
        image_size: input side, used only to build GTA grids.
        readout_kernel: kernel of the readout convs (3).
        readout_group: group size of :class:`~networks.blocks.ReadOut` (2).
        norm: norm of the readout's FF and BNReLUConv units (``"bn"``).
        stimulus_norm: ``"gn"`` (default), ``"sandb"`` or ``"none"``.
        omega: initial global ω (1.0) or ``None`` for Ω = 0.
        learn_omega: train ω (True).
        global_omega: one ω per layer (True) or one per channel pair.
        ensemble: default number of random initial states averaged (1).

    Paper (shipped) configuration: the defaults; 400 epochs of Adam 1e-4 (docs/AKORN.md §5.3).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64, depth: int = 3, n: int = 2,
                 steps: int = 3, gamma: float = 1.0, coupling: str | Sequence[str] = "conv",
                 kernel_sizes: int | Sequence[int] = (9, 7, 5), heads: int = 8, gta: bool = False,
                 image_size: int | None = None, readout_kernel: int = 3, readout_group: int = 2, norm: str = "bn",
                 stimulus_norm: str = "gn", omega: float | None = 1.0, learn_omega: bool = True,
                 global_omega: bool = True, ensemble: int = 1) -> None:
        super().__init__()
        check_count(num_classes, "num_classes")
        check_count(in_channels, "in_channels")
        check_count(width, "width")
        check_count(depth, "depth")
        check_count(n, "n", minimum=2)
        check_count(readout_kernel, "readout_kernel")
        if readout_kernel % 2 == 0:
            raise ValueError(f"readout_kernel: expected an odd size (it keeps H×W), got {readout_kernel}")
        if width % n:
            raise ValueError(f"width: must be a multiple of n={n}, got {width}")
        couplings = _per_block(coupling, depth, "coupling", str)
        for cp in couplings:
            check_coupling_name(cp)
        kernels = _per_block(kernel_sizes, depth, "kernel_sizes", int)
        if gta and "attn" in couplings:
            if image_size is None:
                raise ValueError("image_size: gta=True needs the input side to build the GTA grids, e.g. 32")
            check_count(image_size, "image_size")
        if omega is not None and n % 2:
            raise ValueError(f"omega: the rotation Ω needs an even n, got n={n}; pass omega=None")
        self.in_channels, self.n, self.depth, self.num_classes = in_channels, n, depth, num_classes
        self.steps = steps  # default T of every block (validated by the layers)
        self.ensemble = check_count(ensemble, "ensemble")
        self.widths = [width * 2 ** i for i in range(depth)]
        pad = readout_kernel // 2
        self.normalize = RGBNormalize(0.5, 0.5)
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.transitions = nn.ModuleList()
        self.layers = nn.ModuleList()
        self.readouts = nn.ModuleList()
        for i, ch in enumerate(self.widths):
            if i > 0:
                self.transitions.append(nn.Conv2d(self.widths[i - 1], ch, 3, 2, 1))
            grid = None
            if gta and couplings[i] == "attn":
                side = image_size // 2 ** i  # type: ignore[operator]
                grid = (side, side)
            self.layers.append(kuramoto_block(
                couplings[i], ch, n, omega=omega, learn_omega=learn_omega, global_omega=global_omega,
                coupling_options={"kernel_size": kernels[i], "heads": heads, "gta": gta, "grid": grid},
                stimulus_norm=stimulus_norm, steps=steps, gamma=gamma))
            self.readouts.append(nn.Sequential(
                ReadOut(ch, ch, group=readout_group, kernel_size=readout_kernel, padding=pad),
                ResBlock(FF(ch, ch, hidden=ch, kernel_size=readout_kernel, padding=pad, norm=norm)),
                BNReLUConv2d(ch, ch, readout_kernel, padding=pad, norm=norm),
            ))
        self.fc = nn.Linear(self.widths[-1], num_classes)

    @classmethod
    def mix(cls, **kwargs: object) -> AKOrNClassifier:
        """AKOrN^mix: conv coupling in every block but the last, attention in the last."""
        depth = int(kwargs.get("depth", 3))  # type: ignore[arg-type]
        kwargs.setdefault("coupling", ["conv"] * (depth - 1) + ["attn"])
        return cls(**kwargs)  # type: ignore[arg-type]

    @classmethod
    def tiny(cls, **kwargs: object) -> AKOrNClassifier:
        """Width 8, two blocks (8, 16 channels), kernels 3, T = 2, for tests."""
        cfg = dict(width=8, depth=2, steps=2, kernel_sizes=3, heads=2)
        cfg.update(kwargs)
        return cls(**cfg)  # type: ignore[arg-type]

    def forward(self, images: torch.Tensor, *, steps: int | None = None, generator: torch.Generator | None = None,
                ensemble: int | None = None) -> torch.Tensor:
        """Class logits.

        Args:
            images: ``[B, in_channels, H, W]`` in ``[0, 1]`` (normalised inside), ``H`` and
                ``W`` divisible by ``2^(depth−1)``.
            steps: Kuramoto steps T of every block (default: the constructor's).
            generator: random generator of the initial oscillators (reproducible forward).
            ensemble: number of random initial states whose logits are averaged (default:
                the constructor's ``ensemble``).

        Returns:
            ``[B, num_classes]`` logits (the mean over the ensemble).
        """
        _feature_map(images, "images", self.in_channels)
        e = self.ensemble if ensemble is None else check_count(ensemble, "ensemble")
        b = images.shape[0]
        c = self.stem(self.normalize(images))
        if e > 1:
            c = c.repeat(e, 1, 1, 1)  # member k of the ensemble is rows k·B … (k+1)·B − 1
        x = initial_state(c, self.n, "random", generator=generator)
        for i, (layer, readout) in enumerate(zip(self.layers, self.readouts)):
            if i > 0:
                conv = self.transitions[i - 1]
                c = conv(c)
                x = conv(x)  # the layer renormalises its initial state
            x = layer(c, x, steps=steps)
            c = readout(x)
        logits = self.fc(c.mean(dim=(-2, -1)))
        return logits.view(e, b, -1).mean(dim=0) if e > 1 else logits
