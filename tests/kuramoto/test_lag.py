"""Phase lag (Kuramoto–Sakaguchi) and general frustration rotations on the graph couplings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kuramoto as ku
from integrators import solve
from kuramoto.couplings import check_rotation, lag_rotation
from kuramoto.graphs import ring_edges
from kuramoto.sphere import component_major


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _phase_velocity(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """dθ/dt of a tangent vector v at x = (cos θ, sin θ): the component along J x = (−x1, x0)."""
    return x[..., 0] * v[..., 1] - x[..., 1] * v[..., 0]


def _coupling_matrix(kind: str, N: int, K: float, seed: int) -> tuple[torch.Tensor, dict]:
    """An [N, N] matrix J and how to build the same coupling of that kind."""
    if kind == "mean_field":
        return torch.full((N, N), K / N, dtype=torch.float64), {}
    if kind == "dense":
        J = torch.randn(N, N, generator=_gen(seed), dtype=torch.float64)
        return J, {"J": J}
    edges = ring_edges(N, 2)
    w = torch.rand(edges.shape[1], generator=_gen(seed), dtype=torch.float64)
    J = torch.zeros(N, N, dtype=torch.float64).index_put((edges[1], edges[0]), w, accumulate=True)
    return J, {"edge_index": edges, "weight": w}


def _build(kind: str, N: int, K: float, spec: dict, **frustration):
    if kind == "mean_field":
        return ku.MeanField(K, **frustration)
    if kind == "dense":
        return ku.Dense(spec["J"], **frustration)
    return ku.Sparse(spec["edge_index"], spec["weight"], num_nodes=N, **frustration)


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["mean_field", "dense", "sparse"]), N=st.integers(3, 12), B=st.integers(1, 3),
       lag=st.floats(-1.5, 1.5), K=st.floats(0.1, 4.0), seed=st.integers(0, 2**16))
def test_lag_is_the_sakaguchi_phase_model(kind, N, B, lag, K, seed):
    """dθ_i/dt = ω_i + Σ_j J_ij sin(θ_j − θ_i − α), evaluated pairwise in the phase form."""
    J, spec = _coupling_matrix(kind, N, K, seed)
    omega = torch.randn(N, generator=_gen(seed + 1), dtype=torch.float64)
    theta = 2 * math.pi * torch.rand(B, N, generator=_gen(seed + 2), dtype=torch.float64)
    field = ku.KuramotoField(_build(kind, N, K, spec, lag=lag), omega=ku.Frequencies(omega))
    x = ku.from_phases(theta)
    got = _phase_velocity(x, field(0.0, x))
    diff = theta.unsqueeze(-2) - theta.unsqueeze(-1) - lag  # [B, i, j]: θ_j − θ_i − α
    expected = omega + (J * torch.sin(diff)).sum(-1)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # the field stays tangent, and f = A(x) x holds for its generator
    v = field(0.0, x)
    assert float(ku.inner(v, x).abs().max()) < 1e-12
    A = field.generator(0.0, x)
    torch.testing.assert_close((A @ x.unsqueeze(-1)).squeeze(-1), v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["mean_field", "dense", "sparse"])
@pytest.mark.parametrize("n", [2, 4])
def test_lag_equals_its_rotation_and_zero_lag_is_no_lag(kind, n):
    N = 7
    _, spec = _coupling_matrix(kind, N, 1.3, 3)
    x = ku.random_states(2, N, n=n, generator=_gen(0), dtype=torch.float64)
    lagged = _build(kind, N, 1.3, spec, lag=0.4)
    rotated = _build(kind, N, 1.3, spec, rotation=lag_rotation(0.4, n))
    torch.testing.assert_close(lagged(x), rotated(x), rtol=1e-14, atol=1e-14)
    assert torch.equal(_build(kind, N, 1.3, spec, lag=0.0)(x), _build(kind, N, 1.3, spec)(x))
    # component-major states give the same numbers and keep their layout
    xc = component_major(x)
    for coupling in (lagged, rotated):
        y = coupling(xc)
        torch.testing.assert_close(y, coupling(x), rtol=1e-14, atol=1e-14)
        assert y.stride(-2) == 1 or kind == "mean_field"


def test_a_rotation_on_any_n_equals_the_block_matrix_it_stands_for():
    """y_i = R Σ_j J_ij x_j without the N×N blocks: the same as Dense with blocks J_ij R."""
    N, n = 6, 3
    J = torch.randn(N, N, generator=_gen(1), dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=_gen(2), dtype=torch.float64))
    R = Q if torch.linalg.det(Q) > 0 else -Q
    blocks = J[:, :, None, None] * R
    x = ku.random_states(4, N, n=n, generator=_gen(3), dtype=torch.float64)
    torch.testing.assert_close(ku.Dense(J, rotation=R)(x), ku.Dense(blocks)(x), rtol=1e-13, atol=1e-13)
    mf = ku.MeanField(2.0, rotation=R)(x)
    torch.testing.assert_close(mf, ku.Dense(2.0 / N * torch.ones(N, N, dtype=torch.float64)[:, :, None, None] * R)(x),
                               rtol=1e-13, atol=1e-13)


def test_batched_lag_equals_one_coupling_per_value():
    lags = torch.tensor([0.0, 0.3, -1.0], dtype=torch.float64)
    x = ku.random_states(3, 2, 10, n=2, generator=_gen(0), dtype=torch.float64)  # [lag, seed, N, 2]
    batched = ku.MeanField(1.5, lag=lags.view(-1, 1, 1, 1))(x)
    for i, lag in enumerate(lags.tolist()):
        torch.testing.assert_close(batched[i], ku.MeanField(1.5, lag=lag)(x[i]), rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="lag"):
        ku.MeanField(1.5, lag=lags.view(-1, 1, 1, 1)).check_input(x[0, 0])  # would grow the batch


def test_energy_with_a_lag_is_cos_lag_times_the_lag_free_one_and_no_lyapunov_function():
    N, lag = 8, 1.0
    J = torch.randn(N, N, generator=_gen(4), dtype=torch.float64)
    J = J + J.T
    x = ku.random_states(512, N, n=2, generator=_gen(5), dtype=torch.float64)
    plain = ku.KuramotoField(ku.Dense(J))
    lagged = ku.KuramotoField(ku.Dense(J, lag=lag))
    torch.testing.assert_close(lagged.energy(x), math.cos(lag) * plain.energy(x), rtol=1e-12, atol=1e-12)
    assert plain.coupling.is_symmetric() and not lagged.coupling.is_symmetric()

    def rate(field):  # dE/dt = ∇E · f along the flow
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(field.energy(xr).sum(), xr)
        return (grad * field(0.0, x)).sum((-2, -1))

    assert float(rate(plain).max()) <= 1e-12            # Lyapunov without a lag
    assert float(rate(lagged).max()) > 0.1              # with one, E rises at some states (10% of these)


def test_identical_oscillators_with_a_lag_lock_and_turn_at_minus_k_sin_lag():
    """r = 1 and Ω = ω0 − K sin α (kuramoto.theory.locked_frequency with width 0)."""
    K, lag, N = 1.5, 0.6, 50
    x0 = ku.from_phases(0.3 * torch.rand(N, generator=_gen(6), dtype=torch.float64))
    field = ku.KuramotoField(ku.MeanField(K, lag=lag))
    t = torch.linspace(0, 30, 31, dtype=torch.float64)
    sol = solve(field, x0, t, "rk4_normalized", dt=0.01, observe={"psi": ku.mean_phase})
    speed = np.diff(np.unwrap(sol.observed["psi"].numpy()))[-10:]  # per unit time
    np.testing.assert_allclose(speed, ku.theory.locked_frequency(K, width=0.0, lag=lag), rtol=1e-6)
    assert float(ku.order_parameter(sol.x_final)) > 1 - 1e-9


@pytest.mark.parametrize("bad, match", [(float("nan"), "lag"), (float("inf"), "lag")])
def test_non_finite_lag_is_refused(bad, match):
    for build in (lambda: ku.MeanField(1.0, lag=bad), lambda: ku.Dense(torch.eye(3), lag=bad),
                  lambda: ku.Sparse(ring_edges(4, 2), num_nodes=4, lag=bad)):
        with pytest.raises(ValueError, match=match):
            build()


def test_a_lag_on_an_odd_sphere_is_refused_naming_lag():
    x = ku.random_states(5, n=3, generator=_gen(0))
    coupling = ku.MeanField(1.0, lag=0.2)
    with pytest.raises(ValueError, match="^lag: .*odd"):
        coupling.check_input(x, "x0")
    with pytest.raises(ValueError, match="^lag: "):
        ku.KuramotoField(coupling)(0.0, x)
    with pytest.raises(ValueError, match="n:"):
        lag_rotation(0.2, 3)


def test_bad_rotations_are_refused_naming_rotation():
    with pytest.raises(ValueError, match="^rotation: .*orthogonal"):
        ku.MeanField(1.0, rotation=torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="^rotation: .*reflection"):
        ku.MeanField(1.0, rotation=torch.diag(torch.tensor([1.0, -1.0])))
    with pytest.raises(ValueError, match="^rotation: .*square"):
        check_rotation(torch.ones(2, 3))
    with pytest.raises(TypeError, match="^rotation: "):
        check_rotation([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="lag, rotation"):
        ku.MeanField(1.0, lag=0.1, rotation=torch.eye(2))
    with pytest.raises(ValueError, match="x0: .*rotation is 2×2"):
        ku.MeanField(1.0, rotation=torch.eye(2)).check_input(ku.random_states(3, n=4), "x0")
