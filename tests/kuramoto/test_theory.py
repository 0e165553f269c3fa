import math

import hypothesis.strategies as st
import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given, settings
from scipy import integrate
from scipy.integrate import solve_ivp

from kuramoto import theory

EPS = np.finfo(float).eps
KC_UNIT = {"lorentzian": 2.0, "gaussian": math.sqrt(8 / math.pi), "uniform": 4 / math.pi}


# -- independent references ---------------------------------------------------------------------------

def _one_minus_S(a, dist):
    """``1 − ∫_{|ω|<a} g(ω) sqrt(1 − ω²/a²) dω`` for unit width, in mpmath (self-consistency (1) in the
    ω variable; written as ``t²/a² / (1 + sqrt(1 − t²/a²))`` so that it keeps its digits at huge a)."""
    def lost(t):
        u = (t / a) ** 2
        return u / (1 + mp.sqrt(1 - u))
    if dist == "gaussian":
        top = min(a, mp.mpf(60))
        phi = lambda t: mp.exp(-t * t / 2) / mp.sqrt(2 * mp.pi)  # noqa: E731
        tail = mp.erfc(a / mp.sqrt(2)) if a < 60 else 0  # beyond: below e^-1800
        return 2 * mp.quad(lambda t: phi(t) * lost(t), [0, min(top, 1), top]) + tail
    # uniform, a >= 1 on the branch
    return mp.quad(lost, [0, 1])


def _reference_r(kappa, dist, r0):
    """Root of ``1 − r = (1 − S)(κ r)`` near our value ``r0``, in 30-digit arithmetic."""
    with mp.workdps(30):
        k = mp.mpf(kappa)
        s0 = mp.mpf(1) - mp.mpf(r0)
        f = lambda s: s - _one_minus_S(k * (1 - s), dist)  # noqa: E731
        if s0 == 0 or s0 < mp.mpf(10) ** -12:  # deep in the large-K regime: the fixed point contracts like 1/κ²
            s = mp.mpf(0)
            for _ in range(8):
                s = _one_minus_S(k * (1 - s), dist)
            return 1 - s
        s = mp.findroot(f, (s0, s0 * (1 + mp.mpf(10) ** -6)), solver="secant", tol=mp.mpf(10) ** -50)
        return 1 - s


def _z1_direct(omega, a, D, M=256, U=160):
    """⟨e^{iθ}⟩ of the stationary density of dθ = (ω − a sin θ) dt + sqrt(2D) dW, from the explicit
    periodic solution ρ(θ) ∝ ∫_0^{2π} exp(−(ω u + a(cos(θ+u) − cos θ))/D) du (ω ≥ 0)."""
    th = np.arange(M) * 2 * np.pi / M
    u, wu = np.polynomial.legendre.leggauss(U)
    u, wu = np.pi * (u + 1), np.pi * wu
    expo = -(omega[:, None, None] * u + a * (np.cos(th[None, :, None] + u) - np.cos(th)[None, :, None])) / D
    rho = (np.exp(expo) * wu).sum(-1)
    return (rho * np.exp(1j * th)).sum(-1) / rho.sum(-1)


def _lorentz_average_direct(a, delta, D, P=200):
    """``∫ g(ω) Re z_1(ω) dω`` over the Lorentzian of half-width Δ (ω = Δ tan φ), by quadrature."""
    x, w = np.polynomial.legendre.leggauss(P)
    phi, w = (x + 1) * np.pi / 4, w * np.pi / 4
    return 2 / np.pi * (w * _z1_direct(delta * np.tan(phi), a, D).real).sum()


# -- no noise, no lag -------------------------------------------------------------------------------

def test_critical_couplings_closed_forms():
    assert theory.critical_coupling("lorentzian", 0.5) == pytest.approx(1.0)
    sigma = 0.7
    g0 = 1 / (sigma * math.sqrt(2 * math.pi))
    assert theory.critical_coupling("gaussian", sigma) == pytest.approx(2 / (math.pi * g0))
    assert theory.critical_coupling("uniform", 0.5) == pytest.approx(2 / math.pi)
    assert theory.critical_coupling("gaussian", 0.0) == 0.0
    # extreme widths: no under/overflow of g(0) on the way
    assert theory.critical_coupling("lorentzian", 1e-300) == pytest.approx(2e-300)
    assert theory.critical_coupling("gaussian", 1e300) == pytest.approx(KC_UNIT["gaussian"] * 1e300)


