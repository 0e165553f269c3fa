"""The registry, option handling and input validation: every mistake raises a clear error."""

from __future__ import annotations

import inspect

import pytest
import torch

import kuramoto as ku
from integrators import (
    METHODS,
    AbstractSolver,
    SolverError,
    StepResult,
    Tableau,
    check_pairing,
    get_solver,
    solve,
    step_fixed,
)

from .problems import ALL, NATIVE_FIXED, kuramoto_problem


@pytest.mark.parametrize("name", ALL)
def test_registry_entry_declares_its_capabilities(name: str) -> None:
    cls = METHODS[name]
    assert issubclass(cls, AbstractSolver) and not inspect.isabstract(cls)
    assert cls.name == name
    assert isinstance(cls.order, int) and cls.order >= 1
    for attr in ("adaptive", "stays_on_sphere", "native", "uses_tolerances"):
        assert isinstance(getattr(cls, attr), bool), f"{name}.{attr}"
    assert isinstance(cls.stages, int) and cls.stages >= 1
    assert cls.adaptive <= cls.uses_tolerances  # adaptive methods use the tolerances
    solver = get_solver(name)
    assert isinstance(solver, cls)
    assert get_solver(solver) is solver


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_lists_the_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match=rf"method '{name}' got unknown option\(s\) 'step_sise'; valid options: "):
        get_solver(name, step_sise=0.1)


def test_torchdiffeq_spellings_get_a_hint() -> None:
    with pytest.raises(ValueError, match=r"'step_size': pass the step size as solve\(\.\.\., dt=\.\.\.\)"):
        solve(lambda t, x: x, torch.ones(2, 2), [0.0, 1.0], "rk4", dt=0.1, options={"step_size": 0.1})


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'eulr' \(did you mean 'euler'.*valid methods: .*euler_normalized"):
        get_solver("eulr")
    with pytest.raises(ValueError, match="use 'scipy_reference'"):
        get_solver("scipy_solver")
    with pytest.raises(TypeError, match="method: expected a method name"):
        get_solver(3)
    with pytest.raises(TypeError, match="pass its name 'rk4'"):
        get_solver(METHODS["rk4"])
    with pytest.raises(ValueError, match="given with a solver instance"):
        get_solver(get_solver("rk4"), foo=1)


def test_options_reach_the_constructor() -> None:
    solver = get_solver("dopri5_normalized", safety=0.8, max_steps=7)
    assert solver.controller.safety == 0.8 and solver.max_steps == 7
    with pytest.raises(ValueError, match="safety: expected a factor in"):
        get_solver("dopri5_normalized", safety=1.5)
    with pytest.raises(ValueError, match="max_steps: expected a positive integer"):
        get_solver("dopri5", max_steps=0)
    with pytest.raises(ValueError, match="max_order: expected an integer in"):
        get_solver("explicit_adams", max_order=3)


def test_tableau_validates_itself() -> None:
    with pytest.raises(ValueError, match=r"row a\[1\] sums to 0.4, expected c\[1\] = 0.5"):
        Tableau(c=(0.0, 0.5), a=((), (0.4,)), b=(0.5, 0.5))
    with pytest.raises(ValueError, match="weights b sum to"):
        Tableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.5, 0.4))
    with pytest.raises(ValueError, match="error weights b_err sum to"):
        Tableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.5, 0.5), b_err=(0.1, 0.0))
    with pytest.raises(ValueError, match="one entry per stage"):
        Tableau(c=(0.0,), a=((), ()), b=(1.0,))
    with pytest.raises(ValueError, match=r"row a\[1\] must have 1 entries"):
        Tableau(c=(0.0, 0.5), a=((), (0.25, 0.25)), b=(0.5, 0.5))


@pytest.fixture(scope="module")
def small():
    return kuramoto_problem(2, N=5, seed=3)


