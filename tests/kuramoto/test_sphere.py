import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

import kuramoto as ku

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3)
ns = st.integers(2, 5)
dtypes = st.sampled_from([torch.float32, torch.float64])


@settings(max_examples=40, deadline=None)
@given(shape=shapes, n=ns, dtype=dtypes, seed=st.integers(0, 2**31 - 1))
def test_normalize_unit_and_projection_tangent(shape, n, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, n, generator=g, dtype=dtype) * 3
    u = ku.normalize(x)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert torch.allclose(u.norm(dim=-1), torch.ones((), dtype=dtype), atol=tol)
    y = torch.randn(*shape, n, generator=g, dtype=dtype)
    p = ku.project(x, y)  # x is not unit: the scaled projection is tangent anyway
    rel = (p * x).sum(-1).abs() / (x.norm(dim=-1) * y.norm(dim=-1) + 1e-30)
    assert float(rel.max()) < 10 * tol
    # idempotent
    assert torch.allclose(ku.project(x, p), p, atol=50 * tol, rtol=0)


def test_normalize_zero_is_finite():
    x = torch.zeros(3, 2, requires_grad=True)
    y = ku.normalize(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()


def test_random_states_uniform_and_reproducible():
    g1 = torch.Generator().manual_seed(3)
    g2 = torch.Generator().manual_seed(3)
    a = ku.random_states(20000, n=3, generator=g1, dtype=torch.float64)
    b = ku.random_states(20000, n=3, generator=g2, dtype=torch.float64)
    assert torch.equal(a, b)
    assert ku.check_state(a)[0]
    # uniform on S^2: each coordinate is uniform on [-1, 1] (Archimedes), mean 0, variance 1/3
    assert abs(float(a.mean())) < 0.02
    assert abs(float((a[:, 2] ** 2).mean()) - 1 / 3) < 0.01


def test_phases_round_trip():
    th = torch.linspace(-math.pi + 1e-6, math.pi, 101, dtype=torch.float64)
    assert torch.allclose(ku.to_phases(ku.from_phases(th)), th, atol=1e-14)
    with pytest.raises(ValueError, match="n = 2"):
        ku.to_phases(torch.ones(3, 3))


def test_geodesic_distance_accurate_near_zero_and_pi():
    th = torch.tensor([0.0, 1e-9, 0.5, math.pi - 1e-9, math.pi], dtype=torch.float64)
    x = ku.from_phases(torch.zeros_like(th))
    y = ku.from_phases(th)
    d = ku.geodesic_distance(x, y)
    assert torch.allclose(d, th, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_expmap_on_sphere_distance_and_finite_grad_at_zero(n):
    g = torch.Generator().manual_seed(0)
    x = ku.random_states(5, n=n, generator=g, dtype=torch.float64)
    u = ku.project(x, torch.randn(5, n, generator=g, dtype=torch.float64)) * 0.7
    y = ku.expmap(x, u)
    assert ku.check_state(y)[0]
    assert torch.allclose(ku.geodesic_distance(x, y), u.norm(dim=-1), atol=1e-12)
    u0 = torch.zeros(5, n, dtype=torch.float64, requires_grad=True)
    z = ku.expmap(x, u0)
    (z * torch.arange(n, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(u0.grad).all()
    # derivative of exp_x at 0 is the tangent projection
    assert torch.allclose(u0.grad, ku.project(x, torch.arange(n, dtype=torch.float64).expand(5, n)), atol=1e-12)


def test_check_and_assert_state_messages():
    x = torch.tensor([[1.0, 0.0], [0.6, 0.9]])
    ok, reason = ku.check_state(x)
    assert not ok and "norm" in reason and "(1,)" in reason
    with pytest.raises(ValueError, match="x0: expected unit vectors"):
        ku.assert_state(x, "x0")
    with pytest.raises(ValueError, match="NaN"):
        ku.assert_state(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(TypeError, match="floating"):
        ku.assert_state(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="n=3"):
        ku.assert_state(ku.normalize(torch.ones(2, 2)), n=3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="n: expected an integer >= 2"):
        ku.random_states(3, n=1)
    with pytest.raises(ValueError, match="shape"):
        ku.random_states(-1, n=2)
    with pytest.raises(ValueError, match="n >= 2"):
        ku.normalize(torch.ones(3, 1))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ku.normalize([1.0, 2.0])


def test_device_follows_input(device):
    g = torch.Generator(device=device).manual_seed(0)
    x = ku.random_states(4, 3, n=2, generator=g)
    assert x.device.type == device.type
    assert ku.normalize(x).device.type == device.type
