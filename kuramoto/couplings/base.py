"""The coupling interface: the linear-in-the-neighbours operator ``x ↦ (Σ_j J_ij x_j)_i``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AbstractCoupling", "check_strength"]


class AbstractCoupling(nn.Module):
    """A coupling operator ``J``: ``forward(x)`` returns ``(J x)_i = Σ_j J_ij x_j`` for every oscillator.

    A subclass declares ``state_dims``, the number of trailing axes that make up one sample's
    state *including* the sphere axis: 2 for graph layouts ``[..., N, n]``, 4 for image layouts
    ``[B, C/n, H, W, n]``. Every axis in front of those is a batch axis, which energies and
    order parameters keep.

    ``forward`` maps a state to a tensor of the same shape (a broadcastable view, such as the
    mean field expanded over the oscillators, counts), in any memory order: on a
    component-major state (:func:`kuramoto.sphere.component_major`) the graph couplings return
    component-major results. Couplings may contain a bias (convolution and attention do, as in
    the official AKOrN code) or depend on the state itself (attention); :attr:`linear` says
    whether ``J(a x + b y) = a J(x) + b J(y)`` holds.

    Validation: :meth:`check_input` is the full check of a state against the coupling (shapes,
    dtype, device), run once at the entry of a public call (:func:`integrators.solve`,
    :meth:`kuramoto.KuramotoField.check_input`); ``forward`` itself only compares a few
    attributes, so a solve does not re-validate on every field evaluation.
    """

    state_dims: int = 2
    linear: bool = True
    any_layout: bool = False
    """Whether ``forward`` is written for states in any memory order (no ``view`` of the state):
    :func:`integrators.solve` then steps the state component-major."""

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Cheap checks (no device sync): type, rank, and dtype/device against the parameters."""
        self.check_layout(x, name)
        ref = next(iter(self.parameters()), None)
        if ref is None:
            ref = next((b for b in self.buffers() if b.is_floating_point()), None)
        if ref is not None and ref.is_floating_point() and (ref.dtype != x.dtype or ref.device != x.device):
            raise TypeError(f"{name}: dtype/device {x.dtype}/{x.device} does not match the coupling's "
                            f"{ref.dtype}/{ref.device}; move one of them (e.g. coupling.to(x))")

    def check_layout(self, x: torch.Tensor, name: str = "x") -> None:
        """Type and rank of a state (``state_dims`` axes at least) and a sphere axis ``n >= 2``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        if x.dim() < self.state_dims:
            raise ValueError(f"{name}: {type(self).__name__} expects at least {self.state_dims} axes "
                             f"(state layout {self.layout}), got shape {tuple(x.shape)}")
        if x.shape[-1] < 2:
            raise ValueError(f"{name}: the last (sphere) axis must have size n >= 2, got shape {tuple(x.shape)}")

    @property
    def layout(self) -> str:
        return "[..., N, n]" if self.state_dims == 2 else "[B, C/n, H, W, n]"

    def is_symmetric(self, atol: float = 0.0) -> bool:
        """Whether ``J_ij = J_jiᵀ`` (the energy is then a Lyapunov function for Ω = 0)."""
        raise NotImplementedError(f"{type(self).__name__} does not report symmetry")

    def lipschitz_constant(self) -> float:
        """The operator's norm ``L = ‖J‖₂`` on the stacked state (``|(J x) − (J y)| ≤ L |x − y|``),
        the rate scale of the coupling.

        :func:`integrators.solve` compares ``h · L`` with a fixed-step method's stability limit on
        the real axis: a stiff coupling would otherwise be stepped silently wrong by the methods
        that stay on the sphere (they cannot blow up). One device sync; called once per solve,
        never inside a step.

        Raises:
            NotImplementedError: the coupling gives no constant (the stiffness guard is then skipped).
        """
        raise NotImplementedError(f"{type(self).__name__} gives no Lipschitz constant")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def check_strength(value: float | torch.Tensor, name: str, learnable: bool = False) -> torch.Tensor:
    """A coupling strength (or scale) as a tensor: a finite real scalar, or a tensor whose last two
    axes are 1 (``[*batch, 1, 1]``) so that it broadcasts over the batch axes of a state
    ``[*batch, N, n]`` and never across oscillators or components.

    A Python float becomes a float64 tensor (its full precision; it follows the state's dtype
    when used); a tensor keeps its dtype. One device sync (the finiteness check).

    Raises:
        TypeError: not a real number or floating tensor.
        ValueError: NaN/inf entries, or a shape that would broadcast across oscillators.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name}: expected a float or a floating tensor [*batch, 1, 1], got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name}: expected a floating tensor, got dtype {value.dtype}")
        t = value
    else:
        t = torch.tensor(float(value), dtype=torch.float64)
    if t.dim() == 1 and t.numel() == 1:
        t = t.reshape(())
    if t.dim() not in (0,) and (t.dim() < 2 or t.shape[-2:] != (1, 1)):
        raise ValueError(f"{name}: expected a scalar or a tensor [*batch, 1, 1] that broadcasts over the batch axes "
                         f"of the state [*batch, N, n], got shape {tuple(t.shape)} (for a sweep over values v, "
                         f"pass v.view(-1, 1, 1))")
    if t.numel() and not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{name}: expected a finite real value (or a tensor of them), got {value!r}")
    return t
