"""Tests of networks.blocks: readout, pre-activation units, normalisations, positional code."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from networks.blocks import (
    FF,
    BNReLUConv2d,
    LayerNormForImage,
    PositionalEmbedding2d,
    ReadOut,
    ResBlock,
    RGBNormalize,
    ScaleAndBias,
    make_norm,
    sinusoidal_embedding_2d,
)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# ---------------------------------------------------------------------------------------------- ReadOut


def test_readout_shape_and_norm_formula() -> None:
    ro = ReadOut(8, 3, group=4, kernel_size=3, stride=2, padding=1)
    with torch.no_grad():
        ro.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(2, 8, 6, 6, generator=_seed())
    y = ro(x)
    assert y.shape == (2, 3, 3, 3)
    proj = ro.conv(x).view(2, 3, 4, 3, 3)  # consecutive groups of 4 channels
    expected = proj.norm(dim=2) + ro.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(y, expected)


def test_readout_output_at_least_bias() -> None:
    torch.manual_seed(1)
    ro = ReadOut(6, 5, group=2, kernel_size=1)
    with torch.no_grad():
        ro.bias.uniform_(-2, 2)
    y = ro(torch.randn(4, 6, 5, 5) * 3)
    assert bool((y >= ro.bias.view(1, -1, 1, 1)).all())


def test_readout_gradients_finite_at_zero_input() -> None:
    ro = ReadOut(4, 2, group=2, kernel_size=3, padding=1)
    with torch.no_grad():
        ro.conv.bias.zero_()  # the projection of a zero input is then exactly zero
    x = torch.zeros(2, 4, 5, 5, requires_grad=True)
    y = ro(x)
    torch.testing.assert_close(y, ro.bias.view(1, -1, 1, 1).expand_as(y).detach())
    y.sum().backward()
    grads = [x.grad] + [p.grad for p in ro.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    torch.testing.assert_close(ro.bias.grad, torch.full((2,), 2.0 * 25))


def test_readout_follows_dtype() -> None:
    ro = ReadOut(4, 2, group=2).double()
    assert ro(torch.randn(1, 4, 3, 3, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("kwargs, arg", [
    (dict(in_channels=0, out_channels=2), "in_channels"),
    (dict(in_channels=4, out_channels=2, group=0), "group"),
    (dict(in_channels=4, out_channels=2, padding=-1), "padding"),
])
def test_readout_rejects_bad_arguments(kwargs: dict, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        ReadOut(**kwargs)


def test_readout_rejects_bad_input() -> None:
    ro = ReadOut(4, 2)
    with pytest.raises(ValueError, match="x"):
        ro(torch.randn(1, 3, 4, 4))
    with pytest.raises(TypeError, match="x"):
        ro(torch.ones(1, 4, 4, 4, dtype=torch.int64))


# ----------------------------------------------------------------------------------- pre-activation units


@pytest.mark.parametrize("norm, kind", [("bn", nn.BatchNorm2d), ("gn", nn.GroupNorm), ("none", nn.Identity)])
def test_make_norm(norm: str, kind: type) -> None:
    m = make_norm(norm, 16)
    assert isinstance(m, kind)
    if norm == "gn":
        assert m.num_groups == 8


def test_make_norm_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="norm"):
        make_norm("ln", 8)


def test_bnreluconv_is_norm_relu_conv() -> None:
    m = BNReLUConv2d(4, 6, kernel_size=3, padding=1, norm="none").eval()
    x = torch.randn(2, 4, 5, 5, generator=_seed())
    torch.testing.assert_close(m(x), m.conv(torch.relu(x)))


def test_ff_and_resblock_shapes() -> None:
    ff = FF(8, 8, hidden=16, kernel_size=3, padding=1, norm="gn")
    x = torch.randn(2, 8, 6, 6, generator=_seed())
    assert ff(x).shape == x.shape
    assert FF(8, 4, kernel_size=3, stride=2, padding=1).unit1.conv.out_channels == 32  # hidden = 4·in
    assert FF(8, 4, kernel_size=3, stride=2, padding=1)(x).shape == (2, 4, 3, 3)
    res = ResBlock(ff)
    torch.testing.assert_close(res(x), x + ff(x))
    with pytest.raises(ValueError, match="fn"):
        ResBlock(FF(8, 4))(x)
    with pytest.raises(TypeError, match="fn"):
        ResBlock(lambda t: t)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- normalisations


def test_rgb_normalize() -> None:
    x = torch.rand(2, 3, 4, 4, generator=_seed())
    torch.testing.assert_close(RGBNormalize(0.5, 0.5)(x), 2 * x - 1)
    m = RGBNormalize((0.1, 0.2, 0.3), (1.0, 2.0, 4.0))
    torch.testing.assert_close(m(x)[:, 2], (x[:, 2] - 0.3) / 4.0)
    with pytest.raises(ValueError, match="std"):
        RGBNormalize(0.5, 0.0)
    with pytest.raises(ValueError, match="x"):
        m(torch.rand(2, 1, 4, 4))


def test_scale_and_bias_init_identity_and_affine() -> None:
    m = ScaleAndBias(3)
    x = torch.randn(2, 3, 4, 4, generator=_seed())
    torch.testing.assert_close(m(x), x)
    with torch.no_grad():
        m.scale.copy_(torch.tensor([1.0, 2.0, 3.0]))
        m.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    torch.testing.assert_close(m(x)[:, 2], 3 * x[:, 2] - 1)
    with pytest.raises(ValueError, match="x"):
        m(torch.randn(2, 4, 1, 1))


def test_layer_norm_for_image_matches_layer_norm_over_channels() -> None:
    m = LayerNormForImage(6)
    with torch.no_grad():
        m.weight.uniform_(0.5, 2.0)
        m.bias.uniform_(-1, 1)
    ref = nn.LayerNorm(6)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(2, 6, 3, 5, generator=_seed()) * 4 + 1
    torch.testing.assert_close(m(x), ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


# ------------------------------------------------------------------------------------- positional code


def test_sinusoidal_embedding_layout_against_formula() -> None:
    d, H, W = 16, 5, 7
    pe = sinusoidal_embedding_2d(d, H, W, dtype=torch.float64)
    assert pe.shape == (d, H, W)
    half = d // 2
    for ch in range(d):
        j = ch % half
        f = 10000.0 ** (-2 * (j // 2) / half)
        fn = math.sin if j % 2 == 0 else math.cos
        for r in range(H):
            for c in range(W):
                pos = c if ch < half else r  # first half: column, second half: row
                assert pe[ch, r, c].item() == pytest.approx(fn(pos * f), abs=1e-12)


def test_sinusoidal_embedding_halves_depend_on_one_axis() -> None:
    pe = sinusoidal_embedding_2d(8, 4, 6)
    assert torch.equal(pe[:4], pe[:4, :1].expand(4, 4, 6))  # columns: constant along rows
    assert torch.equal(pe[4:], pe[4:, :, :1].expand(4, 4, 6))  # rows: constant along columns


def test_sinusoidal_embedding_rejects_bad_dim() -> None:
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_embedding_2d(6, 3, 3)


def test_positional_embedding_is_learnable_and_added() -> None:
    m = PositionalEmbedding2d(8, 3, 4)
    assert isinstance(m.pe, nn.Parameter)
    x = torch.randn(2, 8, 3, 4, generator=_seed())
    torch.testing.assert_close(m(x), x + sinusoidal_embedding_2d(8, 3, 4))
    assert m(torch.zeros(1, 8, 6, 8)).shape == (1, 8, 6, 8)  # other grids: resized
    m(x).sum().backward()
    assert m.pe.grad is not None
    assert "pe" in dict(PositionalEmbedding2d(8, 3, 4, learnable=False).named_buffers())


@CUDA
@pytest.mark.cuda
def test_blocks_on_cuda() -> None:
    ro = ReadOut(4, 2, group=2).cuda()
    pe = PositionalEmbedding2d(4, 3, 3).cuda()
    y = pe(ro(torch.randn(2, 4, 3, 3, device="cuda")).repeat(1, 2, 1, 1))
    assert y.device.type == "cuda"
