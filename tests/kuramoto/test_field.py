import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

import kuramoto as ku


def _random_field(N, n, seed, dtype=torch.float64, omega=True, stimulus=True, symmetric=False, blocks=True):
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(N, N, n, n, generator=g, dtype=dtype) / N if blocks else torch.randn(N, N, generator=g, dtype=dtype) / N
    if symmetric:
        J = 0.5 * (J + (J.transpose(0, 1).transpose(-1, -2) if blocks else J.T))
    om = None
    if omega:
        om = ku.Skew(n, groups=N, spatial_dims=0, init_std=0.5, generator=g, learnable=False).to(dtype) if n % 2 else \
            ku.Frequencies(torch.randn(N, n // 2, generator=g, dtype=dtype))
    c = torch.randn(N, n, generator=g, dtype=dtype) * 0.3 if stimulus else None
    return ku.KuramotoField(ku.Dense(J), omega=om, stimulus=c), g


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 6), n=st.integers(2, 5), batch=st.lists(st.integers(1, 3), max_size=2),
       seed=st.integers(0, 10_000), omega=st.booleans(), stimulus=st.booleans())
def test_field_tangent_and_generator_skew(N, n, batch, seed, omega, stimulus):
    field, g = _random_field(N, n, seed, omega=omega, stimulus=stimulus)
    x = ku.random_states(*batch, N, n=n, generator=g, dtype=torch.float64)
    v = field(0.0, x)
    assert v.shape == x.shape
    assert float((v * x).sum(-1).abs().max()) < 1e-12
    A = field.generator(0.0, x)
    assert A.shape == (*x.shape, n)
    assert torch.allclose(A, -A.transpose(-1, -2), atol=1e-14)
    assert torch.allclose((A @ x.unsqueeze(-1)).squeeze(-1), v, atol=1e-12)


def test_field_keeps_norm_off_sphere():
    # the scaled projection keeps |x| a first integral of the ambient ODE: <x, f(x)> = 0 for any |x|
    field, g = _random_field(5, 3, 1)
    x = 2.5 * ku.random_states(5, n=3, generator=g, dtype=torch.float64)
    assert float((field(0.0, x) * x).sum(-1).abs().max()) < 1e-12


def test_classic_phase_equation_float64():
    g = torch.Generator().manual_seed(0)
    N, K = 50, 1.7
    th = torch.rand(3, N, generator=g, dtype=torch.float64) * 6.28
    w = ku.lorentzian(N, width=0.5, generator=g, dtype=torch.float64)
    field = ku.KuramotoField(ku.MeanField(K), omega=ku.Frequencies(w))
    x = ku.from_phases(th)
    v = field(0.0, x)
    # dθ/dt = (x_0 v_1 − x_1 v_0) for unit x
    dth = x[..., 0] * v[..., 1] - x[..., 1] * v[..., 0]
    ref = w + (K / N) * torch.sin(th.unsqueeze(-2) - th.unsqueeze(-1)).sum(-1)
    assert float(((dth - ref).abs() / (1 + w.abs())).max()) < 1e-12


@pytest.mark.parametrize("n", [2, 3, 4])
def test_meanfield_equals_dense_and_sparse_equals_dense(n):
    g = torch.Generator().manual_seed(1)
    N, K = 12, 2.3
    x = ku.random_states(4, N, n=n, generator=g, dtype=torch.float64)
    mf = ku.MeanField(K)(x)
    dense = ku.Dense(torch.full((N, N), K / N, dtype=torch.float64))(x)
    assert torch.allclose(mf, dense, atol=1e-14)
    W = (torch.rand(N, N, generator=g, dtype=torch.float64) < 0.3).to(torch.float64) * torch.randn(N, N, generator=g, dtype=torch.float64)
    idx = W.nonzero().T  # rows i (targets), cols j (sources)
    sp = ku.Sparse(torch.stack([idx[1], idx[0]]), W[idx[0], idx[1]], num_nodes=N)
    assert torch.allclose(sp(x), ku.Dense(W)(x), atol=1e-14)
    assert torch.allclose(sp.to_dense(), W)