def test_solve_rejects_bad_pairings(small) -> None:
    field, x0 = small
    t = [0.0, 1.0]
    with pytest.raises(ValueError, match=r"dt: method 'rk4_normalized' takes fixed steps and needs dt"):
        solve(field, x0, t, "rk4_normalized")
    with pytest.raises(ValueError, match=r"rtol, atol: method 'euler_normalized' does not use solve\(\)'s tolerances"):
        solve(field, x0, t, "euler_normalized", dt=0.1, rtol=1e-3)
    with pytest.raises(ValueError, match="rtol, atol: method 'scipy_reference' .*options="):
        solve(field, x0, t, "scipy_reference", atol=1e-3)
    with pytest.raises(ValueError, match="adjoint: method 'scipy_reference' gives no gradients"):
        solve(field, x0, t, "scipy_reference", adjoint=True)
    with pytest.raises(ValueError, match="options: given together with a solver instance"):
        solve(field, x0, t, get_solver("rk4"), dt=0.1, options={"x": 1})
    with pytest.raises(ValueError, match="dt: solve\\(\\) does not differentiate through the step size"):
        solve(field, x0, t, "rk4", dt=torch.tensor(0.1, requires_grad=True))
    with pytest.raises(ValueError, match="dt: expected a positive step size"):
        solve(field, x0, t, "rk4", dt=-0.1)
    with pytest.raises(ValueError, match="dt: expected a finite non-zero step size"):
        solve(field, x0, t, "rk4", dt=float("nan"))


def test_one_pairing_check_names_both_sides_for_every_caller() -> None:
    """solve, step_fixed and the layers refuse a pairing through check_pairing: the message names
    the caller's argument and the method, and says who asked."""
    assert check_pairing("rk4", dt=0.1) is not None
    cases = [
        (dict(method="rk4"), r"dt: method 'rk4' takes fixed steps and needs dt in solve\(\)"),
        (dict(method="rk4", dt=0.1, rtol=1e-3), r"rtol, atol: method 'rk4' does not use solve\(\)'s tolerances"),
        (dict(method="dopri5", caller="a layer", fixed_steps=True), "method: 'dopri5' is adaptive, but a layer takes"),
        (dict(method="rk4", caller="step_fixed()", dt=0.1, native=True),
         r"method: step_fixed\(\) takes a native fixed-step method, got 'rk4'"),
        (dict(method="rk4", dt=0.1, learnable_step="learn_gamma"), "learn_gamma: .*method 'rk4'"),
        (dict(method="rk4", dt=0.1, checkpoint="adjoint"), "adjoint: .*method 'rk4'"),
        (dict(method="scipy_reference", adjoint=True), "adjoint: method 'scipy_reference' gives no gradients"),
    ]
    for kwargs, match in cases:
        method = kwargs.pop("method")
        with pytest.raises(ValueError, match=match):
            check_pairing(method, **kwargs)


def test_solve_validates_its_inputs(small) -> None:
    field, x0 = small
    with pytest.raises(TypeError, match="field: expected a vector field"):
        solve(3, x0, [0.0, 1.0], "rk4", dt=0.1)
    with pytest.raises(TypeError, match="x0: expected a torch.Tensor"):
        solve(field, x0.tolist(), [0.0, 1.0], "rk4", dt=0.1)
    with pytest.raises(TypeError, match="x0: expected a floating-point tensor"):
        solve(field, x0.long(), [0.0, 1.0], "rk4", dt=0.1)
    with pytest.raises(ValueError, match="x0: expected shape \\[..., n\\]"):
        solve(field, x0[..., :1], [0.0, 1.0], "rk4", dt=0.1)
    with pytest.raises(ValueError, match="t: output times must be strictly increasing or strictly decreasing"):
        solve(field, x0, [0.0, 1.0, 0.5], "rk4", dt=0.1)
    with pytest.raises(ValueError, match="t: expected at least one output time"):
        solve(field, x0, [], "rk4", dt=0.1)
    with pytest.raises(ValueError, match="t: output times must be finite"):
        solve(field, x0, [0.0, float("inf")], "rk4", dt=0.1)
    with pytest.raises(ValueError, match="t: expected a 1-D tensor"):
        solve(field, x0, torch.zeros(2, 2), "rk4", dt=0.1)
    with pytest.raises(TypeError, match="observe: expected a dict"):
        solve(field, x0, [0.0, 1.0], "rk4", dt=0.1, observe=[ku.order_parameter])
    with pytest.raises(TypeError, match="observe\\['r'\\]: expected a callable"):
        solve(field, x0, [0.0, 1.0], "rk4", dt=0.1, observe={"r": 3})
    with pytest.raises(TypeError, match="observe\\['r'\\]: expected fn\\(x\\) to return a torch.Tensor"):
        solve(field, x0, [0.0, 1.0], "rk4", dt=0.1, observe={"r": lambda x: 1.0})
    with pytest.raises(ValueError, match="rtol: expected a non-negative finite float"):
        solve(field, x0, [0.0, 1.0], "dopri5", rtol=-1.0)
    with pytest.raises(TypeError, match="adjoint: expected a bool"):
        solve(field, x0, [0.0, 1.0], "rk4", dt=0.1, adjoint=1)


