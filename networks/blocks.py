"""Small building blocks shared by the AKOrN models and the baselines.

All blocks act on feature maps ``[B, C, H, W]`` unless stated otherwise. The oscillator
readout :class:`ReadOut` is the paper's norm-taking map ``m(x)``; the others are the ordinary
convolutional pieces around it (docs/AKORN.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kuramoto.checks import check_count, is_real

from .states import check_feature_map

__all__ = [
    "BNReLUConv2d",
    "FF",
    "LayerNormForImage",
    "PositionalEmbedding2d",
    "ReadOut",
    "ResBlock",
    "RGBNormalize",
    "ScaleAndBias",
    "make_norm",
    "sinusoidal_embedding_2d",
]

Norm = Literal["bn", "gn", "none"]


#: The feature-map check of the layer, under the name the blocks and models use.
_feature_map = check_feature_map


def _standard_normal_like(c: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise with ``c``'s shape, dtype and device, drawn from ``generator``.

    The generator may live on another device than ``c`` (e.g. a CPU generator for a CUDA
    model): the sample is drawn where the generator lives and moved, so a seed gives the same
    numbers on every device.
    """
    if generator is None:
        return torch.randn(c.shape, dtype=c.dtype, device=c.device)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    z = torch.randn(c.shape, generator=generator, dtype=c.dtype, device=generator.device)
    return z.to(c.device)


