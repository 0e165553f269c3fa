"""The five workloads of issue 14 (sizes and data), the float64 DOP853 reference and the error metrics.

Every workload is the classic Kuramoto model in phase form,

    dθ_i/dt = ω_i + Σ_j J_ij sin(θ_j − θ_i),

with ``J_ij = K/N`` (mean field, W1, W2, W3, W5) or a dense ``J`` (W4). The data come from NumPy's
``default_rng(seed)`` so that the problem does not depend on either side's samplers: Lorentzian ω of
half-width 0.5 (inverse CDF of uniform draws) and uniform θ0 in [0, 2π). W2, W3 and W4 use the
deterministic Lorentzian quantiles ``ω_j = 0.5 tan(π (j/(N+1) − 1/2))`` as ``akorn sync`` does by
default (the seeds of the W2 sweep differ in their initial phases only and share ω; max |ω| is
≈ 0.16 N, against 529 in W1's N = 500 sample and 838 in W5's N = 2000 sample).

The reference integrates the same data in float64 with SciPy's DOP853 (``rtol = atol = 1e-12``;
1e-10 for W3, see :data:`REF_TOLS`) on the phase form, evaluating outputs with DOP853's dense output exactly as
``solve_ivp(t_eval=...)`` does, but keeping only the observable (r(t), or the phases at T), so that
N = 10^6 does not hold a trajectory. Mean-field right-hand sides use ``r e^{iψ}``: O(N) per
evaluation, never a pairwise ``sin``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studies.cache import atomic_path

__all__ = ["WORKLOADS", "Workload", "make", "order_parameter", "phase_error", "reference_dense", "reference_label",
           "reference_meanfield", "reference_meanfield_exponential", "solve_reference"]

WORKLOADS = ("W1", "W2", "W3", "W4", "W5")
REF_TOL = 1e-12
# W3's reference is looser: DOP853's steps grow with max|ω| ≈ 0.16 N (806 steps at N = 10^4,
# 4344 at 10^5 at 1e-12: ~24k at 10^6, about 5 CPU-hours here). At 1e-10 the error of r(t)
# measured against 1e-12 was 2.4e-10 at N = 3·10^4, far below the float32 runs' errors.
REF_TOLS = {"W3": 1e-10}
# Above this N, W3's reference is the exponential one (reference_meanfield_exponential): DOP853 did
# not finish in 20 minutes at N = 10^6 even at rtol 1e-8.
W3_DOP853_MAX_N = 100_000
# Its substeps per W3 step (h = 0.01 / 16; about 3 minutes at N = 10^6 here): measured at N = 3·10^4
# against DOP853 at 1e-12, the error of r(t) is 7.7e-8, 5.0e-10, 2.4e-11 and 2.0e-12 for 8, 16, 32
# and 64 substeps.
W3_SUBSTEPS = 16

# Sizes: "full" is the definition, "quick" a small version for tests and CI.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        # 1000 output times on [0, 10] (PyPI kuramoto's own grid linspace(0, T, int(T/dt)) for dt = 0.01),
        # 4 RK4-type steps per output interval.
        "W1": {"N": 500, "T": 10.0, "outputs": 1000, "steps_per_output": 4, "K": 2.0},
        "W2": {"N": 2000, "K_max": 4.0, "num_K": 21, "seeds": 3, "T": 50.0, "dt": 0.05, "outputs": 101},
        "W3": {"N": 10**6, "steps": 100, "dt": 0.01, "K": 2.0},
        "W4": {"N": 1000, "T": 10.0, "rtol": 1e-8, "atol": 1e-8},
        "W5": {"N": 2000, "steps": 200, "dt": 0.01, "K": 2.0},
    },
    "quick": {
        "W1": {"N": 64, "T": 2.0, "outputs": 101, "steps_per_output": 4, "K": 2.0},
        "W2": {"N": 64, "K_max": 4.0, "num_K": 3, "seeds": 2, "T": 5.0, "dt": 0.05, "outputs": 11},
        "W3": {"N": 4096, "steps": 20, "dt": 0.01, "K": 2.0},
        "W4": {"N": 48, "T": 2.0, "rtol": 1e-8, "atol": 1e-8},
        "W5": {"N": 64, "steps": 40, "dt": 0.01, "K": 2.0},
    },
}

TITLES = {
    "W1": "classic model N={N}, one trajectory, t ∈ [0, {T:g}], {outputs} outputs of r(t), K={K:g}, "
          "{steps_per_output} RK4-type steps per output, float64",
    "W2": "sweep N={N}, {num_K} K ∈ [0, {K_max:g}] × {seeds} seeds, t ∈ [0, {T:g}], dt={dt:g}, "
          "r(t) at {outputs} times, float64",
    "W3": "mean field N={N:.0e}, float32, {steps} steps of dt={dt:g}, r after every step",
    "W4": "adaptive, dense N={N}, J = 2(U + Uᵀ)/N, t ∈ [0, {T:g}], peers at rtol = atol = {rtol:g}, float64",
    "W5": "dr(T)/dK through {steps} RK4-type steps of dt={dt:g}, N={N}, K={K:g}, float64",
}

METRICS = {
    "W1": "max_t |r(t) − r_ref(t)|",
    "W2": "max over K, seeds, t of |r − r_ref|",
    "W3": "max_t |r(t) − r_ref(t)| (reference on the float32 data in float64)",
    "W4": "max_i |θ_i(T) − θ_ref,i(T)| modulo 2π (rad)",
    "W5": "|dr/dK − ref| (ref: Richardson central difference of DOP853 r(T))",
}


@dataclass
class Workload:
    """One workload: its name, sizes and data (NumPy arrays, float64 unless the workload is float32)."""

    name: str
    size: str
    params: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.name].format(**self.params)

    @property
    def metric(self) -> str:
        return METRICS[self.name]


def lorentzian(rng: np.random.Generator, n: int, width: float = 0.5) -> np.ndarray:
    """Lorentzian (Cauchy) draws of half-width ``width`` by the inverse CDF of uniform draws."""
    return width * np.tan(np.pi * (rng.random(n) - 0.5))


def lorentzian_quantiles(n: int, width: float = 0.5) -> np.ndarray:
    """The deterministic quantiles ``width · tan(π (j/(n+1) − 1/2))``, j = 1 … n (sorted)."""
    return width * np.tan(np.pi * (np.arange(1, n + 1) / (n + 1) - 0.5))


def _oscillators(N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    omega = lorentzian(rng, N)
    theta0 = 2 * np.pi * rng.random(N)
    return omega, theta0


def make(name: str, size: str = "full", seed: int = 0) -> Workload:
    """The workload ``name`` (``"W1"`` … ``"W5"``) at ``size`` (``"full"`` or ``"quick"``)."""
    if name not in WORKLOADS:
        raise ValueError(f"name: expected one of {WORKLOADS}, got {name!r}")
    if size not in SIZES:
        raise ValueError(f"size: expected one of {tuple(SIZES)}, got {size!r}")
    p = dict(SIZES[size][name])
    w = Workload(name, size, p)
    if name == "W1":
        w.data["omega"], w.data["theta0"] = _oscillators(p["N"], seed)
        w.data["t"] = np.linspace(0.0, p["T"], p["outputs"])
        w.data["K"] = p["K"]
    elif name == "W2":
        w.data["omega"] = lorentzian_quantiles(p["N"])                # [N], shared by the seeds
        w.data["theta0"] = np.stack([2 * np.pi * np.random.default_rng(seed + j).random(p["N"])
                                     for j in range(p["seeds"])])    # [seeds, N]
        w.data["K"] = np.linspace(0.0, p["K_max"], p["num_K"])       # [num_K]
        w.data["t"] = np.linspace(0.0, p["T"], p["outputs"])
    elif name == "W3":
        theta0 = 2 * np.pi * np.random.default_rng(seed).random(p["N"])
        w.data["omega"] = lorentzian_quantiles(p["N"]).astype(np.float32)
        w.data["theta0"] = theta0.astype(np.float32)
        w.data["t"] = p["dt"] * np.arange(p["steps"] + 1)
        w.data["K"] = p["K"]
    elif name == "W4":
        rng = np.random.default_rng(seed)
        w.data["omega"] = lorentzian_quantiles(p["N"])
        w.data["theta0"] = 2 * np.pi * rng.random(p["N"])
        U = rng.random((p["N"], p["N"]))
        w.data["J"] = 2.0 * (U + U.T) / p["N"]
        w.data["t"] = np.array([0.0, p["T"]])
    else:  # W5
        w.data["omega"], w.data["theta0"] = _oscillators(p["N"], seed)
        w.data["K"] = p["K"]
        w.data["t"] = np.array([0.0, p["steps"] * p["dt"]])
    return w


# --------------------------------------------------------------------------------------------
# metrics


def order_parameter(theta: np.ndarray) -> np.ndarray:
    """``r = |mean_j e^{iθ_j}|`` over the last axis (float64 accumulation)."""
    theta = np.asarray(theta, dtype=np.float64)
    return np.hypot(np.cos(theta).mean(axis=-1), np.sin(theta).mean(axis=-1))


def phase_error(theta: np.ndarray, theta_ref: np.ndarray) -> float:
    """``max_i |θ_i − θ_ref,i|`` with each difference wrapped into (−π, π]."""
    d = np.asarray(theta, dtype=np.float64) - np.asarray(theta_ref, dtype=np.float64)
    return float(np.abs(np.angle(np.exp(1j * d))).max())


# --------------------------------------------------------------------------------------------
# reference


def meanfield_rhs(omega: np.ndarray, K: float) -> Callable[[float, np.ndarray], np.ndarray]:
    """``f(t, θ) = ω + K (S cos θ − C sin θ)`` with ``S, C`` the means of ``sin θ``, ``cos θ``."""
    omega = np.asarray(omega, dtype=np.float64)

    def f(t: float, theta: np.ndarray) -> np.ndarray:
        s, c = np.sin(theta), np.cos(theta)
        return omega + K * (s.mean() * c - c.mean() * s)
    return f


def dense_rhs(omega: np.ndarray, J: np.ndarray) -> Callable[[float, np.ndarray], np.ndarray]:
    """``f(t, θ) = ω + cos θ ⊙ (J sin θ) − sin θ ⊙ (J cos θ)``: two mat-vecs, no pairwise ``sin``."""
    omega, J = np.asarray(omega, dtype=np.float64), np.asarray(J, dtype=np.float64)

    def f(t: float, theta: np.ndarray) -> np.ndarray:
        s, c = np.sin(theta), np.cos(theta)
        return omega + c * (J @ s) - s * (J @ c)
    return f


def solve_reference(fun: Callable[[float, np.ndarray], np.ndarray], y0: np.ndarray, t: np.ndarray,
                    observe: Callable[[np.ndarray], np.ndarray], tol: float = REF_TOL) -> tuple[np.ndarray, dict]:
    """DOP853 in float64 from ``t[0]``; ``observe(y)`` at every ``t`` via the dense output.

    The same stepping and interpolation as ``solve_ivp(fun, (t[0], t[-1]), y0, "DOP853",
    t_eval=t, rtol=tol, atol=tol)``, but only the observations are kept.

    Returns:
        ``[len(t), ...]`` observations and ``{"nfev", "steps"}``.
    """
    from scipy.integrate import DOP853

    t = np.asarray(t, dtype=np.float64)
    y0 = np.asarray(y0, dtype=np.float64)
    out = [observe(y0)]
    if len(t) > 1:
        solver = DOP853(fun, float(t[0]), y0, float(t[-1]), rtol=tol, atol=tol)
        k, steps = 1, 0
        while k < len(t):
            message = solver.step()
            steps += 1
            if solver.status == "failed":
                raise RuntimeError(f"reference DOP853 failed at t = {solver.t:g}: {message}")
            if k < len(t) and t[k] <= solver.t:
                dense = solver.dense_output()
                while k < len(t) and t[k] <= solver.t:
                    out.append(observe(solver.y if t[k] == solver.t else dense(t[k])))
                    k += 1
        stats = {"nfev": solver.nfev, "steps": steps}
    else:
        stats = {"nfev": 0, "steps": 0}
    return np.stack(out), stats


def reference_meanfield(omega: np.ndarray, theta0: np.ndarray, K: float, t: np.ndarray, tol: float = REF_TOL,
                        observe: Callable[[np.ndarray], Any] | None = None) -> tuple[np.ndarray, dict]:
    """Mean-field reference: r(t) (or ``observe(θ)``) at ``t`` for one trajectory."""
    return solve_reference(meanfield_rhs(omega, float(K)), theta0, t, observe or order_parameter, tol)


def reference_dense(omega: np.ndarray, theta0: np.ndarray, J: np.ndarray, t: np.ndarray, tol: float = REF_TOL,
                    observe: Callable[[np.ndarray], Any] | None = None) -> tuple[np.ndarray, dict]:
    """Dense-coupling reference: θ(t) (or ``observe(θ)``) at ``t``."""
    return solve_reference(dense_rhs(omega, J), theta0, t, observe or (lambda y: y.copy()), tol)


def reference_meanfield_exponential(omega: np.ndarray, theta0: np.ndarray, K: float, t: np.ndarray,
                                    substeps: int) -> tuple[np.ndarray, dict]:
    """r(t) at the uniform times ``t`` by an exponential (integrating-factor) RK4 in complex128,
    ``substeps`` steps per interval: for populations too large for DOP853 (W3).

    With ``z_j = e^{iθ_j}`` and ``Z`` the mean of ``z``, the phase model is
    ``z' = iω z + K (Z − Re(Z z̄) z)``; the rotation ``e^{iωh}`` is applied exactly and classical RK4
    steps the coupling in the rotating frame (then ``|z| = 1`` is restored). Its error: O((Kh)^4)
    for the oscillators with ``|ω| h ≲ 1`` and a bounded O(K h) for the faster ones, a fraction
    ``≈ 2γ/(π |ω|_min)`` of the population whose errors are incoherent. At W3's ``h = 0.01/16``
    those are the ``|ω| > 1600``, 2·10^-4 of it. Measured against DOP853 (1e-12) at N = 3·10^4:
    5.0e-10 in r(t) (:data:`W3_SUBSTEPS`); ``--ref-check W3`` doubles the substeps. The toolkit's
    ``lawson_rk4`` is this method on unit vectors in torch; the reference shares no code with it
    and runs 16× smaller steps in float64.
    """
    t = np.asarray(t, dtype=np.float64)
    dt = np.diff(t)
    if len(dt) and not np.allclose(dt, dt[0], rtol=1e-12, atol=0):
        raise ValueError("t: the exponential reference needs uniform output times")
    z = np.exp(1j * np.asarray(theta0, dtype=np.float64))
    out = [abs(z.mean())]
    if len(t) < 2:
        return np.asarray(out), {"nfev": 0, "steps": 0}
    h = float(dt[0]) / substeps
    rot = np.exp(0.5j * h * np.asarray(omega, dtype=np.float64))  # e^{iωh/2}

    def g(v: np.ndarray) -> np.ndarray:
        Z = v.mean()
        return K * (Z - (Z * v.conj()).real * v)

    steps = 0
    for _ in range(len(dt)):
        for _ in range(substeps):
            k1 = g(z)
            zh, rk1 = rot * z, rot * k1
            k2 = g(zh + 0.5 * h * rk1)
            k3 = g(zh + 0.5 * h * k2)
            k4 = g(rot * (zh + h * k3))
            z = rot * (zh + h / 6 * rk1 + h / 3 * (k2 + k3)) + h / 6 * k4
            z /= np.abs(z)
            steps += 1
        out.append(abs(z.mean()))
    return np.asarray(out), {"nfev": 4 * steps, "steps": steps}


def _exponential_substeps(w: Workload, tol: float) -> int | None:
    """W3's substeps when its reference is the exponential one, else None."""
    if w.name != "W3" or len(w.data["omega"]) <= W3_DOP853_MAX_N:
        return None
    return W3_SUBSTEPS * (2 if tol < REF_TOLS["W3"] else 1)


