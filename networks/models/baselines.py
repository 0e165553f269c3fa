"""The non-oscillatory baselines the paper compares AKOrN with (docs/AKORN.md §4.4, §5.3).

- :class:`IteratedSelfAttention` — Sudoku ItrSA: one shared-weight attention block iterated
  ``T`` times (trained with T = 16, evaluated with any T).
- :class:`SudokuTransformer` — the same token layout with 8 ordinary layers (T = 1).
- :class:`ObjectViT` — object-discovery ViT (T = 1) and, with ``steps = 8``
  (:meth:`ObjectViT.itrsa`), the object ItrSA.
- :class:`ConvNet` — a pre-activation ResNet classifier of about the size of
  :class:`~networks.models.classifier.AKOrNClassifier`, for the robustness study.

Every transformer block here is ``repeat T times [x ← x + Attn(LN(x))]`` (shared weights),
then ``x ← x + MLP(LN(x))``, with standard multi-head attention (no GTA) and a learnable 2-D
sinusoidal positional embedding on the token grid.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from kuramoto.checks import check_count

from ..blocks import PositionalEmbedding2d, RGBNormalize, _feature_map
from .sudoku import board_digits, check_box_shape

__all__ = ["ConvNet", "IteratedSelfAttention", "ObjectViT", "SudokuTransformer"]


def _steps(steps: object, name: str = "steps") -> int:
    return check_count(steps, name)


class _SelfAttention(nn.Module):
    """Multi-head self-attention on tokens ``[B, N, C]`` (PyTorch's fused kernel was the fastest
    option measured on CPU at the Sudoku size: 81 tokens, head size 64)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: must divide the width {dim}, got {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out(y.transpose(1, 2).reshape(b, n, c))


class _IteratedBlock(nn.Module):
    """``T × [x ← x + Attn(LN x)]`` with shared weights, then ``x ← x + MLP(LN x)``."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, dim))

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        for _ in range(steps):
            x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _IteratedTransformer(nn.Module):
    """``depth`` iterated blocks on tokens ``[B, N, C]`` followed by a final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_IteratedBlock(dim, heads, mlp_hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, steps)
        return self.norm(x)


def _check_width(width: int, heads: int) -> None:
    check_count(width, "width")
    check_count(heads, "heads")
    if width % 4:
        raise ValueError(f"width: the 2-D sinusoidal embedding needs a multiple of 4, got {width}")
    if width % heads:
        raise ValueError(f"heads: must divide width={width}, got {heads}")


class _SudokuTokenNet(nn.Module):
    """Embedding → tokens + 2-D PE → iterated transformer → LN → Linear(C, S)."""

    def __init__(self, box_shape: tuple[int, int], width: int, depth: int, steps: int, heads: int,
                 mlp_hidden: int | None) -> None:
        super().__init__()
        self.box_shape = check_box_shape(box_shape)
        self.size = self.box_shape[0] * self.box_shape[1]
        _check_width(width, heads)
        check_count(depth, "depth")
        self.steps = _steps(steps)
        mlp_hidden = 2 * width if mlp_hidden is None else check_count(mlp_hidden, "mlp_hidden")
        self.embed = nn.Embedding(self.size + 1, width)
        self.pos = PositionalEmbedding2d(width, self.size, self.size)
        self.body = _IteratedTransformer(width, depth, heads, mlp_hidden)
        self.head = nn.Linear(width, self.size)

    def forward(self, board: torch.Tensor, steps: int | None) -> torch.Tensor:
        digits, _ = board_digits(board, self.size)
        steps = self.steps if steps is None else _steps(steps)
        s = self.size
        h = self.pos(self.embed(digits).permute(0, 3, 1, 2))  # [B, C, S, S]
        tokens = h.flatten(2).transpose(1, 2)  # [B, S·S, C], row-major cells
        logits = self.head(self.body(tokens, steps))
        return logits.view(-1, s, s, s)


class _AbstractSudokuTokenModel(nn.Module):
    """The Sudoku token networks (ItrSA, the Transformer): one :class:`_SudokuTokenNet` under ``net``."""

    def __init__(self, box_shape: tuple[int, int], width: int, depth: int, steps: int, heads: int,
                 mlp_hidden: int | None) -> None:
        super().__init__()
        self.net = _SudokuTokenNet(box_shape, width, depth, steps, heads, mlp_hidden)

    TINY: ClassVar[dict[str, int]] = {}

    @classmethod
    def tiny(cls, box_shape: tuple[int, int] = (3, 3), **kwargs: object) -> Any:
        """A small configuration for tests (:attr:`TINY`, overridden by ``kwargs``)."""
        return cls(box_shape, **{**cls.TINY, **kwargs})  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return self.net.size

    def forward(self, board: torch.Tensor, *, steps: int | None = None) -> torch.Tensor:
        """Per-cell digit logits.

        Args:
            board: integer grid ``[B, S, S]`` (0 = blank, 1…S = digit) or one-hot
                ``[B, S, S, S]`` (all-zero for a blank).
            steps: iterations T (default: the constructor's).

        Returns:
            ``[B, S, S, S]`` logits; the last axis is digit ``1…S``.
        """
        return self.net(board, steps)


class IteratedSelfAttention(_AbstractSudokuTokenModel):
    """Sudoku ItrSA (docs/AKORN.md §4.4): one attention block with shared weights applied ``T`` times.

    Digit embedding ``Embedding(S+1, C)`` (0 = blank) plus a learnable 2-D sinusoidal
    embedding of the cell grid, ``depth`` iterated blocks, a final LayerNorm and
    ``Linear(C, S)`` per cell.

    Args:
        box_shape: ``(rows, cols)`` of a box; the board side is ``S = rows · cols`` (9 × 9 by
            default).
        width: token width C (512).
        depth: number of iterated blocks L (1).
        steps: attention iterations T per block (16 in training; the paper evaluates at 32).
        heads: attention heads (8).
        mlp_hidden: MLP hidden width (default ``2 · width`` = 1024).

    Paper: 512 wide, L = 1, T = 16, Adam 5e-4 (docs/AKORN.md §6).
    """

    #: the :meth:`tiny` test configuration: 32 wide, 4 heads, T = 3
    TINY: ClassVar[dict[str, int]] = {"width": 32, "depth": 1, "steps": 3, "heads": 4}

    def __init__(self, box_shape: tuple[int, int] = (3, 3), width: int = 512, depth: int = 1, steps: int = 16,
                 heads: int = 8, mlp_hidden: int | None = None) -> None:
        super().__init__(box_shape, width, depth, steps, heads, mlp_hidden)



class SudokuTransformer(_AbstractSudokuTokenModel):
    """Sudoku Transformer baseline: the :class:`IteratedSelfAttention` layout with ``depth``
    independent layers and one attention step each (docs/AKORN.md §4.4).

    Args:
        box_shape: ``(rows, cols)`` of a box (board side ``S = rows · cols``).
        width: token width C (512).
        depth: layers L (8).
        steps: attention iterations per layer (1).
        heads: attention heads (8).
        mlp_hidden: MLP hidden width (default ``2 · width``).
    """

    #: the :meth:`tiny` test configuration: 32 wide, 2 layers, 4 heads
    TINY: ClassVar[dict[str, int]] = {"width": 32, "depth": 2, "steps": 1, "heads": 4}

    def __init__(self, box_shape: tuple[int, int] = (3, 3), width: int = 512, depth: int = 8, steps: int = 1,
                 heads: int = 8, mlp_hidden: int | None = None) -> None:
        super().__init__(box_shape, width, depth, steps, heads, mlp_hidden)



class ObjectViT(nn.Module):
    """Object-discovery ViT / ItrSA baseline (docs/AKORN.md §4.4).

    ``RGBNormalize(0.5, 0.5)`` → patchify conv (kernel = stride = ``patch_size``) → learnable
    2-D sinusoidal embedding → ``depth`` blocks of ``T × [x ← x + Attn(LN x)]`` then
    ``x ← x + MLP(LN x)`` → LayerNorm. The LayerNorm output ``[B, C, h, w]`` is the feature map
    for clustering (:meth:`features`); the SimCLR head is max-pool (or average) →
    ``Linear(C, 4C)`` → ReLU → ``Linear(4C, C)``. ViT is ``steps = 1``, ItrSA ``steps = 8``
    (:meth:`itrsa`).

    Args:
        image_size: input side used to build the positional grid (128 for CLEVRTex);
            other sizes work (the embedding is resized bilinearly).
        in_channels: image channels (3).
        width: channels C (256).
        depth: blocks L (1 or 2).
        steps: attention iterations per block (1 = ViT, 8 = ItrSA).
        heads: attention heads (8).
        patch_size: patch side p (8); the token grid is ``image_size / p`` per side.
        mlp_hidden: MLP hidden width (default ``2 · width``).
        pool: ``"max"`` (what the official model does whatever its flag) or ``"avg"``.
    """

    def __init__(self, image_size: int = 128, in_channels: int = 3, width: int = 256, depth: int = 1, steps: int = 1,
                 heads: int = 8, patch_size: int = 8, mlp_hidden: int | None = None,
                 pool: Literal["max", "avg"] = "max") -> None:
        super().__init__()
        check_count(image_size, "image_size")
        check_count(in_channels, "in_channels")
        check_count(patch_size, "patch_size")
        if image_size % patch_size:
            raise ValueError(f"patch_size: must divide image_size={image_size}, got {patch_size}")
        _check_width(width, heads)
        check_count(depth, "depth")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool: expected 'max' or 'avg', got {pool!r}")
        mlp_hidden = 2 * width if mlp_hidden is None else check_count(mlp_hidden, "mlp_hidden")
        self.in_channels, self.width, self.patch_size, self.pool = in_channels, width, patch_size, pool
        self.steps = _steps(steps)
        grid = image_size // patch_size
        self.normalize = RGBNormalize(0.5, 0.5)
        self.patchify = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.pos = PositionalEmbedding2d(width, grid, grid)
        self.body = _IteratedTransformer(width, depth, heads, mlp_hidden)
        self.head = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width))

    @classmethod
    def itrsa(cls, **kwargs: object) -> ObjectViT:
        """The object ItrSA baseline: the same model with ``steps = 8``."""
        kwargs.setdefault("steps", 8)
        return cls(**kwargs)  # type: ignore[arg-type]

    @classmethod
    def tiny(cls, **kwargs: object) -> ObjectViT:
        """32×32 images, patch 8 (4×4 tokens), 32 wide, 4 heads, T = 2, for tests."""
        cfg = dict(image_size=32, width=32, depth=1, steps=2, heads=4, patch_size=8)
        cfg.update(kwargs)
        return cls(**cfg)  # type: ignore[arg-type]

    def features(self, images: torch.Tensor, *, steps: int | None = None) -> torch.Tensor:
        """Final LayerNorm output as a feature map.

        Args:
            images: ``[B, in_channels, H, W]`` in ``[0, 1]``, ``H`` and ``W`` divisible by
                ``patch_size``.
            steps: attention iterations per block (default: the constructor's).

        Returns:
            ``[B, C, H/p, W/p]``.
        """
        _feature_map(images, "images", self.in_channels)
        if images.shape[-1] % self.patch_size or images.shape[-2] % self.patch_size:
            raise ValueError(f"images: height and width must be multiples of patch_size={self.patch_size}, "
                             f"got shape {tuple(images.shape)}")
        steps = self.steps if steps is None else _steps(steps)
        h = self.pos(self.patchify(self.normalize(images)))
        b, c, gh, gw = h.shape
        tokens = self.body(h.flatten(2).transpose(1, 2), steps)
        return tokens.transpose(1, 2).reshape(b, c, gh, gw)

    def forward(self, images: torch.Tensor, *, steps: int | None = None) -> torch.Tensor:
        """SimCLR embedding ``[B, C]`` of ``images`` ``[B, in_channels, H, W]``."""
        f = self.features(images, steps=steps)
        pooled = f.amax(dim=(-2, -1)) if self.pool == "max" else f.mean(dim=(-2, -1))
        return self.head(pooled)