def _normalize_groups(x: torch.Tensor, n: int) -> torch.Tensor:
    """Unit length per group of ``n`` consecutive channels of ``x`` ``[B, C, H, W]`` (eps 1e-12)."""
    b, c, h, w = x.shape
    return F.normalize(x.reshape(b, c // n, n, h, w), dim=2).reshape(b, c, h, w)


def make_norm(norm: str, channels: int) -> nn.Module:
    """The normalisation used by :class:`FF` and :class:`BNReLUConv2d`.

    Args:
        norm: ``"bn"`` (BatchNorm2d), ``"gn"`` (GroupNorm with 8 groups, or fewer when
            ``channels`` is not divisible by 8: the largest divisor of ``channels`` ≤ 8) or
            ``"none"`` (identity).
        channels: number of channels it normalises.
    """
    check_count(channels, "channels")
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "gn":
        groups = max(g for g in range(1, 9) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm: expected 'bn', 'gn' or 'none', got {norm!r}")


class ReadOut(nn.Module):
    """The norm readout ``m(x)``: grouped projections, their L2 norms, plus a bias.

    A convolution maps ``in_channels`` to ``out_channels · group`` channels; consecutive
    blocks of ``group`` channels (channel ``k·group + m`` is component ``m`` of output ``k``)
    are reduced to their Euclidean norm and a learnable per-output-channel bias (init 0) is
    added, so ``out ≥ bias`` everywhere. Taking norms discards the common phase of
    synchronised oscillators (AKOrN §4; exact rotation invariance would need the conv's
    blocks to commute with the rotation, which is not enforced).

    The norm is ``sqrt(max(Σ y², tiny))``: at a zero projection its value is the bias and its
    gradient is finite (zero), where a plain ``sqrt`` would give ``inf · 0 = NaN``.

    Args:
        in_channels: channels of the oscillator state.
        out_channels: channels of the readout.
        group: size of each projected group (``ro_N``: 2 for CIFAR-10, ``n`` = 4 for Sudoku
            and objects).
        kernel_size, stride, padding: of the convolution.
        bias: give the convolution its own bias (as the official code does).

    Shapes:
        ``[B, in_channels, H, W] → [B, out_channels, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, group: int = 2, kernel_size: int = 1,
                 stride: int = 1, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        check_count(in_channels, "in_channels")
        check_count(out_channels, "out_channels")
        check_count(group, "group")
        check_count(kernel_size, "kernel_size")
        check_count(stride, "stride")
        check_count(padding, "padding", minimum=0)
        self.in_channels, self.out_channels, self.group = in_channels, out_channels, group
        self.conv = nn.Conv2d(in_channels, out_channels * group, kernel_size, stride, padding, bias=bias)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``[B, in_channels, H, W]``. Returns: ``[B, out_channels, H', W']``, ``≥ bias``."""
        _feature_map(x, "x", self.in_channels)
        y = self.conv(x)
        b, _, h, w = y.shape
        sq = y.view(b, self.out_channels, self.group, h, w).square().sum(dim=2)
        norm = sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()
        return norm + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"group={self.group}"


class BNReLUConv2d(nn.Module):
    """Pre-activation unit ``norm → ReLU → conv``.

    Args:
        in_channels, out_channels: of the convolution.
        kernel_size, stride, padding: of the convolution.
        norm: ``"bn"``, ``"gn"`` (8 groups) or ``"none"``; see :func:`make_norm`.
        bias: convolution bias.

    Shapes:
        ``[B, in_channels, H, W] → [B, out_channels, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, norm: Norm = "bn", bias: bool = True) -> None:
        super().__init__()
        check_count(in_channels, "in_channels")
        check_count(out_channels, "out_channels")
        check_count(kernel_size, "kernel_size")
        check_count(stride, "stride")
        check_count(padding, "padding", minimum=0)
        self.norm = make_norm(norm, in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.norm(x)))


class FF(nn.Module):
    """Two pre-activation units: ``[norm → ReLU → conv] → [norm → ReLU → conv]``.

    The first conv maps ``in_channels → hidden`` with the given kernel, stride and padding,
    the second ``hidden → out_channels`` with the same kernel and padding and stride 1.

    Args:
        in_channels, out_channels: channels in and out.
        hidden: hidden channels (default ``4 · in_channels``; every AKOrN model passes
            ``hidden = channels``).
        kernel_size, stride, padding: of the convolutions (stride on the first only).
        norm: ``"bn"``, ``"gn"`` or ``"none"``.

    Shapes:
        ``[B, in_channels, H, W] → [B, out_channels, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int | None = None, kernel_size: int = 1,
                 stride: int = 1, padding: int = 0, norm: Norm = "bn") -> None:
        super().__init__()
        check_count(in_channels, "in_channels")
        hidden = 4 * in_channels if hidden is None else check_count(hidden, "hidden")
        self.unit1 = BNReLUConv2d(in_channels, hidden, kernel_size, stride, padding, norm)
        self.unit2 = BNReLUConv2d(hidden, out_channels, kernel_size, 1, padding, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit2(self.unit1(x))


class ResBlock(nn.Module):
    """Residual wrapper ``x ↦ x + f(x)``; ``f`` must keep the shape.

    Args:
        fn: the residual branch.
    """

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        if not isinstance(fn, nn.Module):
            raise TypeError(f"fn: expected an nn.Module, got {type(fn).__name__}")
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fn(x)
        if y.shape != x.shape:
            raise ValueError(f"fn: the residual branch must keep the shape {tuple(x.shape)}, "
                             f"got {tuple(y.shape)}")
        return x + y


def _per_channel(value: float | Sequence[float], name: str) -> torch.Tensor:
    if is_real(value):
        value = [float(value)]
    try:
        t = torch.tensor([float(v) for v in value], dtype=torch.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a float or a sequence of floats, got {value!r}") from None
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got {value!r}")
    return t.view(1, -1, 1, 1)


class RGBNormalize(nn.Module):
    """``(x − mean) / std`` per channel.

    The default is the CIFAR-10 statistics; every AKOrN/ViT model in the paper uses
    ``mean = std = 0.5`` (inputs in ``[0, 1]`` mapped to ``[−1, 1]``).

    Args:
        mean, std: a float (every channel) or one value per channel; ``std > 0``.
    """

    def __init__(self, mean: float | Sequence[float] = (0.4914, 0.4822, 0.4465),
                 std: float | Sequence[float] = (0.2470, 0.2435, 0.2616)) -> None:
        super().__init__()
        m, s = _per_channel(mean, "mean"), _per_channel(std, "std")
        if not bool((s > 0).all()):
            raise ValueError(f"std: expected positive values, got {std!r}")
        if m.numel() != s.numel() and 1 not in (m.numel(), s.numel()):
            raise ValueError(f"std: expected as many values as mean ({m.numel()}), got {s.numel()}")
        self.register_buffer("mean", m)
        self.register_buffer("std", s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _feature_map(x, "x")
        c = max(self.mean.shape[1], self.std.shape[1])
        if c > 1 and x.shape[1] != c:
            raise ValueError(f"x: expected {c} channels, got shape {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class ScaleAndBias(nn.Module):
    """Per-channel affine map ``x ↦ scale · x + bias`` (scale init 1, bias init 0).

    Args:
        channels: channel count C (axis 1).

    Shapes:
        ``[B, C, ...] → [B, C, ...]``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_count(channels, "channels")
        self.scale = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.scale.shape[0]:
            raise ValueError(f"x: expected [B, {self.scale.shape[0]}, ...], got shape {tuple(x.shape)}")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(shape) + self.bias.view(shape)


class LayerNormForImage(nn.Module):
    """LayerNorm over the channel axis at every pixel (biased variance), affine per channel.

    Args:
        channels: channel count C.
        eps: added to the variance.

    Shapes:
        ``[B, C, H, W] → [B, C, H, W]``.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        check_count(channels, "channels")
        if not eps > 0:
            raise ValueError(f"eps: expected a positive float, got {eps!r}")
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _feature_map(x, "x", self.weight.shape[0])
        mu = x.mean(dim=1, keepdim=True)
        var = (x - mu).square().mean(dim=1, keepdim=True)
        y = (x - mu) * torch.rsqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def sinusoidal_embedding_2d(dim: int, height: int, width: int, *, dtype: torch.dtype | None = None,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """Fixed 2-D sinusoidal position code (docs/AKORN.md §3).

    With ``h = dim / 2``: channels ``0 … h−1`` encode the column index ``w``, channels
    ``h … dim−1`` the row index; inside each half channel ``2m`` is ``sin(pos · f_m)`` and
    channel ``2m + 1`` is ``cos(pos · f_m)`` with ``f_m = 10000^(−2m/h)``.

    Args:
        dim: number of channels, divisible by 4.
        height, width: grid size.
        dtype, device: of the result.

    Returns:
        ``[dim, height, width]``.
    """
    check_count(dim, "dim")
    if dim % 4:
        raise ValueError(f"dim: expected a multiple of 4 (sin/cos pairs for rows and columns), got {dim}")
    check_count(height, "height")
    check_count(width, "width")
    half = dim // 2
    freq = torch.pow(10000.0, -torch.arange(0, half, 2, dtype=torch.float64) / half)  # [h/2]
    rows = torch.arange(height, dtype=torch.float64)
    cols = torch.arange(width, dtype=torch.float64)

    def encode(pos: torch.Tensor) -> torch.Tensor:  # [L] -> [h, L], sin/cos interleaved
        ang = freq[:, None] * pos[None, :]
        return torch.stack((ang.sin(), ang.cos()), dim=1).reshape(half, -1)

    col_code = encode(cols)[:, None, :].expand(half, height, width)
    row_code = encode(rows)[:, :, None].expand(half, height, width)
    out = torch.cat((col_code, row_code), dim=0)
    return out.to(dtype=dtype or torch.get_default_dtype(), device=device)


class PositionalEmbedding2d(nn.Module):
    """Learnable 2-D positional embedding initialised with :func:`sinusoidal_embedding_2d`.

    ``forward(x)`` returns ``x + pe``. If ``x``'s grid differs from the construction grid the
    embedding is resized bilinearly.

    Args:
        dim: channels (divisible by 4).
        height, width: construction grid.
        learnable: wrap the code in an ``nn.Parameter`` (the official models do); else a buffer.

    Shapes:
        ``[B, dim, H, W] → [B, dim, H, W]``.
    """

    def __init__(self, dim: int, height: int, width: int, learnable: bool = True) -> None:
        super().__init__()
        pe = sinusoidal_embedding_2d(dim, height, width).unsqueeze(0)
        if learnable:
            self.pe = nn.Parameter(pe)
        else:
            self.register_buffer("pe", pe)

    def embedding(self, height: int, width: int) -> torch.Tensor:
        """The embedding on an ``height × width`` grid, ``[1, dim, height, width]``."""
        pe = self.pe
        if pe.shape[-2:] != (height, width):
            pe = F.interpolate(pe, size=(height, width), mode="bilinear", align_corners=False)
        return pe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _feature_map(x, "x", self.pe.shape[1])
        return x + self.embedding(x.shape[-2], x.shape[-1]).to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.pe.shape[1]}, grid={tuple(self.pe.shape[-2:])}"