def reference_label(w: Workload, tol: float) -> str:
    """What :func:`reference` computes for ``w`` at ``tol``, for the tables."""
    substeps = _exponential_substeps(w, tol)
    if substeps is None:
        return f"DOP853 float64 rtol=atol={tol:g}"
    return f"exponential RK4 complex128, {substeps} substeps per step"


def reference(w: Workload, tol: float = REF_TOL) -> dict[str, Any]:
    """The reference outputs of workload ``w`` (what each run is compared with) and their cost.
    ``tol`` is DOP853's; for W3 above :data:`W3_DOP853_MAX_N` (the exponential reference) a
    ``tol`` below W3's default doubles the substeps instead (``--ref-check``)."""
    d = w.data
    substeps = _exponential_substeps(w, tol)
    if substeps is not None:
        r, stats = reference_meanfield_exponential(d["omega"], d["theta0"], d["K"], d["t"], substeps)
        return {"value": r, **stats}
    if w.name in ("W1", "W3"):
        r, stats = reference_meanfield(d["omega"], d["theta0"], d["K"], d["t"], tol)
        return {"value": r, **stats}
    if w.name == "W2":
        rs, nfev = [], 0
        for theta0 in d["theta0"]:
            for K in d["K"]:
                r, stats = reference_meanfield(d["omega"], theta0, K, d["t"], tol)
                rs.append(r)
                nfev += stats["nfev"]
        return {"value": np.stack(rs).reshape(len(d["theta0"]), len(d["K"]), -1), "nfev": nfev}
    if w.name == "W4":
        th, stats = reference_dense(d["omega"], d["theta0"], d["J"], d["t"], tol)
        return {"value": th[-1], **stats}
    # W5: dr(T)/dK by a Richardson-extrapolated central difference, (4 D(δ) − D(2δ)) / 3,
    # error O(δ⁴) + O(tol/δ) ≈ 1e-9 at δ = 1e-3, tol = 1e-12.
    delta, K, nfev = 1e-3, d["K"], 0
    r_at = {}
    for dk in (-2, -1, 1, 2):
        r, stats = reference_meanfield(d["omega"], d["theta0"], K + dk * delta, d["t"], tol)
        r_at[dk], nfev = float(r[-1]), nfev + stats["nfev"]
    d1 = (r_at[1] - r_at[-1]) / (2 * delta)
    d2 = (r_at[2] - r_at[-2]) / (4 * delta)
    return {"value": np.array((4 * d1 - d2) / 3), "nfev": nfev}