def test_dense_blocks_match_einsum():
    g = torch.Generator().manual_seed(2)
    J = torch.randn(6, 6, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    ref = torch.einsum("ijab,zjb->zia", J, x)
    assert torch.allclose(ku.Dense(J)(x), ref, atol=1e-13)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_symmetric_field_is_minus_riemannian_gradient(n):
    field, g = _random_field(7, n, 3, omega=False, symmetric=True)
    assert field.coupling.is_symmetric(atol=1e-15)
    x = ku.random_states(2, 7, n=n, generator=g, dtype=torch.float64).requires_grad_(True)
    E = field.energy(x)
    (grad,) = torch.autograd.grad(E.sum(), x)
    rgrad = ku.project(x, grad)
    assert torch.allclose(field(0.0, x), -rgrad, atol=1e-12)
    # hence dE/dt = -|f|^2 <= 0 along the flow
    v = field(0.0, x)
    assert torch.allclose((grad * v).sum((-1, -2)), -(v * v).sum((-1, -2)), atol=1e-12)


def test_energy_formula_and_logged_energy():
    field, g = _random_field(5, 2, 4, omega=False, blocks=False)
    x = ku.random_states(3, 5, n=2, generator=g, dtype=torch.float64)
    J, c = field.coupling.J, field.stimulus
    ref = -0.5 * torch.einsum("zia,ij,zja->z", x, J, x) - (c * x).sum((-1, -2))
    assert torch.allclose(ku.energy(field, x), ref, atol=1e-13)
    logged = -torch.einsum("zia,ij,zja->z", x, J, x) - (c * x).sum((-1, -2))
    assert torch.allclose(field.logged_energy(x), logged, atol=1e-13)


def test_both_energies_from_one_evaluation_of_J_are_the_energies():
    field, g = _random_field(5, 2, 4, omega=False, blocks=False)
    x = ku.random_states(3, 5, n=2, generator=g, dtype=torch.float64)
    calls = []
    field.coupling.register_forward_hook(lambda module, args, out: calls.append(1))
    paper, logged = field.energies(x)
    assert len(calls) == 1
    assert torch.equal(paper, field.energy(x)) and torch.equal(logged, field.logged_energy(x))


def test_meanfield_energy_is_order_parameter():
    g = torch.Generator().manual_seed(0)
    x = ku.random_states(4, 100, n=2, generator=g, dtype=torch.float64)
    field = ku.KuramotoField(ku.MeanField(2.0))
    r = ku.order_parameter(x)
    assert torch.allclose(field.energy(x), -0.5 * 2.0 * 100 * r ** 2, atol=1e-10)


def test_stimulus_set_per_call_and_validation():
    field = ku.KuramotoField(ku.MeanField(1.0))
    x = ku.random_states(3, n=2, dtype=torch.float64)
    v0 = field(0.0, x)
    field.stimulus = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert not torch.allclose(field(0.0, x), v0)
    assert "stimulus" not in dict(field.named_buffers()) and not list(field.parameters())
    field.stimulus = torch.tensor([1.0, 0.0])
    with pytest.raises(TypeError, match="stimulus: dtype"):
        field(0.0, x)
    with pytest.raises(TypeError, match="stimulus"):
        field.stimulus = [1.0, 0.0]


def test_bad_inputs():
    with pytest.raises(TypeError, match="coupling"):
        ku.KuramotoField(lambda x: x)
    with pytest.raises(TypeError, match="omega"):
        ku.KuramotoField(ku.MeanField(1.0), omega=torch.ones(3))
    with pytest.raises(ValueError, match="J: expected a square"):
        ku.Dense(torch.ones(3, 4))
    with pytest.raises(ValueError, match="J: contains NaN"):
        ku.Dense(torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="x: expected 3 oscillators"):
        ku.Dense(torch.ones(3, 3))(torch.ones(4, 2))
    with pytest.raises(TypeError, match="does not match the coupling"):
        ku.Dense(torch.ones(3, 3, dtype=torch.float64))(torch.ones(3, 2))
    with pytest.raises(ValueError, match="edge_index: node ids"):
        ku.Sparse(torch.tensor([[0, 5], [1, 0]]), num_nodes=3)
    with pytest.raises(ValueError, match="weight: expected shape"):
        ku.Sparse(torch.tensor([[0, 1], [1, 0]]), torch.ones(3), num_nodes=3)
    with pytest.raises(ValueError, match="k: expected a finite"):
        ku.MeanField(float("inf"))
    with pytest.raises(ValueError, match="project=False"):
        ku.KuramotoField(ku.MeanField(1.0), project=False).generator(0.0, ku.random_states(3, n=2))
    with pytest.raises(ValueError, match="at least 2 axes"):
        ku.KuramotoField(ku.MeanField(1.0))(0.0, torch.ones(2))


def test_learnable_coupling_gets_gradient():
    field = ku.KuramotoField(ku.MeanField(1.5, learnable=True))
    x = ku.random_states(3, 10, n=2, generator=torch.Generator().manual_seed(0))
    field(0.0, x).pow(2).sum().backward()
    assert field.coupling.k.grad is not None and torch.isfinite(field.coupling.k.grad)


def test_field_device(device):
    g = torch.Generator(device=device).manual_seed(0)
    x = ku.random_states(2, 8, n=2, generator=g)
    w = ku.lorentzian(8, 0.5, generator=g, dtype=x.dtype)
    field = ku.KuramotoField(ku.MeanField(1.0), omega=ku.Frequencies(w)).to(device)
    assert field(0.0, x).device.type == device.type
