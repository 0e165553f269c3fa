"""Tests of the task models and baselines (tiny configurations, CPU; CUDA variants skip)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kuramoto.couplings.image import Attention, Conv
from networks.models.baselines import ConvNet, IteratedSelfAttention, ObjectViT, SudokuTransformer
from networks.models.classifier import AKOrNClassifier
from networks.models.objects import ObjectAKOrN
from networks.models.sudoku import SudokuAKOrN, board_digits

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fit(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor], steps: int = 8,
        lr: float = 1e-2) -> tuple[float, float]:
    """Loss on a fixed batch before and after ``steps`` Adam steps (the loss is deterministic)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn(model))
    return first, last


def assert_grads_finite(model: nn.Module) -> None:
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    bad = [name for name, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"


def couplings(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (Attention, Conv))]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ Sudoku data


def solved_boards(count: int, box: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Valid solved boards ``[count, S, S]`` (digits 1…S): a pattern solution with random digit relabelling."""
    R, C = box
    S = R * C
    r = torch.arange(S).view(S, 1)
    c = torch.arange(S).view(1, S)
    base = (C * (r % R) + r // R + c) % S  # rows, columns and boxes each hold every digit once
    g = gen(seed)
    perms = torch.stack([torch.randperm(S, generator=g) for _ in range(count)])
    return torch.gather(perms, 1, base.flatten().expand(count, -1)).view(count, S, S) + 1


def puzzles(count: int, box: tuple[int, int], blank: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    sol = solved_boards(count, box, seed)
    mask = torch.rand(sol.shape, generator=gen(seed + 1)) < blank
    return sol.masked_fill(mask, 0), sol


def test_solved_boards_are_valid() -> None:
    for box in [(3, 3), (2, 3), (2, 2)]:
        b = solved_boards(3, box)
        S = box[0] * box[1]
        digits = torch.arange(1, S + 1)
        assert torch.equal(b.sort(dim=2).values, digits.expand(3, S, S))
        assert torch.equal(b.sort(dim=1).values, digits.view(S, 1).expand(3, S, S))


# ---------------------------------------------------------------------------------------------- classifier


def test_classifier_forward_backward_shape() -> None:
    torch.manual_seed(0)
    model = AKOrNClassifier.tiny()
    logits = model(torch.rand(3, 3, 16, 16, generator=gen()), generator=gen(1))
    assert logits.shape == (3, 10)
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    assert_grads_finite(model)


def test_classifier_default_config_matches_paper_layout() -> None:
    model = AKOrNClassifier()
    assert model.widths == [64, 128, 256]
    assert [J.kernel_size for J in couplings(model)] == [9, 7, 5]
    assert model.n == 2 and model.fc.in_features == 256
    mix = AKOrNClassifier.mix()
    assert [type(J).__name__ for J in couplings(mix)] == ["Conv", "Conv", "Attention"]


def test_classifier_learns_fixed_batch() -> None:
    torch.manual_seed(0)
    model = AKOrNClassifier.tiny()
    x = torch.rand(8, 3, 8, 8, generator=gen())
    y = torch.arange(8) % 4

    def loss(m: nn.Module) -> torch.Tensor:
        return F.cross_entropy(m(x, generator=gen(1)), y)

    first, last = fit(model, loss, steps=6)
    assert last < 0.8 * first


def test_classifier_generator_reproducible_and_other_steps() -> None:
    torch.manual_seed(0)
    model = AKOrNClassifier.tiny().eval()
    x = torch.rand(2, 3, 16, 16, generator=gen())
    with torch.no_grad():
        a, b = model(x, generator=gen(5)), model(x, generator=gen(5))
        c = model(x, generator=gen(6))
        long = model(x, steps=7, generator=gen(5))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert long.shape == a.shape and torch.isfinite(long).all() and not torch.allclose(a, long)


def test_classifier_ensemble_averages_independent_draws() -> None:
    torch.manual_seed(0)
    model = AKOrNClassifier.tiny().eval()  # eval: BatchNorm makes rows independent
    x = torch.rand(2, 3, 16, 16, generator=gen())
    with torch.no_grad():
        ens = model(x, ensemble=3, generator=gen(7))
        # The ensemble draws one [3B, ...] sample; the same seed on 3 stacked copies gives the members.
        members = model(x.repeat(3, 1, 1, 1), generator=gen(7)).view(3, 2, -1)
    torch.testing.assert_close(ens, members.mean(0))
    assert not torch.allclose(members[0], members[1])
    assert AKOrNClassifier.tiny(ensemble=2)(x).shape == (2, 10)


def test_classifier_mix_and_gta_variants_run() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=gen())
    for model in (AKOrNClassifier.mix(width=8, depth=2, steps=2, kernel_sizes=3, heads=2),
                  AKOrNClassifier.tiny(coupling="attn", gta=True, image_size=16)):
        out = model(x, generator=gen())
        out.sum().backward()
        assert out.shape == (2, 10)
        assert_grads_finite(model)


def test_classifier_float64() -> None:
    model = AKOrNClassifier.tiny().double()
    out = model(torch.rand(2, 3, 8, 8, dtype=torch.float64), generator=gen())
    assert out.dtype == torch.float64


@pytest.mark.parametrize("kwargs, arg", [
    (dict(kernel_sizes=(9, 7)), "kernel_sizes"),
    (dict(coupling="dense"), "coupling"),
    (dict(width=7), "width"),
    (dict(coupling="attn", gta=True), "image_size"),
    (dict(ensemble=0), "ensemble"),
    (dict(n=3, width=6), "omega"),
])
def test_classifier_rejects_bad_arguments(kwargs: dict, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        AKOrNClassifier(**kwargs)


def test_classifier_rejects_bad_input() -> None:
    model = AKOrNClassifier.tiny()
    with pytest.raises(ValueError, match="images"):
        model(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="ensemble"):
        model(torch.rand(2, 3, 16, 16), ensemble=0)


# -------------------------------------------------------------------------------------------------- Sudoku


def test_board_digits_formats() -> None:
    board, _ = puzzles(2, (3, 3))
    one_hot = F.one_hot(board, 10)[..., 1:]
    for b in (board, one_hot, one_hot.bool(), one_hot.float()):
        digits, given = board_digits(b, 9)
        assert torch.equal(digits, board) and torch.equal(given, board > 0)
    with pytest.raises(TypeError, match="board"):
        board_digits(board.float(), 9)
    with pytest.raises(ValueError, match="board"):
        board_digits(board.clamp(max=8) + 2, 9)
    with pytest.raises(ValueError, match="board"):
        board_digits(one_hot * 2, 9)
    with pytest.raises(ValueError, match="board"):
        board_digits(board[:, :4], 9)


def test_sudoku_forward_backward_shape_and_energy() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny()
    board, sol = puzzles(3, (3, 3))
    logits, energy = model(board, generator=gen(), return_energy=True)
    assert logits.shape == (3, 9, 9, 9)
    assert energy.shape == (model.steps + 1, 3) and torch.isfinite(energy).all()
    assert torch.equal(energy[0], torch.zeros(3)) and bool((energy[1:] != 0).all())  # the official log layout
    F.cross_entropy(logits.reshape(-1, 9), (sol - 1).flatten()).backward()
    assert_grads_finite(model)
    learnable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("gamma" in name for name in learnable)  # γ is trained in the Sudoku model


def test_sudoku_runs_with_other_steps() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny().eval()
    board, _ = puzzles(2, (3, 3))
    with torch.no_grad():
        logits, energy = model(board, steps=9, generator=gen(), return_energy=True)
    assert logits.shape == (2, 9, 9, 9) and energy.shape == (10, 2)
    assert torch.isfinite(logits).all()


def test_sudoku_given_cells_start_at_embedding() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny()
    board, _ = puzzles(2, (3, 3))
    x0 = model.initial_state(board, generator=gen(3))
    emb = model.embed(board).permute(0, 3, 1, 2)
    expected = F.normalize(emb.reshape(2, 8, 4, 9, 9), dim=2).reshape(2, 32, 9, 9)
    given = (board > 0).unsqueeze(1).expand_as(x0)
    torch.testing.assert_close(x0[given], expected[given])
    assert not torch.allclose(x0[~given], expected[~given])
    norms = x0.reshape(2, 8, 4, 9, 9).norm(dim=2)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    other = model.initial_state(board, generator=gen(4))
    torch.testing.assert_close(other[given], x0[given])
    assert not torch.allclose(other[~given], x0[~given])


def test_sudoku_state_zero_of_trajectory_is_initial_state() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny()
    board, _ = puzzles(1, (3, 3))
    c, _ = model.stimulus(board)
    x0 = model.initial_state(board, generator=gen(2))
    _, traj = model.layers[0](c, x0, return_trajectory=True)
    torch.testing.assert_close(traj.states[0], x0)


def test_sudoku_accepts_both_formats() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny().eval()
    board, _ = puzzles(2, (3, 3))
    with torch.no_grad():
        a = model(board, generator=gen(1))
        b = model(F.one_hot(board, 10)[..., 1:].float(), generator=gen(1))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("box", [(2, 2), (2, 3)])
def test_sudoku_other_box_shapes(box: tuple[int, int]) -> None:
    torch.manual_seed(0)
    S = box[0] * box[1]
    model = SudokuAKOrN.tiny(box)
    board, sol = puzzles(2, box)
    logits = model(board, generator=gen())
    assert logits.shape == (2, S, S, S)
    onehot = F.one_hot(board, S + 1)[..., 1:]
    assert model(onehot, generator=gen()).shape == (2, S, S, S)
    F.cross_entropy(logits.reshape(-1, S), (sol - 1).flatten()).backward()
    assert_grads_finite(model)
    with pytest.raises(ValueError, match="board"):
        model(puzzles(1, (3, 3))[0])


def test_sudoku_learns_fixed_batch() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny((2, 2))
    board, sol = puzzles(8, (2, 2), seed=3)

    def loss(m: nn.Module) -> torch.Tensor:
        return F.cross_entropy(m(board, generator=gen(1)).reshape(-1, 4), (sol - 1).flatten())

    first, last = fit(model, loss, steps=10)
    assert last < 0.8 * first


def test_sudoku_fixed_noise_is_deterministic_and_drawn_per_item() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny(fixed_noise=True).eval()
    board, _ = puzzles(1, (3, 3))
    pair = board.repeat(2, 1, 1)
    with torch.no_grad():
        a, b = model(pair), model(pair)
    torch.testing.assert_close(a, b)  # the same boards give the same answer, call after call
    # as in the official code, item b starts from slice b of one seed-42 draw: a batch of copies differs
    assert not torch.allclose(a[0], a[1])
    assert "noise" not in model.state_dict()


def test_sudoku_conv_coupling_and_depth_two() -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny(coupling="conv", depth=2, omega=None, nl=False)
    board, _ = puzzles(2, (3, 3))
    logits, energy = model(board, generator=gen(), return_energy=True)
    logits.sum().backward()
    assert logits.shape == (2, 9, 9, 9) and energy.shape == (5, 2)
    assert_grads_finite(model)


def test_sudoku_float64() -> None:
    model = SudokuAKOrN.tiny(fixed_noise=True).double()
    board, _ = puzzles(1, (3, 3))
    assert model(board).dtype == torch.float64


@pytest.mark.parametrize("kwargs, arg", [
    (dict(box_shape=(3,)), "box_shape"),
    (dict(width=30), "width"),
    (dict(coupling="dense"), "coupling"),
])
def test_sudoku_rejects_bad_arguments(kwargs: dict, arg: str) -> None:
    cfg = dict(width=32, heads=4)
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=arg):
        SudokuAKOrN(**cfg)


# ------------------------------------------------------------------------------------------------- objects


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    z = F.normalize(torch.cat((z1, z2)), dim=1)
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool), -1e8)
    b = len(z1)
    target = (torch.arange(2 * b) + b) % (2 * b)
    return F.cross_entropy(sim, target)


def test_objects_forward_features_shapes() -> None:
    torch.manual_seed(0)
    model = ObjectAKOrN.tiny()
    x = torch.rand(2, 3, 32, 32, generator=gen())
    z = model(x, generator=gen(1))
    assert z.shape == (2, 32)
    feats, states = model.features(x, generator=gen(1), return_states=True)
    assert feats.shape == (2, 32, 4, 4)
    assert len(states) == 1 and states[0].shape == (4, 2, 32, 4, 4)  # T = 3 in tiny()
    torch.testing.assert_close(model.features(x, generator=gen(1)), feats)
    z.sum().backward()
    assert_grads_finite(model)


def test_objects_defaults_follow_paper() -> None:
    model = ObjectAKOrN()
    assert model.width == 256 and model.n == 4 and model.patch_size == 8 and model.depth == 1
    (J,) = couplings(model)
    assert isinstance(J, Attention) and J.gta and J.grid == (16, 16)
    assert model.pos_c is None  # GTA carries the positions
    assert not any(type(m).__name__ == "RotationPairs" for m in model.modules())  # Ω off
    assert isinstance(model.readouts[0], nn.Module) and model.readouts[0].group == 4
    assert not model.layers[0].legacy_identity_omega  # the official quirk is opt-in
    assert ObjectAKOrN.tiny(legacy_identity_omega=True).layers[0].legacy_identity_omega


def test_objects_learns_fixed_batch() -> None:
    torch.manual_seed(0)
    model = ObjectAKOrN.tiny()
    x = torch.rand(4, 3, 32, 32, generator=gen())
    view2 = x.flip(-1)

    def loss(m: nn.Module) -> torch.Tensor:
        return nt_xent(m(x, generator=gen(1)), m(view2, generator=gen(2)))

    first, last = fit(model, loss, steps=8, lr=3e-3)
    assert last < first


def test_objects_variants_and_other_steps() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen())
    variants = [
        ObjectAKOrN.tiny(coupling="conv", kernel_size=3, gta=False, stimulus_norm="none"),
        ObjectAKOrN.tiny(depth=2, readout_x=True, legacy_identity_omega=True),
        ObjectAKOrN.tiny(omega=0.5, readout=False, pool="avg"),
    ]
    for model in variants:
        feats, states = model.features(x, steps=5, generator=gen(), return_states=True)
        assert feats.shape == (2, 32, 4, 4)
        assert len(states) == model.depth and all(s.shape[0] == 6 for s in states)
        model(x, generator=gen()).sum().backward()
        assert_grads_finite(model)
    assert variants[0].pos_c is not None and variants[0].pos_x is not None
    # Images of another size run as well (positional grids are interpolated).
    assert ObjectAKOrN.tiny().features(torch.rand(1, 3, 48, 48), generator=gen()).shape == (1, 32, 6, 6)


def test_objects_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        ObjectAKOrN(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="legacy_identity_omega"):
        ObjectAKOrN.tiny(omega=1.0, legacy_identity_omega=True)
    with pytest.raises(ValueError, match="images"):
        ObjectAKOrN.tiny()(torch.rand(1, 3, 30, 30))


# ----------------------------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("cls", [IteratedSelfAttention, SudokuTransformer])
def test_sudoku_baselines(cls: type) -> None:
    torch.manual_seed(0)
    model = cls.tiny()
    board, sol = puzzles(4, (3, 3))
    logits = model(board)
    assert logits.shape == (4, 9, 9, 9)
    torch.testing.assert_close(model(F.one_hot(board, 10)[..., 1:]), logits)
    assert model(board, steps=5).shape == (4, 9, 9, 9)
    small = cls.tiny((2, 3))
    assert small(puzzles(2, (2, 3))[0]).shape == (2, 6, 6, 6)

    def loss(m: nn.Module) -> torch.Tensor:
        return F.cross_entropy(m(board).reshape(-1, 9), (sol - 1).flatten())

    first, last = fit(model, loss, steps=8, lr=3e-3)
    assert last < 0.8 * first


def test_sudoku_baseline_defaults() -> None:
    itrsa, tr = IteratedSelfAttention(), SudokuTransformer()
    assert itrsa.net.steps == 16 and len(itrsa.net.body.blocks) == 1
    assert tr.net.steps == 1 and len(tr.net.body.blocks) == 8
    # 8 layers of the same width hold ≈8× the weights of one shared-weight block.
    assert 6 < n_params(tr) / n_params(itrsa) < 8.5


def test_itrsa_iterates_shared_weights() -> None:
    model = IteratedSelfAttention.tiny(steps=1).eval()
    board, _ = puzzles(2, (3, 3))
    with torch.no_grad():
        one, three = model(board), model(board, steps=3)
    assert not torch.allclose(one, three)  # more steps, same weights, different answer


def test_object_vit_and_itrsa() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=gen())
    vit, itrsa = ObjectViT.tiny(steps=1), ObjectViT.itrsa(image_size=32, width=32, heads=4)
    assert vit.steps == 1 and itrsa.steps == 8 and n_params(vit) == n_params(itrsa)
    for model in (vit, itrsa):
        assert model.features(x).shape == (4, 32, 4, 4)
        assert model(x).shape == (4, 32)
    f = vit.features(x)
    torch.testing.assert_close(f.mean(1), torch.zeros_like(f.mean(1)), atol=1e-5, rtol=0)  # a LayerNorm output
    assert ObjectViT.tiny().features(x, steps=4).shape == (4, 32, 4, 4)
    view2 = x.flip(-1)

    def loss(m: nn.Module) -> torch.Tensor:
        return nt_xent(m(x), m(view2))

    first, last = fit(vit, loss, steps=8, lr=3e-3)
    assert last < first


def test_convnet() -> None:
    torch.manual_seed(0)
    model = ConvNet.tiny()
    x = torch.rand(8, 3, 16, 16, generator=gen())
    y = torch.arange(8) % 4
    assert model(x).shape == (8, 10)

    def loss(m: nn.Module) -> torch.Tensor:
        return F.cross_entropy(m(x), y)

    first, last = fit(model, loss, steps=10)
    assert last < 0.8 * first
    assert_grads_finite(model)


def test_convnet_default_size_comparable_to_classifier() -> None:
    ratio = n_params(ConvNet()) / n_params(AKOrNClassifier())
    assert 0.75 < ratio < 1.25


@pytest.mark.parametrize("kwargs, arg", [(dict(width=30, heads=4), "width"), (dict(width=32, heads=3), "heads")])
def test_baselines_reject_bad_arguments(kwargs: dict, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        IteratedSelfAttention(**kwargs)
    with pytest.raises(ValueError, match="patch_size"):
        ObjectViT(image_size=30)


# ------------------------------------------------------------------------------------ default configurations


def test_default_configurations_run() -> None:
    """Every model at its paper configuration runs one step on one input (shapes only)."""
    board = puzzles(1, (3, 3))[0]
    img32, img128 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert AKOrNClassifier.mix().eval()(img32, steps=1, generator=gen()).shape == (1, 10)
        assert SudokuAKOrN()(board, steps=1, generator=gen()).shape == (1, 9, 9, 9)
        assert ObjectAKOrN(depth=2).features(img128, steps=1, generator=gen()).shape == (1, 256, 16, 16)
        assert IteratedSelfAttention()(board, steps=1).shape == (1, 9, 9, 9)
        assert ObjectViT()(img128).shape == (1, 256)
        assert ConvNet().eval()(img32).shape == (1, 10)


# ---------------------------------------------------------------------------------------------------- CUDA


@CUDA
@pytest.mark.cuda
def test_models_on_cuda() -> None:
    dev = torch.device("cuda")
    board, _ = puzzles(2, (3, 3))
    images = torch.rand(2, 3, 32, 32, device=dev)
    outs = [
        AKOrNClassifier.tiny().to(dev)(images, generator=gen()),
        SudokuAKOrN.tiny().to(dev)(board.to(dev), generator=gen()),
        SudokuAKOrN.tiny(fixed_noise=True).to(dev)(board.to(dev)),
        ObjectAKOrN.tiny().to(dev).features(images),
        IteratedSelfAttention.tiny().to(dev)(board.to(dev)),
        ObjectViT.tiny().to(dev)(images),
        ConvNet.tiny().to(dev)(images),
    ]
    assert all(o.device.type == "cuda" and torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize("steps", [1, 6])
def test_sudoku_logits_along_are_the_answers_of_shorter_runs(steps) -> None:
    # entry t of one T-step run is the answer of a t-step run from the same noise
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny((2, 3)).double().eval()
    board, _ = puzzles(2, (2, 3))
    with torch.no_grad():
        logits, energy = model.logits_along(board, steps=steps, generator=gen(5))
        assert logits.shape == (steps + 1, 2, 6, 6, 6) and energy.shape == (steps + 1, 2)
        for t in range(1, steps + 1):
            torch.testing.assert_close(logits[t], model(board, steps=t, generator=gen(5)), rtol=1e-12, atol=1e-12)
        c, _ = model.stimulus(board)
        x0 = model.initial_state(board, generator=gen(5))
        torch.testing.assert_close(logits[0], model.head(model.readouts[0](x0)).permute(0, 2, 3, 1))
        _, traj = model.layers[0](c, x0, steps=steps, return_trajectory=True)
        torch.testing.assert_close(energy, traj.energy)
