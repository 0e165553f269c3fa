"""Step-size control for embedded Runge–Kutta pairs: the error norm, a PI controller and the
initial step. The solver never chooses the step size; :func:`integrators.solve` asks this."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kuramoto.checks import check_positive, is_real

__all__ = ["PIController"]


@dataclass(frozen=True)
class PIController:
    """Proportional–integral step-size controller (Gustafsson; Hairer's DOPRI5 variant).

    After a step with error ratio ``e`` (RMS of ``error / (atol + rtol·max(|x|, |y|))``; the
    step is accepted when ``e <= 1``), the next step is

        ``h · clip(safety · e^(−(1/q − 0.75 β)) · e_prev^β, dfactor, ifactor)``

    with ``q`` the order of the error estimate plus one and ``e_prev`` the ratio of the last
    accepted step. ``β = 0`` is the classical I controller; ``β = 0.04`` is Hairer's choice.
    After a rejection the step only shrinks.

    Args:
        safety: safety factor (< 1).
        ifactor: largest growth factor per step.
        dfactor: smallest shrink factor per step.
        beta: the PI coefficient β.
        max_step: largest step size magnitude (``inf``: unbounded).

    References:
        Hairer, Nørsett, Wanner, "Solving Ordinary Differential Equations I", 2nd ed., §II.4
        (initial step, error norm) and Hairer, Wanner, "… II", §IV.2 (PI control).
    """

    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    beta: float = 0.04
    max_step: float = math.inf

    def __post_init__(self) -> None:
        check_positive(self.safety, "safety", kind_error=ValueError)
        if not self.safety < 1:
            raise ValueError(f"safety: expected a factor in (0, 1), got {self.safety}")
        if check_positive(self.ifactor, "ifactor", kind_error=ValueError) <= 1:
            raise ValueError(f"ifactor: expected a growth factor > 1, got {self.ifactor}")
        if not 0 < check_positive(self.dfactor, "dfactor", kind_error=ValueError) < 1:
            raise ValueError(f"dfactor: expected a shrink factor in (0, 1), got {self.dfactor}")
        if not (is_real(self.beta) and 0 <= self.beta < 0.2):
            raise ValueError(f"beta: expected a PI coefficient in [0, 0.2), got {self.beta!r}")
        if not (is_real(self.max_step) and self.max_step > 0):
            raise ValueError(f"max_step: expected a positive float (or inf), got {self.max_step!r}")

    @staticmethod
    def error_ratio(error: torch.Tensor, x: torch.Tensor, y: torch.Tensor, rtol: float, atol: float) -> float:
        """RMS of ``error / (atol + rtol · max(|x|, |y|))`` over all elements (one device sync)."""
        with torch.no_grad():
            scale = torch.maximum(x.abs(), y.abs()).mul_(rtol).add_(atol)
            ratio = (error / scale).square().mean().sqrt()
        return float(ratio)

    def next_step(self, h: float, ratio: float, prev_ratio: float, order: int, accepted: bool) -> float:
        """The next step size (same sign as ``h``) after a step of size ``h`` with error ``ratio``."""
        q = order + 1  # the error estimate of a p(p-1) pair behaves like h^p: exponent 1/p
        alpha = 1.0 / q - 0.75 * self.beta
        if not math.isfinite(ratio):
            factor = self.dfactor
        elif ratio == 0.0:
            factor = self.ifactor
        elif accepted:
            factor = self.safety * ratio ** (-alpha) * max(prev_ratio, 1e-4) ** self.beta
        else:
            factor = self.safety * ratio ** (-1.0 / q)
        factor = min(self.ifactor, max(self.dfactor, factor))
        if not accepted:
            factor = min(factor, 1.0)
        h_new = h * factor
        return math.copysign(min(abs(h_new), self.max_step), h)

    def initial_step(self, f: Callable[[float, torch.Tensor], torch.Tensor], t0: float, x0: torch.Tensor,
                     f0: torch.Tensor, order: int, rtol: float, atol: float, direction: float) -> float:
        """Hairer's starting step (one extra field evaluation).

        Returns:
            A step size magnitude times ``direction`` (±1).
        """
        with torch.no_grad():
            scale = x0.abs().mul(rtol).add_(atol)
            d0 = float((x0 / scale).square().mean().sqrt())
            d1 = float((f0 / scale).square().mean().sqrt())
            h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
            x1 = x0 + (direction * h0) * f0
            f1 = f(t0 + direction * h0, x1)
            d2 = float(((f1 - f0) / scale).square().mean().sqrt()) / h0
            if not (math.isfinite(d1) and math.isfinite(d2)):
                h1 = h0
            elif max(d1, d2) <= 1e-15:
                h1 = max(1e-6, h0 * 1e-3)
            else:
                h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
        return direction * min(100 * h0, h1, self.max_step)