@pytest.mark.parametrize("method", ["euler_normalized", "cf4", "dopri5_normalized", "lawson_rk4"])
def test_off_sphere_initial_state_is_refused_by_on_sphere_methods(small, method: str) -> None:
    field, x0 = small
    with pytest.raises(ValueError, match=r"x0: expected unit vectors on the last dim \(n=2\); max abs\(norm - 1\)"):
        solve(field, 1.5 * x0, [0.0, 1.0], method, dt=0.1)


def test_missing_field_capabilities_are_named() -> None:
    x0 = ku.random_states(4, n=3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def plain(t, x):
        return torch.zeros_like(x)

    with pytest.raises(TypeError, match=r"field: method 'rkmk4' needs field.generator"):
        solve(plain, x0, [0.0, 1.0], "rkmk4", dt=0.1)
    with pytest.raises(TypeError, match=r"field: method 'lawson_rk4' needs field.coupling_term"):
        solve(plain, x0, [0.0, 1.0], "lawson_rk4", dt=0.1)
    # geodesic Euler needs only f(t, x)
    out = solve(plain, x0, [0.0, 1.0], "geodesic_euler", dt=0.1)
    torch.testing.assert_close(out.xs[-1], x0)


def test_step_fixed_validates(small) -> None:
    field, x0 = small
    with pytest.raises(ValueError, match="step_fixed\\(\\) takes a native fixed-step method, got 'dopri5_normalized'"):
        step_fixed(field, x0, method="dopri5_normalized", dt=0.1, steps=3)
    with pytest.raises(ValueError, match="got 'rk4' \\(delegated to torchdiffeq/SciPy\\)"):
        step_fixed(field, x0, method="rk4", dt=0.1, steps=3)
    with pytest.raises(ValueError, match="steps: expected a non-negative integer"):
        step_fixed(field, x0, dt=0.1, steps=-1)
    with pytest.raises(TypeError, match="dt: expected a float or a 0-d floating tensor"):
        step_fixed(field, x0, dt=torch.ones(2), steps=1)
    with pytest.raises(TypeError, match="dt: expected a float or a 0-d floating tensor"):
        step_fixed(field, x0, dt="0.1", steps=1)
    with pytest.raises(ValueError, match="dt: expected a finite non-zero step size"):
        step_fixed(field, x0, dt=0.0, steps=1)


@pytest.mark.parametrize("method", NATIVE_FIXED)
def test_step_interface_returns_a_point_and_keeps_nothing_on_self(small, method: str) -> None:
    field, x0 = small
    solver = get_solver(method)
    before = dict(vars(solver))
    cache = solver.init(field, 0.0, x0)
    res = solver.step(field, 0.0, 0.05, x0, cache)
    assert isinstance(res, StepResult) and res.error is None
    assert res.x.shape == x0.shape and res.x.dtype == x0.dtype
    assert vars(solver) == before
    # a point, not an increment: a zero step returns the state itself
    torch.testing.assert_close(solver.step(field, 0.0, 1e-300, x0, cache).x, x0, rtol=0, atol=1e-15)


def test_solver_error_is_a_runtime_error() -> None:
    assert issubclass(SolverError, RuntimeError)
