"""Gradients: the exact-discrete (checkpointed) adjoint equals backprop, torchdiffeq's adjoint
matches backprop through dopri5, and gradcheck passes for one method of each family."""

from __future__ import annotations

import pytest
import torch

import kuramoto as ku
from integrators import METHODS, get_solver, solve, step_fixed

from .problems import ADJOINT_ATOL, GRAD_ATOL, NATIVE_FIXED, kuramoto_problem

NATIVE = [m for m in sorted(METHODS) if METHODS[m].native]


def _learnable_problem(n: int = 4, seed: int = 20):
    field, x0 = kuramoto_problem(n, N=6, seed=seed, batch=(2,), learnable=True)
    c = field.stimulus.clone().requires_grad_()
    field.stimulus = c
    return field, x0.clone().requires_grad_(), c


@pytest.mark.parametrize("method", NATIVE_FIXED)
def test_checkpointed_gradient_equals_backprop(method: str) -> None:
    """step_fixed(checkpoint=True) gives the same gradients w.r.t. x0, the learnable step γ, the
    stimulus and the field's parameters as plain backprop (float64, to 1e-10)."""
    field, x0, c = _learnable_problem(3 if method in ("rkmk4", "cf4") else 4)
    gamma = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    inputs = [x0, gamma, c, *field.parameters()]
    grads = []
    # per-step checkpoints, and segments of 4 steps (6 = 4 + 2: a shorter last segment)
    for checkpoint in (False, True, 4):
        x_T, states, obs = step_fixed(field, x0, method=method, dt=gamma, steps=6, checkpoint=checkpoint,
                                      observe={"E": field.energy}, return_states=True)
        loss = (x_T * torch.arange(x_T.shape[-1], dtype=x_T.dtype)).pow(2).sum() + obs["E"].sum() + states.sin().sum()
        grads.append(torch.autograd.grad(loss, inputs))
    for other in grads[1:]:
        for name, a, b in zip(["x0", "gamma", "stimulus", "params"], grads[0], other):
            torch.testing.assert_close(a, b, rtol=0, atol=GRAD_ATOL, msg=f"{method}: gradient w.r.t. {name}")
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads[1][:3])


@pytest.mark.parametrize("checkpoint", [-1, 1.5, "yes"])
def test_checkpoint_segment_must_be_a_count(checkpoint) -> None:
    field, x0 = kuramoto_problem(3, N=4, seed=22)
    with pytest.raises(ValueError, match="checkpoint: expected a bool or a non-negative integer"):
        step_fixed(field, x0, dt=0.1, steps=2, checkpoint=checkpoint)


@pytest.mark.parametrize("method", NATIVE)
def test_solve_adjoint_equals_backprop_for_native_methods(method: str) -> None:
    """solve(adjoint=True) with a native method is the exact gradient of the discrete map
    (adaptive: with the accepted step sizes held fixed)."""
    field, x0, c = _learnable_problem(3 if method in ("rkmk4", "cf4") else 4, seed=21)
    inputs = [x0, c, *field.parameters()]
    kw = {} if METHODS[method].adaptive else {"dt": 0.1}
    grads = []
    for adjoint in (False, True):
        sol = solve(field, x0, [0.0, 0.4, 1.0], method, adjoint=adjoint, observe={"r": ku.order_parameter}, **kw)
        loss = sol.xs[-1].pow(3).sum() + sol.xs[1].sum() + sol.observed["r"].sum()
        grads.append(torch.autograd.grad(loss, inputs))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=GRAD_ATOL)


def test_odeint_adjoint_matches_backprop_through_dopri5() -> None:
    """adjoint=True with a torchdiffeq method: odeint_adjoint over the field's parameters and the
    stimulus (it requires grad), with the seminorm; agrees with backprop to 1e-6."""
    field, x0, c = _learnable_problem(4, seed=22)
    inputs = [x0, c, *field.parameters()]
    grads = []
    for adjoint in (False, True):
        sol = solve(field, x0, [0.0, 0.5, 1.0], "dopri5", rtol=1e-10, atol=1e-10, adjoint=adjoint)
        loss = sol.xs[-1].pow(2).mul(torch.linspace(0, 1, 4, dtype=x0.dtype)).sum() + sol.xs[1].sum()
        grads.append(torch.autograd.grad(loss, inputs))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=ADJOINT_ATOL)


