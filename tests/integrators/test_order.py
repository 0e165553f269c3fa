"""Conformance: convergence order, staying on the sphere, and adaptive tolerance, for every
registered method (the parametrisation is over ``METHODS`` itself)."""

from __future__ import annotations

import functools

import pytest
import torch

from integrators import METHODS, solve, step_fixed

from .problems import (
    ADAPTIVE,
    ADAPTIVE_FACTOR,
    NON_REFERENCE,
    NORM_ATOL_F64,
    NORM_STEPS,
    ON_SPHERE,
    ORDER_BAND,
    adaptive_rtol,
    final_state,
    fitted_order,
    kuramoto_problem,
    reference,
    step_ladder,
)

# Dormand–Prince pairs have small leading error constants, so on some problems their fitted
# slope stays above order + 0.3 until the error reaches round-off (torchdiffeq's dopri5 measured
# 5.4–5.7 on seed 0; lawson_dopri5, whose rotated integrand has large higher derivatives,
# 5.33 on seed 2 over t ∈ [0, 2]). Over t ∈ [0, 3] the errors are larger, the finest steps stay
# above round-off, and seed 2 is in the asymptotic regime for every method (all three
# order-5 pairs fit 5.03–5.19).
T_ORDER = 3.0
SEED_ORDER = 2


@functools.lru_cache(maxsize=None)
def _order_problem(n: int):
    field, x0 = kuramoto_problem(n, N=16, seed=SEED_ORDER)
    return field, x0, reference(field, x0, [0.0, T_ORDER])[-1]


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("method", NON_REFERENCE)
def test_convergence_order(method: str, n: int) -> None:
    """Slope of log(error) vs log(h) against the float64 SciPy reference, N = 16, dense random
    coupling, Ω ≠ 0 and a stimulus: within ±0.3 of the declared order."""
    field, x0, ref = _order_problem(n)
    order = METHODS[method].order
    hs = [1.0 / k for k in step_ladder(order)]
    errors = [float((final_state(method, field, x0, T_ORDER, h) - ref).abs().max()) for h in hs]
    slope = fitted_order(hs, errors)
    assert abs(slope - order) <= ORDER_BAND, (f"{method} (n={n}): fitted order {slope:.2f}, declared {order}; "
                                              f"errors {[f'{e:.2e}' for e in errors]} at h={hs}")


def _deviation(x: torch.Tensor) -> torch.Tensor:
    return (x.norm(dim=-1) - 1).abs().amax()


def _max_norm_deviation(method: str, n: int, steps: int) -> float:
    field, x0 = kuramoto_problem(n, N=4, seed=1)
    h = 0.01
    with torch.no_grad():
        if METHODS[method].adaptive:
            solver = METHODS[method]()
            x, cache = x0, solver.init(field, 0.0, x0)
            worst = torch.zeros((), dtype=x0.dtype)
            for k in range(steps):
                x, _, cache = solver.step(field, k * h, h, x, cache)
                worst = torch.maximum(worst, _deviation(x))
            return float(worst)
        _, _, obs = step_fixed(field, x0, method=method, dt=h, steps=steps, observe={"dev": _deviation})
        return float(obs["dev"].max())


@pytest.mark.parametrize("method", ON_SPHERE)
def test_stays_on_sphere(method: str) -> None:
    """Methods that declare ``stays_on_sphere`` keep | |x_i| − 1 | < 1e-12 (float64) at every
    step (10^3 steps here; 10^4 in the slow test). Each step renormalises, so the deviation is
    per-step round-off and does not accumulate."""
    worst = _max_norm_deviation(method, 3, NORM_STEPS)
    assert worst < NORM_ATOL_F64, f"{method}: max | |x| − 1 | = {worst:.2e} over {NORM_STEPS} steps"


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("method", ON_SPHERE)
def test_stays_on_sphere_over_10k_steps(method: str, n: int) -> None:
    worst = _max_norm_deviation(method, n, 10_000)
    assert worst < NORM_ATOL_F64, f"{method}: max | |x| − 1 | = {worst:.2e} over 10^4 steps"


@functools.lru_cache(maxsize=None)
def _tolerance_problem(n: int):
    field, x0 = kuramoto_problem(n, N=16, seed=2)
    t = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    return field, x0, t, reference(field, x0, t)


_FEHLBERG2_XFAIL = pytest.mark.xfail(
    strict=True,
    reason="torchdiffeq's fehlberg2 estimates the error with weights ±1/512 (the difference of Fehlberg's "
           "1st- and 2nd-order solutions) but propagates the 2nd-order one, whose error the estimate "
           "underrates: measured 56–245× the tolerance")


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("method", [pytest.param(m, marks=_FEHLBERG2_XFAIL) if m == "fehlberg2" else m
                                    for m in ADAPTIVE])
def test_adaptive_meets_tolerance(method: str, n: int) -> None:
    """An adaptive solve is within 10× its tolerance of the reference at every output time, and
    its states are as close to the sphere (rtol 1e-6 for order ≥ 4, looser for low orders)."""
    field, x0, t, ref = _tolerance_problem(n)
    rtol = adaptive_rtol(METHODS[method].order)
    atol = rtol / 100
    with torch.no_grad():
        sol = solve(field, x0, t, method, rtol=rtol, atol=atol)
    err = float((sol.xs - ref).abs().max())
    assert err <= ADAPTIVE_FACTOR * (rtol + atol), f"{method} (n={n}): error {err:.2e} at rtol={rtol}"
    assert float(_deviation(sol.xs)) <= ADAPTIVE_FACTOR * (rtol + atol)
    assert sol.stats["steps"] == sol.stats["accepted"] + sol.stats["rejected"]
    assert sol.stats["nfe"] >= sol.stats["steps"]
