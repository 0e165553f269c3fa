"""The noisy flow: strong and weak orders of every registered stochastic method (the
parametrisation is over ``SDE_METHODS``), the Stratonovich interpretation, reproducibility,
``D = 0`` as the deterministic solve, and input checks."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kuramoto as ku
from integrators import SDE_METHODS, BrownianPath, BrownianStream, solve, solve_sde
from integrators.sde_ambient import have_torchsde

T = 1.0
PATHS = 400
FINE = 2**10
STEPS = (2**-3, 2**-4, 2**-5, 2**-6, 2**-7)
ORDER_BAND = 0.2
NATIVE = [name for name, cls in SDE_METHODS.items() if cls.native]


def _skip_without_torchsde(method: str) -> None:
    if not SDE_METHODS[method].native and not have_torchsde():
        pytest.skip("torchsde (optional dependency) is not installed")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _slope(hs, errors) -> float:
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


@functools.lru_cache(maxsize=None)
def _problem(kind: str):
    """(field, x0 [paths, N, n], D): 'rotation' (one oscillator, ω = 1.3, K = 0; exact solution),
    'circle' (4 coupled phase oscillators), 'sphere' (4 coupled oscillators on S²)."""
    g = _gen(1)
    if kind == "rotation":
        field, N, n, D = ku.KuramotoField(ku.MeanField(0.0), omega=ku.Frequencies(torch.tensor([1.3],
                                                                                              dtype=torch.float64))), 1, 2, 0.5
    elif kind == "circle":
        omega = torch.tensor([-1.0, 0.3, 0.8, 2.0], dtype=torch.float64)
        field, N, n, D = ku.KuramotoField(ku.MeanField(1.5), omega=ku.Frequencies(omega)), 4, 2, 0.2
    else:
        field, N, n, D = ku.KuramotoField(ku.MeanField(1.5)), 4, 3, 0.2
    x0 = ku.random_states(PATHS, N, n=n, generator=g, dtype=torch.float64)
    path = BrownianPath(ku.noise_shape(x0.shape), 0.0, T, FINE, seed=7, dtype=torch.float64)
    return field, x0, D, path


@functools.lru_cache(maxsize=None)
def _reference(kind: str) -> torch.Tensor:
    field, x0, D, path = _problem(kind)
    if kind == "rotation":  # θ(T) = θ0 + ωT + sqrt(2D) W(T): the Stratonovich solution, in closed form
        theta = ku.to_phases(x0) + 1.3 * T + math.sqrt(2 * D) * path(0.0, T)[..., 0]
        return ku.from_phases(theta)
    return solve_sde(field, x0, [0.0, T], "stratonovich_heun", dt=T / FINE, noise=D, brownian=path).x_final


def _strong_errors(kind: str, method: str) -> list[float]:
    field, x0, D, path = _problem(kind)
    ref = _reference(kind)
    errors = []
    for h in STEPS:
        x = solve_sde(field, x0, [0.0, T], method, dt=h, noise=D, brownian=path, drift_tol=None).x_final
        errors.append(float((x - ref).norm(dim=-1).amax(-1).mean()))  # E max_i |x_i(T) − x_i^ref(T)|
    return errors


@pytest.mark.parametrize("method", list(SDE_METHODS))
def test_strong_order_with_the_phase_noise_on_a_coupled_circle(method):
    """n = 2, four coupled oscillators, against a fine Heun solve on the same Brownian paths."""
    _skip_without_torchsde(method)
    kind = "rotation" if method == "torchsde_euler" else "circle"  # Itô EM: pre-asymptotic on 'circle'
    errors = _strong_errors(kind, method)
    slope = _slope(STEPS, errors)
    order = SDE_METHODS[method].strong_order
    assert abs(slope - order) <= ORDER_BAND, (method, slope, errors)


@pytest.mark.parametrize("method", list(SDE_METHODS))
def test_strong_order_against_the_exact_solution_of_rotation_plus_noise(method):
    """dθ = ω dt + sqrt(2D) ∘ dW: θ(T) = θ0 + ωT + sqrt(2D) W(T) path by path. The geodesic step is
    exact here; Euler–Maruyama with retraction reaches order 1 (the retraction is its Milstein
    term); the ambient Itô Euler–Maruyama of torchsde is order 1/2."""
    _skip_without_torchsde(method)
    errors = _strong_errors("rotation", method)
    if method in ("geodesic_euler_maruyama", "geodesic_heun"):  # exact rotations of an exact angle
        assert max(errors) < 1e-12, errors
        return
    slope = _slope(STEPS, errors)
    order = SDE_METHODS[method].strong_order
    assert abs(slope - order) <= ORDER_BAND, (method, slope, errors)


@pytest.mark.parametrize("method", list(SDE_METHODS))
def test_strong_order_one_half_on_the_two_sphere(method):
    """n = 3: the projected noise fields do not commute, so without Lévy areas every method is 1/2."""
    _skip_without_torchsde(method)
    slope = _slope(STEPS, _strong_errors("sphere", method))
    assert abs(slope - SDE_METHODS[method].strong_order_sphere) <= ORDER_BAND, (method, slope)


@functools.lru_cache(maxsize=None)
def _weak_problem(kind: str):
    """One initial state copied to 4000 paths (so E x(T) is a real expectation) and their paths."""
    field, x0, D, _ = _problem(kind)
    x0 = x0[:1].expand(4000, *x0.shape[1:]).contiguous()
    path = BrownianPath(ku.noise_shape(x0.shape), 0.0, T, 2**8, seed=3, dtype=torch.float64)
    return field, x0, D, path


@pytest.mark.parametrize("kind", ["circle", "sphere"])
@pytest.mark.parametrize("method", list(SDE_METHODS))
def test_weak_order(method, kind):
    """|E x_h(T) − E x_fine(T)| with common random numbers (the same paths for every h, and the
    method's own solve at h = 2^-8 as the limit): order 1, and 2 for ``geodesic_heun`` with the
    n = 2 phase noise (Heun on the phase, additive noise)."""
    _skip_without_torchsde(method)
    field, x0, D, path = _weak_problem(kind)

    def mean(h: float) -> torch.Tensor:
        return solve_sde(field, x0, [0.0, T], method, dt=h, noise=D, brownian=path, drift_tol=None).x_final.mean(0)

    ref = mean(2**-8)
    hs = (2**-3, 2**-4, 2**-5, 2**-6)
    errors = [float((mean(h) - ref).norm()) for h in hs]
    cls = SDE_METHODS[method]
    order = cls.weak_order if kind == "circle" else cls.weak_order_sphere
    assert abs(_slope(hs, errors) - order) <= 0.3, (method, errors)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_the_noise_is_brownian_motion_on_the_sphere(n):
    """Pure noise: E x(T) = exp(−(n − 1) D T) x0 (the first spherical harmonic decays at the rate
    of Δ's eigenvalue −(n − 1)); an Itô reading without the correction would not decay. For
    n = 2 also Var θ(T) = 2DT: phase noise of strength D."""
    D, paths = 0.4, 20000
    x0 = ku.normalize(torch.ones(paths, 1, n, dtype=torch.float64))
    field = ku.KuramotoField(ku.MeanField(0.0))
    sol = solve_sde(field, x0, [0.0, T], "stratonovich_heun", dt=T / 256, noise=D, seed=11)
    mean = sol.x_final.mean(0)[0]
    expected = math.exp(-(n - 1) * D * T) * x0[0, 0]
    assert float((mean - expected).abs().max()) < 4 / math.sqrt(paths), (mean, expected)
    if n == 2:
        path = BrownianPath(ku.noise_shape(x0.shape), 0.0, T, 64, seed=12, dtype=torch.float64)
        theta = [ku.to_phases(solve_sde(field, x0, [0.0, s], "geodesic_euler_maruyama", dt=T / 64, noise=D,
                                        brownian=path).x_final) for s in (0.5, T)]
        steps = torch.remainder(theta[1] - theta[0] + math.pi, 2 * math.pi) - math.pi  # increments are small
        assert abs(float(steps.var()) - 2 * D * 0.5) < 0.03


@pytest.mark.parametrize("method", list(SDE_METHODS))
def test_zero_noise_is_the_deterministic_solve(method):
    _skip_without_torchsde(method)
    field, x0, _, _ = _problem("circle")
    t = torch.linspace(0, 2, 5, dtype=torch.float64)
    noisy = solve_sde(field, x0[:8], t, method, dt=0.05, noise=0.0, drift_tol=None)
    cls = SDE_METHODS[method]
    if cls.ode_method is not None:
        ode = solve(field, x0[:8], t, cls.ode_method, dt=0.05, drift_tol=None).xs
        if cls.native:  # bit for bit
            assert torch.equal(noisy.xs, ode)
        else:
            torch.testing.assert_close(noisy.xs, ode, rtol=1e-10, atol=1e-10)
    else:  # the Lawson steps: their deterministic order against a fine RK4 solve
        fine = solve(field, x0[:8], t, "rk4_normalized", dt=1e-3).xs
        errors = [float((solve_sde(field, x0[:8], t, method, dt=h, noise=0.0).xs - fine).abs().max())
                  for h in (0.05, 0.025, 0.0125)]
        order = 1 if cls.stages == 1 else 2
        assert abs(_slope((0.05, 0.025, 0.0125), errors) - order) <= 0.3, errors
    # a D tensor with zeros draws, but adds nothing
    zeros = solve_sde(field, x0[:8], t, method, dt=0.05, noise=torch.zeros(8, 1, 1, dtype=torch.float64), seed=1,
                      drift_tol=None)
    torch.testing.assert_close(zeros.xs, noisy.xs, rtol=0, atol=1e-14)


@pytest.mark.parametrize("lawson, plain", [("lawson_heun", "stratonovich_heun"),
                                           ("lawson_euler_maruyama", "euler_maruyama")])
def test_lawson_methods_without_frequencies_are_their_plain_methods(lawson, plain):
    field, x0, D, path = _problem("sphere")  # Ω = None
    a = solve_sde(field, x0, [0.0, T], lawson, dt=2**-4, noise=D, brownian=path).x_final
    b = solve_sde(field, x0, [0.0, T], plain, dt=2**-4, noise=D, brownian=path).x_final
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_lawson_methods_rotate_exactly_whatever_the_frequency():
    """Pure rotation + noise (n = 2): the Lawson steps' error does not depend on ω (the phase noise
    commutes with the rotation), where Euler–Maruyama's grows with h·ω."""
    field0, x0, D, path = _problem("rotation")
    errs = {}
    for omega in (1.3, 400.0):
        field = ku.KuramotoField(ku.MeanField(0.0), omega=ku.Frequencies(torch.tensor([omega], dtype=torch.float64)))
        theta = ku.to_phases(x0) + omega * T + math.sqrt(2 * D) * path(0.0, T)[..., 0]
        for method in ("lawson_heun", "lawson_euler_maruyama"):
            x = solve_sde(field, x0, [0.0, T], method, dt=2**-4, noise=D, brownian=path).x_final
            errs[method, omega] = float((x - ku.from_phases(theta)).norm(dim=-1).max())
    for method in ("lawson_heun", "lawson_euler_maruyama"):
        assert errs[method, 400.0] == pytest.approx(errs[method, 1.3], rel=1e-6, abs=1e-12)
    with pytest.raises(ValueError, match="^dt: .*lawson"):
        solve_sde(field, x0, [0.0, T], "euler_maruyama", dt=2**-4, noise=D, seed=0)


def test_noise_is_reproducible_from_the_seed():
    field, x0, D, _ = _problem("circle")
    t = [0.0, 0.5, 1.0]
    a = solve_sde(field, x0[:4], t, dt=0.01, noise=D, seed=5)
    b = solve_sde(field, x0[:4], t, dt=0.01, noise=D, seed=5)
    c = solve_sde(field, x0[:4], t, dt=0.01, noise=D, generator=_gen(5))
    d = solve_sde(field, x0[:4], t, dt=0.01, noise=D, seed=6)
    assert torch.equal(a.xs, b.xs) and torch.equal(a.xs, c.xs)
    assert float((a.xs[-1] - d.xs[-1]).abs().max()) > 1e-2
    # a tensor D of equal values draws the same numbers as the float
    e = solve_sde(field, x0[:4], t, dt=0.01, noise=torch.full((4, 1, 1), D, dtype=torch.float64), seed=5)
    torch.testing.assert_close(e.xs, a.xs, rtol=0, atol=1e-15)
    # a stream and a path of the same shape give the same statistics, not the same numbers
    stream = BrownianStream((3, 2), seed=0, dtype=torch.float64)
    assert stream(0.0, 0.25).shape == (3, 2)


@settings(max_examples=15, deadline=None)
@given(method=st.sampled_from(NATIVE), n=st.integers(2, 4), batch=st.lists(st.integers(1, 3), max_size=2),
       N=st.integers(1, 6), dtype=st.sampled_from([torch.float32, torch.float64]), D=st.floats(0.0, 2.0))
def test_native_methods_keep_shapes_dtypes_and_unit_norms(method, n, batch, N, dtype, D):
    g = _gen(3)
    x0 = ku.random_states(*batch, N, n=n, generator=g, dtype=dtype)
    omega = torch.randn(N, generator=g, dtype=dtype) if n % 2 == 0 else None
    field = ku.KuramotoField(ku.MeanField(1.0), omega=None if omega is None else ku.Frequencies(omega))
    sol = solve_sde(field, x0, [0.0, 0.2, 0.4], method, dt=0.05, noise=D, seed=2,
                    observe={"r": ku.order_parameter})
    assert sol.xs.shape == (3, *x0.shape) and sol.xs.dtype == dtype
    assert sol.observed["r"].shape == (3, *batch)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert float((sol.xs.norm(dim=-1) - 1).abs().max()) < tol
    assert sol.stats["steps"] == 8 and sol.stats["nfe"] == 8 * SDE_METHODS[method].stages


def test_bad_input_names_the_argument():
    field, x0, _, _ = _problem("circle")
    cases = [
        ({"noise": -0.1, "seed": 0}, ValueError, "^noise: "),
        ({"noise": float("nan"), "seed": 0}, ValueError, "^noise: "),
        ({"noise": torch.ones(3), "seed": 0}, ValueError, "^noise: "),
        ({"noise": "0.1", "seed": 0}, TypeError, "^noise: "),
        ({"noise": 0.1}, ValueError, "^generator: .*seed"),
        ({"noise": 0.1, "seed": 0, "generator": _gen(0)}, ValueError, "generator, seed"),
        ({"noise": 0.1, "seed": -3}, ValueError, "^seed: "),
        ({"noise": 0.1, "brownian": BrownianStream((2, 2), seed=0, dtype=torch.float64)}, ValueError, "^brownian: "),
        ({"noise": 0.1, "seed": 0, "method": "lawson_rk4"}, ValueError, "^method: .*ODE method"),
        ({"noise": 0.1, "seed": 0, "dt": -0.1}, ValueError, "^dt: "),
    ]
    for kwargs, exc, match in cases:
        kwargs = {"dt": 0.1, "method": "lawson_heun", **kwargs}
        with pytest.raises(exc, match=match):
            solve_sde(field, x0[:2], [0.0, 1.0], kwargs.pop("method"), **kwargs)
    with pytest.raises(ValueError, match="^x0: "):
        solve_sde(field, 2 * x0[:2], [0.0, 1.0], dt=0.1, noise=0.1, seed=0)
    with pytest.raises(ValueError, match="^tb: .*grid"):
        solve_sde(field, x0[:2], [0.0, 1.0], dt=0.3, noise=0.1,
                  brownian=BrownianPath(ku.noise_shape(x0[:2].shape), 0.0, 1.0, 10, seed=0, dtype=torch.float64))


def test_torchsde_methods_explain_a_missing_install(monkeypatch):
    from integrators import sde_ambient

    monkeypatch.setattr(sde_ambient, "HAVE_TORCHSDE", False)
    with pytest.raises(ValueError, match="torchsde.*not installed"):
        SDE_METHODS["torchsde_heun"]()
