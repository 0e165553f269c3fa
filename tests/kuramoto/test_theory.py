import math

import numpy as np
import pytest

from kuramoto import theory


def test_critical_couplings_closed_forms():
    assert theory.critical_coupling("lorentzian", 0.5) == pytest.approx(1.0)
    sigma = 0.7
    g0 = 1 / (sigma * math.sqrt(2 * math.pi))
    assert theory.critical_coupling("gaussian", sigma) == pytest.approx(2 / (math.pi * g0))
    assert theory.critical_coupling("uniform", 0.5) == pytest.approx(2 / math.pi)


def test_lorentzian_closed_form_solves_self_consistency():
    for K in [1.2, 2.0, 3.0, 4.0]:
        r = theory.order_parameter(K, "lorentzian", width=0.5)
        assert r == pytest.approx(math.sqrt(1 - 1 / K))
        # the generic self-consistency integral agrees with the closed form
        assert K * theory._locked_integral(K, r, "lorentzian", 0.5) == pytest.approx(1.0, abs=1e-10)
    assert theory.order_parameter(0.9, "lorentzian", 0.5) == 0.0


def test_gaussian_continuous_and_uniform_jump():
    Kc = theory.critical_coupling("gaussian", 1.0)
    r = theory.order_parameter(np.array([Kc * 0.99, Kc * 1.0001, Kc * 1.01, 2 * Kc]), "gaussian", 1.0)
    assert r[0] == 0 and r[1] < 0.05 and 0 < r[2] < r[3] < 1
    # near K_c+: r ≈ sqrt(16 (K-Kc) / (π Kc^4 |g''(0)|)) with g''(0) = -g(0)/σ²
    g0 = 1 / math.sqrt(2 * math.pi)
    K = Kc * 1.0001
    approx = math.sqrt(16 * (K - Kc) / (math.pi * Kc ** 4 * g0))
    assert r[1] == pytest.approx(approx, rel=0.02)
    Ku = theory.critical_coupling("uniform", 0.5)
    ru = theory.order_parameter([Ku * 0.999, Ku * 1.00001], "uniform", 0.5)
    assert ru[0] == 0 and ru[1] == pytest.approx(math.pi / 4, abs=1e-3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="dist"):
        theory.critical_coupling("cauchy", 1.0)
    with pytest.raises(ValueError, match="width"):
        theory.order_parameter(1.0, "gaussian", 0.0)
    with pytest.raises(ValueError, match="K"):
        theory.order_parameter(-1.0)
