"""torchode peers (PyTorch, float64, batched), written as torchode's README shows: an ``ODETerm``,
a step method, a step-size controller, ``AutoDiffAdjoint`` and ``torch.compile(solver)``.

torchode ships no classical RK4; its methods are ``ExplicitRungeKutta`` subclasses defined by a
``ButcherTableau`` (as its ``Heun``), and :func:`_rk4` is one, stepped by ``FixedStepController``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from .harness import Runner, Unavailable
from .problems import Workload

__all__ = ["torchode_runner"]


@functools.lru_cache(maxsize=None)
def _torchode() -> Any:
    try:
        import torchode
    except ImportError as exc:
        raise Unavailable(f"torchode not installed ({exc.name}): pip install 'akorn-toolkit[bench]'") from None
    return torchode


@functools.lru_cache(maxsize=None)
def _rk4_class() -> type:
    _torchode()
    from torchode.interpolation import ThirdOrderPolynomialInterpolation
    from torchode.single_step_methods.runge_kutta import ButcherTableau, ExplicitRungeKutta

    class RK4(ExplicitRungeKutta):
        """Classical RK4 (embedded Euler error estimate, unused by ``FixedStepController``)."""

        TABLEAU = ButcherTableau.from_lists(c=[0.0, 0.5, 0.5, 1.0], a=[[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
                                            b=[1 / 6, 1 / 3, 1 / 3, 1 / 6], b_low_order=[1.0, 0.0, 0.0, 0.0])

        def __init__(self, term: Any = None) -> None:
            super().__init__(term, RK4.TABLEAU)

        @torch.jit.export
        def convergence_order(self) -> int:
            return 4

        @torch.jit.export
        def build_interpolation(self, data: Any) -> Any:
            return ThirdOrderPolynomialInterpolation.from_k(data.t0, data.dt, data.y0, data.y1, data.k)

    return RK4


def _solver(f: Any) -> Any:
    to = _torchode()
    term = to.ODETerm(f)
    solver = to.AutoDiffAdjoint(_rk4_class()(term=term), to.FixedStepController())
    return torch.compile(solver)  # the README's recipe


def torchode_runner(w: Workload) -> Runner:
    """The torchode run of workload ``w`` (W2 batched over K × seeds, or W5's gradient)."""
    to = _torchode()
    d, p = w.data, w.params
    omega = torch.as_tensor(d["omega"], dtype=torch.float64)
    if w.name == "W2":
        seeds, Ks, M = len(d["theta0"]), len(d["K"]), len(d["t"])
        B = seeds * Ks
        # batch index b = seed · Ks + k, so the output reshapes to [seeds, K, outputs]
        K = torch.as_tensor(d["K"], dtype=torch.float64).repeat(seeds)[:, None]
        y0 = torch.as_tensor(d["theta0"], dtype=torch.float64).repeat_interleave(Ks, dim=0)
        t_eval = torch.as_tensor(d["t"], dtype=torch.float64).expand(B, M)

        def f(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            s, c = torch.sin(y), torch.cos(y)
            return omega + K * (s.mean(-1, keepdim=True) * c - c.mean(-1, keepdim=True) * s)
        solver = _solver(f)
        dt0 = torch.full((B,), p["dt"], dtype=torch.float64)

        def run() -> tuple[np.ndarray, dict[str, int]]:
            with torch.no_grad():
                sol = solver.solve(to.InitialValueProblem(y0=y0, t_eval=t_eval), dt0=dt0)
            r = torch.hypot(torch.cos(sol.ys).mean(-1), torch.sin(sol.ys).mean(-1))  # [B, outputs]
            return r.reshape(seeds, Ks, M).numpy(), {"steps": int(sol.stats["n_steps"].max())}
        return Runner("torchode", "torchode RK4 (custom ERK), batched K × seeds, torch.compile(solver)", "peer", run,
                      jit=True)
    if w.name == "W5":
        K = torch.tensor(float(d["K"]), dtype=torch.float64, requires_grad=True)
        y0 = torch.as_tensor(d["theta0"], dtype=torch.float64)[None]
        t_eval = torch.as_tensor(d["t"], dtype=torch.float64)[None]

        def f(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            s, c = torch.sin(y), torch.cos(y)
            return omega + K * (s.mean(-1, keepdim=True) * c - c.mean(-1, keepdim=True) * s)
        solver = _solver(f)
        dt0 = torch.full((1,), p["dt"], dtype=torch.float64)

        def run() -> np.ndarray:
            K.grad = None
            sol = solver.solve(to.InitialValueProblem(y0=y0, t_eval=t_eval), dt0=dt0)
            theta = sol.ys[0, -1]
            torch.hypot(torch.cos(theta).mean(), torch.sin(theta).mean()).backward()
            return K.grad.detach().numpy().copy()
        return Runner("torchode", "torchode RK4, AutoDiffAdjoint (backprop), torch.compile(solver)", "peer", run,
                      jit=True, info={"steps": p["steps"]})
    raise ValueError(f"torchode_runner: no torchode run for {w.name}")