def test_continuous_adjoint_of_a_coarse_fixed_step_solve_is_another_gradient() -> None:
    """Why native methods do not use torchdiffeq's adjoint: for Euler at AKOrN-like step sizes the
    continuous adjoint differs from the gradient of the discrete map, which the checkpointed
    adjoint reproduces exactly."""
    field, x0, c = _learnable_problem(4, seed=23)
    J = field.coupling.J

    def grad_J(method: str, adjoint: bool) -> torch.Tensor:
        # h·max|ω| ≈ 1.04 is past Euler's rotation limit and the ambient steps drift: solve would
        # refuse and warn; here the coarse discrete map itself is the point
        sol = solve(field, x0, [0.0, 2.0], method, dt=0.5, adjoint=adjoint, check_stability=False, drift_tol=None)
        return torch.autograd.grad(sol.xs[-1].pow(2).mul(torch.arange(4.0, dtype=x0.dtype)).sum(), J)[0]

    exact = grad_J("euler", False)
    continuous = grad_J("euler", True)
    assert float((continuous - exact).norm() / exact.norm()) > 0.05
    torch.testing.assert_close(grad_J("euler_normalized", True), grad_J("euler_normalized", False), rtol=0,
                               atol=GRAD_ATOL)


def _tiny(n: int, seed: int = 24):
    field, x0 = kuramoto_problem(n, N=3, seed=seed)
    c = field.stimulus.clone().requires_grad_()
    return field, x0.clone().requires_grad_(), c


@pytest.mark.parametrize("method", ["euler_normalized", "rkmk4", "lawson_rk4"])
def test_gradcheck_native_fixed_families(method: str) -> None:
    """Retraction, Lie-group and exponential families: gradcheck w.r.t. x0, the stimulus and γ."""
    field, x0, c = _tiny(3 if method == "rkmk4" else 4)
    gamma = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)

    def fn(x, stim, dt):
        field.stimulus = stim
        return step_fixed(field, x, method=method, dt=dt, steps=3, checkpoint=True)[0]

    assert torch.autograd.gradcheck(fn, (x0, c, gamma))


def test_gradcheck_adaptive_step() -> None:
    """Native adaptive family: one dopri5_normalized step (value and error estimate)."""
    field, x0, c = _tiny(4)
    solver = get_solver("dopri5_normalized")
    dt = torch.tensor(0.15, dtype=torch.float64, requires_grad=True)

    def fn(x, stim, h):
        field.stimulus = stim
        res = solver.step(field, 0.0, h, x, solver.init(field, 0.0, x))
        return res.x, res.error

    assert torch.autograd.gradcheck(fn, (x0, c, dt))


@pytest.mark.parametrize("method,adjoint", [("rk4", False), ("dopri5", True)])
def test_gradcheck_ambient_families(method: str, adjoint: bool) -> None:
    """torchdiffeq families: backprop through rk4, and odeint_adjoint through dopri5."""
    field, x0, c = _tiny(2)
    kw = {"dt": 0.1} if method == "rk4" else {"rtol": 1e-11, "atol": 1e-11}

    def fn(x, stim):
        field.stimulus = stim
        return solve(field, x, [0.0, 0.3], method, adjoint=adjoint, **kw).xs[-1]

    assert torch.autograd.gradcheck(fn, (x0, c), atol=1e-5)


def test_gradients_are_finite_at_a_fixed_point() -> None:
    """At a synchronised fixed point f = 0: geodesic Euler's exp-map and the Lie-group exponentials
    must not produce NaN gradients (the sinc is guarded on the input side)."""
    N, n = 3, 4
    J = torch.ones(N, N, dtype=torch.float64, requires_grad=True)
    field = ku.KuramotoField(ku.Dense(J.detach(), learnable=True))
    x0 = torch.zeros(N, n, dtype=torch.float64)
    x0[:, 0] = 1.0
    x0.requires_grad_()
    for method in ("geodesic_euler", "rkmk4", "cf4", "euler_normalized"):
        x, _, _ = step_fixed(field, x0, method=method, dt=0.5, steps=2)
        gx, gJ = torch.autograd.grad(x.sum(), [x0, field.coupling.J])
        assert torch.isfinite(gx).all() and torch.isfinite(gJ).all(), method