class _PreActBlock(nn.Module):
    """Pre-activation basic block: ``BN-ReLU-conv3-BN-ReLU-conv3`` plus an (1×1 if needed) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout
                         else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(a)
        return skip + self.conv2(F.relu(self.bn2(self.conv1(a))))


class ConvNet(nn.Module):
    """Pre-activation ResNet classifier, the plain-CNN reference of the robustness study.

    ``RGBNormalize(0.5, 0.5)`` → conv 3×3 → ``depth`` stages of ``blocks`` basic blocks with
    widths ``width · 2^s`` (stride 2 at the start of every stage after the first) → BN-ReLU →
    global average pool → ``Linear``. The defaults (96/192/384, two blocks per stage,
    ≈6.2 M parameters) are of the size of the default
    :class:`~networks.models.classifier.AKOrNClassifier` (≈7 M); the paper's own CNN
    reference is a ResNet-18 (11 M), which is ``ConvNet(width=64, depth=4)``
    up to its stem.

    Args:
        num_classes: classes (10).
        in_channels: image channels (3).
        width: channels of the first stage.
        depth: number of stages.
        blocks: basic blocks per stage.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 96, depth: int = 3,
                 blocks: int = 2) -> None:
        super().__init__()
        check_count(num_classes, "num_classes")
        check_count(in_channels, "in_channels")
        check_count(width, "width")
        check_count(depth, "depth")
        check_count(blocks, "blocks")
        self.in_channels = in_channels
        self.normalize = RGBNormalize(0.5, 0.5)
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        cin = width
        for s in range(depth):
            cout = width * 2 ** s
            for b in range(blocks):
                layers.append(_PreActBlock(cin, cout, 2 if (s > 0 and b == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    @classmethod
    def tiny(cls, **kwargs: object) -> ConvNet:
        """8 channels, two stages of one block, for tests."""
        cfg = dict(width=8, depth=2, blocks=1)
        cfg.update(kwargs)
        return cls(**cfg)  # type: ignore[arg-type]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of ``images`` ``[B, in_channels, H, W]`` in ``[0, 1]``."""
        _feature_map(images, "images", self.in_channels)
        h = self.stages(self.stem(self.normalize(images)))
        return self.fc(F.relu(self.norm(h)).mean(dim=(-2, -1)))
