"""The generalised Kuramoto vector field and its energy.

    dx_i/dt = Ω_i x_i + Proj_{x_i}(c_i + Σ_j J_ij x_j),    Proj_x(y) = y − (<y,x>/|x|²) x

(AKOrN, Miyato et al. 2025, Eq. 2). The scaled projection equals ``y − <y,x>x`` on the sphere
and keeps every ``|x_i|`` a first integral of the exact ambient ODE, so a numerical ambient
solver leaves the sphere only by its own truncation error, which does not feed back into the
field (the literal ``y − <y,x>x`` would let it grow). :func:`integrators.solve` warns
(``integrators.DriftWarning``) when that drift exceeds ``drift_tol``.
"""

from __future__ import annotations

import torch
from torch import nn

from .couplings.base import AbstractCoupling
from .frequencies import AbstractFrequencies
from .sphere import inner, project

__all__ = ["KuramotoField", "energy", "logged_energy"]


class KuramotoField(nn.Module):
    """``f(t, x) = Ω x + Proj_x(c + J x)`` as an ``nn.Module`` that torchdiffeq can call as is.

    Args:
        coupling: the ``J`` operator (:mod:`kuramoto.couplings`).
        omega: natural frequencies Ω (:mod:`kuramoto.frequencies`), or ``None`` for Ω = 0.
        stimulus: conditional stimulus ``c`` broadcastable to the state, or ``None``. It is
            data, never a parameter: set it per call with ``field.stimulus = c``.
        project: apply the tangent projection to ``c + Jx`` (the paper's default; ``False`` is
            the official code's ``apply_proj=False`` ablation, which leaves the sphere).

    Shapes: the state is ``[*batch, *oscillators, n]`` with ``coupling.state_dims`` trailing
    axes per sample (``[..., N, n]`` for graph couplings, ``[B, C/n, H, W, n]`` for image ones).
    """

    def __init__(self, coupling: AbstractCoupling, omega: AbstractFrequencies | None = None,
                 stimulus: torch.Tensor | None = None, project: bool = True) -> None:
        super().__init__()
        if not isinstance(coupling, AbstractCoupling):
            raise TypeError(f"coupling: expected a kuramoto coupling (AbstractCoupling), got {type(coupling).__name__}")
        if omega is not None and not isinstance(omega, AbstractFrequencies):
            raise TypeError(f"omega: expected a kuramoto frequency module (AbstractFrequencies) or None, "
                            f"got {type(omega).__name__}")
        self.coupling = coupling
        self.omega = omega
        self.project = bool(project)
        self._stimulus: torch.Tensor | None = None
        self.stimulus = stimulus

    @property
    def stimulus(self) -> torch.Tensor | None:
        return self._stimulus

    @stimulus.setter
    def stimulus(self, c: torch.Tensor | None) -> None:
        if c is not None:
            if not isinstance(c, torch.Tensor) or not c.is_floating_point():
                raise TypeError(f"stimulus: expected a floating-point torch.Tensor or None, got {type(c).__name__}")
            if c.dim() == 0:
                raise ValueError("stimulus: expected a tensor broadcastable to the state [..., n], got a scalar")
        self._stimulus = c

    @property
    def state_dims(self) -> int:
        return self.coupling.state_dims

    @property
    def autonomous(self) -> bool:
        """The field does not depend on ``t`` (a compiled solve then passes one time tensor)."""
        return True

    @property
    def preserves_norm(self) -> bool:
        """Whether every ``|x_i|`` is a first integral of ``dx/dt = f(t, x)`` (true with the tangent
        projection): an ambient solver's drift of ``|x_i|`` is then its own error."""
        return self.project

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """The full check of a state against this field, run once at the entry of a public call
        (:func:`integrators.solve`, :func:`energy`): type, rank, ``n >= 2``, the coupling's and the
        frequencies' own checks (shapes, dtype, device, batch axes), and the stimulus.

        Raises:
            TypeError: not a floating tensor, or a dtype/device that does not match the field's.
            ValueError: a shape the field cannot act on.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        self.coupling.check_input(x, name)
        if x.shape[-1] < 2:
            raise ValueError(f"{name}: the last (sphere) axis must have size n >= 2, got shape {tuple(x.shape)}")
        if self.omega is not None:
            self.omega.check_input(x, name)
        c = self._stimulus
        if c is not None:
            self._check_stimulus(c, x)
            try:
                ok = torch.broadcast_shapes(tuple(c.shape), tuple(x.shape)) == tuple(x.shape)
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(f"stimulus: shape {tuple(c.shape)} does not broadcast to the state's {tuple(x.shape)}")

    @staticmethod
    def _check_stimulus(c: torch.Tensor, x: torch.Tensor) -> None:
        if c.dtype != x.dtype or c.device != x.device:
            raise TypeError(f"stimulus: dtype/device {c.dtype}/{c.device} does not match the state's "
                            f"{x.dtype}/{x.device}")
        if c.shape[-1] not in (1, x.shape[-1]):
            raise ValueError(f"stimulus: last axis must be 1 or n={x.shape[-1]}, got shape {tuple(c.shape)}")

    def _check_fast(self, x: torch.Tensor) -> None:
        """What every evaluation checks: attribute compares only, no tensor operation."""
        if x.dim() < self.coupling.state_dims or x.shape[-1] < 2:
            raise ValueError(f"x: {type(self.coupling).__name__} expects at least {self.coupling.state_dims} axes "
                             f"({self.coupling.layout}) with a sphere axis n >= 2, got shape {tuple(x.shape)}")
        if self._stimulus is not None:
            self._check_stimulus(self._stimulus, x)

    def local_field(self, x: torch.Tensor) -> torch.Tensor:
        """``y = c + J x`` (the input each oscillator feels), same shape as ``x``."""
        self._check_fast(x)
        y = self.coupling(x)
        return y if self._stimulus is None else y + self._stimulus

    def coupling_term(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        """The field without its rotation: ``Proj_x(c + J x)`` (``c + Jx`` when ``project=False``)."""
        y = self.local_field(x)
        return project(x, y) if self.project else y

    def forward(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        """``dx/dt`` at state ``x`` (``t`` is unused: the field is autonomous)."""
        v = self.coupling_term(t, x)
        return v if self.omega is None else v + self.omega.apply(x)

    def generator(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        """Skew matrices ``A(x) = Ω + (y xᵀ − x yᵀ)/|x|²`` with ``f(t, x) = A(x) x``, ``y = c + Jx``.

        Lie-group integrators step with ``exp(h A)``, which is a rotation, so they stay on the
        sphere exactly.

        Returns:
            ``[*x.shape, n]``: one ``n × n`` skew matrix per oscillator.
        """
        if not self.project:
            raise ValueError("generator: the field has project=False, so it is not tangent and has no "
                             "skew-symmetric generator; build it with project=True")
        y = self.local_field(x)
        A = (y.unsqueeze(-1) * x.unsqueeze(-2) - x.unsqueeze(-1) * y.unsqueeze(-2)) / inner(x, x).unsqueeze(-1)
        if self.omega is not None:
            A = A + self.omega.matrix(x.shape[-1])
        return A

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's energy; see :func:`energy`."""
        return energy(self, x)

    def logged_energy(self, x: torch.Tensor) -> torch.Tensor:
        """The per-step energy the official code logs; see :func:`logged_energy`."""
        return logged_energy(self, x)

    def energies(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(energy(x), logged_energy(x))`` from one evaluation of J (what a layer records per step).

        Returns:
            Two ``[*batch]`` tensors.
        """
        self.check_input(x)
        paper, logged = _energies(self, x, logged=True)
        return paper, logged


def _sum_state(v: torch.Tensor, state_dims: int) -> torch.Tensor:
    return v.sum(dim=tuple(range(-state_dims, 0)))


def _energies(field: KuramotoField, x: torch.Tensor, logged: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The paper's energy of ``x`` and, with ``logged``, the official logged energy, sharing one
    evaluation of J (the formulas of :func:`energy` and :func:`logged_energy`; no checks)."""
    y = field.coupling(x)
    v = -0.5 * y
    if field.stimulus is not None:
        v = v - field.stimulus
    paper = _sum_state(x * v, field.state_dims)
    if not logged:
        return paper, None
    local = y if field.stimulus is None else y + field.stimulus
    return paper, -_sum_state(x * local, field.state_dims)


def energy(field: KuramotoField, x: torch.Tensor) -> torch.Tensor:
    """``E(x) = −½ Σ_ij x_iᵀ J_ij x_j − Σ_i c_iᵀ x_i`` (AKOrN Eq. 3), summed per sample.

    A Lyapunov function of the flow when J is symmetric (``J_ij = J_jiᵀ``) and Ω = 0 (and, for
    a shared Ω, when Ω commutes with J and ``Ω c = 0``): along ``f`` one has
    ``dE/dt = −Σ_i |Proj_{x_i}(c_i + (Jx)_i)|² ≤ 0``. For a coupling with a bias (conv,
    attention) the bias acts as part of J here; for attention J depends on x and E is only
    the paper's formula, not a proven energy.

    Args:
        field: a :class:`KuramotoField`.
        x: state ``[*batch, *oscillators, n]``.

    Returns:
        ``[*batch]`` energies.
    """
    if not isinstance(field, KuramotoField):
        raise TypeError(f"field: expected a KuramotoField, got {type(field).__name__}")
    field.check_input(x)
    return _energies(field, x, logged=False)[0]


def logged_energy(field: KuramotoField, x: torch.Tensor) -> torch.Tensor:
    """The official AKOrN per-step energy ``−Σ x ⊙ (J x + c)``: no ½, biases included.

    The official code records it for the state *before* each update (docs/AKORN.md §1.7); the
    Sudoku energy vote ranks copies by it.

    Returns:
        ``[*batch]``.
    """
    if not isinstance(field, KuramotoField):
        raise TypeError(f"field: expected a KuramotoField, got {type(field).__name__}")
    return -_sum_state(x * field.local_field(x), field.state_dims)