def test_lorentzian_closed_form_and_identical():
    for K in [1.2, 2.0, 3.0, 4.0]:
        assert theory.order_parameter(K, "lorentzian", width=0.5) == pytest.approx(math.sqrt(1 - 1 / K), rel=1e-15)
    assert theory.order_parameter(0.9, "lorentzian", 0.5) == 0.0
    assert theory.order_parameter(1.0, "lorentzian", 0.5) == 0.0  # at K_c
    r = theory.order_parameter([0.0, 1e-300, 1.0], "gaussian", 0.0)
    assert list(r) == [0.0, 1.0, 1.0]


def test_gaussian_bessel_form_solves_self_consistency_in_theta():
    # the original θ form 1 = K ∫ cos²θ g(K r sin θ) dθ, by quadrature where the peak is wide enough
    for K in [1.7, 2.0, 3.0, 6.0]:
        r = theory.order_parameter(K, "gaussian", 1.0)
        val, _ = integrate.quad(lambda t: math.cos(t) ** 2 * math.exp(-0.5 * (K * r * math.sin(t)) ** 2),
                                -math.pi / 2, math.pi / 2, epsabs=1e-14, epsrel=1e-13)
        assert K * val / math.sqrt(2 * math.pi) == pytest.approx(1.0, abs=1e-12)


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


def test_issue_17_large_k_values():
    # the reported failure: 0.428 at K = 1e4, 0.0043 at 1e6, a SciPy error at 1e300 (it tends to 1)
    K = np.array([3e3, 1e4, 1e6, 1e300])
    r = theory.order_parameter(K, "gaussian", 1.0)
    e = 1 / K
    assert np.all(np.abs(r - (1 - e * e / 2 - 7 * e ** 4 / 8)) <= 4 * EPS)
    assert r[3] == 1.0
    assert theory.order_parameter(1e300, "uniform", 1.0) == 1.0
    assert theory.order_parameter(np.finfo(float).max, "lorentzian", 1e300) == pytest.approx(
        math.sqrt(1 - 2e300 / np.finfo(float).max), rel=1e-15)


@pytest.mark.parametrize("dist", ["gaussian", "uniform"])
@settings(max_examples=25, deadline=None)
@given(u=st.floats(-8, 300), width=st.floats(1e-3, 1e3))
def test_branch_solves_self_consistency_for_any_k(dist, u, width):
    """Against an independent 40-digit solution of (1) in the ω variable, K from just above K_c to ~1e300."""
    K = KC_UNIT[dist] * width * (1 + 10.0 ** u)
    r = theory.order_parameter(K, dist, width)
    kappa = K / width
    ref = float(_reference_r(kappa, dist, r))
    # the problem's own condition number next to K_c is ~K_c/(K − K_c) (r ∝ sqrt(K − K_c), or ^(2/3))
    cond = 1 + 10.0 ** -u
    assert abs(r - ref) <= 8 * EPS * cond * max(ref, 1e-300) + 4 * EPS


@pytest.mark.parametrize("dist,coeffs", [("gaussian", (1 / 2, 7 / 8)), ("uniform", (1 / 6, 29 / 360)),
                                         ("lorentzian", None)])
@settings(max_examples=40, deadline=None)
@given(logk=st.floats(3, 300), width=st.floats(1e-3, 1e3))
def test_large_k_asymptotics(dist, coeffs, logk, width):
    K = min(10.0 ** logk * width, 1e307)
    e = width / K  # 1/κ
    r = theory.order_parameter(K, dist, width)
    if coeffs is None:  # 1 − sqrt(1 − 2/κ) = 1/κ + 1/(2κ²) + …
        assert abs((1 - r) - (e + 0.5 * e * e)) <= 4 * EPS + e ** 3
    else:
        a1, a2 = coeffs
        assert abs(r - (1 - a1 * e * e - a2 * e ** 4)) <= 4 * EPS  # r is good to ~2 ulp