def cached_reference(w: Workload, seed: int, tol: float, cache: Path | None) -> dict[str, Any]:
    """:func:`reference`, stored in ``cache`` (``.npz`` keyed by the data and the tolerance) when given;
    ``"cached": True`` when it was read from there."""
    if cache is None:
        return reference(w, tol)
    h = hashlib.sha256(f"peers-ref-v1|{w.name}|{w.size}|{seed}|{tol!r}|{sorted(w.params.items())}".encode())
    for key in sorted(w.data):
        h.update(np.ascontiguousarray(w.data[key]).tobytes())
    path = cache / f"peers-{w.name}-{w.size}-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {**{k: (f[k] if k == "value" else f[k].item()) for k in f.files}, "cached": True}
    ref = reference(w, tol)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in ref.items()})
    return {**ref, "cached": False}


def error(w: Workload, value: Any, ref: np.ndarray) -> float:
    """The workload's error metric (see :data:`METRICS`) of ``value`` against the reference."""
    if w.name == "W4":
        return phase_error(value, ref)
    v = np.asarray(value, dtype=np.float64)
    if v.shape != ref.shape:
        raise ValueError(f"{w.name}: output of shape {v.shape}, reference {ref.shape}")
    return float(np.abs(v - ref).max()) if v.size else math.nan
