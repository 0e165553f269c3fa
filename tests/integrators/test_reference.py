"""The float64 SciPy reference: accuracy, dtype round trip, no gradients (and saying so)."""

from __future__ import annotations

import pytest
import torch

import kuramoto as ku
from integrators import get_solver, solve

from .problems import kuramoto_problem


def _rotation_problem(dtype=torch.float64):
    g = torch.Generator().manual_seed(30)
    N = 6
    omega = ku.Frequencies(torch.randn(N, 2, generator=g, dtype=torch.float64))
    field = ku.KuramotoField(ku.Dense(torch.zeros(N, N, dtype=torch.float64)), omega=omega).to(dtype)
    return field, ku.random_states(N, n=4, generator=g, dtype=torch.float64).to(dtype)


def test_reference_is_accurate_and_reports_stats() -> None:
    field, x0 = _rotation_problem()
    t = torch.linspace(0, 3, 7, dtype=torch.float64)
    with torch.no_grad():
        sol = solve(field, x0, t, "scipy_reference")
    exact = torch.stack([field.omega.rotate(x0, float(s)) for s in t])
    torch.testing.assert_close(sol.xs, exact, rtol=0, atol=1e-11)
    st = sol.stats
    assert st["accepted"] > 0 and st["steps"] == st["accepted"] + st["rejected"] and st["nfe"] > 12 * st["accepted"]


def test_reference_keeps_the_state_dtype_and_leaves_the_field_alone() -> None:
    field, x0 = kuramoto_problem(4, N=5, seed=31, dtype=torch.float32)
    J_before = field.coupling.J.clone()
    with torch.no_grad():
        sol = solve(field, x0, [0.0, 0.5], "scipy_reference")
        ref64 = solve(field.double(), x0.double(), [0.0, 0.5], "scipy_reference").xs
    assert sol.xs.dtype == torch.float32
    torch.testing.assert_close(sol.xs.double(), ref64, rtol=0, atol=1e-6)
    assert field.coupling.J.dtype == torch.float64  # .double() above, the copy inside did not touch it
    torch.testing.assert_close(field.coupling.J.float(), J_before)


def test_reference_refuses_gradients() -> None:
    field, x0 = kuramoto_problem(2, N=4, seed=32, learnable=True)
    with pytest.raises(ValueError, match="'scipy_reference' gives no gradients.*torch.no_grad"):
        solve(field, x0, [0.0, 1.0], "scipy_reference")
    with pytest.raises(ValueError, match="gives no gradients"):
        get_solver("scipy_reference").step(field, 0.0, 0.1, x0, None)
    with torch.no_grad():
        assert solve(field, x0, [0.0, 1.0], "scipy_reference").xs.shape == (2, 4, 2)


def test_reference_step_and_options() -> None:
    field, x0 = _rotation_problem()
    solver = get_solver("scipy_reference", rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        x1 = solver.step(field, 0.0, 0.7, x0, solver.init(field, 0.0, x0)).x
    torch.testing.assert_close(x1, field.omega.rotate(x0, 0.7), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="rtol: expected a positive float"):
        get_solver("scipy_reference", rtol=0.0)
