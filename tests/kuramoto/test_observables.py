import math

import pytest
import torch

import kuramoto as ku
from kuramoto import theory


def test_order_parameter_limits():
    x = ku.normalize(torch.ones(2, 50, 3, dtype=torch.float64))
    assert torch.allclose(ku.order_parameter(x), torch.ones(2, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    N = 4000
    xs = ku.random_states(200, N, n=2, generator=g, dtype=torch.float64)
    r = ku.order_parameter(xs)
    assert abs(float(r.mean()) * math.sqrt(N) - theory.incoherent_order_parameter(N) * math.sqrt(N)) < 0.06
    x3 = ku.random_states(200, N, n=3, generator=g, dtype=torch.float64)
    assert abs(float(ku.order_parameter(x3).mean()) / theory.incoherent_order_parameter(N, 3) - 1) < 0.05


def test_order_parameter_over_image_axes_and_mean_phase():
    x = ku.from_phases(torch.full((2, 3, 4, 5), 0.4, dtype=torch.float64))
    assert ku.order_parameter(x, dim=(1, 2, 3)).shape == (2,)
    assert torch.allclose(ku.mean_phase(x.reshape(2, 60, 2)), torch.full((2,), 0.4, dtype=torch.float64))
    with pytest.raises(ValueError, match="sphere axis"):
        ku.order_parameter(x, dim=-1)


def test_group_and_local_order_parameters():
    th = torch.tensor([0.0, 0.0, 0.0, 0.0, math.pi / 2, -math.pi / 2], dtype=torch.float64)
    x = ku.from_phases(th)
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    r = ku.group_order_parameter(x, labels)
    assert torch.allclose(r, torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-15)
    A = torch.zeros(6, 6, dtype=torch.float64)
    A[0, 1] = A[1, 0] = A[4, 5] = A[5, 4] = 1.0
    loc = ku.local_order_parameter(x, ku.Dense(A))
    assert torch.allclose(loc, torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64), atol=1e-15)
    img = ku.from_phases(torch.zeros(1, 5, 5, dtype=torch.float64))
    assert torch.allclose(ku.window_order_parameter(img, 3), torch.ones(1, 5, 5, dtype=torch.float64))


def test_phase_locking_and_mean_frequency():
    ts = torch.linspace(0, 100, 10001, dtype=torch.float64)
    w = torch.tensor([1.0, 1.0, 2.5], dtype=torch.float64)
    th = ts[:, None] * w + torch.tensor([0.0, 0.7, 0.1], dtype=torch.float64)
    xs = ku.from_phases(th)
    plv = ku.phase_locking_value(xs)
    assert abs(float(plv[0, 1]) - 1) < 1e-12 and float(plv[0, 2]) < 0.02
    assert torch.allclose(ku.mean_frequency(xs, ts), w, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3])
def test_count_clusters(n):
    g = torch.Generator().manual_seed(0)
    centres = ku.random_states(3, n=n, generator=g, dtype=torch.float64)
    if n == 2:
        centres = ku.from_phases(torch.tensor([0.0, 2.0, 4.0], dtype=torch.float64))
    x = centres.repeat_interleave(10, 0) + 1e-3 * torch.randn(30, n, generator=g, dtype=torch.float64)
    x = ku.normalize(x)
    assert int(ku.count_clusters(x, threshold=0.05)) == 3
    assert int(ku.count_clusters(x[:10], threshold=0.05)) == 1
    assert ku.count_clusters(torch.stack([x, x[:10].repeat(3, 1)]), threshold=0.05).tolist() == [3, 1]
