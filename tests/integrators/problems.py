"""Shared problems, method lists and tolerances of the integrator tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import kuramoto as ku
from integrators import METHODS, solve

REFERENCE = "scipy_reference"
ALL = sorted(METHODS)
NON_REFERENCE = [m for m in ALL if m != REFERENCE]
NATIVE_FIXED = [m for m in ALL if METHODS[m].native and not METHODS[m].adaptive]
ON_SPHERE = [m for m in ALL if METHODS[m].stays_on_sphere]
ADAPTIVE = [m for m in NON_REFERENCE if METHODS[m].adaptive]

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]),
]

# Tolerances, in one place.
ORDER_BAND = 0.3          # |fitted slope − declared order|
ROUNDOFF_FLOOR = 1e-13    # errors below this (float64) are round-off, left out of order fits
NORM_ATOL_F64 = 1e-12     # | |x_i| − 1 | of the methods that stay on the sphere, over 10^4 steps
ADAPTIVE_FACTOR = 10.0    # global error of an adaptive solve ≤ factor × tolerance
NORM_STEPS = 1_000        # steps of the unmarked norm test (10^4 in the slow one)
GRAD_ATOL = 1e-10         # checkpointed vs plain backprop (float64)
ADJOINT_ATOL = 1e-6       # odeint_adjoint vs backprop through dopri5 (float64)


def kuramoto_problem(n: int, N: int = 16, seed: int = 0, batch: tuple[int, ...] = (), dtype=torch.float64,
                     device: str = "cpu", coupling: float = 1.5, learnable: bool = False):
    """A non-trivial field: dense random coupling, per-oscillator Ω ≠ 0, a stimulus.

    Even ``n`` uses :class:`kuramoto.Frequencies` (pair rotations), odd ``n`` a per-oscillator
    :class:`kuramoto.Skew`. Returns ``(field, x0)`` with ``x0`` of shape ``[*batch, N, n]``.
    """
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(N, N, generator=g, dtype=torch.float64) / math.sqrt(N) * coupling
    if n % 2 == 0:
        omega = ku.Frequencies(torch.randn(N, n // 2, generator=g, dtype=torch.float64), learnable=learnable)
    else:
        omega = ku.Skew(n, groups=N, spatial_dims=0, init_std=0.7, generator=g, learnable=learnable).double()
    c = 0.5 * torch.randn(N, n, generator=g, dtype=torch.float64)
    field = ku.KuramotoField(ku.Dense(J, learnable=learnable), omega=omega)
    field = field.to(device=device, dtype=dtype)
    field.stimulus = c.to(device=device, dtype=dtype)
    x0 = ku.random_states(*batch, N, n=n, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return field, x0


def rotation_problem(n: int, *, skew_std: float, frequency_scale: float, N: int = 5, seed: int = 16):
    """A pure rotation ``x' = Ωx`` (J = 0, no stimulus), whose flow is ``exp(tΩ)``: ``(field, omega, x0)``
    in float64. Odd n: a random skew Ω per oscillator (entries of P with std ``skew_std``); even n:
    frequencies ``frequency_scale · randn`` per component pair."""
    g = torch.Generator().manual_seed(seed)
    if n % 2:
        omega = ku.Skew(n, groups=N, spatial_dims=0, init_std=skew_std, generator=g, learnable=False).double()
    else:
        omega = ku.Frequencies(frequency_scale * torch.randn(N, n // 2, generator=g, dtype=torch.float64))
    field = ku.KuramotoField(ku.Dense(torch.zeros(N, N, dtype=torch.float64)), omega=omega)
    x0 = ku.random_states(N, n=n, generator=g, dtype=torch.float64)
    return field, omega, x0


def reference(field, x0, t, rtol: float = 1e-13, atol: float = 1e-14) -> torch.Tensor:
    """States at ``t`` from the float64 SciPy reference."""
    with torch.no_grad():
        return solve(field, x0, t, REFERENCE, options={"rtol": rtol, "atol": atol}).xs


def final_state(method: str, field, x0, T: float, h: float, **kwargs) -> torch.Tensor:
    """``x(T)`` with steps of size ``h``: through :func:`solve` for fixed-step methods and by
    stepping the solver by hand at a constant ``h`` for adaptive ones (their error estimate is
    ignored), so every method's order can be measured the same way."""
    cls = METHODS[method]
    with torch.no_grad():
        if cls.adaptive:
            solver = cls()
            x, cache = x0, solver.init(field, 0.0, x0)
            for k in range(round(T / h)):
                x, _, cache = solver.step(field, k * h, h, x, cache)
            return x
        if cls.uses_tolerances:  # the implicit Adams corrector: converge it well below the step error
            kwargs.setdefault("rtol", 1e-10)
            kwargs.setdefault("atol", 1e-10)
        # the coarse steps of an order fit leave the sphere by design (that is part of the error)
        kwargs.setdefault("drift_tol", None)
        return solve(field, x0, [0.0, T], method, dt=h, **kwargs).xs[-1]


def adaptive_rtol(order: int) -> float:
    """The tolerance at which an adaptive method of this order is tested (low orders need many
    steps for tight tolerances)."""
    return 10.0 ** -(min(order, 4) + 2)


def step_ladder(order: int) -> tuple[int, ...]:
    """Steps per unit time for the order fit: coarse enough to stay above round-off, fine enough
    to be in the asymptotic regime."""
    if order >= 6:
        return (8, 11, 16, 22)
    if order == 5:
        return (32, 64, 128, 256)
    if order == 4:
        return (32, 64, 128)
    return (16, 32, 64)


def fitted_order(hs: list[float], errors: list[float]) -> float:
    """Least-squares slope of log(error) against log(h), over the errors above round-off."""
    pts = [(h, e) for h, e in zip(hs, errors) if e > ROUNDOFF_FLOOR]
    if len(pts) < 3:
        raise AssertionError(f"too few errors above round-off for an order fit: {list(zip(hs, errors))}")
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])