@pytest.mark.parametrize("dist", theory.DISTRIBUTIONS)
def test_monotone_in_k_over_the_whole_range(dist):
    kc = theory.critical_coupling(dist, 0.8)
    K = np.concatenate([kc * (1 + np.logspace(-12, 0, 400)), np.logspace(math.log10(2 * kc), 300, 1200)])
    r = theory.order_parameter(K, dist, 0.8)
    assert np.all((r > 0) & (r <= 1))
    assert np.all(np.diff(r) >= -4 * EPS)
    assert r[-1] == 1.0


@settings(max_examples=60, deadline=None)
@given(k1=st.floats(0, 1e300), k2=st.floats(0, 1e300), dist=st.sampled_from(theory.DISTRIBUTIONS))
def test_monotone_pairs(k1, k2, dist):
    lo, hi = sorted((k1, k2))
    r_lo, r_hi = theory.order_parameter([lo, hi], dist, 1.0)
    assert r_lo <= r_hi + 4 * EPS


# -- noise --------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(nu=st.floats(0, 1500), logx=st.floats(-3, 4))
@example(nu=31.817670610802434, logx=0.0)  # a float ν + 1 in the reference once failed this by 67 ulp
def test_bessel_ratio_against_mpmath(nu, logx):
    x = 10.0 ** logx
    with mp.workdps(30):
        # ν + 1 in mpmath: the float sum rounds the order, which moves I_{ν+1}(x) by |ln(x/2) − ψ(ν+2)|
        # times that rounding (1.5e-14 relative at ν = 31.8, x = 1: far more than the tolerance)
        order = mp.mpf(nu)
        ref = mp.besseli(order + 1, x, maxterms=10 ** 6) / mp.besseli(order, x, maxterms=10 ** 6)
    assert abs(theory._bessel_ratio(nu, x) - float(ref)) <= 8 * EPS * float(ref)


def test_bessel_ratio_closed_forms_at_extreme_arguments():
    # ν = 1/2: I_{3/2}/I_{1/2} = coth x − 1/x (the Langevin function)
    for x in [1e-200, 1e-3, 0.7, 30.0, 1e5, 1e300]:
        ref = 1 / math.tanh(x) - 1 / x if x > 1e-3 else x / 3 - x ** 3 / 45
        assert theory._bessel_ratio(0.5, x) == pytest.approx(ref, rel=1e-14)
    # large x: 1 − I_{ν+1}/I_ν ≈ (2ν+1)/(2x)
    assert 1 - theory._bessel_ratio(3.0, 1e12) == pytest.approx(3.5e-12, rel=1e-6)
    # huge order: the Debye leading term x/(ν + sqrt(ν² + x²))
    assert theory._bessel_ratio(1e250, 3e250) == pytest.approx(3 / (1 + math.sqrt(10)), rel=1e-15)


def test_noisy_critical_couplings_against_linear_stability_integral():
    """K_c = 2 / ∫ g(ω) D/(D² + ω²) dω, the integral by quadrature."""
    for dist in theory.DISTRIBUTIONS:
        for width, D in [(1.0, 0.3), (0.4, 2.0), (2.0, 1e-3)]:
            lim = width if dist == "uniform" else np.inf
            val, _ = integrate.quad(lambda w: float(theory.density(w, dist, width)) * D / (D * D + w * w),
                                    -lim, lim, epsabs=0, epsrel=1e-12, limit=500, points=None if lim == np.inf else [0])
            assert theory.critical_coupling(dist, width, noise=D) == pytest.approx(2 / val, rel=1e-9)
    assert theory.critical_coupling("lorentzian", 0.0, noise=0.5) == 1.0          # 2D
    assert theory.critical_coupling("gaussian", 0.0, noise=0.5, n=3) == 1.5        # nD
    assert theory.critical_coupling("uniform", 1e-300, noise=1.0) == pytest.approx(2.0)
    assert theory.critical_coupling("gaussian", 1e-300, noise=1.0) == pytest.approx(2.0)


