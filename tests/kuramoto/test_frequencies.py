import math

import pytest
import torch

import kuramoto as ku


def test_counter_clockwise_classic():
    w = torch.tensor([0.5, -2.0], dtype=torch.float64)
    f = ku.Frequencies(w)
    th = torch.tensor([0.3, 1.0], dtype=torch.float64)
    x = ku.from_phases(th)
    v = f.apply(x)
    dth = x[..., 0] * v[..., 1] - x[..., 1] * v[..., 0]
    assert torch.allclose(dth, w)
    assert torch.allclose(ku.to_phases(f.rotate(x, 0.7)), th + 0.7 * w)


@pytest.mark.parametrize("module", ["pairs", "per_pair", "rotation_pairs", "rotation_pairs_grouped", "skew"])
def test_rotate_is_matrix_exponential_and_matrix_is_skew(module):
    g = torch.Generator().manual_seed(0)
    N, n = 5, 4
    if module == "pairs":
        f = ku.Frequencies(torch.randn(N, generator=g, dtype=torch.float64))
    elif module == "per_pair":
        f = ku.Frequencies(torch.randn(N, 2, generator=g, dtype=torch.float64))
    elif module == "rotation_pairs":
        f = ku.RotationPairs(n, init_omega=0.8, learnable=False).double()
    elif module == "rotation_pairs_grouped":
        f = ku.RotationPairs(n, groups=N, spatial_dims=0, init_omega=0.8, learnable=False).double()
    else:
        f = ku.Skew(n, groups=N, init_std=0.7, generator=g, learnable=False).double()
    x = ku.random_states(3, N, n=n, generator=g, dtype=torch.float64)
    M = f.matrix(n)
    assert torch.allclose(M, -M.transpose(-1, -2))
    assert torch.allclose(f.apply(x), (M @ x.unsqueeze(-1)).squeeze(-1), atol=1e-14)
    R = torch.linalg.matrix_exp(0.9 * M)
    assert torch.allclose(f.rotate(x, 0.9), (R @ x.unsqueeze(-1)).squeeze(-1), atol=1e-12)
    assert float((f.apply(x) * x).sum(-1).abs().max()) < 1e-14


def test_rotation_pairs_official_sign_and_init():
    f = ku.RotationPairs(2, init_omega=0.5)
    assert torch.allclose(f.p, torch.full((2,), 0.5 / math.sqrt(2)))
    x = torch.tensor([[0.6, 0.8]])
    # official pair velocity is (ω b, −ω a)
    assert torch.allclose(f.apply(x), torch.tensor([[0.5 * 0.8, -0.5 * 0.6]]), atol=1e-7)
    f2 = ku.RotationPairs(4, groups=3, spatial_dims=2, learnable=False)
    assert f2.pair_omega().shape == (3, 1, 1, 2) and not f2.p.requires_grad


def test_samplers():
    w = ku.lorentzian(20000, width=0.5, quantile=True, dtype=torch.float64)
    assert torch.all(w[1:] > w[:-1])
    assert abs(float(w.median())) < 1e-3
    # quartiles of a Cauchy are ±Δ
    assert abs(float(w[14999]) - 0.5) < 1e-3 and abs(float(w[4999]) + 0.5) < 1e-3
    assert float(w.abs().max()) > 1000  # the heavy tails the sync study must survive
    gs = ku.gaussian(20000, width=2.0, quantile=True, dtype=torch.float64)
    assert abs(float(gs.std()) - 2.0) < 0.01
    u = ku.uniform(1000, width=3.0, quantile=True, dtype=torch.float64)
    assert float(u.min()) > -3 and float(u.max()) < 3 and abs(float(u.mean())) < 1e-12
    g = torch.Generator().manual_seed(0)
    r = ku.lorentzian(10, 1.0, generator=g)
    assert r.dtype == torch.get_default_dtype() and r.shape == (10,)
    with pytest.raises(ValueError, match="width"):
        ku.gaussian(10, width=-1.0)
    with pytest.raises(ValueError, match="num"):
        ku.uniform(0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="even sphere dimension"):
        ku.Frequencies(torch.ones(3)).apply(torch.ones(3, 3))
    with pytest.raises(ValueError, match="omega: expected shape"):
        ku.Frequencies(torch.ones(0))
    with pytest.raises(ValueError, match="n: expected an even"):
        ku.RotationPairs(3)
    with pytest.raises(ValueError, match="n=3"):
        ku.Skew(3).apply(torch.ones(2, 4))
