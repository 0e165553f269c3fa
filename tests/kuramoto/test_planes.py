"""The mean-field flow on component planes equals the flow on the state, and serves only fields it fits."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kuramoto as ku
from integrators import Compiled, get_solver, solve
from integrators.compiled import uses_planes
from integrators.lawson import LawsonRK4
from kuramoto import planes
from kuramoto.sphere import component_major


def _mean_field_model(n: int, N: int, batch: tuple[int, ...], K_batched: bool, lag: bool, omega_kind: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    K = 0.5 + 2 * torch.rand(*batch, 1, 1, generator=g, dtype=torch.float64) if K_batched and batch else 1.7
    lag_value = 0.3 if lag and n % 2 == 0 else None
    if omega_kind == "none":
        omega = None
    elif omega_kind == "per_oscillator":
        omega = ku.Frequencies(3 * torch.randn(N, generator=g, dtype=torch.float64))
    else:  # one frequency per component pair, with a batch axis
        omega = ku.Frequencies(3 * torch.randn(*batch[-1:], N, n // 2, generator=g, dtype=torch.float64))
    field = ku.KuramotoField(ku.MeanField(K, lag=lag_value), omega=omega)
    x = component_major(ku.random_states(*batch, N, n=n, generator=g, dtype=torch.float64))
    return field, x


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([2, 4, 6]), N=st.integers(1, 9), batch=st.sampled_from([(), (3,), (2, 3)]),
       K_batched=st.booleans(), lag=st.booleans(), omega_kind=st.sampled_from(["none", "per_oscillator", "per_pair"]),
       dt=st.floats(1e-3, 0.5), seed=st.integers(0, 2**16))
def test_planes_step_equals_the_state_step(n, N, batch, K_batched, lag, omega_kind, dt, seed) -> None:
    """``lawson_rk4`` on the planes of a state is the same map as on the state (float64 rounding),
    for any batch, K per batch item, a lag, and frequencies per oscillator or per pair."""
    field, x = _mean_field_model(n, N, batch, K_batched, lag, omega_kind, seed)
    assert planes.supports(field, x)
    method = LawsonRK4()
    cache = method.init(field, 0.0, x, dt=dt)
    on_state = method.step(field, 0.0, dt, x, cache).x
    on_planes = planes.join(method.step_planes(field, 0.0, dt, planes.split(x), cache))
    assert on_planes.shape == x.shape and on_planes.mT.is_contiguous()
    torch.testing.assert_close(on_planes, on_state, rtol=0, atol=1e-14)
    # every oscillator stays on its sphere, and the planes observables are the state's
    torch.testing.assert_close(ku.inner(on_planes, on_planes, keepdim=False), torch.ones(on_planes.shape[:-1], dtype=x.dtype))
    torch.testing.assert_close(planes.order_parameter(planes.split(on_planes)), ku.order_parameter(on_planes),
                               rtol=0, atol=1e-15)
    v = ku.project(x, torch.randn_like(x))
    torch.testing.assert_close(planes.join(planes.coupling_term(field, planes.split(x))), field.coupling_term(0.0, x),
                               rtol=0, atol=1e-14)
    torch.testing.assert_close(planes.join(planes.normalize(planes.split(x + v))), ku.normalize(x + v), rtol=0,
                               atol=1e-15)


def test_planes_serve_only_the_mean_field_model() -> None:
    field, x = _mean_field_model(2, 5, (2,), True, True, "per_oscillator", 0)
    assert planes.supports(field, x) and uses_planes(LawsonRK4(), field, x)
    assert not planes.supports(field, x.contiguous())  # interleaved memory: the planes are not contiguous
    assert not uses_planes(get_solver("rk4_normalized"), field, x)  # the method has no planes step
    with_stimulus = ku.KuramotoField(ku.MeanField(1.0), omega=field.omega, stimulus=torch.ones(5, 2, dtype=x.dtype))
    dense = ku.KuramotoField(ku.Dense(torch.ones(5, 5, dtype=x.dtype) / 5), omega=field.omega)
    unprojected = ku.KuramotoField(ku.MeanField(1.0), omega=field.omega, project=False)
    skew = ku.KuramotoField(ku.MeanField(1.0), omega=ku.Skew(2, groups=5, spatial_dims=0).double())
    for other in (with_stimulus, dense, unprojected, skew):
        assert not planes.supports(other, x)
    with pytest.raises(TypeError, match="no planes form"):
        planes.rotation(skew.omega.rotation(0.1))


@pytest.mark.parametrize("fuse", [1, 2])
def test_compiled_solve_on_planes_matches_the_eager_solve(fuse: int) -> None:
    """The compiled program takes the planes path for the classic model: its r(t) and states equal
    the eager solve's; an observable other than r is evaluated on the joined state."""
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(5)
    N = 40
    omega = ku.Frequencies(torch.tan(math.pi * (torch.rand(N, generator=g, dtype=torch.float64) - 0.5)))
    field = ku.KuramotoField(ku.MeanField(torch.tensor([1.0, 3.0], dtype=torch.float64).view(2, 1, 1)), omega=omega)
    x0 = ku.random_states(N, n=2, generator=g, dtype=torch.float64).expand(2, N, 2)
    t = torch.linspace(0, 2, 11, dtype=torch.float64)
    obs = {"r": ku.order_parameter, "psi": ku.mean_phase}
    with torch.no_grad():
        fast = solve(field, x0, t, Compiled("lawson_rk4", backend="eager", fuse=fuse), dt=0.05 * fuse, observe=obs)
        slow = solve(field, x0, t, "lawson_rk4", dt=0.05, observe=obs)
    assert uses_planes(LawsonRK4(), field, component_major(x0))
    torch.testing.assert_close(fast.xs, slow.xs, rtol=0, atol=1e-13)
    for key in obs:
        torch.testing.assert_close(fast.observed[key], slow.observed[key], rtol=0, atol=1e-13)
