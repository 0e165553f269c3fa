"""diffrax peers (JAX, float64, ``jax.jit`` compiled ahead of time so compilation is timed apart).

Written as diffrax's docs show: an ``ODETerm`` on the phase form, ``diffeqsolve`` with a
``SaveAt`` (``ts=`` with ``fn=`` to save r only), ``ConstantStepSize`` for fixed steps or a
``PIDController``, ``jax.vmap`` for batches, ``jax.grad`` through the default
``RecursiveCheckpointAdjoint``. diffrax ships no classical RK4; its solvers are
``AbstractERK`` subclasses defined by a ``ButcherTableau``, and :func:`_rk4` is one.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import numpy as np

from .harness import XLA_ONE_THREAD, Runner, Unavailable
from .problems import Workload

__all__ = ["diffrax_runner"]


@functools.lru_cache(maxsize=None)
def _modules() -> tuple[Any, Any, Any]:
    if "jax" not in sys.modules:  # XLA reads its flags once, at import
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " " + XLA_ONE_THREAD).strip()
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import diffrax
        import jax
        import jax.numpy as jnp
    except ImportError as exc:
        raise Unavailable(f"diffrax/JAX not installed ({exc.name}): pip install 'akorn-toolkit[bench]'") from None
    jax.config.update("jax_enable_x64", True)
    return jax, jnp, diffrax


@functools.lru_cache(maxsize=None)
def _rk4() -> Any:
    _, _, diffrax = _modules()

    class RK4(diffrax.AbstractERK):
        """Classical RK4 (embedded Euler error estimate, unused at constant steps)."""

        tableau = diffrax.ButcherTableau(
            c=np.array([0.5, 0.5, 1.0]),
            b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
            b_error=np.array([1 / 6 - 1, 1 / 3, 1 / 3, 1 / 6]),
            a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        )
        interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms: Any) -> int:
            return 4

    return RK4()


def _meanfield(jnp: Any):
    def vf(t: Any, theta: Any, args: Any) -> Any:
        omega, K = args
        s, c = jnp.sin(theta), jnp.cos(theta)
        return omega + K * (jnp.mean(s) * c - jnp.mean(c) * s)
    return vf


def _r(jnp: Any):
    def r(t: Any, theta: Any, args: Any) -> Any:
        return jnp.hypot(jnp.mean(jnp.cos(theta)), jnp.mean(jnp.sin(theta)))
    return r


def diffrax_runner(w: Workload) -> Runner:
    """The diffrax run of workload ``w`` (W1, W2, W4 or W5)."""
    jax, jnp, diffrax = _modules()
    d, p = w.data, w.params
    term = diffrax.ODETerm(_meanfield(jnp))
    r_fn = _r(jnp)
    info: dict[str, Any] = {}

    if w.name == "W1":
        k = p["steps_per_output"]
        steps = k * (len(d["t"]) - 1)
        h = float(d["t"][-1] - d["t"][0]) / steps

        def solve(omega, theta0, K, ts):
            sol = diffrax.diffeqsolve(term, _rk4(), ts[0], ts[-1], h, theta0, args=(omega, K),
                                      saveat=diffrax.SaveAt(ts=ts, fn=r_fn),
                                      stepsize_controller=diffrax.ConstantStepSize(), max_steps=steps + 16)
            return sol.ys
        args = (d["omega"], d["theta0"], float(d["K"]), d["t"])
        label, info = "diffrax RK4 (custom ERK), SaveAt(ts, fn=r), jax.jit", {"steps": steps}
    elif w.name == "W2":
        steps = int(round(p["T"] / p["dt"]))

        def one(K, theta0, omega, ts):
            sol = diffrax.diffeqsolve(term, _rk4(), ts[0], ts[-1], p["dt"], theta0, args=(omega, K),
                                      saveat=diffrax.SaveAt(ts=ts, fn=r_fn),
                                      stepsize_controller=diffrax.ConstantStepSize(), max_steps=steps + 16)
            return sol.ys
        # [seeds, K, outputs]: vmap over K inside, over the seeds' initial phases outside
        solve = jax.vmap(jax.vmap(one, in_axes=(0, None, None, None)), in_axes=(None, 0, None, None))
        args = (d["K"], d["theta0"], d["omega"], d["t"])
        label, info = "diffrax RK4, jax.vmap over K × seeds, jax.jit", {"steps": steps}
    elif w.name == "W4":
        def vf_dense(t, theta, args):
            omega, J = args
            s, c = jnp.sin(theta), jnp.cos(theta)
            return omega + c * (J @ s) - s * (J @ c)

        def solve(omega, theta0, J):
            sol = diffrax.diffeqsolve(diffrax.ODETerm(vf_dense), diffrax.Dopri5(), 0.0, p["T"], None, theta0,
                                      args=(omega, J), saveat=diffrax.SaveAt(t1=True),
                                      stepsize_controller=diffrax.PIDController(rtol=p["rtol"], atol=p["atol"]),
                                      max_steps=1_000_000)
            return sol.ys[-1], sol.stats["num_steps"], sol.stats["num_rejected_steps"]
        args = (d["omega"], d["theta0"], d["J"])
        label = f"diffrax Dopri5 PIDController rtol={p['rtol']:g} atol={p['atol']:g}, jax.jit"
    elif w.name == "W5":
        steps, T = p["steps"], float(d["t"][-1])

        def loss(K, omega, theta0):
            sol = diffrax.diffeqsolve(term, _rk4(), 0.0, T, p["dt"], theta0, args=(omega, K),
                                      saveat=diffrax.SaveAt(t1=True), stepsize_controller=diffrax.ConstantStepSize(),
                                      adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=steps)
            return r_fn(T, sol.ys[-1], None)
        solve = jax.grad(loss)
        args = (float(d["K"]), d["omega"], d["theta0"])
        label, info = "diffrax RK4, jax.grad, RecursiveCheckpointAdjoint (default), jax.jit", {"steps": steps}
    else:
        raise ValueError(f"diffrax_runner: no diffrax run for {w.name}")

    jitted = jax.jit(solve)
    state: dict[str, Any] = {}

    def compile_() -> None:
        state["compiled"] = jitted.lower(*args).compile()
        analysis = state["compiled"].memory_analysis()
        if analysis is not None and w.name == "W5":
            info["xla_temp_MB"] = analysis.temp_size_in_bytes / 2**20

    def run() -> Any:
        out = jax.block_until_ready(state["compiled"](*args))
        if w.name == "W4":
            theta, steps_, rejected = out
            return np.asarray(theta), {"steps": int(steps_), "rejected": int(rejected)}
        return np.asarray(out)
    return Runner("diffrax", label, "peer", run, compile=compile_, info=info)
