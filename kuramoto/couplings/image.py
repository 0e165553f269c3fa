"""Couplings on image-layout states ``[B, C/n, H, W, n]``: 2-D convolution and attention.

A feature map ``[B, C, H, W]`` carries ``C/n`` oscillators of dimension ``n`` per position;
channel ``c = k·n + m`` is component ``m`` of oscillator ``k`` (consecutive groups of ``n``, as
in the official AKOrN code). :func:`to_oscillators` and :func:`to_features` convert between
the two layouts. Both return *views* whenever the memory allows: a state obtained with
:func:`to_oscillators` from a contiguous feature map keeps the feature-map memory order, so
converting it back (which every convolution or attention evaluation does) costs no copy, and
elementwise sphere operations on it run over whole channel planes.

References:
    Miyato, Löwe, Geiger, Welling. Artificial Kuramoto Oscillatory Neurons. ICLR 2025, §4
    (convolutional and attentive connectivity).
    Miyato et al. GTA: A Geometry-Aware Attention Mechanism for Multi-View Transformers.
    ICLR 2024 (the per-token 2×2 transforms of :class:`Attention` with ``gta=True``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_bool, check_count, is_int
from .base import AbstractCoupling

__all__ = ["AbstractImageCoupling", "Attention", "Conv", "gta_angles", "to_features", "to_oscillators"]


def _check_channels(channels: object, n: object) -> tuple[int, int]:
    channels = check_count(channels, "channels")
    n = check_count(n, "n")
    if n < 2:
        raise ValueError(f"n: expected a sphere dimension >= 2, got {n}")
    if channels % n:
        raise ValueError(f"channels: must be a multiple of n={n} (channel k·n + m is component m of oscillator k), "
                         f"got {channels}")
    return channels, n


def to_oscillators(features: torch.Tensor, n: int) -> torch.Tensor:
    """Group a feature map's channels into oscillators: ``[B, C, H, W] -> [B, C/n, H, W, n]``.

    Channel ``c = k·n + m`` becomes component ``m`` of oscillator ``k``. The result is a view
    (a permutation of ``features.view(B, C/n, n, H, W)``), so no memory is copied.

    Args:
        features: ``[B, C, H, W]`` floating tensor with ``C % n == 0``.
        n: oscillator (sphere) dimension, ``n >= 2``.

    Returns:
        ``[B, C/n, H, W, n]`` view of ``features``.

    Raises:
        TypeError: ``features`` is not a floating tensor.
        ValueError: wrong rank, ``n < 2`` or ``C`` not divisible by ``n``.
    """
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise TypeError(f"features: expected a floating-point torch.Tensor [B, C, H, W], got "
                        f"{type(features).__name__}" + (f" of dtype {features.dtype}"
                                                        if isinstance(features, torch.Tensor) else ""))
    if features.dim() != 4:
        raise ValueError(f"features: expected shape [B, C, H, W], got {tuple(features.shape)}")
    if not is_int(n) or n < 2:
        raise ValueError(f"n: expected an integer sphere dimension >= 2, got {n!r}")
    B, C, H, W = features.shape
    if C % n:
        raise ValueError(f"features: the channel count C={C} is not a multiple of n={n}; an image-layout state "
                         f"needs C/n whole oscillators per position")
    return features.view(B, C // n, n, H, W).permute(0, 1, 3, 4, 2)


def to_features(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_oscillators`: ``[B, C/n, H, W, n] -> [B, C, H, W]``.

    A view when ``x`` came from :func:`to_oscillators` (or from elementwise arithmetic on such
    states, which keeps their memory order); a copy otherwise.

    Args:
        x: ``[B, C/n, H, W, n]`` floating tensor.

    Returns:
        ``[B, C, H, W]`` with channel ``k·n + m`` = ``x[:, k, :, :, m]``.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x: expected a floating-point torch.Tensor [B, C/n, H, W, n], got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() != 5:
        raise ValueError(f"x: expected an image-layout state [B, C/n, H, W, n], got shape {tuple(x.shape)}")
    B, K, H, W, n = x.shape
    return x.permute(0, 1, 4, 2, 3).reshape(B, K * n, H, W)


class AbstractImageCoupling(AbstractCoupling):
    """A coupling on image-layout states ``[B, C/n, H, W, n]``: ``C`` channels, oscillators of dimension ``n``.

    Every image coupling is built as ``cls(channels, n, **options)``, so a Kuramoto layer or a
    model can build any registered one by name (:func:`kuramoto.couplings.build_coupling`)
    and check its size against ``channels`` and ``n`` without knowing the concrete class.
    Subclasses call ``super().__init__(channels, n)`` and implement ``forward``.
    """

    state_dims = 4
    channels: int
    n: int

    def __init__(self, channels: int, n: int) -> None:
        super().__init__()
        self.channels, self.n = _check_channels(channels, n)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if x.dim() != 5:
            raise ValueError(f"x: {type(self).__name__} expects an image-layout state [B, C/n, H, W, n], "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] * x.shape[-1] != self.channels or x.shape[-1] != self.n:
            raise ValueError(f"x: expected {self.channels // self.n} oscillators of dimension n={self.n} per "
                             f"position (shape [B, {self.channels // self.n}, H, W, {self.n}]), got shape "
                             f"{tuple(x.shape)}")
        return to_features(x)


class Conv(AbstractImageCoupling):
    """Convolutional coupling: a full 2-D convolution ``C -> C`` (stride 1, ``padding = k//2``).

    ``(Jx)`` at oscillator ``(k, h, w)`` is the convolution of the whole feature map, so every
    ``n × n`` block ``J_ij`` couples oscillator slots at positions within the ``k × k``
    neighbourhood (the centre included) and channels of different slots mix freely, as in the
    official ``J="conv"`` (docs/AKORN.md §2.1). Zero padding: oscillators outside the image do not
    exist. With a bias the map is affine (``linear = False``); the bias then acts like a
    constant extra stimulus.

    Args:
        channels: number of channels C (a multiple of ``n``).
        n: oscillator dimension.
        kernel_size: odd kernel size k.
        bias: add a learnable per-channel bias (the official layer has one).
        generator: random generator for the initialisation (``nn.Conv2d``'s default scheme:
            uniform in ``±1/√(C k²)`` for weights and bias).
        dtype, device: of the parameters.

    Shapes:
        ``forward(x)``: ``[B, C/n, H, W, n] -> [B, C/n, H, W, n]``.
    """

    def __init__(self, channels: int, n: int, kernel_size: int, bias: bool = True, *,
                 generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__(channels, n)
        k = check_count(kernel_size, "kernel_size")
        if k % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd size (padding k//2 keeps H×W only then), got {k}")
        check_bool(bias, "bias")
        self.kernel_size = k
        self.linear = not bias
        bound = 1.0 / math.sqrt(channels * k * k)
        factory = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        w = torch.empty(channels, channels, k, k, **factory).uniform_(-bound, bound, generator=generator)
        self.weight = nn.Parameter(w)
        if bias:
            self.bias = nn.Parameter(torch.empty(channels, **factory).uniform_(-bound, bound, generator=generator))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``J x`` (bias included) for a state ``[B, C/n, H, W, n]``; same shape."""
        f = self._features(x)
        y = F.conv2d(f, self.weight, self.bias, padding=self.kernel_size // 2)
        return to_oscillators(y, self.n)

    def transposed_weight(self) -> torch.Tensor:
        """The kernel of ``Jᵀ``: ``W'[i, j, a, b] = W[j, i, k−1−a, k−1−b]``."""
        return self.weight.transpose(0, 1).flip(2, 3)

    def is_symmetric(self, atol: float = 0.0) -> bool:
        """Whether ``J_ij = J_jiᵀ``: ``W[i, j, a, b] = W[j, i, −a, −b]`` (offsets from the centre) and no bias."""
        if self.bias is not None and bool((self.bias.abs() > atol).any()):
            return False
        return bool(torch.allclose(self.weight, self.transposed_weight(), rtol=0.0, atol=atol))

    @torch.no_grad()
    def symmetrize(self) -> "Conv":
        """Make the kernel symmetric in place, ``W ← (W + Wᵀ)/2``, and zero the bias (if any).

        Afterwards ``J`` is a symmetric operator, so with Ω = 0 the paper's energy is a Lyapunov
        function of the flow. Training is not constrained: call again after optimiser steps.

        Returns:
            ``self``.
        """
        self.weight.copy_(0.5 * (self.weight + self.transposed_weight()))
        if self.bias is not None:
            self.bias.zero_()
        return self

    def to_dense(self, height: int, width: int) -> torch.Tensor:
        """The coupling as dense ``n × n`` blocks over the ``N = (C/n)·H·W`` oscillators (bias excluded).

        Oscillators are numbered in the state's order ``(k, h, w)``, so with
        ``kuramoto.couplings.Dense(J)`` on ``x.reshape(B, N, n)`` one gets the same ``Jx`` as
        this convolution without its bias. Memory is ``(C·H·W)²`` numbers: for small grids only.

        Returns:
            ``[N, N, n, n]`` with ``J[i, j]`` coupling ``x_j`` into oscillator ``i``.
        """
        height = check_count(height, "height")
        width = check_count(width, "width")
        C, n = self.channels, self.n
        N = (C // n) * height * width
        # The convolution's response to every unit input is one column of the big matrix.
        eye = torch.eye(N * n, dtype=self.weight.dtype, device=self.weight.device)
        basis = eye.reshape(N * n, C // n, height, width, n)
        with torch.no_grad():
            cols = F.conv2d(to_features(basis), self.weight, None, padding=self.kernel_size // 2)
        big = to_oscillators(cols, n).reshape(N * n, N * n).T  # big[row, col] over (oscillator, component)
        return big.reshape(N, n, N, n).permute(0, 2, 1, 3).contiguous()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, n={self.n}, kernel_size={self.kernel_size}, bias={self.bias is not None}"


def gta_angles(grid: tuple[int, int], head_dim: int, *, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Rotation angles of the GTA initialisation, ``[H, W, head_dim/2]``.

    Token ``(row, col)`` at integer coordinates; ``F = ceil(head_dim/4)`` frequencies
    ``f_k = 10000^(−k/F)``; blocks ordered ``(k0, row), (k0, col), (k1, row), …`` with angle
    ``coord · f_k``, truncated to ``head_dim/2`` blocks (docs/AKORN.md §2.2).
    """
    H, W = grid
    nf = -(-head_dim // 4)
    f = torch.pow(10000.0, -torch.arange(nf, dtype=torch.float64) / nf)
    rows = torch.arange(H, dtype=torch.float64).view(H, 1, 1, 1).expand(H, W, nf, 1)
    cols = torch.arange(W, dtype=torch.float64).view(1, W, 1, 1).expand(H, W, nf, 1)
    ang = torch.cat((rows, cols), dim=-1) * f.view(1, 1, nf, 1)  # [H, W, F, 2]: (k, row), (k, col)
    return ang.reshape(H, W, 2 * nf)[..., : head_dim // 2].to(dtype=dtype or torch.get_default_dtype(),
                                                               device=device)


class Attention(AbstractImageCoupling):
    """Attentive coupling: multi-head self-attention over all ``H·W`` positions of the state.

    ``q, k, v`` come from a 1×1 convolution ``C -> 3C`` with bias of the *current* state (so
    ``J`` depends on ``x``: ``linear = False``). Heads are interleaved: channel
    ``c = c_local·heads + head``. Scaled dot-product attention (scale ``1/√head_dim``, no mask)
    and an output 1×1 convolution ``C -> C`` with bias (docs/AKORN.md §2.2).

    With ``gta=True`` every token ``p`` carries free 2×2 matrices per consecutive pair ``j`` of a
    head's vector (the same for every head): separate sets for q, k and v, all initialised at
    the rotations of :func:`gta_angles`, and one for the attention output initialised at their
    transpose (the inverse rotation). If the run-time grid differs from ``grid`` the matrices
    are bilinearly interpolated over the grid.

    Args:
        channels: number of channels C (a multiple of ``n`` and of ``heads``).
        n: oscillator dimension.
        heads: number of attention heads; ``head_dim = C/heads`` (even when ``gta=True``).
        gta: learnable geometric transform attention.
        grid: ``(H, W)`` of the token grid the GTA matrices are built for (required with GTA).
        generator: random generator for the initialisation (``nn.Conv2d``'s default scheme).
        dtype, device: of the parameters.

    Shapes:
        ``forward(x)``: ``[B, C/n, H, W, n] -> [B, C/n, H, W, n]``.
    """

    linear = False

    def __init__(self, channels: int, n: int, heads: int = 8, gta: bool = False, grid: tuple[int, int] | None = None,
                 *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__(channels, n)
        self.heads = check_count(heads, "heads")
        if channels % heads:
            raise ValueError(f"heads: channels={channels} must be a multiple of heads, got heads={heads}")
        self.head_dim = channels // heads
        check_bool(gta, "gta")
        self.gta = gta
        factory = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        bound = 1.0 / math.sqrt(channels)
        self.qkv_weight = nn.Parameter(torch.empty(3 * channels, channels, **factory).uniform_(-bound, bound,
                                                                                             generator=generator))
        self.qkv_bias = nn.Parameter(torch.empty(3 * channels, **factory).uniform_(-bound, bound, generator=generator))
        self.out_weight = nn.Parameter(torch.empty(channels, channels, **factory).uniform_(-bound, bound,
                                                                                         generator=generator))
        self.out_bias = nn.Parameter(torch.empty(channels, **factory).uniform_(-bound, bound, generator=generator))
        self._perm_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.grid: tuple[int, int] | None = None
        if gta:
            if grid is None:
                raise ValueError("grid: gta=True needs the token grid (H, W) the transforms are built for, "
                                 "e.g. Attention(512, 4, gta=True, grid=(9, 9))")
            if self.head_dim % 2:
                raise ValueError(f"heads: GTA rotates pairs of a head's components and needs an even head_dim, "
                                 f"got head_dim = channels/heads = {self.head_dim}")
            if (not isinstance(grid, (tuple, list)) or len(grid) != 2
                    or not all(is_int(g) and g >= 1 for g in grid)):
                raise ValueError(f"grid: expected a pair of positive integers (H, W), got {grid!r}")
            self.grid = (int(grid[0]), int(grid[1]))
            ang = gta_angles(self.grid, self.head_dim, dtype=torch.float64, device=device)
            cos, sin = torch.cos(ang), torch.sin(ang)
            rot = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)  # [H, W, hd/2, 2, 2]
            rot = rot.to(factory["dtype"])
            self.gta_q = nn.Parameter(rot.clone())
            self.gta_k = nn.Parameter(rot.clone())
            self.gta_v = nn.Parameter(rot.clone())
            self.gta_out = nn.Parameter(rot.transpose(-1, -2).clone())
        elif grid is not None:
            raise ValueError("grid: only used with gta=True; pass gta=True or drop grid")

    def gta_matrices(self, height: int, width: int) -> tuple[torch.Tensor, ...]:
        """The GTA matrices for a ``height × width`` grid: four ``[H·W, head_dim/2, 2, 2]`` tensors (q, k, v, out).

        Bilinear interpolation (``align_corners=False``) of the stored matrices when the grid
        differs from the construction grid.
        """
        if not self.gta:
            raise ValueError("gta_matrices: this Attention was built with gta=False")
        mats = (self.gta_q, self.gta_k, self.gta_v, self.gta_out)
        hd2 = self.head_dim // 2
        if (height, width) != self.grid:
            Hg, Wg = self.grid
            stacked = torch.stack(mats, 0).reshape(4, Hg, Wg, hd2 * 4).permute(0, 3, 1, 2)
            stacked = F.interpolate(stacked, size=(height, width), mode="bilinear", align_corners=False)
            mats = tuple(stacked.permute(0, 2, 3, 1).reshape(4, height, width, hd2, 2, 2).unbind(0))
        return tuple(m.reshape(height * width, hd2, 2, 2) for m in mats)

    @staticmethod
    def _transform(u: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        """Apply per-token 2×2 matrices to consecutive pairs: ``u [..., L, hd]``, ``M [L, hd/2, 2, 2]``."""
        a, b = u[..., 0::2], u[..., 1::2]
        # Unrolled 2×2 products: several times faster in eager torch than a matmul over a size-2 axis.
        return torch.stack((M[..., 0, 0] * a + M[..., 0, 1] * b, M[..., 1, 0] * a + M[..., 1, 1] * b),
                           dim=-1).flatten(-2)

    def _head_major(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Row/column orders that turn the interleaved head split into a head-major one.

        The parameters keep the official channel order (``c_local·heads + head``); gathering
        their rows (q, k, v) and columns (output) once per call lets the attention run on
        contiguous per-head blocks, which CPU attention kernels need to be fast (see
        :func:`_attention`). Cached per device.
        """
        dev = self.qkv_weight.device
        cached = self._perm_cache
        if cached is None or cached[0].device != dev:
            C, h, d = self.channels, self.heads, self.head_dim
            part = torch.arange(3, device=dev).view(3, 1, 1)
            head = torch.arange(h, device=dev).view(1, h, 1)
            local = torch.arange(d, device=dev).view(1, 1, d)
            # head-major position part·C + head·d + c_local  <-  interleaved part·C + c_local·h + head
            cached = ((part * C + local * h + head).reshape(-1), (local * h + head).reshape(-1))
            self._perm_cache = cached
        return cached

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``J(x)`` (output bias included) for a state ``[B, C/n, H, W, n]``; same shape.

        The result is a view of a contiguous ``[B, C, H, W]`` map (the memory order of
        :func:`to_oscillators`), like the result of :class:`Conv`.
        """
        f = self._features(x)
        B, C, H, W = f.shape
        L, h, d = H * W, self.heads, self.head_dim
        rows, cols = self._head_major()
        tokens = f.reshape(B, C, L).transpose(1, 2)                                    # [B, L, C]
        qkv = F.linear(tokens, self.qkv_weight[rows], self.qkv_bias[rows])             # [B, L, 3C] head-major
        q, k, v = qkv.view(B, L, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)             # [B, h, L, d] each
        if self.gta:
            Mq, Mk, Mv, Mo = self.gta_matrices(H, W)
            q, k, v = self._transform(q, Mq), self._transform(k, Mk), self._transform(v, Mv)
        o = _attention(q, k, v, 1.0 / math.sqrt(d))                                    # [B, h, L, d]
        if self.gta:
            o = self._transform(o, Mo)
        o = o.transpose(1, 2).reshape(B, L, C)                                         # head-major channels
        # W_o · oᵀ lands directly in the [B, C, L] order of the state's memory (no transpose copy).
        y = torch.matmul(self.out_weight[:, cols], o.transpose(1, 2)) + self.out_bias.view(1, C, 1)
        return to_oscillators(y.view(B, C, H, W), self.n)

    def extra_repr(self) -> str:
        s = f"channels={self.channels}, n={self.n}, heads={self.heads}, gta={self.gta}"
        return s + (f", grid={self.grid}" if self.gta else "")


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """``softmax(q kᵀ · scale) v`` over the last two axes, ``[B, h, L, d]`` each.

    Measured on a 2-core CPU (torch 2.13, float32, forward + backward, best of 6, one thread):
    torch's fused ``scaled_dot_product_attention`` on contiguous head-major blocks took 112 ms at
    256 tokens × head size 16 (batch 32, 8 heads) against 271 ms for ``matmul``/``softmax`` and
    356 ms for the fused kernel on the interleaved (strided) split; at the Sudoku size (81
    tokens, head size 64) all contiguous variants were within noise (50–58 ms), ``einsum``
    about twice slower. Hence the fused kernel on head-major blocks.
    """
    return F.scaled_dot_product_attention(q, k, v, scale=scale)