@settings(max_examples=40, deadline=None)
@given(logs=st.floats(-8, 300), nu=st.one_of(st.just(0.0), st.floats(0, 50)))
def test_noisy_branch_solves_bessel_self_consistency(logs, nu):
    """r = I_{1+ν}(K r/D)/I_ν(K r/D), ν = Δ/D, checked in mpmath where mpmath can evaluate it, plus the
    Amos bounds sqrt(1 − 2(Δ+D)/K) ≤ r ≤ sqrt(1 − (2Δ+D)/K) everywhere."""
    D = 0.7
    delta = nu * D
    kc = theory.critical_coupling("lorentzian", delta, noise=D)
    assert kc == pytest.approx(2 * (delta + D))
    K = kc * (1 + 10.0 ** logs)
    r = theory.order_parameter(K, "lorentzian", delta, noise=D)
    lower = math.sqrt(max(0.0, 1 - 2 * (delta + D) / K))
    upper = math.sqrt(max(0.0, 1 - (2 * delta + D) / K))
    assert lower - 4 * EPS <= r <= upper + 4 * EPS
    x = K * r / D
    if 1e-6 < x < 1e4:
        with mp.workdps(30):
            ref = mp.besseli(nu + 1, x) / mp.besseli(nu, x)
        assert abs(r - float(ref)) <= 16 * EPS * (1 + 10.0 ** -logs)


def test_noisy_lorentzian_against_direct_average_over_frequencies():
    """Equation (2) is the residue of the ω-average: check it against the ω-quadrature of the explicit
    one-oscillator stationary densities (no Bessel functions, no analyticity argument)."""
    for delta, D, K in [(0.5, 0.25, 2.0), (1.0, 0.5, 3.5), (0.3, 0.6, 2.5)]:
        r = theory.order_parameter(K, "lorentzian", delta, noise=D)
        assert r > 0.3
        assert _lorentz_average_direct(K * r, delta, D) == pytest.approx(r, abs=1e-9)


def test_noise_limits():
    # D → 0: the Lorentzian closed form; Δ → 0: identical oscillators; n = 3: Langevin function
    for K in [1.5, 3.0, 10.0]:
        r0 = math.sqrt(1 - 1.0 / K)
        assert theory.order_parameter(K, "lorentzian", 0.5, noise=1e-9) == pytest.approx(r0, abs=1e-8)
        assert theory.order_parameter(K, "lorentzian", 1e-12, noise=0.4) == pytest.approx(
            theory.order_parameter(K, "lorentzian", 0.0, noise=0.4), abs=1e-10)
        r3 = theory.order_parameter(K, "gaussian", 0.0, noise=0.4, n=3)
        x = K * r3 / 0.4
        assert r3 == pytest.approx(1 / math.tanh(x) - 1 / x, rel=1e-13)
    # identical, n = 2: K_c = 2D, and 1 − r ≈ D/(2K) at large K; Lorentzian: 1 − r ≈ (Δ + D/2)/K
    assert theory.order_parameter([0.99, 1.0], "uniform", 0.0, noise=0.5).tolist() == [0.0, 0.0]
    assert 1 - theory.order_parameter(1e9, "uniform", 0.0, noise=0.5) == pytest.approx(0.25e-9, rel=1e-6)
    assert 1 - theory.order_parameter(1e9, "lorentzian", 0.5, noise=0.5) == pytest.approx(0.75e-9, rel=1e-6)
    assert theory.order_parameter(1e300, "lorentzian", 0.5, noise=1e-300) == 1.0


@pytest.mark.parametrize("delta", [0.0, 0.3])
def test_noisy_monotone(delta):
    D = 0.2
    kc = theory.critical_coupling("lorentzian", delta, noise=D)
    K = np.concatenate([kc * (1 + np.logspace(-10, 0, 100)), np.logspace(math.log10(2 * kc), 300, 300)])
    r = theory.order_parameter(K, "lorentzian", delta, noise=D)
    assert np.all(r > 0) and np.all(np.diff(r) >= -8 * EPS) and r[-1] == 1.0


@pytest.mark.parametrize("n", [2, 3])
def test_identical_noisy_oscillators_simulated(n):
    """Euler–Maruyama on the sphere (projected step + normalisation) for N = 4000 oscillators: the
    time-averaged r agrees with the von Mises–Fisher self-consistency."""
    rng = np.random.default_rng(1)
    N, D, K, dt = 4000, 0.5, 2.5 * n * 0.5, 0.01
    x = rng.normal(size=(N, n))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rs = []
    for step in range(3000):
        m = x.mean(0)
        drift = K * (m - (x @ m)[:, None] * x)
        xi = rng.normal(size=(N, n)) * math.sqrt(2 * D * dt)
        xi -= (xi * x).sum(1, keepdims=True) * x
        x = x + drift * dt + xi
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        if step >= 1000:
            rs.append(np.linalg.norm(x.mean(0)))
    r = theory.order_parameter(K, "lorentzian", 0.0, noise=D, n=n)
    assert np.mean(rs) == pytest.approx(r, abs=0.015)


