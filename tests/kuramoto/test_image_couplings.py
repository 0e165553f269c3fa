"""Image couplings: convolution and attention on ``[B, C/n, H, W, n]`` states, and the layout helpers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kuramoto.couplings.graph import Dense
from kuramoto.couplings.image import Attention, Conv, gta_angles, to_features, to_oscillators

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _state(B: int, C: int, H: int, W: int, n: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    f = torch.randn(B, C, H, W, generator=_gen(seed), dtype=dtype)
    return to_oscillators(f, n)


# ----------------------------------------------------------------------------- layout helpers

@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 3), K=st.integers(1, 4), H=st.integers(1, 5), W=st.integers(1, 5), n=st.integers(2, 5))
def test_layout_round_trip(B, K, H, W, n):
    f = torch.arange(B * K * n * H * W, dtype=torch.float32).reshape(B, K * n, H, W)
    x = to_oscillators(f, n)
    assert x.shape == (B, K, H, W, n)
    # channel k·n + m is component m of oscillator k
    for k in range(K):
        for m in range(n):
            assert torch.equal(x[:, k, :, :, m], f[:, k * n + m])
    back = to_features(x)
    assert torch.equal(back, f)
    assert back.data_ptr() == f.data_ptr()  # a view, no copy
    # the other direction, from a contiguous oscillator-layout tensor (a copy is allowed there)
    y = torch.randn(B, K, H, W, n, generator=_gen(1))
    assert torch.equal(to_oscillators(to_features(y), n), y)


def test_layout_errors():
    with pytest.raises(ValueError, match="not a multiple of n=4"):
        to_oscillators(torch.zeros(2, 6, 3, 3), 4)
    with pytest.raises(ValueError, match=r"features: expected shape \[B, C, H, W\]"):
        to_oscillators(torch.zeros(6, 3, 3), 2)
    with pytest.raises(TypeError, match="features"):
        to_oscillators(torch.zeros(2, 4, 3, 3, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="n: expected"):
        to_oscillators(torch.zeros(2, 4, 3, 3), 1)
    with pytest.raises(ValueError, match=r"x: expected an image-layout state"):
        to_features(torch.zeros(2, 4, 3, 2))
    with pytest.raises(TypeError, match="x: expected a floating-point"):
        to_features([1, 2])


# ----------------------------------------------------------------------------- convolution

def _dense_from_kernel(weight: torch.Tensor, n: int, H: int, W: int) -> torch.Tensor:
    """Blocks J[(k,h,w), (k',h',w')] ∈ R^{n×n} of the zero-padded convolution, by explicit loops."""
    C, _, ks, _ = weight.shape
    K, p = C // n, ks // 2
    J = torch.zeros(K, H, W, K, H, W, n, n, dtype=weight.dtype)
    for a in range(ks):
        for b in range(ks):
            block = weight[:, :, a, b].reshape(K, n, K, n).permute(0, 2, 1, 3)  # [k_out, k_in, m_out, m_in]
            for h in range(H):
                for w in range(W):
                    h2, w2 = h + a - p, w + b - p
                    if 0 <= h2 < H and 0 <= w2 < W:
                        J[:, h, w, :, h2, w2] = block
    N = K * H * W
    return J.reshape(N, N, n, n)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_conv_equals_dense_blocks(kernel_size):
    C, n, H, W = 6, 3, 4, 5
    conv = Conv(C, n, kernel_size, bias=False, generator=_gen(0), dtype=torch.float64)
    J = _dense_from_kernel(conv.weight.detach(), n, H, W)
    assert torch.allclose(conv.to_dense(H, W), J, atol=1e-14)
    x = _state(2, C, H, W, n, dtype=torch.float64)
    B, N = 2, (C // n) * H * W
    dense = Dense(J)
    assert torch.allclose(conv(x).reshape(B, N, n), dense(x.reshape(B, N, n)), atol=1e-12)
    assert conv.linear


def test_conv_bias_is_an_offset():
    C, n, H, W = 4, 2, 3, 3
    conv = Conv(C, n, 3, bias=True, generator=_gen(2))
    assert not conv.linear
    x = _state(2, C, H, W, n)
    J = conv.to_dense(H, W)
    lin = Dense(J)(x.reshape(2, -1, n)).reshape(x.shape)
    bias = to_oscillators(conv.bias.detach().view(1, C, 1, 1).expand(2, C, H, W), n)
    assert torch.allclose(conv(x), lin + bias, atol=1e-5)


def test_symmetric_kernel_gives_symmetric_J():
    C, n, H, W = 4, 2, 4, 3
    conv = Conv(C, n, 3, bias=False, generator=_gen(3), dtype=torch.float64)
    assert not conv.is_symmetric()
    assert not Dense(conv.to_dense(H, W)).is_symmetric(atol=1e-12)
    conv.symmetrize()
    assert conv.is_symmetric(atol=1e-15)
    w = conv.weight.detach()
    assert torch.allclose(w, w.transpose(0, 1).flip(2, 3))
    J = _dense_from_kernel(w, n, H, W)
    assert Dense(J).is_symmetric(atol=1e-14)  # J_ij = J_jiᵀ, zero padding included


def test_symmetrize_zeroes_bias():
    conv = Conv(4, 2, 3, bias=True, generator=_gen(4))
    assert not conv.is_symmetric()
    conv.symmetrize()
    assert conv.is_symmetric(atol=1e-7) and torch.count_nonzero(conv.bias) == 0


def test_conv_errors():
    with pytest.raises(ValueError, match="kernel_size: expected an odd"):
        Conv(4, 2, 2)
    with pytest.raises(ValueError, match="channels: must be a multiple of n=4"):
        Conv(6, 4, 3)
    with pytest.raises(ValueError, match="n: expected a sphere dimension"):
        Conv(6, 1, 3)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv(4, 2, 0)
    with pytest.raises(TypeError, match="bias"):
        Conv(4, 2, 3, bias=None)
    conv = Conv(4, 2, 3)
    with pytest.raises(ValueError, match=r"x: expected 2 oscillators of dimension n=2"):
        conv(_state(1, 6, 3, 3, 2))
    with pytest.raises(ValueError, match="image-layout state"):
        conv(torch.zeros(1, 2, 3, 2))
    with pytest.raises(TypeError, match="dtype/device"):
        conv(_state(1, 4, 3, 3, 2, dtype=torch.float64))


# ----------------------------------------------------------------------------- attention

def _ref_gta_rotations(H: int, W: int, head_dim: int) -> torch.Tensor:
    """docs/AKORN.md §2.2 initialisation, written out: [H, W, head_dim/2, 2, 2] rotations."""
    F_ = math.ceil(head_dim / 4)
    out = torch.zeros(H, W, head_dim // 2, 2, 2, dtype=torch.float64)
    for r in range(H):
        for c in range(W):
            for j in range(head_dim // 2):
                k, axis = divmod(j, 2)
                phi = (r if axis == 0 else c) * 10000.0 ** (-k / F_)
                out[r, c, j] = torch.tensor([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    return out


def _ref_attention(att: Attention, f: torch.Tensor) -> torch.Tensor:
    """Plain multi-head attention from docs/AKORN.md §2.2 with the interleaved head split; f [B, C, H, W]."""
    B, C, H, W = f.shape
    h, d, L = att.heads, C // att.heads, H * W
    flat = f.reshape(B, C, L)
    qkv = torch.einsum("oc,bcl->bol", att.qkv_weight, flat) + att.qkv_bias.view(1, -1, 1)
    q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
    out = torch.zeros_like(flat)
    for head in range(h):
        idx = [c_local * h + head for c_local in range(d)]
        qh, kh, vh = (t[:, idx].transpose(1, 2) for t in (q, k, v))  # [B, L, d]
        if att.gta:
            Mq, Mk, Mv, Mo = (m.reshape(L, d // 2, 2, 2) for m in (att.gta_q, att.gta_k, att.gta_v, att.gta_out))
            rot = lambda M, u: torch.einsum("ljrs,bljs->bljr", M, u.reshape(B, L, d // 2, 2)).reshape(B, L, d)
            qh, kh, vh = rot(Mq, qh), rot(Mk, kh), rot(Mv, vh)
        a = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
        oh = a @ vh
        if att.gta:
            oh = rot(Mo, oh)
        out[:, idx] = oh.transpose(1, 2)
    y = torch.einsum("oc,bcl->bol", att.out_weight, out) + att.out_bias.view(1, -1, 1)
    return y.reshape(B, C, H, W)


@pytest.mark.parametrize("gta", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attention_matches_reference(gta, dtype):
    C, n, heads, H, W = 24, 4, 3, 3, 4  # head_dim 8
    att = Attention(C, n, heads=heads, gta=gta, grid=(H, W) if gta else None, generator=_gen(5), dtype=dtype)
    if gta:  # make q, k, v and output transforms distinct so that a mix-up shows
        with torch.no_grad():
            for i, p in enumerate((att.gta_q, att.gta_k, att.gta_v, att.gta_out)):
                p.add_(0.3 * torch.randn(p.shape, generator=_gen(10 + i), dtype=dtype))
    x = _state(2, C, H, W, n, seed=6, dtype=dtype)
    y = att(x)
    assert y.shape == x.shape and y.dtype == dtype
    ref = _ref_attention(att, to_features(x))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(to_features(y), ref, atol=tol, rtol=tol)
    assert not att.linear


def test_attention_head_split_is_interleaved():
    """Channel c_local·heads + head belongs to head ``head``: silence head 1's output columns and its
    q/k/v rows no longer matter, while head 0's still do."""
    C, n, heads = 8, 2, 2
    att = Attention(C, n, heads=heads, generator=_gen(7), dtype=torch.float64)
    x = _state(1, C, 2, 3, n, seed=8, dtype=torch.float64)
    with torch.no_grad():
        att.out_weight[:, 1::heads] = 0
    y0 = att(x)
    with torch.no_grad():
        for part in range(3):  # q, k and v rows of head 1
            rows = slice(part * C + 1, (part + 1) * C, heads)
            att.qkv_weight[rows] = torch.randn(C // heads, C, generator=_gen(9 + part), dtype=torch.float64)
    assert torch.allclose(att(x), y0, atol=1e-12)
    with torch.no_grad():  # v rows of head 0 do matter
        att.qkv_weight[2 * C::heads] += 1.0
    assert not torch.allclose(att(x), y0, atol=1e-3)


def test_gta_initialisation():
    C, heads, H, W = 48, 2, 3, 4  # head_dim 24: F = 6 frequencies, 12 blocks (no truncation)
    att = Attention(C, 4, heads=heads, gta=True, grid=(H, W))
    ref = _ref_gta_rotations(H, W, C // heads).to(torch.float32)
    eye = torch.eye(2)
    for M in (att.gta_q, att.gta_k, att.gta_v):
        assert M.shape == (H, W, C // heads // 2, 2, 2)
        assert torch.allclose(M, ref, atol=1e-6)
        assert torch.allclose(M.transpose(-1, -2) @ M, eye.expand_as(M), atol=1e-6)  # orthogonal
        assert torch.allclose(torch.linalg.det(M), torch.ones(M.shape[:-2]), atol=1e-6)
    assert torch.allclose(att.gta_out @ att.gta_q, eye.expand_as(att.gta_q), atol=1e-6)  # inverse
    # head_dim 6: F = 2, blocks (k0,row), (k0,col), (k1,row), truncated to 3
    ang = gta_angles((2, 3), 6, dtype=torch.float64)
    assert ang.shape == (2, 3, 3)
    assert torch.allclose(ang[1, 2], torch.tensor([1.0, 2.0, 10000.0 ** -0.5], dtype=torch.float64))


def test_gta_scores_depend_on_relative_position_at_init():
    """At init q/k transforms are rotations R_p: <R_p q, R_r k> = <q, R_{r−p} k>, a GTA/RoPE property."""
    att = Attention(16, 4, heads=2, gta=True, grid=(4, 4), dtype=torch.float64)
    Mq, Mk, _, _ = att.gta_matrices(4, 4)
    a = torch.randn(8, generator=_gen(11), dtype=torch.float64).expand(1, 1, 16, 8)  # same q at every token
    b = torch.randn(8, generator=_gen(12), dtype=torch.float64).expand(1, 1, 16, 8)  # same k at every token
    scores = att._transform(a, Mq)[0, 0] @ att._transform(b, Mk)[0, 0].T  # [16, 16], token p = 4·row + col
    # (0,0)→(1,1), (1,1)→(2,2) and (2,1)→(3,2) share the offset (1,1)
    assert torch.allclose(scores[0, 5], scores[5, 10], atol=1e-12)
    assert torch.allclose(scores[0, 5], scores[9, 14], atol=1e-12)
    assert not torch.allclose(scores[0, 5], scores[0, 6], atol=1e-3)


def _bilinear_ref(a: torch.Tensor, Ho: int, Wo: int) -> torch.Tensor:
    """Bilinear resampling of a [Hi, Wi, ...] grid, half-pixel centres (align_corners=False)."""
    Hi, Wi = a.shape[:2]

    def idx(o, size_in, size_out):
        s = max((o + 0.5) * size_in / size_out - 0.5, 0.0)
        i0 = min(int(math.floor(s)), size_in - 1)
        return i0, min(i0 + 1, size_in - 1), s - i0

    out = torch.zeros(Ho, Wo, *a.shape[2:], dtype=a.dtype)
    for r in range(Ho):
        r0, r1, fr = idx(r, Hi, Ho)
        for c in range(Wo):
            c0, c1, fc = idx(c, Wi, Wo)
            out[r, c] = ((1 - fr) * (1 - fc) * a[r0, c0] + (1 - fr) * fc * a[r0, c1]
                         + fr * (1 - fc) * a[r1, c0] + fr * fc * a[r1, c1])
    return out


def test_gta_interpolates_to_other_grids():
    att = Attention(8, 2, heads=2, gta=True, grid=(2, 3), dtype=torch.float64)
    with torch.no_grad():
        att.gta_v.add_(torch.randn(att.gta_v.shape, generator=_gen(12), dtype=torch.float64))
    mats = att.gta_matrices(4, 5)
    assert all(m.shape == (20, 2, 2, 2) for m in mats)
    assert torch.allclose(mats[2].reshape(4, 5, 2, 2, 2), _bilinear_ref(att.gta_v.detach(), 4, 5), atol=1e-12)
    same = att.gta_matrices(2, 3)
    assert torch.equal(same[0], att.gta_q.reshape(6, 2, 2, 2))
    y = att(_state(2, 8, 4, 5, 2, dtype=torch.float64))
    assert y.shape == (2, 4, 4, 5, 2) and bool(torch.isfinite(y).all())


def test_attention_errors():
    with pytest.raises(ValueError, match="heads: channels=12 must be a multiple of heads"):
        Attention(12, 2, heads=5)
    with pytest.raises(ValueError, match=r"grid: gta=True needs the token grid"):
        Attention(16, 2, heads=2, gta=True)
    with pytest.raises(ValueError, match="grid: only used with gta=True"):
        Attention(16, 2, heads=2, grid=(3, 3))
    with pytest.raises(ValueError, match="even head_dim"):
        Attention(12, 2, heads=4, gta=True, grid=(3, 3))
    with pytest.raises(ValueError, match="grid: expected a pair"):
        Attention(16, 2, heads=2, gta=True, grid=(3, 0))
    with pytest.raises(ValueError, match="channels: must be a multiple of n=3"):
        Attention(16, 3, heads=2)
    with pytest.raises(TypeError, match="gta"):
        Attention(16, 2, heads=2, gta=1)
    att = Attention(16, 2, heads=2)
    with pytest.raises(ValueError, match="built with gta=False"):
        att.gta_matrices(3, 3)
    with pytest.raises(ValueError, match=r"x: expected 8 oscillators of dimension n=2"):
        att(_state(1, 16, 3, 3, 4))


@pytest.mark.parametrize("device", DEVICES)
def test_couplings_follow_device(device):
    for coupling in (Conv(8, 2, 3, device=device), Attention(8, 2, heads=2, gta=True, grid=(3, 3), device=device)):
        x = to_oscillators(torch.randn(2, 8, 3, 3, device=device), 2)
        y = coupling(x)
        assert y.device == x.device and y.shape == x.shape
