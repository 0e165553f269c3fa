"""Calibration metrics, ensembled predictions and the adversarial attacks of the robustness study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from studies.robustness.attacks import (
    ATTACKS,
    autoattack,
    fgsm,
    pgd_linf,
    random_sign_noise,
    robust_accuracy,
)
from studies.robustness.metrics import (
    accuracy,
    ensemble_predict,
    expected_calibration_error,
    plot_reliability_diagram,
    reliability_diagram,
    to_probabilities,
)

# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------


def _calibrated_toy() -> tuple[np.ndarray, np.ndarray]:
    """Groups of identical predictions whose accuracy equals their confidence exactly.

    20 x [0.75, 0.25] with 15 labels 0 (right) and 5 labels 1 (wrong)   -> acc 0.75 = conf
    10 x [0.1, 0.9]   with 9 labels 1 and 1 label 0                      -> acc 0.9  = conf
    4  x [0.5, 0.5]   (argmax 0) with 2 labels 0 and 2 labels 1          -> acc 0.5  = conf
    Because bin accuracy and bin confidence are both count-weighted means over the groups in the
    bin, they agree for every binning, so the ECE is 0 for any ``n_bins``.
    """
    probs = np.array([[0.75, 0.25]] * 20 + [[0.1, 0.9]] * 10 + [[0.5, 0.5]] * 4)
    labels = np.array([0] * 15 + [1] * 5 + [1] * 9 + [0] + [0, 0, 1, 1])
    return probs, labels


@pytest.mark.parametrize("n_bins", [1, 2, 5, 15, 100])
def test_ece_zero_for_perfectly_calibrated_predictor(n_bins: int) -> None:
    probs, labels = _calibrated_toy()
    assert expected_calibration_error(probs, labels, n_bins=n_bins) == pytest.approx(0.0, abs=1e-12)
    # Same predictor given as logits (log-probabilities).
    assert expected_calibration_error(np.log(probs), labels, n_bins=n_bins, kind="logits") == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computed() -> None:
    probs = np.array([[0.9, 0.1],    # conf 0.90, label 0: right
                      [0.8, 0.2],    # conf 0.80, label 1: wrong
                      [0.3, 0.7],    # conf 0.70, label 1: right
                      [0.6, 0.4],    # conf 0.60, label 0: right
                      [0.45, 0.55]])  # conf 0.55, label 0: wrong
    labels = np.array([0, 1, 1, 0, 0])
    # 4 bins (0, .25], (.25, .5], (.5, .75], (.75, 1]:
    #   (.5, .75]: confs .70 .60 .55 -> mean conf 1.85/3 = 0.616667, acc 2/3 = 0.666667, gap 0.05
    #   (.75, 1]:  confs .90 .80     -> mean conf 0.85,             acc 1/2,            gap 0.35
    #   ECE = 3/5 * 0.05 + 2/5 * 0.35 = 0.03 + 0.14 = 0.17
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.17, abs=1e-12)
    d = reliability_diagram(probs, labels, n_bins=4)
    np.testing.assert_array_equal(d.count, [0, 0, 3, 2])
    np.testing.assert_allclose(d.accuracy[2:], [2 / 3, 0.5])
    np.testing.assert_allclose(d.confidence[2:], [1.85 / 3, 0.85])
    assert np.isnan(d.accuracy[:2]).all() and np.isnan(d.confidence[:2]).all()
    assert d.overall_accuracy == pytest.approx(0.6) and d.mean_confidence == pytest.approx(0.71)
    # One bin: |acc - conf| overall = |0.6 - 0.71| = 0.11.
    assert expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(0.11)


def test_ece_bin_edges_and_extremes() -> None:
    # conf exactly 0.75 belongs to (0.5, 0.75], not (0.75, 1].
    d = reliability_diagram(np.array([[0.75, 0.25]]), np.array([0]), n_bins=4)
    np.testing.assert_array_equal(d.count, [0, 0, 1, 0])
    # Fully confident and always wrong: ECE 1; always right: 0.
    probs = np.array([[1.0, 0.0, 0.0]] * 5)
    assert expected_calibration_error(probs, np.ones(5, int)) == pytest.approx(1.0)
    assert expected_calibration_error(probs, np.zeros(5, int)) == pytest.approx(0.0)


def test_ece_random_predictions_lie_in_unit_interval() -> None:
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(300, 10)) * 3)
    labels = torch.from_numpy(rng.integers(0, 10, 300))
    ece = expected_calibration_error(logits, labels)
    assert 0.0 <= ece <= 1.0
    p = to_probabilities(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert expected_calibration_error(p, labels.numpy()) == pytest.approx(ece)


def test_accuracy_and_validation() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="labels"):
        accuracy(logits, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="labels"):
        accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="labels"):
        accuracy(logits, torch.tensor([0.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="logits"):
        accuracy(torch.ones(4), torch.tensor([0, 1, 1, 1]))
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(logits, torch.tensor([0, 1, 1, 1]), n_bins=0)
    with pytest.raises(ValueError, match="kind='probs'"):
        expected_calibration_error(logits, torch.tensor([0, 1, 1, 1]), kind="probs")
    with pytest.raises(ValueError, match="NaN"):
        expected_calibration_error(np.array([[np.nan, 1.0]]), np.array([0]))


def test_plot_reliability_diagram_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    d = reliability_diagram(rng.normal(size=(200, 10)) * 2, rng.integers(0, 10, 200), n_bins=10)
    out = plot_reliability_diagram(d, tmp_path / "sub" / "rel.png", title="toy")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["rel.png"]  # no temporary left behind
    with pytest.raises(TypeError, match="diagram"):
        plot_reliability_diagram("nope", tmp_path / "x.png")  # type: ignore[arg-type]


class _Noisy(nn.Module):
    """A stochastic classifier: fixed logits plus fresh Gaussian noise on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.lin(x.flatten(1))
        return z + torch.randn_like(z)