# -- phase lag ----------------------------------------------------------------------------------------

def test_lag_closed_forms():
    delta, alpha = 0.5, 0.4
    assert theory.critical_coupling("lorentzian", delta, lag=alpha) == pytest.approx(2 * delta / math.cos(alpha))
    assert theory.critical_coupling("lorentzian", delta, noise=0.2, lag=alpha) == pytest.approx(
        2 * (delta + 0.2) / math.cos(alpha))
    K = np.array([1.0, 3.0, 10.0])
    r = theory.order_parameter(K, "lorentzian", delta, lag=alpha)
    assert r[0] == 0.0
    assert r[1:] == pytest.approx(np.sqrt(1 - 2 * delta / (K[1:] * math.cos(alpha))), rel=1e-15)
    om = theory.locked_frequency(K, "lorentzian", delta, lag=alpha, center=0.3)
    assert math.isnan(om[0])
    assert om[1:] == pytest.approx(0.3 - K[1:] * math.sin(alpha) + delta * math.tan(alpha), rel=1e-13)
    # identical oscillators lock completely and turn at ω0 − K sin α
    assert theory.order_parameter(2.0, "gaussian", 0.0, lag=-0.3) == 1.0
    assert theory.locked_frequency(2.0, "gaussian", 0.0, lag=-0.3, center=1.0) == pytest.approx(1 + 2 * math.sin(0.3))
    # without lag the group turns at the centre; nothing is locked below K_c
    assert theory.locked_frequency(3.0, "gaussian", 1.0, center=0.7) == 0.7
    assert math.isnan(theory.locked_frequency(1.0, "gaussian", 1.0, center=0.7))
    assert theory.locked_frequency(3.0, "lorentzian", 0.5, noise=0.3, center=-0.2) == -0.2


def test_lag_against_ott_antonsen_ode():
    """Integrate dz/dt = (iω0 − Δ)z + (K/2)(e^{−iα} z − e^{iα} z̄ z²) to its rotating state."""
    delta, K, alpha, w0 = 0.5, 3.0, 0.4, 0.3

    def oa(t, y):
        z = y[0] + 1j * y[1]
        dz = (1j * w0 - delta) * z + K / 2 * (np.exp(-1j * alpha) * z - np.exp(1j * alpha) * np.conj(z) * z * z)
        return [dz.real, dz.imag]

    sol = solve_ivp(oa, (0, 200), [0.1, 0.0], rtol=1e-11, atol=1e-12, dense_output=True)
    t = np.linspace(150, 200, 2001)
    z = sol.sol(t)
    z = z[0] + 1j * z[1]
    assert abs(z[-1]) == pytest.approx(theory.order_parameter(K, "lorentzian", delta, lag=alpha), abs=1e-9)
    omega = np.polyfit(t, np.unwrap(np.angle(z)), 1)[0]
    assert omega == pytest.approx(theory.locked_frequency(K, "lorentzian", delta, lag=alpha, center=w0), abs=1e-8)


def test_lag_sign_convention_in_a_finite_population():
    """dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i − α) for N = 2000 quantile-Lorentzian oscillators, in the
    frame rotating with each ω_i (exact), RK4 on the coupling: r and the group's frequency match the
    Ott–Antonsen values (the alternative ω0 − K r² sin α would be off by 0.2 here)."""
    delta, K, alpha, w0, N, dt = 0.5, 3.0, 0.4, 0.3, 2000, 0.02
    u = np.arange(1, N + 1) / (N + 1)
    om = w0 + delta * np.tan(np.pi * (u - 0.5))
    phi = np.random.default_rng(0).uniform(0, 2 * np.pi, N)  # θ = φ + ω t

    def f(phi, t):
        th = phi + om * t
        Z = np.exp(1j * th).mean()
        return K * np.imag(Z * np.exp(-1j * (th + alpha)))

    rs, times, angles = [], [], []
    for i in range(3000):
        t = i * dt
        k1 = f(phi, t)
        k2 = f(phi + dt / 2 * k1, t + dt / 2)
        k3 = f(phi + dt / 2 * k2, t + dt / 2)
        k4 = f(phi + dt * k3, t + dt)
        phi = phi + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i >= 1500:
            Z = np.exp(1j * (phi + om * (t + dt))).mean()
            rs.append(abs(Z))
            times.append(t + dt)
            angles.append(np.angle(Z))
    omega = np.polyfit(times, np.unwrap(angles), 1)[0]
    assert np.mean(rs) == pytest.approx(theory.order_parameter(K, "lorentzian", delta, lag=alpha), abs=0.02)
    assert omega == pytest.approx(theory.locked_frequency(K, "lorentzian", delta, lag=alpha, center=w0), abs=0.03)


