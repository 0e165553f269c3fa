"""What solve() checks before and while stepping (issues 14, 17, 19): exact step grids, step counts
that cannot finish, bad times and states, the stability and stiffness guards, the drift guard of
ambient methods, and the statistics of compiled solves."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kuramoto as ku
from integrators import METHODS, Compiled, DriftWarning, get_solver, solve, step_fixed

from .problems import ALL, REFERENCE, kuramoto_problem, rotation_problem

FIXED = [m for m in ALL if not METHODS[m].adaptive]
NOT_EXACT = [m for m in FIXED if not METHODS[m].exact_rotation]
EXACT = [m for m in ALL if METHODS[m].exact_rotation]


def _classic(N: int = 8, K: float = 1.0, seed: int = 0, omega: torch.Tensor | None = None):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(N, generator=g, dtype=torch.float64) if omega is None else omega
    field = ku.KuramotoField(ku.MeanField(K), omega=ku.Frequencies(w))
    return field, ku.random_states(N, n=2, generator=g, dtype=torch.float64)


# -- step grids --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linspace_grid_takes_exactly_the_steps_it_names(dtype) -> None:
    """Issue 14 item 7: t = linspace(0, 50, 501) in float32 has intervals 0.1 ± 4e-6, and the old
    rounding gave 5264 steps for dt = 0.01 instead of 5000."""
    field, x0 = _classic(N=2)
    with torch.no_grad():
        sol = solve(field, x0, torch.linspace(0, 50, 501, dtype=dtype), "euler_normalized", dt=0.01,
                    save_states=False)
    assert sol.stats["steps"] == 5000 and sol.stats["nfe"] == 5000


@settings(max_examples=25, deadline=None)
@given(outputs=st.integers(1, 40), per=st.integers(1, 12), start=st.integers(-200, 200),
       dt=st.sampled_from([0.1, 0.05, 0.01, 0.025, 0.2]), f32=st.booleans())
def test_uniform_grids_have_a_whole_number_of_steps(outputs: int, per: int, start: int, dt: float, f32: bool) -> None:
    from integrators.guards import step_counts

    t0 = start * dt
    t = torch.linspace(t0, t0 + outputs * per * dt, outputs + 1, dtype=torch.float32 if f32 else torch.float64)
    eps = torch.finfo(t.dtype).eps
    assert step_counts(t.double().tolist(), dt, eps) == [per] * outputs


@pytest.mark.parametrize("dt", [1e-300, 5e-324, 1e-12])
def test_a_grid_that_cannot_finish_is_refused_up_front(dt: float) -> None:
    """Issue 17: dt=1e-300 ran forever and dt=5e-324 raised a raw OverflowError."""
    field, x0 = _classic()
    for method in ("rk4_normalized", "rk4"):
        with pytest.raises(ValueError, match=r"dt: a fixed-step solve over \[0, 10\] with dt=.* could not finish"):
            solve(field, x0, [0.0, 10.0], method, dt=dt)


def test_a_first_step_below_the_floor_is_refused() -> None:
    field, x0 = _classic()
    for method in ("lawson_dopri5", "dopri5"):
        with pytest.raises(ValueError, match="dt: the first step 1e-300 of adaptive method"):
            solve(field, x0, [0.0, 1.0], method, dt=1e-300)


@pytest.mark.parametrize("t", ["05", b"05", ["0", "5"]])
def test_string_times_are_refused(t) -> None:
    """Issue 17: solve(t="05") read the string as the times [0, 5]."""
    field, x0 = _classic()
    with pytest.raises(TypeError, match="t: expected a 1-D tensor or sequence of output times"):
        solve(field, x0, t, "rk4", dt=0.1)


@pytest.mark.parametrize("method", ["euler_normalized", "lawson_rk4", "rk4", "dopri5", "lawson_dopri5", REFERENCE])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_x0_is_a_value_error_naming_x0(method: str, bad: float) -> None:
    field, x0 = _classic()
    x0 = x0.clone()
    x0[3, 1] = bad
    kw = {} if METHODS[method].adaptive else {"dt": 0.1}
    with torch.no_grad(), pytest.raises(ValueError, match=r"x0: contains NaN or inf \(first at index \(3, 1\)\)"):
        solve(field, x0, [0.0, 1.0], method, **kw)


def test_state_that_does_not_fit_the_field_is_refused_at_entry() -> None:
    field, _ = _classic(N=8)
    with pytest.raises(ValueError, match="x0: omega has 8 oscillators"):
        solve(field, ku.random_states(5, n=2, dtype=torch.float64), [0.0, 1.0], "rk4", dt=0.1)
    with pytest.raises(TypeError, match="does not match Frequencies's omega torch.float64"):
        solve(field, ku.random_states(8, n=2), [0.0, 1.0], "rk4", dt=0.1)


# -- the stability guard -----------------------------------------------------------------------

def test_every_fixed_step_method_declares_its_limits() -> None:
    for name in FIXED:
        cls = METHODS[name]
        assert isinstance(cls.exact_rotation, bool)
        assert cls.exact_rotation or 0 < cls.rotation_limit < math.inf, name
        assert 0 < cls.coupling_limit < math.inf, name
    for name in ALL:
        if METHODS[name].adaptive:
            assert METHODS[name].coupling_limit == math.inf


@pytest.mark.parametrize("method", NOT_EXACT)
def test_rotation_beyond_the_limit_is_refused_naming_the_fix(method: str) -> None:
    """h·max|ω| just past the method's limit raises, naming lawson_rk4 and the largest dt; just
    within it runs; check_stability=False opts out."""
    limit = METHODS[method].rotation_limit
    dt = 0.01
    omega = torch.tensor([1.01 * limit / dt, -0.3, 0.2, 0.0], dtype=torch.float64)
    field, x0 = _classic(N=4, K=0.1, omega=omega)
    kw = {"rtol": 1e-6, "atol": 1e-8} if METHODS[method].uses_tolerances else {}
    with torch.no_grad():
        with pytest.raises(ValueError, match=rf"dt: with method '{method}' the fastest natural frequency .*"
                                             rf"beyond the method's stability limit {limit:.3g}.*method='lawson_rk4'.*"
                                             rf"dt <= {limit / omega[0].item():.3g}.*check_stability=False"):
            solve(field, x0, [0.0, 0.02], method, dt=dt, **kw)
        solve(field, x0, [0.0, 0.02], method, dt=dt, check_stability=False, drift_tol=None, **kw)
        field.omega.omega[0] = 0.99 * limit / dt
        solve(field, x0, [0.0, 0.02], method, dt=dt, drift_tol=None, **kw)


@pytest.mark.parametrize("method", [m for m in EXACT if not METHODS[m].adaptive])
def test_methods_that_rotate_exactly_take_any_rotation(method: str) -> None:
    field, x0 = _classic(N=4, K=0.1, omega=torch.tensor([3e4, -1e3, 0.5, 2.0], dtype=torch.float64))
    with torch.no_grad():
        sol = solve(field, x0, [0.0, 0.1], method, dt=0.05)
    assert torch.isfinite(sol.xs).all()


@pytest.mark.parametrize("method", EXACT)
@pytest.mark.parametrize("n", [2, 3, 4])
def test_exact_rotation_claim_holds(method: str, n: int) -> None:
    """``exact_rotation`` is a tested claim: with J = 0 the flow is exp(tΩ) and one step of any
    size reproduces it (huge frequencies included)."""
    field, omega, x0 = rotation_problem(n, skew_std=20.0, frequency_scale=300.0)
    solver = get_solver(method)
    with torch.no_grad():
        x = x0
        cache = solver.init(field, 0.0, x0, dt=0.25)
        for k in range(8):
            x, _, cache = solver.step(field, 0.25 * k, 0.25, x, cache)
        exact = omega.rotate(x0, 2.0)
    torch.testing.assert_close(x, exact, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", [m for m in FIXED if METHODS[m].stays_on_sphere])
def test_a_stiff_coupling_is_refused_by_methods_that_stay_on_the_sphere(method: str) -> None:
    """Issue 17: K = 1e6 with dt = 0.1 returned r between 0.36 and 0.62 from every method that
    stays on the sphere (a resolved run gives 1.0), without a word."""
    field = ku.KuramotoField(ku.MeanField(1e6))
    x0 = ku.random_states(2, 50, n=2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad(), pytest.raises(ValueError, match=rf"dt: the coupling is stiff for method '{method}': "
                                                         rf"h·L = 1e\+05 with L = 1e\+06 the MeanField coupling's .*"
                                                         rf"dt <= 2(\.\d+)?e-06"):
        solve(field, x0, [0.0, 1.0], method, dt=0.1)


def test_stiffness_of_dense_and_sparse_couplings() -> None:
    g = torch.Generator().manual_seed(2)
    N = 30
    J = 500.0 * torch.randn(N, N, generator=g, dtype=torch.float64) / math.sqrt(N)
    x0 = ku.random_states(N, n=2, generator=g, dtype=torch.float64)
    idx = J.nonzero().T
    for coupling in (ku.Dense(J), ku.Sparse(torch.stack([idx[1], idx[0]]), J[idx[0], idx[1]], num_nodes=N)):
        field = ku.KuramotoField(coupling)
        L = coupling.lipschitz_constant()
        with torch.no_grad():
            with pytest.raises(ValueError, match=f"the {type(coupling).__name__} coupling's Lipschitz constant"):
                solve(field, x0, [0.0, 0.1], "rk4_normalized", dt=3.0 / L)
            solve(field, x0, [0.0, 0.1], "rk4_normalized", dt=2.5 / L)


def test_the_study_rule_is_the_method_rule() -> None:
    """A Lorentzian population (quantile frequencies, max|ω| ≈ 318 at N = 2000) at the sync study's
    dt: rk4_normalized is refused, lawson_rk4 runs."""
    N = 2000
    w = ku.lorentzian(N, width=0.5, quantile=True, dtype=torch.float64)
    field = ku.KuramotoField(ku.MeanField(2.0), omega=ku.Frequencies(w))
    x0 = ku.random_states(N, n=2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        with pytest.raises(ValueError, match="method='lawson_rk4'"):
            solve(field, x0, [0.0, 0.25], "rk4_normalized", dt=0.125)
        solve(field, x0, [0.0, 0.25], "lawson_rk4", dt=0.125)


# -- drift of ambient methods (issue 19) ---------------------------------------------------------

def test_ambient_drift_warns_and_returns_the_states_as_computed() -> None:
    field, x0 = kuramoto_problem(4, N=6, seed=50)
    t = [0.0, 0.5, 1.0, 1.5]
    with torch.no_grad():
        with pytest.warns(DriftWarning, match=r"method 'euler' left the sphere: .* by t = 0.5 .*drift_tol=0.001") as rec:
            sol = solve(field, x0, t, "euler", dt=0.1, drift_tol=1e-3)
        quiet = solve(field, x0, t, "euler", dt=0.1, drift_tol=None)
    assert len(rec) == 1
    torch.testing.assert_close(sol.xs, quiet.xs, rtol=0, atol=0)
    drift = float((sol.xs.norm(dim=-1) - 1).abs().max())
    assert drift > 1e-3, "never silently renormalised"


def test_default_drift_tolerance_flags_a_state_that_left_the_sphere() -> None:
    """Issue 19: rk4/euler inside layers went to |x| between 0.7 and 5.9 without a word."""
    field, x0 = kuramoto_problem(4, N=6, seed=53)
    with torch.no_grad(), pytest.warns(DriftWarning, match="drift_tol=0.05"):
        sol = solve(field, x0, [0.0, 1.0, 2.0, 3.0], "euler", dt=0.2, check_stability=False)
    assert float((sol.xs.norm(dim=-1) - 1).abs().max()) > 0.05


@pytest.mark.parametrize("save_states", [True, False])
def test_no_drift_warning_within_tolerance_or_off_the_sphere(save_states: bool) -> None:
    field, x0 = kuramoto_problem(4, N=6, seed=51)
    with torch.no_grad():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error", DriftWarning)
            solve(field, x0, [0.0, 0.5, 1.0], "rk4", dt=0.01, save_states=save_states)
            # |x_i| = 2 is a first integral of the projected field: relative drift is what counts
            solve(field, 2 * x0, [0.0, 0.5, 1.0], "dopri5", rtol=1e-8, atol=1e-10, save_states=save_states)
        with pytest.warns(DriftWarning):
            solve(field, x0, [0.0, 0.5, 1.0], "rk4", dt=0.01, drift_tol=1e-12, save_states=save_states)


def test_drift_tol_is_validated() -> None:
    field, x0 = _classic()
    for bad in (0.0, -1.0, "1e-3", True):
        with pytest.raises(ValueError, match="drift_tol: expected a positive float or None"):
            solve(field, x0, [0.0, 1.0], "rk4", dt=0.1, drift_tol=bad)


# -- statistics of compiled solves (issue 19) ----------------------------------------------------

@pytest.mark.parametrize("t", [[0.0, 0.4, 0.8], [0.0, 0.3, 0.8]], ids=["uniform", "non-uniform"])
def test_compiled_stats_count_the_methods_own_steps(t) -> None:
    """A Compiled solve reported steps: 500 beside nfe: 20000 (fuse = 4 counted as one step)."""
    torch._dynamo.reset()
    field, x0 = kuramoto_problem(2, N=5, seed=52)
    with torch.no_grad():
        plain = solve(field, x0, t, "rk4_normalized", dt=0.025)
        fused = solve(field, x0, t, Compiled("rk4_normalized", backend="eager", fuse=4), dt=0.1)
    assert fused.stats == plain.stats
    assert fused.stats["nfe"] == 4 * fused.stats["steps"]
    torch.testing.assert_close(fused.xs, plain.xs, rtol=0, atol=1e-13)


def test_step_fixed_validates_the_state_against_the_field() -> None:
    field, _ = _classic(N=8)
    with pytest.raises(ValueError, match="x0: omega has 8 oscillators"):
        step_fixed(field, ku.random_states(3, n=2, dtype=torch.float64), dt=0.1, steps=2)