def test_ensemble_predict() -> None:
    torch.manual_seed(0)
    det = nn.Linear(4, 3)
    x = torch.rand(6, 4)
    torch.testing.assert_close(ensemble_predict(det, x, k=4), torch.softmax(det(x), dim=1).detach())
    noisy = _Noisy().train()
    p1 = ensemble_predict(noisy, x, k=1)
    p50 = ensemble_predict(noisy, x, k=50, batch_size=4)
    torch.testing.assert_close(p50.sum(dim=1), torch.ones(6))
    exact = torch.softmax(noisy.lin(x), dim=1).detach()
    assert (p50 - exact).abs().mean() < (p1 - exact).abs().mean()  # averaging reduces the noise
    assert noisy.training  # mode restored
    with pytest.raises(ValueError, match="k:"):
        ensemble_predict(det, x, k=0)


# --------------------------------------------------------------------------------------------
# attacks
# --------------------------------------------------------------------------------------------


class _LinearImageModel(nn.Module):
    """Linear classifier on [0, 1] images that normalises its input internally."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(((x - 0.5) / 0.25).flatten(1))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Four linearly separable classes of 2x4x4 "images": 0.5 + 0.05 * (a class's random sign pattern)."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.randint(0, 2, (4, 2, 4, 4), generator=g).float() * 2 - 1
    y = torch.arange(250) % 4
    x = 0.5 + 0.05 * patterns[y] + 0.02 * torch.randn(250, 2, 4, 4, generator=g)
    x[:10] = x[:10].round()  # a few saturated images to exercise clamping at 0 and 1
    x = x.clamp(0, 1)
    torch.manual_seed(0)
    model = _LinearImageModel(32, 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(x[10:]), y[10:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x[10:], y[10:]


def _assert_in_ball(adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_clean_model_is_accurate(trained) -> None:
    model, x, y = trained
    assert robust_accuracy(model, (x, y), "none") == 1.0


@pytest.mark.parametrize("eps", [2 / 255, 8 / 255, 0.1])
def test_pgd_and_fgsm_stay_in_ball_and_range(trained, eps: float) -> None:
    model, x, y = trained
    x = torch.cat([x, torch.zeros(2, 2, 4, 4), torch.ones(2, 2, 4, 4)])  # images on the range boundary
    y = torch.cat([y, torch.tensor([0, 1, 2, 3])])
    _assert_in_ball(pgd_linf(model, x, y, eps=eps), x, eps)
    _assert_in_ball(pgd_linf(model, x, y, eps=eps, steps=5, random_start=True, seed=1), x, eps)
    _assert_in_ball(pgd_linf(model, x, y, eps=eps, steps=3, eot=2, random_start=True), x, eps)
    _assert_in_ball(fgsm(model, x, y, eps=eps), x, eps)
    _assert_in_ball(random_sign_noise(model, x, y, eps=eps, generator=3), x, eps)


def test_eps_zero_is_identity(trained) -> None:
    model, x, y = trained
    for attack in (fgsm, pgd_linf, random_sign_noise, autoattack):
        assert torch.equal(attack(model, x, y, eps=0.0), x)
    clean = robust_accuracy(model, (x, y), "none")
    assert robust_accuracy(model, (x, y), "pgd", eps=0.0) == clean
    assert robust_accuracy(model, (x, y), "fgsm", eps=0.0) == clean


def test_pgd_lowers_accuracy_of_trained_linear_model(trained) -> None:
    model, x, y = trained
    clean = robust_accuracy(model, (x, y), "none")
    eps = 0.06
    fgsm_acc = robust_accuracy(model, (x, y), "fgsm", eps=eps, batch_size=64)
    pgd_acc = robust_accuracy(model, (x, y), "pgd", eps=eps, batch_size=64)
    assert clean == 1.0
    assert pgd_acc < clean - 0.5
    assert pgd_acc <= fgsm_acc + 1e-12  # 20 projected steps are at least as strong as one
    # Random sign noise of the same size hurts much less than the attack.
    assert robust_accuracy(model, (x, y), "random_sign", eps=eps) > pgd_acc + 0.3


def test_autoattack_runs_and_keeps_global_rng(trained) -> None:
    model, x, y = trained
    torch.manual_seed(123)
    state = torch.get_rng_state()
    adv = autoattack(model, x[:40], y[:40], eps=0.06, version="standard")
    assert torch.equal(torch.get_rng_state(), state)
    _assert_in_ball(adv, x[:40], 0.06)
    assert (model(adv).argmax(1) == y[:40]).float().mean() < 0.5


def test_attack_determinism_with_seed(trained) -> None:
    model, x, y = trained
    a = pgd_linf(model, x, y, eps=0.03, steps=3, random_start=True, seed=7)
    b = pgd_linf(model, x, y, eps=0.03, steps=3, random_start=True, seed=7)
    assert torch.equal(a, b)
    assert torch.equal(random_sign_noise(model, x, y, generator=5), random_sign_noise(model, x, y, generator=5))


def test_robust_accuracy_with_loader_and_stochastic_model(trained) -> None:
    model, x, y = trained
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=50)
    assert robust_accuracy(model, loader, "none") == robust_accuracy(model, (x, y), "none")
    noisy = _Noisy()
    xs, ys = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
    acc = robust_accuracy(noisy, (xs, ys), "pgd", eps=0.02, steps=2, eot=3, n_eval=4)
    assert 0.0 <= acc <= 1.0


def test_attack_argument_validation(trained) -> None:
    model, x, y = trained
    with pytest.raises(ValueError, match="eps"):
        pgd_linf(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="steps"):
        pgd_linf(model, x, y, steps=0)
    with pytest.raises(ValueError, match="eot"):
        pgd_linf(model, x, y, eot=0)
    with pytest.raises(ValueError, match=r"x: values must lie in \[0, 1\]"):
        fgsm(model, x * 4 - 2, y)
    with pytest.raises(ValueError, match="y: expected shape"):
        fgsm(model, x, y[:3])
    with pytest.raises(TypeError, match="model"):
        fgsm(lambda t: t, x, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version"):
        autoattack(model, x, y, version="fast")
    with pytest.raises(ValueError, match="n_classes"):
        autoattack(model, x, y, n_classes=3)
    with pytest.raises(ValueError, match="attack: unknown attack 'cw'; valid: none, random_sign, fgsm, pgd, autoattack"):
        robust_accuracy(model, (x, y), "cw")
    assert set(ATTACKS) == {"none", "random_sign", "fgsm", "pgd", "autoattack"}
