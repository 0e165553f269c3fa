"""solve() and step_fixed(): shapes, dtypes, layouts, outputs, statistics and failures."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import kuramoto as ku
from integrators import METHODS, SolverError, solve, step_fixed
from kuramoto.couplings import AbstractCoupling

from .problems import (
    ALL,
    DEVICES,
    NATIVE_FIXED,
    REFERENCE,
    adaptive_rtol,
    kuramoto_problem,
    reference,
    rotation_problem,
)


def _kwargs(method: str, dtype: torch.dtype, dt: float = 0.1) -> dict:
    cls = METHODS[method]
    # Shape and batch tests step every method coarsely: low-order ambient methods then leave the
    # sphere by ~1e-2, which solve() reports as a DriftWarning (tested on its own below).
    kw: dict = {"drift_tol": None}
    if not cls.adaptive:
        kw["dt"] = dt
    if cls.uses_tolerances and method != REFERENCE:
        # float32 cannot resolve 1e-6; low orders need many steps for tight tolerances
        rtol = 1e-4 if dtype == torch.float32 else adaptive_rtol(cls.order)
        kw.update(rtol=rtol, atol=rtol / 100)
    return kw


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ALL)
@settings(max_examples=3, deadline=None)
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), n=st.sampled_from([2, 4]))
def test_every_method_keeps_shape_dtype_and_batch(method: str, dtype: torch.dtype, batch: list[int], n: int) -> None:
    field, x0 = kuramoto_problem(n, N=5, seed=4, batch=tuple(batch), dtype=dtype)
    t = torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)
    with torch.no_grad():
        sol = solve(field, x0, t, method, observe={"r": ku.order_parameter}, **_kwargs(method, dtype))
    assert sol.xs.shape == (3, *x0.shape) and sol.xs.dtype == dtype
    assert sol.observed["r"].shape == (3, *batch) and sol.status == "success" and sol.message == ""
    assert torch.equal(sol.xs[0], x0) and torch.isfinite(sol.xs).all()
    assert torch.equal(sol.x_final, sol.xs[-1])
    if METHODS[method].stays_on_sphere:
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert float((sol.xs.norm(dim=-1) - 1).abs().max()) < tol


@pytest.mark.parametrize("method", [m for m in ALL if not METHODS[m].uses_tolerances])
def test_batched_equals_looped(method: str) -> None:
    """Batch items are independent: a batched fixed-step solve equals solving each item alone.
    (Methods with tolerances test convergence over the whole batch, so they are excluded.)"""
    field, x0 = kuramoto_problem(4, N=6, seed=5, batch=(3,))
    t = [0.0, 0.3, 0.7]
    with torch.no_grad():
        batched = solve(field, x0, t, method, dt=0.05, drift_tol=None).xs
        looped = torch.stack([solve(field, x0[b], t, method, dt=0.05, drift_tol=None).xs for b in range(3)], dim=1)
    torch.testing.assert_close(batched, looped, rtol=0, atol=1e-12)


class _PixelMix(AbstractCoupling):
    """A test coupling on image layout ``[B, K, H, W, n]``: mixes oscillator slots and components
    at each pixel and adds the left neighbour (so pixels interact)."""

    state_dims = 4

    def __init__(self, slots: int, n: int, generator: torch.Generator) -> None:
        super().__init__()
        self.W = nn.Parameter(0.3 * torch.randn(slots, n, slots, n, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kmjl,...jhwl->...khwm", self.W, x) + x.roll(1, dims=-2)


@pytest.mark.parametrize("method", NATIVE_FIXED + ["rk4", "dopri5"])
def test_image_layout_states(method: str) -> None:
    """States [B, C/n, H, W, n] work like [..., N, n]: only the last axis is the sphere axis."""
    g = torch.Generator().manual_seed(6)
    B, K, H, W, n = 2, 3, 4, 5, 4
    omega = ku.RotationPairs(n, groups=K, spatial_dims=2, init_omega=1.3).double()
    field = ku.KuramotoField(_PixelMix(K, n, g), omega=omega)
    field.stimulus = 0.2 * torch.randn(K, H, W, n, generator=g, dtype=torch.float64)
    x0 = ku.random_states(B, K, H, W, n=n, generator=g, dtype=torch.float64)
    with torch.no_grad():
        kw = {} if METHODS[method].adaptive else {"dt": 0.05}
        sol = solve(field, x0, [0.0, 0.5], method, **kw)
        alone = solve(field, x0[1], [0.0, 0.5], method, **kw).xs[-1]
    assert sol.xs.shape == (2, B, K, H, W, n)
    atol = 1e-12 if METHODS[method].stays_on_sphere else 1e-4  # ambient: their local error
    assert float((sol.xs.norm(dim=-1) - 1).abs().max()) < atol
    if not METHODS[method].adaptive:
        torch.testing.assert_close(sol.xs[-1, 1], alone, rtol=0, atol=1e-12)
    if METHODS[method].native:
        x_T, states, _ = step_fixed(field, x0, method=method, dt=0.05, steps=10, return_states=True)
        assert states.shape == (11, B, K, H, W, n)
        torch.testing.assert_close(x_T, sol.xs[-1], rtol=0, atol=1e-12)


def test_outputs_are_steps_not_interpolations() -> None:
    """Each output interval is split into equal steps ≤ dt: the outputs equal step_fixed's."""
    field, x0 = kuramoto_problem(3, N=6, seed=7)
    with torch.no_grad():
        sol = solve(field, x0, [0.0, 0.25, 1.0], "rk4_normalized", dt=0.1)
        a, _, _ = step_fixed(field, x0, method="rk4_normalized", dt=0.25 / 3, steps=3)
        b, _, _ = step_fixed(field, a, method="rk4_normalized", dt=0.75 / 8, steps=8, t0=0.25)
    torch.testing.assert_close(sol.xs[1], a, rtol=0, atol=1e-15)
    torch.testing.assert_close(sol.xs[2], b, rtol=0, atol=1e-15)
    assert sol.stats == {"nfe": 44, "steps": 11, "accepted": 11, "rejected": 0}
    with torch.no_grad():
        tdq = solve(field, x0, [0.0, 0.25, 1.0], "rk4", dt=0.1)
    assert tdq.stats["steps"] == 11 and tdq.stats["nfe"] == 44


