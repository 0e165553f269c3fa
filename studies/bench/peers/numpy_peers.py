"""Peers without a JIT: a NumPy RK4 loop, SciPy ``solve_ivp`` on a NumPy phase-form field, the PyPI
package ``kuramoto`` 0.4.0 (in a subprocess), and the memory-bandwidth bound of W3."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from studies.bench.pypi_kuramoto import run_pypi_kuramoto
from studies.cache import default_cache_dir

from .harness import Runner, Unavailable
from .problems import Workload, dense_rhs, meanfield_rhs, order_parameter

__all__ = ["bandwidth_bound", "numpy_rk4", "pypi_kuramoto", "scipy_rk45"]


def rk4_meanfield(omega: np.ndarray, theta0: np.ndarray, K: float, h: float, steps: int, every: int) -> np.ndarray:
    """Classical RK4 on ``dθ/dt = ω + K (S cos θ − C sin θ)`` in the dtype of ``theta0``; r every ``every`` steps.

    Vectorised with preallocated buffers and in-place ufuncs (``out=``): per stage one ``sin``,
    one ``cos``, two means and four elementwise passes. r at a step comes free from the sums
    S, C of the next step's first stage.

    Returns:
        ``[steps // every + 1]`` r, float64, from the initial state on.
    """
    dtype = theta0.dtype.type
    th = theta0.copy()
    omega = omega.astype(th.dtype, copy=False)
    k, y, acc, s, c = (np.empty_like(th) for _ in range(5))
    K, h = dtype(K), dtype(h)
    half, sixth, two = dtype(h / 2), dtype(h / 6), dtype(2)

    def f(y: np.ndarray) -> tuple[float, float]:  # k ← f(y); returns (S, C) of y
        np.sin(y, out=s)
        np.cos(y, out=c)
        S, C = s.mean(), c.mean()
        np.multiply(c, K * S, out=k)
        np.multiply(s, K * C, out=s)
        np.subtract(k, s, out=k)
        np.add(k, omega, out=k)
        return S, C

    rs = np.empty(steps // every + 1)
    for n in range(steps):
        S, C = f(th)  # k1
        if n % every == 0:
            rs[n // every] = np.hypot(S, C)
        np.copyto(acc, k)
        np.multiply(k, half, out=y)
        y += th
        f(y)  # k2
        np.multiply(k, half, out=y)
        y += th
        k *= two
        acc += k
        f(y)  # k3
        np.multiply(k, h, out=y)
        y += th
        k *= two
        acc += k
        f(y)  # k4
        acc += k
        acc *= sixth
        th += acc
    if steps % every == 0:
        rs[-1] = order_parameter(th)
    return rs


def numpy_rk4(w: Workload) -> Runner:
    """W1 (float64, 4 steps per output) and W3 (float32, r after every step): a NumPy RK4 loop."""
    d = w.data
    if w.name == "W1":
        k = w.params["steps_per_output"]
        steps, h = k * (len(d["t"]) - 1), float(d["t"][1] - d["t"][0]) / k
        theta0, omega, every = d["theta0"], d["omega"], k
    elif w.name == "W3":
        steps, h, every = w.params["steps"], w.params["dt"], 1
        theta0, omega = d["theta0"], d["omega"]  # float32
    else:
        raise ValueError(f"numpy_rk4: no NumPy loop for {w.name}")
    return Runner("numpy_rk4", f"NumPy RK4 loop, phase form, {theta0.dtype}", "peer",
                  lambda: rk4_meanfield(omega, theta0, d["K"], h, steps, every), info={"steps": steps})


def scipy_rk45(w: Workload, rtol: float, atol: float) -> Runner:
    """SciPy ``solve_ivp(method="RK45")`` on the NumPy phase-form field (W1: r at ``t_eval``; W4: θ(T))."""
    from scipy.integrate import solve_ivp

    d = w.data
    t = d["t"]
    fun = meanfield_rhs(d["omega"], d["K"]) if w.name == "W1" else dense_rhs(d["omega"], d["J"])

    def run() -> tuple[np.ndarray, dict[str, int]]:
        sol = solve_ivp(fun, (t[0], t[-1]), d["theta0"], method="RK45", t_eval=t, rtol=rtol, atol=atol)
        if sol.status != 0:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        value = order_parameter(sol.y.T) if w.name == "W1" else sol.y[:, -1]
        return value, {"nfe": int(sol.nfev)}
    return Runner("scipy_rk45", f"SciPy solve_ivp RK45 rtol={rtol:g} atol={atol:g}", "peer", run,
                  max_runs=3 if w.name == "W1" else None)


# --------------------------------------------------------------------------------------------
# PyPI kuramoto 0.4.0: imports as `kuramoto`, like this toolkit, so it runs in a subprocess


def default_kuramoto_dir() -> Path:
    """``$AKORN_PYPI_KURAMOTO`` if set, else ``<cache>/kuramoto-0.4.0`` (where the integrators suite installs it)."""
    env = os.environ.get("AKORN_PYPI_KURAMOTO")
    return Path(env) if env else default_cache_dir() / "kuramoto-0.4.0"


def pypi_kuramoto(w: Workload, target: Path) -> Runner:
    """W1 with the PyPI package: its ``Kuramoto.run`` (SciPy ``odeint``/LSODA on a pairwise ``sin`` field).

    Its model is ``dθ_i/dt = ω_i + c/(N−1) Σ_{j≠i} sin(θ_j − θ_i)`` on the grid
    ``linspace(0, T, int(T/dt))``: ``c = K (N−1)/N`` gives W1's ``K/N Σ_j``, and ``dt`` is chosen
    so that its grid is W1's output grid. It times itself in the subprocess.
    """
    target = Path(target)
    if not (target / "kuramoto" / "kuramoto.py").is_file():
        raise Unavailable(f"PyPI kuramoto 0.4.0 not found in {target}: pip install --target {target} "
                          f"kuramoto==0.4.0 (or pass --kuramoto-dir DIR)")
    d, p = w.data, w.params
    N, T, M = p["N"], float(d["t"][-1]), len(d["t"])
    dt = T / M
    while int(T / dt) < M:  # its grid has int(T/dt) points
        dt = np.nextafter(dt, 0.0)
    coupling = d["K"] * (N - 1) / N

    def run() -> tuple[np.ndarray, dict[str, Any]]:
        # the subprocess inherits one_thread()'s *_NUM_THREADS=1
        info = run_pypi_kuramoto(target, d["omega"], d["theta0"], coupling, T, dt)
        if info["outputs"] != M:
            raise RuntimeError(f"PyPI kuramoto returned {info['outputs']} outputs, expected {M}")
        return info["r"], {"wall": info["wall"], "cpu": info["cpu"]}
    return Runner("pypi_kuramoto", "PyPI kuramoto 0.4.0 (odeint/LSODA, pairwise sin)", "peer", run, max_runs=1,
                  self_timed=True)


# --------------------------------------------------------------------------------------------
# W3: the memory-bandwidth bound


def copy_bandwidth(nbytes: int, repeats: int = 20) -> float:
    """STREAM-like copy bandwidth (bytes read + written per second) on arrays of ``nbytes``, median."""
    a = np.ones(max(nbytes // 4, 1), dtype=np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - t0)
    return 2 * a.nbytes / statistics.median(times)


def bandwidth_bound(w: Workload, stream_bytes: int = 512 * 2**20) -> dict[str, dict[str, float]]:
    """W3's bound: the bytes an RK4-type step must move over a measured copy bandwidth.

    A mean-field stage needs the global sums of the previous stage, so a step is at least 4
    passes that read the state and ω, plus one that writes the state. On the toolkit's layout
    (``[N, 2]`` float32 state, ``[N]`` ω) that is ``4 (8 + 4) + 8 = 56`` bytes per oscillator
    (on the phase form ``4 (4 + 4) + 4 = 36``). Two bandwidths: STREAM-like, a copy of
    ``stream_bytes`` (larger than the caches: memory bandwidth), and a copy the size of the state
    (``8 N`` bytes: the cache bandwidth a working set that fits the cache can reach).

    Returns:
        ``{"stream": {...}, "cache": {...}}``, each with ``bandwidth_GBps``, ``bytes_per_step``,
        ``wall`` (the bound for all steps, s) and ``phase_form_wall``.
    """
    N, steps = w.params["N"], w.params["steps"]
    out = {}
    for key, nbytes in (("stream", stream_bytes), ("cache", 8 * N)):
        bw = copy_bandwidth(nbytes, repeats=10 if key == "stream" else 50)
        out[key] = {"bandwidth_GBps": bw / 1e9, "copy_MB": nbytes / 2**20, "bytes_per_step": 56.0 * N,
                    "wall": steps * 56.0 * N / bw, "phase_form_wall": steps * 36.0 * N / bw}
    return out
