"""The coupling interface: the linear-in-the-neighbours operator ``x ↦ (Σ_j J_ij x_j)_i``."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AbstractCoupling", "check_rotation", "check_strength", "lag_rotation"]


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

    def __init__(self) -> None:
        super().__init__()
        # the frustration of the graph couplings (their ``lag=`` or ``rotation=``), None without one
        self.register_buffer("lag", None)
        self.register_buffer("rotation", None)

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

    # -- phase lag / frustration (the graph couplings) ----------------------------------------
    def _init_frustration(self, lag: float | torch.Tensor | None, rotation: torch.Tensor | None) -> None:
        """Register the buffers ``lag`` (``[*batch, 1, 1]`` or 0-d, float64 for a Python float) and
        ``rotation`` (``[n, n]``); at most one of them is given."""
        if lag is not None and rotation is not None:
            raise ValueError("lag, rotation: give a phase lag (n = 2, or the same lag on every component pair) or "
                             "an n×n rotation, not both")
        self.register_buffer("lag", None if lag is None else check_strength(lag, "lag").detach().clone())
        self.register_buffer("rotation", None if rotation is None else check_rotation(rotation))

    @property
    def frustrated(self) -> bool:
        """Whether a lag or a rotation acts on the coupling's input."""
        return self.lag is not None or self.rotation is not None

    def _check_frustration(self, x: torch.Tensor, name: str) -> None:
        """Attribute compares only: a lag needs an even ``n``, a rotation the state's ``n``."""
        n = x.shape[-1]
        if self.lag is not None and n % 2:
            raise ValueError(f"lag: a phase lag rotates component pairs (θ → θ − α) and is undefined for an odd "
                             f"sphere dimension, got n={n} ({name} shape {tuple(x.shape)}); pass rotation=R, an "
                             f"{n}×{n} rotation, instead")
        if self.rotation is not None and self.rotation.shape[-1] != n:
            r = self.rotation.shape[-1]
            raise ValueError(f"{name}: the coupling's rotation is {r}×{r} but the state has n={n}")

    def _frustrate(self, y: torch.Tensor) -> torch.Tensor:
        """``R y`` on the sphere axis (same shape and memory order as ``y``): with a lag α every
        component pair turns by −α, i.e. ``R = exp(−αJ)``, so that for n = 2 the coupling
        ``Proj_{x_i}(R Σ_j J_ij x_j)`` is ``Σ_j J_ij sin(θ_j − θ_i − α)``."""
        if self.rotation is not None:
            R = self.rotation if self.rotation.dtype == y.dtype else self.rotation.to(y.dtype)
            # component-major y: (R y.mT) keeps the planes contiguous
            return (R @ y.mT).mT if y.dim() >= 2 and y.stride(-2) == 1 and y.shape[-2] > 1 else y @ R.mT
        if self.lag is None:
            return y
        lag = self.lag if self.lag.dtype == y.dtype and self.lag.device == y.device else \
            self.lag.to(device=y.device, dtype=y.dtype)
        c, s = torch.cos(lag), torch.sin(lag)
        if y.shape[-1] == 2:  # (c y0 + s y1, c y1 − s y0), in y's memory order
            return torch.addcmul(y * c, y.flip(-1), torch.cat((s, -s), dim=-1) if s.dim() else torch.stack((s, -s)))
        a, b = y[..., 0::2], y[..., 1::2]
        out = torch.empty_like(y)  # y's memory order (component-major stays so)
        out[..., 0::2] = c * a + s * b
        out[..., 1::2] = c * b - s * a
        return out

    def _frustration_symmetric(self, atol: float) -> bool:
        """Whether the rotation is symmetric (``R = Rᵀ``), which the coupling's symmetry needs."""
        if self.rotation is not None:
            return bool(torch.allclose(self.rotation, self.rotation.mT, rtol=0.0, atol=atol))
        if self.lag is not None:
            return bool((torch.sin(self.lag).abs() <= atol).all())
        return True

    def _frustration_repr(self) -> str:
        if self.lag is not None:
            return f", lag={float(self.lag):g}" if self.lag.numel() == 1 else f", lag of shape {tuple(self.lag.shape)}"
        return f", rotation {self.rotation.shape[-1]}×{self.rotation.shape[-1]}" if self.rotation is not None else ""


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


def lag_rotation(lag: float, n: int = 2) -> torch.Tensor:
    """The ``n × n`` rotation a phase lag α applies to the coupling input: ``exp(−αJ)`` on every
    component pair (float64), so that ``dθ_i/dt = ω_i + Σ_j J_ij sin(θ_j − θ_i − α)`` for n = 2.

    Raises:
        ValueError: a non-finite ``lag``, or an odd ``n`` (a lag turns component pairs).
    """
    if isinstance(lag, bool) or not isinstance(lag, (int, float)) or not math.isfinite(lag):
        raise ValueError(f"lag: expected a finite phase lag in radians, got {lag!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n % 2:
        raise ValueError(f"n: a phase lag turns component pairs and needs an even n >= 2, got {n!r}")
    c, s = math.cos(lag), math.sin(lag)
    R = torch.zeros(n, n, dtype=torch.float64)
    idx = torch.arange(0, n, 2)
    R[idx, idx] = c
    R[idx + 1, idx + 1] = c
    R[idx, idx + 1] = s
    R[idx + 1, idx] = -s
    return R


def check_rotation(R: object, name: str = "rotation") -> torch.Tensor:
    """A rotation of the sphere axis: a finite ``[n, n]`` floating tensor with ``RᵀR = I`` and
    ``det R = +1`` (to 1e-6 relative in float32, 1e-10 in float64); returned detached (a copy).

    Raises:
        TypeError: not a floating tensor.
        ValueError: not square, not finite, not orthogonal, or a reflection.
    """
    if not isinstance(R, torch.Tensor) or not R.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point torch.Tensor [n, n], got {type(R).__name__}")
    if R.dim() != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 2:
        raise ValueError(f"{name}: expected a square [n, n] matrix with n >= 2, got shape {tuple(R.shape)}")
    if not bool(torch.isfinite(R).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    Rd = R.detach().double()
    tol = 1e-10 if R.dtype == torch.float64 else 1e-5
    err = float((Rd.mT @ Rd - torch.eye(R.shape[0], dtype=torch.float64)).abs().max())
    if err > tol:
        raise ValueError(f"{name}: expected an orthogonal matrix (RᵀR = I), got max |RᵀR − I| = {err:.3g}")
    if float(torch.linalg.det(Rd)) < 0:
        raise ValueError(f"{name}: expected a rotation (det R = +1), got a reflection (det R = −1)")
    return R.detach().clone()
