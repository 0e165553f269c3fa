"""Couplings on oscillator graphs, state ``[..., N, n]`` (oscillator axis ``-2``)."""

from __future__ import annotations

import torch
from torch import nn

from .base import AbstractCoupling

__all__ = ["Dense", "MeanField", "Sparse"]


def _as_param(value: torch.Tensor, learnable: bool, module: nn.Module, name: str) -> None:
    value = value.detach().clone()
    if learnable:
        setattr(module, name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


class MeanField(AbstractCoupling):
    """All-to-all coupling ``J_ij = K/N``: ``(Jx)_i = K · mean_j x_j``, in O(N).

    Never builds an N×N matrix. The self-term ``j = i`` is included, as in the classic model
    ``dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i)`` where it vanishes; the tangent projection
    removes it for any ``n``.

    Args:
        k: coupling strength K (a float or a 0-d tensor).
        learnable: make K a trainable parameter.
    """

    def __init__(self, k: float | torch.Tensor, learnable: bool = False) -> None:
        super().__init__()
        # a Python float keeps its full (double) precision; a tensor keeps its dtype
        kt = torch.as_tensor(k, dtype=torch.float64 if not isinstance(k, torch.Tensor) else k.dtype)
        if kt.dim() != 0 or not kt.is_floating_point() or not bool(torch.isfinite(kt)):
            raise ValueError(f"k: expected a finite real scalar, got {k!r}")
        self.learnable = learnable
        if learnable:
            self.k = nn.Parameter(kt.to(torch.get_default_dtype()) if not isinstance(k, torch.Tensor) else kt.clone())
        else:
            self._k = float(kt)

    @property
    def strength(self) -> torch.Tensor | float:
        return self.k if self.learnable else self._k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.learnable:
            self.check_input(x)
        m = x.mean(dim=-2, keepdim=True)
        return (self.strength * m).expand_as(x)

    def is_symmetric(self, atol: float = 0.0) -> bool:
        return True

    def extra_repr(self) -> str:
        return f"k={float(self.strength):g}, learnable={self.learnable}"


class Dense(AbstractCoupling):
    """Dense coupling matrix ``J``: ``J[i, j]`` couples ``x_j`` into oscillator ``i``.

    Args:
        J: ``[N, N]`` scalar couplings, or ``[N, N, n, n]`` blocks ``J_ij ∈ R^{n×n}``. The
            diagonal is used as given (for scalar J the projection removes the self-term).
        learnable: make J a trainable parameter (default: a buffer).
    """

    def __init__(self, J: torch.Tensor, learnable: bool = False) -> None:
        super().__init__()
        if not isinstance(J, torch.Tensor) or not J.is_floating_point():
            raise TypeError("J: expected a floating-point torch.Tensor of shape [N, N] or [N, N, n, n]")
        if J.dim() not in (2, 4) or J.shape[0] != J.shape[1] or (J.dim() == 4 and J.shape[2] != J.shape[3]):
            raise ValueError(f"J: expected a square [N, N] or [N, N, n, n] tensor, got {tuple(J.shape)}")
        if not bool(torch.isfinite(J).all()):
            raise ValueError("J: contains NaN or inf")
        _as_param(J, learnable, self, "J")
        self.blocks = J.dim() == 4

    @property
    def num_nodes(self) -> int:
        return self.J.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        N = self.num_nodes
        if x.shape[-2] != N:
            raise ValueError(f"x: expected {N} oscillators on axis -2, got shape {tuple(x.shape)}")
        if not self.blocks:
            return self.J @ x
        n = self.J.shape[-1]
        if x.shape[-1] != n:
            raise ValueError(f"x: J has {n}×{n} blocks but the state has n={x.shape[-1]}")
        big = self.J.permute(0, 2, 1, 3).reshape(N * n, N * n)
        return (big @ x.reshape(*x.shape[:-2], N * n, 1)).reshape(x.shape)

    def is_symmetric(self, atol: float = 0.0) -> bool:
        Jt = self.J.transpose(0, 1)
        if self.blocks:
            Jt = Jt.transpose(-1, -2)
        return bool(torch.allclose(self.J, Jt, rtol=0.0, atol=atol))

    def extra_repr(self) -> str:
        return f"N={self.num_nodes}, blocks={self.blocks}"


class Sparse(AbstractCoupling):
    """Sparse graph coupling in O(edges): ``(Jx)_i = Σ_{(j→i)} w_ji x_j``.

    Args:
        edge_index: ``[2, E]`` integer tensor; row 0 are sources j, row 1 targets i (messages
            flow source → target, as in PyTorch Geometric). Add both directions for an
            undirected graph.
        weight: ``[E]`` edge weights (default: all ones in torch's default dtype).
        num_nodes: N.
        learnable: make the weights trainable.
    """

    def __init__(self, edge_index: torch.Tensor, weight: torch.Tensor | None = None, num_nodes: int | None = None,
                 learnable: bool = False) -> None:
        super().__init__()
        if not isinstance(edge_index, torch.Tensor) or edge_index.dtype not in (torch.int64, torch.int32):
            raise TypeError("edge_index: expected an integer torch.Tensor of shape [2, E]")
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index: expected shape [2, E], got {tuple(edge_index.shape)}")
        if not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"num_nodes: expected a positive integer, got {num_nodes!r}")
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(f"edge_index: node ids must lie in [0, {num_nodes}), got range "
                             f"[{int(edge_index.min())}, {int(edge_index.max())}]")
        E = edge_index.shape[1]
        if weight is None:
            weight = torch.ones(E, device=edge_index.device)
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
            raise TypeError("weight: expected a floating-point torch.Tensor of shape [E] or None")
        if weight.shape != (E,):
            raise ValueError(f"weight: expected shape [{E}] (one per edge), got {tuple(weight.shape)}")
        self.register_buffer("edge_index", edge_index.long().clone())
        _as_param(weight, learnable, self, "weight")
        self.num_nodes = num_nodes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if x.shape[-2] != self.num_nodes:
            raise ValueError(f"x: expected {self.num_nodes} oscillators on axis -2, got shape {tuple(x.shape)}")
        src, dst = self.edge_index[0], self.edge_index[1]
        messages = x.index_select(-2, src) * self.weight.unsqueeze(-1)
        return torch.zeros_like(x).index_add(-2, dst, messages)

    def to_dense(self) -> torch.Tensor:
        """The equivalent ``[N, N]`` matrix (duplicate edges add up)."""
        J = torch.zeros(self.num_nodes, self.num_nodes, dtype=self.weight.dtype, device=self.weight.device)
        return J.index_put((self.edge_index[1], self.edge_index[0]), self.weight, accumulate=True)

    def is_symmetric(self, atol: float = 0.0) -> bool:
        J = self.to_dense()
        return bool(torch.allclose(J, J.T, rtol=0.0, atol=atol))

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, edges={self.edge_index.shape[1]}"