def test_euler_normalized_is_the_akorn_update() -> None:
    field, x0 = kuramoto_problem(4, N=6, seed=8, batch=(2,))
    gamma = 0.7
    with torch.no_grad():
        x1, _, _ = step_fixed(field, x0, dt=gamma, steps=1)
        y = x0 + gamma * field(0.0, x0)
    torch.testing.assert_close(x1, y / y.norm(dim=-1, keepdim=True), rtol=0, atol=1e-15)


def test_observe_and_save_states() -> None:
    field, x0 = kuramoto_problem(2, N=8, seed=9, batch=(2,))
    t = torch.linspace(0, 1, 6, dtype=torch.float64)
    obs = {"r": ku.order_parameter, "E": field.energy}
    with torch.no_grad():
        full = solve(field, x0, t, "lawson_rk4", dt=0.05, observe=obs)
        lean = solve(field, x0, t, "lawson_rk4", dt=0.05, observe=obs, save_states=False)
    assert lean.xs is None and set(lean.observed) == {"r", "E"}
    assert lean.observed["r"].shape == (6, 2) and lean.observed["E"].shape == (6, 2)
    torch.testing.assert_close(full.observed["r"], ku.order_parameter(full.xs), rtol=0, atol=1e-15)
    torch.testing.assert_close(lean.observed["E"], full.observed["E"], rtol=0, atol=0)
    torch.testing.assert_close(lean.x_final, full.xs[-1], rtol=0, atol=0)
    assert lean.stats == full.stats
    assert "lawson_rk4" in repr(full) and "r" in repr(full)


@pytest.mark.parametrize("method", ["rk4", "dopri5", "lawson_rk4", "dopri5_normalized"])
def test_observe_without_states_for_delegated_and_native(method: str) -> None:
    field, x0 = kuramoto_problem(4, N=6, seed=10)
    t = [0.0, 0.5, 1.0, 1.5]
    kw = {} if METHODS[method].adaptive else {"dt": 0.05}
    with torch.no_grad():
        full = solve(field, x0, t, method, observe={"r": ku.order_parameter}, **kw)
        lean = solve(field, x0, t, method, observe={"r": ku.order_parameter}, save_states=False, **kw)
    atol = 1e-6 if METHODS[method].adaptive else 0.0  # adaptive: interval-wise solves pick other steps
    torch.testing.assert_close(lean.observed["r"], full.observed["r"], rtol=0, atol=atol)
    torch.testing.assert_close(lean.x_final, full.xs[-1], rtol=0, atol=atol)


def test_single_output_time_and_reverse_time() -> None:
    field, x0 = kuramoto_problem(3, N=6, seed=11)
    with torch.no_grad():
        sol = solve(field, x0, [0.3], "rk4_normalized", dt=0.1)
        assert sol.xs.shape == (1, *x0.shape) and torch.equal(sol.xs[0], x0)
        for method, kw in (("rk4_normalized", {"dt": 0.02}), ("lawson_rk4", {"dt": 0.02}), ("cf4", {"dt": 0.02}),
                           ("rk4", {"dt": 0.02}), ("dopri5", {"rtol": 1e-10, "atol": 1e-12}),
                           ("dopri5_normalized", {"rtol": 1e-10, "atol": 1e-12})):
            x1 = solve(field, x0, [0.0, 1.0], method, **kw).xs[-1]
            back = solve(field, x1, [1.0, 0.5, 0.0], method, **kw).xs[-1]
            torch.testing.assert_close(back, x0, rtol=0, atol=1e-6, msg=method)


