"""Explicit Runge–Kutta tableaux and the stage loop they share.

A :class:`Tableau` is a frozen value that checks its own consistency when it is built. The
stage loop :func:`rk_stages` is written once; the retraction, Lawson and embedded-pair methods
call it with their tableau and then do what is particular to them (normalise, rotate, estimate
the error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .base import TimeLike

__all__ = ["DOPRI5", "EULER", "HEUN", "RK4", "Tableau", "lincomb", "rk_stages"]


@dataclass(frozen=True)
class Tableau:
    """Butcher tableau of an explicit Runge–Kutta method.

    Args:
        c: nodes ``c_i`` (length s, ``c_0 = 0``).
        a: strictly lower-triangular rows; ``a[i]`` has ``i`` entries ``a_ij`` (``a[0] = ()``).
        b: weights of the propagated solution (length s, summing to 1).
        b_err: weights of the error estimate ``b − b̂`` (length s, summing to 0), or ``None``.

    Raises:
        ValueError: inconsistent lengths, rows not summing to ``c``, ``Σb ≠ 1`` or ``Σb_err ≠ 0``.
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_err: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        s = len(self.c)
        if s < 1 or len(self.a) != s or len(self.b) != s:
            raise ValueError(f"Tableau: c, a and b must all have one entry per stage; got lengths "
                             f"{len(self.c)}, {len(self.a)}, {len(self.b)}")
        if self.c[0] != 0:
            raise ValueError(f"Tableau: an explicit method starts with c_0 = 0, got {self.c[0]}")
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise ValueError(f"Tableau: row a[{i}] must have {i} entries (explicit method), got {len(row)}")
            if not math.isclose(math.fsum(row), self.c[i], rel_tol=0, abs_tol=1e-14):
                raise ValueError(f"Tableau: row a[{i}] sums to {math.fsum(row)!r}, expected c[{i}] = {self.c[i]!r}")
        if not math.isclose(math.fsum(self.b), 1.0, rel_tol=0, abs_tol=1e-14):
            raise ValueError(f"Tableau: weights b sum to {math.fsum(self.b)!r}, expected 1")
        if self.b_err is not None:
            if len(self.b_err) != s:
                raise ValueError(f"Tableau: b_err needs {s} entries, got {len(self.b_err)}")
            if not math.isclose(math.fsum(self.b_err), 0.0, rel_tol=0, abs_tol=1e-14):
                raise ValueError(f"Tableau: error weights b_err sum to {math.fsum(self.b_err)!r}, expected 0")

    @property
    def stages(self) -> int:
        return len(self.c)


EULER = Tableau(c=(0.0,), a=((),), b=(1.0,))

# Heun's method (explicit trapezoidal rule), order 2.
HEUN = Tableau(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5))

# The classical Runge–Kutta method, order 4.
RK4 = Tableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
)

# Dormand & Prince (1980) 5(4) pair; the 7th stage is the field at the new point (FSAL).
DOPRI5 = Tableau(
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    ),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    b_err=(
        35 / 384 - 5179 / 57600,
        0.0,
        500 / 1113 - 7571 / 16695,
        125 / 192 - 393 / 640,
        -2187 / 6784 + 92097 / 339200,
        11 / 84 - 187 / 2100,
        -1 / 40,
    ),
)


def lincomb(coefficients: Sequence[float], ks: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """``Σ_i coefficients[i] · ks[i]``, skipping zero coefficients (``None`` if all are zero).

    One fused ``add(alpha=…)`` per term, and no multiplication for a coefficient of 1.
    """
    out: torch.Tensor | None = None
    for coef, k in zip(coefficients, ks):
        if coef == 0.0:
            continue
        if out is None:
            out = k if coef == 1.0 else k * coef
        else:
            out = torch.add(out, k, alpha=coef)
    return out


def axpy(x: torch.Tensor, dt: TimeLike, v: torch.Tensor) -> torch.Tensor:
    """``x + dt · v`` in one fused op (``add`` with ``alpha`` for a Python float, ``addcmul`` for a
    0-d tensor, which a learnable step may be); the result keeps ``x``'s memory order."""
    if isinstance(dt, torch.Tensor):
        return torch.addcmul(x, dt.to(x.dtype) if dt.dtype != x.dtype else dt, v)
    return torch.add(x, v, alpha=dt)


def rk_stages(f: Callable[[TimeLike, torch.Tensor], torch.Tensor], tableau: Tableau, t: TimeLike, dt: TimeLike,
              x: torch.Tensor, k1: torch.Tensor | None = None,
              stages: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The stage loop of an explicit RK step: ``y = x + dt Σ b_i k_i`` and the stages ``k_i``.

    Args:
        f: the right-hand side ``f(t, x)``.
        tableau: the method.
        t, dt: time and step size.
        x: state ``[..., n]``.
        k1: ``f(t, x)`` if already known (FSAL), else evaluated here.
        stages: evaluate only the first ``stages`` stages (an FSAL pair's last stage is the field
            at the new point, which the caller evaluates where it wants).

    Returns:
        ``(y, ks)`` with ``y`` of the shape of ``x`` and the list of stage derivatives.
    """
    s = tableau.stages if stages is None else stages
    ks = [f(t, x) if k1 is None else k1]
    for i in range(1, s):
        incr = lincomb(tableau.a[i], ks)
        xi = x if incr is None else axpy(x, dt, incr)
        ks.append(f(t + tableau.c[i] * dt, xi))
    incr = lincomb(tableau.b[:s], ks)
    y = x if incr is None else axpy(x, dt, incr)
    return y, ks