# -- input validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("call,arg", [
    (lambda: theory.critical_coupling("cauchy", 1.0), "dist"),
    (lambda: theory.order_parameter(1.0, "gaussian", -1.0), "width"),
    (lambda: theory.order_parameter(1.0, "gaussian", math.nan), "width"),
    (lambda: theory.critical_coupling("uniform", math.inf), "width"),
    (lambda: theory.critical_coupling("uniform", 1.7e308), "width"),   # K_c = 4w/π overflows
    (lambda: theory.critical_coupling("lorentzian", 1.0, noise=1.7e308), "noise"),
    (lambda: theory.order_parameter(-1.0), "K"),
    (lambda: theory.order_parameter([1.0, math.nan]), "K"),
    (lambda: theory.order_parameter(math.inf), "K"),
    (lambda: theory.order_parameter(1.0, noise=-0.1), "noise"),
    (lambda: theory.order_parameter(1.0, noise=math.nan), "noise"),
    (lambda: theory.critical_coupling("lorentzian", 1.0, lag=math.nan), "lag"),
    (lambda: theory.critical_coupling("lorentzian", 1.0, lag=math.pi / 2), "lag"),
    (lambda: theory.order_parameter(3.0, "lorentzian", 1.0, lag=-2.0), "lag"),
    (lambda: theory.order_parameter(3.0, "gaussian", 1.0, lag=0.2), "lag"),
    (lambda: theory.order_parameter(3.0, "lorentzian", 1.0, noise=0.1, lag=0.2), "lag"),
    (lambda: theory.order_parameter(3.0, "uniform", 1.0, noise=0.1), "noise"),
    (lambda: theory.critical_coupling("lorentzian", 1.0, n=3), "n"),
    (lambda: theory.critical_coupling("lorentzian", 0.0, n=1), "n"),
    (lambda: theory.locked_frequency(3.0, center=math.inf), "center"),
    (lambda: theory.density(0.0, "gaussian", 0.0), "width"),
    (lambda: theory.density(math.nan, "gaussian", 1.0), "omega"),
    (lambda: theory.incoherent_order_parameter(0), "N"),
])
def test_bad_values_raise_value_error_naming_the_argument(call, arg):
    with pytest.raises(ValueError, match=f"^{arg}:"):
        call()


@pytest.mark.parametrize("call,arg", [
    (lambda: theory.critical_coupling("gaussian", "1.0"), "width"),
    (lambda: theory.critical_coupling("gaussian", True), "width"),
    (lambda: theory.order_parameter(2.0, noise=None), "noise"),
    (lambda: theory.order_parameter("big"), "K"),
    (lambda: theory.order_parameter(2.0 + 0j), "K"),
])
def test_bad_types_raise_type_error_naming_the_argument(call, arg):
    with pytest.raises(TypeError, match=f"^{arg}:"):
        call()


def test_numpy_scalars_are_accepted():
    assert theory.critical_coupling("lorentzian", np.float32(0.5)) == pytest.approx(1.0)
    assert theory.order_parameter(np.float32(3.0), "lorentzian", np.float64(0.5)) == pytest.approx(math.sqrt(2 / 3))
    assert theory.incoherent_order_parameter(np.int64(100)) == pytest.approx(0.0886, abs=1e-3)
    assert isinstance(theory.order_parameter(3.0), float)
    assert theory.order_parameter(np.full((2, 3), 3.0)).shape == (2, 3)
    # the density keeps its value at extreme widths
    assert float(theory.density(0.0, "lorentzian", 1e-200)) == pytest.approx(1 / (math.pi * 1e-200))
    assert float(theory.density(1e-200, "uniform", 1e-200)) == pytest.approx(0.5e200)