class _NaNAfter(nn.Module):
    """A field that returns NaN once t passes ``when``."""

    def __init__(self, inner: nn.Module, when: float) -> None:
        super().__init__()
        self.inner, self.when = inner, when

    def forward(self, t, x):
        f = self.inner(t, x)
        return f * math.nan if float(t) > self.when else f


@pytest.mark.parametrize("method", ["euler_normalized", "rk4", "lawson_rk4", "dopri5", "dopri5_normalized",
                                    "euler", "implicit_adams"])
def test_nan_is_detected_and_named(method: str) -> None:
    field, x0 = kuramoto_problem(2, N=4, seed=12)
    # NaN from t > 0.45 on: every method evaluates the field there before reaching t = 0.6
    bad = _NaNAfter(field, 0.45)
    if method == "lawson_rk4":  # lawson steps field.coupling_term: poison that instead
        bad = field
        orig = field.coupling_term
        field.coupling_term = lambda t, x: orig(t, x) * (math.nan if float(t) > 0.45 else 1.0)
    t = [0.0, 0.3, 0.6, 0.9]
    kw = {} if METHODS[method].adaptive else {"dt": 0.1}
    try:
        with torch.no_grad(), pytest.raises(SolverError) as info:
            solve(bad, x0, t, method, **kw)
    finally:
        if method == "lawson_rk4":
            del field.coupling_term
    err = info.value
    assert err.method == method and method in str(err)
    assert err.solution.status in ("nonfinite", "step_size_underflow")
    assert err.t is not None and 0.3 <= err.t <= 0.6 + 1e-12
    assert err.solution.xs.shape[0] == len(t) and torch.equal(err.solution.xs[0], x0)
    if METHODS[method].native:  # outputs before the failure are kept (one torchdiffeq call has none)
        assert torch.isfinite(err.solution.xs[:2]).all()
    if METHODS[method].native and not METHODS[method].adaptive:
        assert "t = 0.6" in str(err) and torch.isnan(err.solution.xs[3]).all()


@pytest.mark.parametrize("method", ["dopri5_normalized", "dopri5", "bosh3"])
def test_max_steps_is_reported(method: str) -> None:
    field, x0 = kuramoto_problem(2, N=4, seed=13)
    with torch.no_grad(), pytest.raises(SolverError, match=r"max_steps=3.*increase options=\{'max_steps'") as info:
        solve(field, x0, [0.0, 5.0], method, options={"max_steps": 3}, rtol=1e-9, atol=1e-9)
    assert info.value.solution.status == "max_steps_reached"
    assert "max_steps" in info.value.solution.message


