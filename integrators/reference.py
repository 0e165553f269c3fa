"""A float64 SciPy reference solve for accuracy checks (no gradients)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from kuramoto.checks import check_count, is_real

from .base import AbstractSolver, StepResult, TimeLike, reject_unknown_options

__all__ = ["ScipyReference"]


def _float64_cpu_copy(field: Any) -> Any:
    """A float64 CPU copy of the field: parameters, buffers and plain tensor attributes (such as
    a stimulus) are converted; the original is untouched."""
    if not isinstance(field, nn.Module):
        return field
    ref = copy.deepcopy(field).to(device="cpu", dtype=torch.float64)
    for module in ref.modules():
        for key, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                object.__setattr__(module, key, value.detach().to(device="cpu", dtype=torch.float64))
    return ref


def _wants_grad(field: Any, x0: torch.Tensor) -> bool:
    if not torch.is_grad_enabled():
        return False
    if x0.requires_grad:
        return True
    if isinstance(field, nn.Module) and any(p.requires_grad for p in field.parameters()):
        return True
    stim = getattr(field, "stimulus", None)
    return isinstance(stim, torch.Tensor) and stim.requires_grad


class ScipyReference(AbstractSolver):
    """SciPy ``solve_ivp``'s DOP853 in float64 at tight tolerances: the accuracy reference.

    The field is copied to float64 on the CPU and evaluated on NumPy arrays; results come back
    in the state's dtype and device. No gradients: asking for them (``adjoint=True``, or grad
    mode on with ``x0`` or the field's parameters requiring grad) raises ``ValueError``; wrap
    the call in ``torch.no_grad()``. Outputs come from DOP853's 7th-order dense output.

    Args:
        rtol, atol: SciPy's tolerances (default 1e-12 both).
        max_steps: accepted steps allowed per solve.

    References:
        Hairer, Nørsett, Wanner, "Solving Ordinary Differential Equations I", 2nd ed., §II.5 (DOP853).
    """

    name = "scipy_reference"
    order = 8
    adaptive = True
    stays_on_sphere = False
    native = False
    uses_tolerances = True
    stages = 12

    def __init__(self, *, rtol: float = 1e-12, atol: float = 1e-12, max_steps: int = 1_000_000, **unknown: Any) -> None:
        reject_unknown_options(self, unknown)
        for key, value in (("rtol", rtol), ("atol", atol)):
            if not is_real(value) or not value > 0:
                raise ValueError(f"{key}: expected a positive float, got {value!r}")
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), check_count(max_steps, "max_steps")

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> None:
        return None

    def check_no_grad(self, field: Any, x0: torch.Tensor) -> None:
        if _wants_grad(field, x0):
            raise ValueError(f"method {self.name!r} gives no gradients, but grad mode is on and x0, the field's "
                             f"parameters or its stimulus require grad; call it under torch.no_grad() (or pick a "
                             f"differentiable method)")

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        from scipy.integrate import solve_ivp

        self.check_no_grad(field, x)
        if isinstance(dt, torch.Tensor):
            dt = float(dt)
        t0 = float(t)
        fun = _numpy_field(_float64_cpu_copy(field), x.shape)
        out = solve_ivp(fun, (t0, t0 + dt), x.detach().cpu().double().numpy().ravel(), method="DOP853",
                        rtol=self.rtol, atol=self.atol)
        if not out.success:
            raise ValueError(f"method {self.name!r}: SciPy failed on [{t0}, {t0 + dt}]: {out.message}")
        y = torch.from_numpy(out.y[:, -1].copy()).reshape(x.shape).to(dtype=x.dtype, device=x.device)
        return StepResult(y, None, None)


def _numpy_field(field: Any, shape: torch.Size):
    def fun(t: float, y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(y).reshape(shape)
            return field(t, x).reshape(-1).numpy()
    return fun


def solve_reference(solver: ScipyReference, field: Any, x0: torch.Tensor, rec: Any, progress: Any) -> None:
    """Fill the recorder ``rec`` with DOP853's float64 solution at the output times."""
    from scipy.integrate import DOP853

    solver.check_no_grad(field, x0)
    t_list = rec.t_list
    rec.record(x0)
    if len(t_list) == 1:
        return
    fun = _numpy_field(_float64_cpu_copy(field), x0.shape)
    count = [0]

    def counted(t: float, y: np.ndarray) -> np.ndarray:
        count[0] += 1
        return fun(t, y)

    y0 = x0.detach().cpu().double().numpy().ravel()
    ode = DOP853(counted, t_list[0], y0, t_list[-1], rtol=solver.rtol, atol=solver.atol)
    per_attempt = ode.n_stages  # stages 2..s plus the field at the new point
    stats = rec.stats
    stats["nfe"] = count[0]
    nxt = 1
    sign = 1.0 if t_list[-1] > t_list[0] else -1.0

    def emit(y: np.ndarray) -> None:
        rec.record(torch.from_numpy(np.ascontiguousarray(y)).reshape(x0.shape).to(dtype=x0.dtype, device=x0.device))

    while nxt < len(t_list):
        if stats["accepted"] >= solver.max_steps:
            rec.raise_failure("max_steps_reached", f"method {solver.name!r} reached max_steps={solver.max_steps} "
                              f"accepted steps at t = {ode.t:g}; increase options={{'max_steps': ...}}", t=ode.t)
        before = count[0]
        message = ode.step()
        attempts = max(1, round((count[0] - before) / per_attempt))
        stats["steps"] += attempts
        stats["accepted"] += 1
        stats["rejected"] += attempts - 1
        if ode.status == "failed":
            rec.raise_failure("step_size_underflow", f"method {solver.name!r}: SciPy stopped at t = {ode.t:g}: "
                              f"{message}", t=ode.t)
        dense = None
        while nxt < len(t_list) and sign * (t_list[nxt] - ode.t) <= 0:
            if t_list[nxt] == ode.t:
                emit(ode.y)
            else:
                if dense is None:
                    dense = ode.dense_output()
                emit(dense(t_list[nxt]))
            nxt += 1
        if progress is not None:
            progress.update(ode.t)
        stats["nfe"] = count[0]
        if ode.status == "finished" and nxt < len(t_list):  # pragma: no cover - t_bound is the last output
            emit(ode.y)
            nxt += 1
    stats["nfe"] = count[0]
