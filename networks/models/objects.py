"""The object-discovery AKOrN (CLEVRTex and the synthetic sets; docs/AKORN.md §4.3)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from kuramoto.checks import check_count

from ..akorn_block import check_coupling_name, kuramoto_block
from ..blocks import (
    PositionalEmbedding2d,
    ReadOut,
    RGBNormalize,
    _feature_map,
    _standard_normal_like,
)

__all__ = ["ObjectAKOrN"]


class ObjectAKOrN(nn.Module):
    """AKOrN for unsupervised object discovery, trained with SimCLR.

    ``RGBNormalize(0.5, 0.5) → conv (kernel = stride = patch_size)`` gives the stimulus
    ``c [B, C, h, w]``; oscillators start at random points. Each of ``depth`` blocks (all of
    width C) runs a Kuramoto layer and reads out ``c ← ReadOut(C → C, group=n, 1×1)(x_T)``;
    ``x_T`` is the next block's initial state (through a 1×1 conv with ``readout_x=True``).
    The final readout map is the feature map for clustering (:meth:`features`). The SimCLR head
    (:meth:`forward`) is a global max-pool (or average) → ``Linear(C, 4C)`` → ReLU →
    ``Linear(4C, C)``.

    Without GTA (``pos_embed`` on) a learnable 2-D sinusoidal embedding is added to ``c`` and
    another to the raw Gaussian sample of ``x`` before it is normalised, as in the official
    model.

    Args:
        image_size: input side (128 for CLEVRTex) for the GTA grid and the embeddings; other
            sizes divisible by ``patch_size`` also run (grids are interpolated).
        in_channels: image channels (3).
        width: channels C (256; 512 for the large model), a multiple of ``n`` and ``heads``.
        depth: blocks L (1 or 2).
        n: oscillator dimension (4).
        steps: Kuramoto steps T per block (8).
        gamma: step size γ (1.0, fixed).
        coupling: ``"attn"`` (the paper's CLEVRTex model) or ``"conv"``.
        kernel_size: conv-coupling kernel (1; the synthetic conv variants use 5 or 7).
        heads: attention heads (8).
        gta: GTA on the token grid for the attention coupling (True).
        patch_size: patch side p (8); tokens ``image_size / p`` per side.
        stimulus_norm: ``"gn"`` (default, CLEVRTex), ``"sandb"`` or ``"none"`` (synthetic sets).
        omega: initial global ω, or ``None`` (default: Ω off, as in every official object model).
        learn_omega: train ω.
        global_omega: one ω per layer or one per channel pair.
        legacy_identity_omega: reproduce the official code's Ω-off quirk (the velocity gains
            ``+x``, so the effective step is ``γ/(1+γ)``; docs/AKORN.md §1.4). Off by default; turn it
            on to reproduce the published object-discovery numbers exactly.
        project: tangent projection in the update (True).
        readout: use the norm readout (True); ``False`` passes ``x_T`` on (the ``no_ro``
            ablation).
        readout_x: map ``x_T`` through a 1×1 conv before the next block (``use_ro_x``).
        pos_embed: add learnable sinusoidal embeddings to ``c`` and ``x``; default ``None``
            means ``not gta`` (the official rule, which it applies to the conv coupling too).
        pool: ``"max"`` (default) or ``"avg"`` pooling before the SimCLR head.

    Paper (CLEVRTex): width 256, n 4, L 1 or 2, T 8, patch 8, 128-px images, attention with GTA,
    GroupNorm stimulus, Ω off; large model width 512, L 2.
    """

    def __init__(self, image_size: int = 128, in_channels: int = 3, width: int = 256, depth: int = 1, n: int = 4,
                 steps: int = 8, gamma: float = 1.0, coupling: Literal["attn", "conv"] = "attn", kernel_size: int = 1,
                 heads: int = 8, gta: bool = True, patch_size: int = 8, stimulus_norm: str = "gn",
                 omega: float | None = None, learn_omega: bool = True, global_omega: bool = True,
                 legacy_identity_omega: bool = False, project: bool = True, readout: bool = True,
                 readout_x: bool = False, pos_embed: bool | None = None, pool: Literal["max", "avg"] = "max") -> None:
        super().__init__()
        check_count(image_size, "image_size")
        check_count(in_channels, "in_channels")
        check_count(width, "width")
        check_count(depth, "depth")
        check_count(n, "n", minimum=2)
        check_count(patch_size, "patch_size")
        if image_size % patch_size:
            raise ValueError(f"patch_size: must divide image_size={image_size}, got {patch_size}")
        if width % n:
            raise ValueError(f"width: must be a multiple of n={n}, got {width}")
        check_coupling_name(coupling)
        if pool not in ("max", "avg"):
            raise ValueError(f"pool: expected 'max' or 'avg', got {pool!r}")
        if omega is not None and n % 2:
            raise ValueError(f"omega: the rotation Ω needs an even n, got n={n}; pass omega=None")
        if omega is not None and legacy_identity_omega:
            raise ValueError("legacy_identity_omega: the quirk replaces Ω, so it needs omega=None")
        self.in_channels, self.width, self.depth, self.n = in_channels, width, depth, n
        self.steps = steps  # default T of every block (validated by the layers)
        self.patch_size, self.pool = patch_size, pool
        grid = image_size // patch_size
        use_pe = (not gta) if pos_embed is None else bool(pos_embed)
        self.normalize = RGBNormalize(0.5, 0.5)
        self.patchify = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        if use_pe:
            self.pos_c: PositionalEmbedding2d | None = PositionalEmbedding2d(width, grid, grid)
            self.pos_x: PositionalEmbedding2d | None = PositionalEmbedding2d(width, grid, grid)
        else:
            self.pos_c = self.pos_x = None
        self.layers = nn.ModuleList()
        self.readouts = nn.ModuleList()
        self.x_maps = nn.ModuleList()
        options = {"kernel_size": kernel_size, "heads": heads, "gta": gta, "grid": (grid, grid) if gta else None}
        for i in range(depth):
            self.layers.append(kuramoto_block(coupling, width, n, omega=omega, learn_omega=learn_omega,
                                              global_omega=global_omega, coupling_options=options,
                                              stimulus_norm=stimulus_norm, steps=steps, gamma=gamma, project=project,
                                              legacy_identity_omega=legacy_identity_omega))
            self.readouts.append(ReadOut(width, width, group=n, kernel_size=1) if readout else nn.Identity())
            if i < depth - 1:
                self.x_maps.append(nn.Conv2d(width, width, 1) if readout_x else nn.Identity())
        self.head = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width))

    @classmethod
    def tiny(cls, **kwargs: object) -> ObjectAKOrN:
        """32×32 images, patch 8 (4×4 tokens), width 32, n 4, 4 heads, T = 3, for tests."""
        cfg = dict(image_size=32, width=32, depth=1, n=4, steps=3, heads=4, patch_size=8)
        cfg.update(kwargs)
        return cls(**cfg)  # type: ignore[arg-type]

    def features(self, images: torch.Tensor, *, steps: int | None = None, generator: torch.Generator | None = None,
                 return_states: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The final readout map (the features clustered for segmentation).

        Args:
            images: ``[B, in_channels, H, W]`` in ``[0, 1]``, ``H`` and ``W`` multiples of
                ``patch_size``.
            steps: Kuramoto steps T per block (default: the constructor's).
            generator: random generator of the initial oscillators.
            return_states: also return every block's oscillator states.

        Returns:
            ``[B, C, H/p, W/p]``; with ``return_states=True`` also a list (one entry per
            block) of states ``[T+1, B, C, H/p, W/p]`` (step 0 is the block's initial state).
        """
        _feature_map(images, "images", self.in_channels)
        p = self.patch_size
        if images.shape[-1] % p or images.shape[-2] % p:
            raise ValueError(f"images: height and width must be multiples of patch_size={p}, "
                             f"got shape {tuple(images.shape)}")
        c = self.patchify(self.normalize(images))
        x = _standard_normal_like(c, generator)  # raw: the embedding is added before the layer normalises
        if self.pos_c is not None and self.pos_x is not None:
            c = self.pos_c(c)
            x = self.pos_x(x)
        states: list[torch.Tensor] = []
        for i, (layer, readout) in enumerate(zip(self.layers, self.readouts)):
            if i > 0:
                x = self.x_maps[i - 1](x)  # the layer renormalises its initial state
            if return_states:
                x, traj = layer(c, x, steps=steps, return_trajectory=True)
                states.append(traj.states)
            else:
                x = layer(c, x, steps=steps)
            c = readout(x)
        return (c, states) if return_states else c

    def forward(self, images: torch.Tensor, *, steps: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """SimCLR embedding ``[B, C]`` of ``images`` ``[B, in_channels, H, W]``."""
        f = self.features(images, steps=steps, generator=generator)
        pooled = f.amax(dim=(-2, -1)) if self.pool == "max" else f.mean(dim=(-2, -1))
        return self.head(pooled)