def _stiff_problem():
    """Natural frequencies |ω| in [200, 600] with a weak coupling: |ω| h up to 15 at h = 0.025."""
    g = torch.Generator().manual_seed(14)
    N = 8
    omega = torch.linspace(200.0, 600.0, N, dtype=torch.float64) * torch.tensor([1.0, -1.0]).repeat(N // 2)
    field = ku.KuramotoField(ku.MeanField(1.0), omega=ku.Frequencies(omega))
    field.stimulus = 0.3 * torch.randn(N, 2, generator=g, dtype=torch.float64)
    return field, ku.random_states(N, n=2, generator=g, dtype=torch.float64)


def test_lawson_is_stable_with_stiff_frequencies() -> None:
    field, x0 = _stiff_problem()
    t = [0.0, 0.25, 0.5]
    ref = reference(field, x0, t, rtol=1e-10, atol=1e-10)
    r_ref = ku.order_parameter(ref)
    with torch.no_grad():
        lawson = solve(field, x0, t, "lawson_rk4", dt=0.025).xs
        fine = solve(field, x0, t, "lawson_rk4", dt=0.0025).xs
        projected = solve(field, x0, t, "rk4_normalized", dt=0.0025).xs
        # explicit RK4 is unstable at |ω| h = 15 (growth ~2000× per step): solve refuses it up front,
        # and forced past its guard it reaches inf in float32 by t = 0.5
        field32 = ku.KuramotoField(field.coupling, omega=ku.Frequencies(field.omega.omega.float()))
        field32.stimulus = field.stimulus.float()
        with pytest.raises(ValueError, match=r"dt: with method 'rk4'.*h·max\|ω\| = 15 .*stability limit 2.83.*"
                                             r"method='lawson_rk4'.*dt <= 0.00471"):
            solve(field32, x0.float(), t, "rk4", dt=0.025)
        with pytest.raises(SolverError, match="'rk4'.*NaN or inf"):
            solve(field32, x0.float(), t, "rk4", dt=0.025, check_stability=False)
    # Stable and bounded at |ω| h up to 15 (the fast oscillators carry an O(K h) error), and
    # accurate once the step resolves them.
    assert float((lawson - ref).abs().max()) < 0.1
    assert float((ku.order_parameter(lawson) - r_ref).abs().max()) < 2e-2
    assert float((fine - ref).abs().max()) < 1e-4
    # rk4_normalized stays on the sphere, but even at |ω| h ≤ 1.5 its phase error is O(1)
    assert float((projected - ref).abs().max()) > 0.1


def test_lawson_without_frequencies_is_rk4_normalized() -> None:
    field, x0 = kuramoto_problem(4, N=6, seed=15)
    field.omega = None
    with torch.no_grad():
        a, _, _ = step_fixed(field, x0, method="lawson_rk4", dt=0.1, steps=5)
        b, _, _ = step_fixed(field, x0, method="rk4_normalized", dt=0.1, steps=5)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("method", ["rkmk4", "cf4", "lawson_rk4"])
def test_exact_for_a_constant_generator(method: str, n: int) -> None:
    """With J = 0 and no stimulus the flow is the rotation exp(tΩ): Lie-group and Lawson methods
    reproduce it at any step size."""
    field, omega, x0 = rotation_problem(n, skew_std=1.0, frequency_scale=3.0)
    with torch.no_grad():
        x, _, _ = step_fixed(field, x0, method=method, dt=0.25, steps=8)
        exact = omega.rotate(x0, 2.0)
    torch.testing.assert_close(x, exact, rtol=0, atol=1e-12)


def test_progress_bar(capsys) -> None:
    field, x0 = kuramoto_problem(2, N=4, seed=17)
    with torch.no_grad():
        solve(field, x0, [0.0, 0.5, 1.0], "rk4_normalized", dt=0.1, progress=True)
        solve(field, x0, [0.0, 0.5, 1.0], "dopri5", progress=True)
    assert "solve[rk4_normalized]" in capsys.readouterr().err


def test_observations_carry_gradients() -> None:
    field, x0 = kuramoto_problem(2, N=4, seed=18, learnable=True)
    sol = solve(field, x0, [0.0, 0.5], "heun_normalized", dt=0.1, observe={"E": field.energy})
    assert sol.observed["E"].requires_grad
    sol.observed["E"].sum().backward()
    assert field.coupling.J.grad is not None and torch.isfinite(field.coupling.J.grad).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["euler_normalized", "cf4", "lawson_rk4", "dopri5_normalized", "rk4", "dopri5"])
def test_device_follows_the_input(method: str, device: str) -> None:
    field, x0 = kuramoto_problem(4, N=6, seed=19, device=device, dtype=torch.float32)
    kw = {"rtol": 1e-4, "atol": 1e-6} if METHODS[method].adaptive else {"dt": 0.1}
    with torch.no_grad():
        sol = solve(field, x0, [0.0, 0.5], method, **kw)
    assert sol.xs.device == x0.device and sol.xs.dtype == torch.float32
    assert sol.ts.device == x0.device


def test_lawson_dopri5_without_frequencies_is_dopri5_normalized() -> None:
    field, x0 = kuramoto_problem(4, N=6, seed=80)
    field.omega = None
    with torch.no_grad():
        a = solve(field, x0, [0.0, 0.7, 1.5], "lawson_dopri5", rtol=1e-7, atol=1e-9)
        b = solve(field, x0, [0.0, 0.7, 1.5], "dopri5_normalized", rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(a.xs, b.xs, rtol=0, atol=1e-14)
    assert a.stats == b.stats


def test_lawson_dopri5_steps_at_the_pace_of_the_coupling() -> None:
    """Natural frequencies |ω| in [200, 600]: error control on the unit vectors must resolve every
    turn, error control in the rotating frame only the coupling (here the stimulus, which turns
    at -ω in that frame, keeps it at ~400 steps). Same tolerance, same accuracy against the
    reference, measured 8× fewer steps."""
    field, x0 = _stiff_problem()
    t = [0.0, 0.25, 0.5]
    ref = reference(field, x0, t, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        lawson = solve(field, x0, t, "lawson_dopri5", rtol=1e-8, atol=1e-10)
        plain = solve(field, x0, t, "dopri5_normalized", rtol=1e-8, atol=1e-10)
    for sol in (lawson, plain):
        assert float((sol.xs - ref).abs().max()) < 1e-6
    assert lawson.stats["steps"] * 5 < plain.stats["steps"], (lawson.stats, plain.stats)
