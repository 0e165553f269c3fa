"""The toolkit's side of W1–W5: one small function per workload, public API only.

**Update these five functions when the core changes** (and nothing else in the suite): each
builds its solve once and returns ``(label, run)``, where ``run()`` performs the whole workload
and returns NumPy outputs in the reference's layout (or ``(outputs, {"steps": …, "nfe": …})``):

- :func:`w1` → ``[outputs]`` r(t);
- :func:`w2` → ``[seeds, K, outputs]`` r(t);
- :func:`w3` → ``[steps + 1]`` r after every step;
- :func:`w4` → ``[N]`` phases at T;
- :func:`w5` → ``dr(T)/dK`` (0-d).

The first call of ``run`` may compile; the harness reports that apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import kuramoto as ku
from integrators import Compiled, solve

from .problems import Workload

__all__ = ["w1", "w2", "w3", "w4", "w5"]

Run = Callable[[], Any]


def _x0(theta0: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return ku.from_phases(torch.as_tensor(theta0, dtype=dtype))


def w1(w: Workload, fuse: int | None = None) -> tuple[str, Run]:
    """Classic model, one trajectory: ``Compiled("lawson_rk4", fuse=...)`` (default: the steps per
    output, so one call of the compiled program per output: its steps on the component planes and r)."""
    d, k = w.data, w.params["steps_per_output"]
    fuse = k if fuse is None else fuse
    if k % fuse:
        raise ValueError(f"fuse: expected a divisor of the {k} steps per output, got {fuse!r}")
    field = ku.KuramotoField(ku.MeanField(d["K"]), omega=ku.Frequencies(torch.as_tensor(d["omega"])))
    x0, t = _x0(d["theta0"]), torch.as_tensor(d["t"])
    method = Compiled("lawson_rk4", fuse=fuse)
    dt = float(d["t"][1] - d["t"][0]) * fuse / k  # a step of the wrapper: fuse inner steps of interval / k

    def run() -> np.ndarray:
        with torch.no_grad():
            sol = solve(field, x0, t, method, dt=dt, observe={"r": ku.order_parameter}, save_states=False)
        return sol.observed["r"].numpy()
    return f'Compiled("lawson_rk4", fuse={fuse})', run


def w2(w: Workload) -> tuple[str, Run]:
    """Sweep: every K and seed in one batched solve (``MeanField`` with K ``[K, 1, 1, 1]`` against
    states ``[K, seeds, N, 2]``) through ``Compiled("lawson_rk4")``."""
    d = w.data
    omega = ku.Frequencies(torch.as_tensor(d["omega"]))
    K = torch.as_tensor(np.asarray(d["K"], dtype=np.float64)).view(-1, 1, 1, 1)
    field = ku.KuramotoField(ku.MeanField(K), omega=omega)
    x0 = _x0(d["theta0"]).unsqueeze(0).expand(K.shape[0], *d["theta0"].shape, 2).contiguous()
    t = torch.as_tensor(d["t"])
    method = Compiled("lawson_rk4")

    def run() -> np.ndarray:
        with torch.no_grad():
            sol = solve(field, x0, t, method, dt=w.params["dt"], observe={"r": ku.order_parameter},
                        save_states=False)
        return sol.observed["r"].numpy().transpose(2, 1, 0)  # [outputs, K, seeds] -> [seeds, K, outputs]
    return 'Compiled("lawson_rk4"), K x seeds batched', run


def w3(w: Workload) -> tuple[str, Run]:
    """Mean field at large N in float32: ``Compiled("lawson_rk4")`` (on the component planes), r
    observed after every step."""
    d = w.data
    field = ku.KuramotoField(ku.MeanField(d["K"]), omega=ku.Frequencies(torch.as_tensor(d["omega"])))
    x0, t = _x0(d["theta0"], torch.float32), torch.as_tensor(d["t"])
    method = Compiled("lawson_rk4")

    def run() -> np.ndarray:
        with torch.no_grad():
            sol = solve(field, x0, t, method, dt=w.params["dt"], observe={"r": ku.order_parameter},
                        save_states=False)
        return sol.observed["r"].numpy()
    return 'Compiled("lawson_rk4")', run


def w4(w: Workload, rtol: float = 1.5e-7, atol: float = 1.5e-7) -> tuple[str, Run]:
    """Dense adaptive: ``lawson_dopri5`` (Ω rotated exactly, so the controller resolves the coupling
    only) at ``rtol``/``atol``."""
    d = w.data
    field = ku.KuramotoField(ku.Dense(torch.as_tensor(d["J"])), omega=ku.Frequencies(torch.as_tensor(d["omega"])))
    x0 = _x0(d["theta0"])

    def run() -> tuple[np.ndarray, dict[str, int]]:
        with torch.no_grad():
            sol = solve(field, x0, d["t"].tolist(), "lawson_dopri5", rtol=rtol, atol=atol)
        return ku.to_phases(sol.xs[-1]).numpy(), {"steps": int(sol.stats["steps"]), "nfe": int(sol.stats["nfe"])}
    return f'"lawson_dopri5" rtol={rtol:g} atol={atol:g}', run


def w5(w: Workload, adjoint: bool = False) -> tuple[str, Run]:
    """dr(T)/dK through ``lawson_rk4`` steps: backprop, or ``adjoint=True`` (recursive checkpointing
    of the discrete steps: the exact gradient of the steps taken, in O(√steps) memory)."""
    d = w.data
    K = torch.tensor(float(d["K"]), dtype=torch.float64)
    field = ku.KuramotoField(ku.MeanField(K, learnable=True), omega=ku.Frequencies(torch.as_tensor(d["omega"])))
    x0 = _x0(d["theta0"])

    def run() -> np.ndarray:
        field.zero_grad(set_to_none=True)
        sol = solve(field, x0, d["t"].tolist(), "lawson_rk4", dt=w.params["dt"], adjoint=adjoint)
        ku.order_parameter(sol.xs[-1]).backward()
        return field.coupling.k.grad.detach().numpy().copy()
    return f'"lawson_rk4" {"adjoint=True" if adjoint else "backprop"}', run
