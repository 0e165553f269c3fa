"""Closed-form exponentials of skew matrices against SciPy's expm.

(Not torch.linalg.matrix_exp: in float64 it was off by 1.7e-11 on a 2×2 skew matrix of norm 0.03
that hypothesis found, where the closed form is exact to round-off.)"""

from __future__ import annotations

import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from integrators import expm_skew_apply
from integrators.skew import commutator, skew_from_vectors


def _skew(shape, n, scale, seed):
    g = torch.Generator().manual_seed(seed)
    P = scale * torch.randn(*shape, n, n, generator=g, dtype=torch.float64)
    return P - P.transpose(-1, -2), torch.randn(*shape, n, generator=g, dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), batch=st.lists(st.integers(1, 4), max_size=2), scale=st.sampled_from([0.0, 1e-9, 0.3, 2.5]),
       seed=st.integers(0, 2**16))
def test_matches_matrix_exp(n: int, batch: list[int], scale: float, seed: int) -> None:
    M, v = _skew(batch, n, scale, seed)
    E = torch.from_numpy(scipy.linalg.expm(M.numpy()))
    exact = (E @ v.unsqueeze(-1)).squeeze(-1)
    out = expm_skew_apply(M, v)
    assert out.shape == v.shape
    torch.testing.assert_close(out, exact, rtol=0, atol=1e-13 * (1 + scale) ** 2)
    torch.testing.assert_close(out.norm(dim=-1), v.norm(dim=-1), rtol=1e-13, atol=0)


def test_broadcasts_and_keeps_float32() -> None:
    M, _ = _skew((5,), 4, 0.5, 0)
    v = torch.randn(3, 1, 4, dtype=torch.float64)
    out = expm_skew_apply(M, v)
    assert out.shape == (3, 5, 4)
    out32 = expm_skew_apply(M.float(), v.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out, rtol=0, atol=1e-5)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("scale", [0.0, 0.7])
def test_gradcheck_including_zero(n: int, scale: float) -> None:
    """Differentiable with finite, correct gradients, also at M = 0 (removable singularities)."""
    P, v = _skew((2,) if n < 5 else (1,), n, scale if n < 5 else scale / 4, 1)
    P = P.clone().requires_grad_()
    v = v.requires_grad_()
    assert torch.autograd.gradcheck(lambda A, w: expm_skew_apply(A - A.transpose(-1, -2), w), (P, v))


def test_commutator_and_rank_two_generator() -> None:
    A, _ = _skew((3,), 3, 1.0, 2)
    B, _ = _skew((3,), 3, 1.0, 3)
    torch.testing.assert_close(commutator(A, B), -commutator(B, A))
    assert torch.equal(commutator(A[..., :2, :2], B[..., :2, :2]), torch.zeros(3, 2, 2, dtype=torch.float64))
    # exp(θ (a bᵀ − b aᵀ)) rotates b towards a in their plane
    a = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    out = expm_skew_apply(0.5 * torch.pi * skew_from_vectors(a, b), b)
    torch.testing.assert_close(out, a, rtol=0, atol=1e-15)


def test_validation() -> None:
    with pytest.raises(ValueError, match="M: expected \\[..., n, n\\] square matrices"):
        expm_skew_apply(torch.zeros(3, 2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="v: expected last axis n=3"):
        expm_skew_apply(torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(TypeError, match="expected torch tensors"):
        expm_skew_apply([[0.0]], torch.zeros(1))
