"""Tensor parameters (strengths and frequencies with batch axes), the component-major layout, the
stiffness bounds of the couplings, and the input checks of issue 17."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

import kuramoto as ku
from kuramoto.sphere import component_major


def _classic(N: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    w = ku.lorentzian(N, width=0.5, generator=g, dtype=dtype)
    x = ku.random_states(N, n=2, generator=g, dtype=dtype)
    return w, x, g


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 4), S=st.integers(1, 3), N=st.integers(1, 7), seed=st.integers(0, 1000))
def test_batched_strength_equals_one_field_per_value(B: int, S: int, N: int, seed: int) -> None:
    """MeanField(K[B, 1, 1, 1]) on states [B, S, N, 2] equals B fields MeanField(K[b]) applied
    one by one: K broadcasts over batch items only."""
    g = torch.Generator().manual_seed(seed)
    K = 4 * torch.rand(B, dtype=torch.float64, generator=g)
    w = torch.randn(N, generator=g, dtype=torch.float64)
    x = ku.random_states(B, S, N, n=2, generator=g, dtype=torch.float64)
    batched = ku.KuramotoField(ku.MeanField(K.view(B, 1, 1, 1)), omega=ku.Frequencies(w))
    batched.check_input(x)
    out = batched(0.0, x)
    for b in range(B):
        one = ku.KuramotoField(ku.MeanField(float(K[b])), omega=ku.Frequencies(w))
        torch.testing.assert_close(out[b], one(0.0, x[b]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_scale_on_dense_and_sparse_is_a_batched_strength(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    N = 6
    W = torch.randn(N, N, generator=g, dtype=torch.float64) * (torch.rand(N, N, generator=g) < 0.5)
    scale = torch.tensor([0.5, 2.0, -1.0], dtype=torch.float64)
    x = ku.random_states(3, N, n=2, generator=g, dtype=torch.float64)
    if kind == "dense":
        plain, scaled = ku.Dense(W), ku.Dense(W, scale=scale.view(3, 1, 1))
    else:
        idx = W.nonzero().T
        edges, weight = torch.stack([idx[1], idx[0]]), W[idx[0], idx[1]]
        plain, scaled = ku.Sparse(edges, weight, num_nodes=N), ku.Sparse(edges, weight, num_nodes=N,
                                                                      scale=scale.view(3, 1, 1))
    scaled.check_input(x)
    torch.testing.assert_close(scaled(x), scale.view(3, 1, 1) * plain(x), rtol=0, atol=1e-14)
    assert "scale" in dict(scaled.named_buffers())
    assert scaled.lipschitz_constant() == pytest.approx(2.0 * plain.lipschitz_constant())


def test_strengths_are_buffers_that_follow_the_state_dtype() -> None:
    mf = ku.MeanField(2.5)
    assert dict(mf.named_buffers())["k"].dtype == torch.float64 and not list(mf.parameters())
    x32 = ku.random_states(4, 5, n=2, generator=torch.Generator().manual_seed(0))
    out = ku.KuramotoField(mf)(0.0, x32)
    assert out.dtype == torch.float32
    learn = ku.MeanField(torch.tensor([[[1.0]], [[2.0]]], dtype=torch.float64), learnable=True)
    assert isinstance(learn.k, torch.nn.Parameter) and learn.k.shape == (2, 1, 1)


def test_strength_that_requires_grad_is_kept_and_gets_the_gradient() -> None:
    K = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    field = ku.KuramotoField(ku.MeanField(K))
    x = ku.random_states(3, 8, n=2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (g,) = torch.autograd.grad(field(0.0, x).pow(2).sum(), K)
    assert torch.isfinite(g) and float(g) != 0.0


@pytest.mark.parametrize("k", [torch.ones(3), torch.ones(2, 3, 1), torch.ones(3, 1)])
def test_strength_shapes_that_would_broadcast_across_oscillators_are_refused(k) -> None:
    with pytest.raises(ValueError, match=r"k: expected a scalar or a tensor \[\*batch, 1, 1\]"):
        ku.MeanField(k)


def test_strength_batch_must_fit_the_state() -> None:
    field = ku.KuramotoField(ku.MeanField(torch.ones(4, 1, 1)))
    with pytest.raises(ValueError, match=r"k: MeanField's K has batch shape \(4,\).*state's batch axes \(3,\)"):
        field.check_input(torch.ones(3, 5, 2))
    field.check_input(torch.ones(4, 5, 2))  # fits


@pytest.mark.parametrize("bad", [math.nan, math.inf, torch.tensor([[[math.nan]]])])
def test_non_finite_strengths_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="k: expected a finite"):
        ku.MeanField(bad)
    with pytest.raises(ValueError, match="scale: expected a finite"):
        ku.Dense(torch.eye(3), scale=bad)


def test_batched_frequencies_give_each_batch_item_its_own_sample() -> None:
    g = torch.Generator().manual_seed(3)
    S, N = 3, 5
    w = torch.randn(S, N, generator=g, dtype=torch.float64)
    x = ku.random_states(2, S, N, n=2, generator=g, dtype=torch.float64)
    f = ku.Frequencies(w.unsqueeze(-1))
    f.check_input(x)
    for s in range(S):
        torch.testing.assert_close(f.apply(x)[:, s], ku.Frequencies(w[s]).apply(x[:, s]), rtol=0, atol=0)
        torch.testing.assert_close(f.rotate(x, 0.7)[:, s], ku.Frequencies(w[s]).rotate(x[:, s], 0.7), rtol=0,
                                   atol=1e-15)
    assert f.max_rate() == pytest.approx(float(w.abs().max()))


def test_frequencies_never_broadcast_across_oscillators() -> None:
    """Issue 17: Frequencies(arange(8)) on a [2, 1, 2] state broadcast to [2, 8, 2]."""
    f = ku.Frequencies(torch.arange(8.0))
    x = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"omega has 8 oscillators but the state has 1 on its oscillator axis -2"):
        f.apply(x)
    with pytest.raises(ValueError, match="omega has 8 oscillators"):
        ku.KuramotoField(ku.MeanField(1.0), omega=f)(0.0, x)
    with pytest.raises(ValueError, match="x0: omega has 8 oscillators"):
        ku.KuramotoField(ku.MeanField(1.0), omega=f).check_input(x, "x0")
    with pytest.raises(ValueError, match="omega has 3 values per oscillator"):
        ku.Frequencies(torch.ones(2, 3)).apply(torch.ones(2, 4))


def test_float64_frequencies_do_not_promote_a_float32_state() -> None:
    """Issue 17: frequencies are data, like Dense's J: a dtype mismatch is a TypeError, never a
    silent promotion of the state."""
    f = ku.Frequencies(torch.ones(4, dtype=torch.float64))
    x = ku.random_states(4, n=2)
    for call in (lambda: f.apply(x), lambda: ku.KuramotoField(ku.MeanField(1.0), omega=f)(0.0, x),
                 lambda: f.rotate(x, 0.1)):
        with pytest.raises(TypeError, match="does not match Frequencies's omega torch.float64"):
            call()
    assert f.to(torch.float32).apply(x).dtype == torch.float32


@pytest.mark.parametrize("sampler", [ku.lorentzian, ku.gaussian, ku.uniform])
def test_samplers_reject_non_finite_parameters_and_integer_dtypes(sampler) -> None:
    with pytest.raises(ValueError, match="center: expected a finite float"):
        sampler(10, 1.0, center=math.nan)
    with pytest.raises(ValueError, match="center: expected a finite float"):
        sampler(10, 1.0, center=math.inf)
    with pytest.raises(ValueError, match="width: expected a positive finite"):
        sampler(10, math.nan)
    with pytest.raises(TypeError, match="dtype: expected a floating dtype"):
        sampler(10, 1.0, quantile=True, dtype=torch.int64)


def test_sparse_rejects_non_finite_weights() -> None:
    edges = torch.tensor([[0, 1], [1, 0]])
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="weight: contains NaN or inf"):
            ku.Sparse(edges, torch.tensor([1.0, bad]), num_nodes=2)


def test_a_state_with_one_component_is_a_value_error() -> None:
    field = ku.KuramotoField(ku.MeanField(1.0))
    with pytest.raises(ValueError, match="sphere axis n >= 2"):
        field(0.0, torch.ones(3, 1))
    with pytest.raises(ValueError, match="n >= 2"):
        field.check_input(torch.ones(3, 1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_check_state_accepts_what_random_states_produces(dtype) -> None:
    """Issue 17: check_state rejected the float16/bfloat16 states random_states produces."""
    for seed in range(5):
        x = ku.random_states(64, 3, n=3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        assert x.dtype == dtype
        assert ku.check_state(x) == (True, None)
    assert not ku.check_state((1.1 * x.float()).to(dtype))[0]


@pytest.mark.parametrize("blocks", [False, True])
def test_lipschitz_constants_are_operator_norms(blocks: bool) -> None:
    g = torch.Generator().manual_seed(4)
    assert ku.MeanField(torch.tensor([[[-3.0]], [[2.0]]])).lipschitz_constant() == 3.0
    N, n = 40, 2
    J = torch.randn(N, N, n, n, generator=g, dtype=torch.float64) if blocks else \
        torch.randn(N, N, generator=g, dtype=torch.float64)
    big = J.permute(0, 2, 1, 3).reshape(N * n, N * n) if blocks else J
    exact = float(torch.linalg.matrix_norm(big, ord=2))
    assert ku.Dense(J).lipschitz_constant() == pytest.approx(exact, rel=0.05)
    assert ku.Dense(J).lipschitz_constant() <= exact * (1 + 1e-12)
    if not blocks:
        idx = J.nonzero().T
        sparse = ku.Sparse(torch.stack([idx[1], idx[0]]), J[idx[0], idx[1]], num_nodes=N)
        assert sparse.lipschitz_constant() == pytest.approx(exact, rel=0.05)
    # the mean field's constant is the norm of its matrix (K/N) 1 1^T
    mf = float(torch.linalg.matrix_norm(torch.full((N, N), 2.5 / N, dtype=torch.float64), ord=2))
    assert ku.MeanField(2.5).lipschitz_constant() == pytest.approx(mf)


@pytest.mark.parametrize("coupling", ["mean", "dense", "sparse"])
def test_component_major_states_give_the_same_numbers_and_keep_their_layout(coupling: str) -> None:
    g = torch.Generator().manual_seed(5)
    N = 9
    w, _, _ = _classic(N, 5)
    if coupling == "mean":
        c = ku.MeanField(1.3)
    elif coupling == "dense":
        c = ku.Dense(torch.randn(N, N, generator=g, dtype=torch.float64) / N)
    else:
        edges = torch.randint(0, N, (2, 20), generator=g)
        c = ku.Sparse(edges, torch.randn(20, generator=g, dtype=torch.float64), num_nodes=N)
    field = ku.KuramotoField(c, omega=ku.Frequencies(w))
    x = ku.random_states(2, N, n=2, generator=g, dtype=torch.float64)
    xc = component_major(x)
    assert xc.mT.is_contiguous() and torch.equal(xc, x) and component_major(xc) is xc
    for fn in (lambda s: field(0.0, s), lambda s: field.coupling_term(0.0, s), lambda s: ku.normalize(s),
               lambda s: field.omega.rotation(0.3)(s), lambda s: field.omega.apply(s)):
        a, b = fn(x), fn(xc)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
        assert b.stride(-2) == 1, "component-major in, component-major out"
    # a (row-major) stimulus changes the memory order of the result, never its numbers
    field.stimulus = 0.2 * torch.randn(N, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(field(0.0, x), field(0.0, xc), rtol=0, atol=1e-15)
