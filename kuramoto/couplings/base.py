"""The coupling interface: the linear-in-the-neighbours operator ``x ↦ (Σ_j J_ij x_j)_i``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AbstractCoupling"]


class AbstractCoupling(nn.Module):
    """A coupling operator ``J``: ``forward(x)`` returns ``(J x)_i = Σ_j J_ij x_j`` for every oscillator.

    A subclass declares ``state_dims``, the number of trailing axes that make up one sample's
    state *including* the sphere axis: 2 for graph layouts ``[..., N, n]``, 4 for image layouts
    ``[B, C/n, H, W, n]``. Every axis in front of those is a batch axis, which energies and
    order parameters keep.

    ``forward`` maps a state to a tensor of the same shape. Couplings may contain a bias
    (convolution and attention do, as in the official AKOrN code) or depend on the state
    itself (attention); :attr:`linear` says whether ``J(a x + b y) = a J(x) + b J(y)`` holds.
    """

    state_dims: int = 2
    linear: bool = True

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Cheap checks (no device sync): type, rank, and dtype/device against the parameters."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        if x.dim() < self.state_dims:
            raise ValueError(f"{name}: {type(self).__name__} expects at least {self.state_dims} axes "
                             f"(state layout {self.layout}), got shape {tuple(x.shape)}")
        ref = next(iter(self.parameters()), None)
        if ref is None:
            ref = next(iter(self.buffers()), None)
        if ref is not None and ref.is_floating_point() and (ref.dtype != x.dtype or ref.device != x.device):
            raise TypeError(f"{name}: dtype/device {x.dtype}/{x.device} does not match the coupling's "
                            f"{ref.dtype}/{ref.device}; move one of them (e.g. coupling.to(x))")

    @property
    def layout(self) -> str:
        return "[..., N, n]" if self.state_dims == 2 else "[B, C/n, H, W, n]"

    def is_symmetric(self, atol: float = 0.0) -> bool:
        """Whether ``J_ij = J_jiᵀ`` (the energy is then a Lyapunov function for Ω = 0)."""
        raise NotImplementedError(f"{type(self).__name__} does not report symmetry")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError
