""":func:`solve_sde`: the noisy flow, with the call, observers and :class:`Solution` of :func:`solve`,
and :data:`SDE_METHODS`, every accepted stochastic method.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from kuramoto import assert_state, noise_shape

from .base import check_dt, check_state_tensor
from .brownian import AbstractBrownian, BrownianStream
from .fixed_solve import fixed_grid
from .guards import check_stability as check_stability_of
from .guards import drift_of, warn_drift
from .inputs import check_finite, check_times
from .sde import (
    AbstractSDESolver,
    EulerMaruyama,
    GeodesicEulerMaruyama,
    GeodesicHeun,
    LawsonEulerMaruyama,
    LawsonHeun,
    StratonovichHeun,
)
from .sde_ambient import TORCHSDE_METHODS, TorchsdeMethod, torchsde_step
from .solution import Progress, Recorder, Solution, check_observe
from .solve import stepping_layout

__all__ = ["SDE_METHODS", "get_sde_solver", "solve_sde"]

SDE_METHODS: dict[str, type[AbstractSDESolver]] = {cls.name: cls for cls in (
    # native, on the sphere (retraction, exponential map, Heun; Lawson: Ω rotated exactly)
    EulerMaruyama,
    GeodesicEulerMaruyama,
    StratonovichHeun,
    GeodesicHeun,
    LawsonEulerMaruyama,
    LawsonHeun,
    # torchsde, ambient (optional dependency)
    *TORCHSDE_METHODS.values(),
)}


def get_sde_solver(method: str | AbstractSDESolver) -> AbstractSDESolver:
    """A stochastic method from its name in :data:`SDE_METHODS` (or an instance, returned as is).

    Raises:
        ValueError: unknown name (listing the valid ones), or a torchsde method without torchsde.
        TypeError: neither a name nor an :class:`AbstractSDESolver`.
    """
    if isinstance(method, AbstractSDESolver):
        return method
    if not isinstance(method, str):
        raise TypeError(f"method: expected a stochastic method name (str) or an AbstractSDESolver, got "
                        f"{type(method).__name__}")
    try:
        cls = SDE_METHODS[method]
    except KeyError:
        close = difflib.get_close_matches(method, SDE_METHODS, n=3)
        hint = ""
        if method in ("rk4", "lawson_rk4", "euler_normalized", "heun_normalized", "dopri5"):
            hint = " (an ODE method: with noise use a stochastic one, e.g. 'lawson_heun')"
        elif close:
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)"
        raise ValueError(f"method: unknown stochastic method {method!r}{hint}; valid: "
                         f"{', '.join(sorted(SDE_METHODS))}") from None
    return cls()


def check_noise(noise: Any, name: str = "noise") -> float | torch.Tensor:
    """The noise strength D: a finite float ≥ 0, or a tensor of such values ``[*batch, 1, 1]``
    (one D per batch item, e.g. a sweep over D in one solve).

    Raises:
        TypeError: not a number or floating tensor.
        ValueError: negative, NaN or inf, or a shape that would broadcast across oscillators.
    """
    if isinstance(noise, torch.Tensor):
        if not noise.is_floating_point():
            raise TypeError(f"{name}: expected a float or a floating tensor [*batch, 1, 1], got dtype {noise.dtype}")
        if noise.dim() and (noise.dim() < 2 or noise.shape[-2:] != (1, 1)):
            raise ValueError(f"{name}: a tensor noise strength must be [*batch, 1, 1] (one D per batch item), got shape "
                             f"{tuple(noise.shape)}")
        d = noise.detach()
        if d.numel() and not bool(torch.isfinite(d).all() and (d >= 0).all()):
            raise ValueError(f"{name}: expected finite non-negative noise strengths D, got {noise!r}")
        return noise
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        raise TypeError(f"{name}: expected a non-negative float D (or a tensor [*batch, 1, 1]), got "
                        f"{type(noise).__name__}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"{name}: expected a finite non-negative noise strength D (dθ = … + sqrt(2D) dW), got {noise!r}")
    return float(noise)


def _brownian_source(brownian: Any, generator: Any, seed: Any, x0: torch.Tensor,
                     active: bool) -> AbstractBrownian | None:
    shape = noise_shape(x0.shape)
    if brownian is not None:
        if generator is not None or seed is not None:
            raise ValueError("brownian: given together with generator/seed; the path is the source of randomness")
        if not isinstance(brownian, AbstractBrownian):
            raise TypeError(f"brownian: expected an integrators.BrownianPath or BrownianStream, got "
                            f"{type(brownian).__name__}")
        brownian.check_for(shape, x0.dtype, x0.device)
        return brownian if active else None
    if generator is None and seed is None:
        if active:
            raise ValueError("generator: a noisy solve draws from an explicit source, never torch's global RNG: pass "
                             "seed=int, generator=torch.Generator(...) or brownian=integrators.BrownianPath(...)")
        return None
    source = BrownianStream(shape, generator=generator, seed=seed, dtype=x0.dtype, device=x0.device)
    return source if active else None


def _sigma(noise: float | torch.Tensor, x0: torch.Tensor) -> float | torch.Tensor:
    if isinstance(noise, torch.Tensor):
        if noise.device != x0.device:
            raise TypeError(f"noise: on {noise.device}, the state on {x0.device}")
        return torch.sqrt(2.0 * noise.to(x0.dtype))
    return math.sqrt(2.0 * noise)


def _is_active(noise: float | torch.Tensor) -> bool:
    return bool((noise > 0).any()) if isinstance(noise, torch.Tensor) else noise > 0


def solve_sde(field: Any, x0: torch.Tensor, t: torch.Tensor | Sequence[float],  # long: validation, then the loop
              method: str | AbstractSDESolver = "lawson_heun", *, dt: float, noise: float | torch.Tensor = 0.0,
              generator: torch.Generator | None = None, seed: int | None = None,
              brownian: AbstractBrownian | None = None,
              observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None, save_states: bool = True,
              progress: bool = False, check_stability: bool = True, drift_tol: float | None = 0.05) -> Solution:
    """Integrate the Stratonovich SDE ``dx_i = f_i(t, x) dt + sqrt(2D) Proj_{x_i} ∘ dW_i`` from
    ``x(t[0]) = x0`` and return the states (or observations) at ``t``: :func:`integrators.solve`
    with noise.

    For n = 2 the noise is the phase noise ``dθ_i = … + sqrt(2D) dW_i`` (one Wiener process per
    oscillator); for n ≥ 3, Brownian motion on each sphere (:func:`kuramoto.sphere_noise`).

    Args:
        field: the drift ``field(t, x)``, usually a :class:`kuramoto.KuramotoField` (the Lawson
            methods need its ``omega`` and ``coupling_term``).
        x0: initial state ``[..., n]``, unit vectors, finite.
        t: output times ``[T]``, strictly increasing.
        method: a name in :data:`SDE_METHODS` (``"lawson_heun"``, ``"stratonovich_heun"``,
            ``"euler_maruyama"``, ``"geodesic_euler_maruyama"``, ``"lawson_euler_maruyama"``,
            ``"torchsde_heun"``, ...) or an :class:`~integrators.sde.AbstractSDESolver`.
        dt: step size: each output interval is split into equal steps no longer than ``dt``
            (as in :func:`integrators.solve`).
        noise: the noise strength D ≥ 0 (a float, or a tensor ``[*batch, 1, 1]`` broadcasting
            over the state's batch axes). ``D = 0`` draws nothing and is the deterministic
            method's solve (bit for bit where the method has an ODE namesake, its ``ode_method``).
        generator: a ``torch.Generator`` on the state's device to draw the increments from, or
        seed: an integer for a new one, or
        brownian: a ready source of increments (:class:`~integrators.BrownianPath` to see one
            path at several step sizes). Exactly one when ``D > 0``: torch's global RNG is never
            used, so a solve is reproducible from its seed.
        observe, save_states, progress: as in :func:`integrators.solve`.
        check_stability: refuse a step beyond the method's stability limits for the drift
            (:func:`integrators.guards.check_stability`).
        drift_tol: for torchsde's ambient methods, the largest ``| |x_i| − 1 |`` before a
            :class:`~integrators.DriftWarning` (``None``: no check).

    Returns:
        :class:`~integrators.Solution` (``stats`` count steps and drift evaluations).

    Raises:
        ValueError: a negative or non-finite ``noise``, no source of randomness with ``D > 0``,
            an unknown method, a bad ``dt``/``t``/``x0``, a step beyond the stability limit.
        TypeError: wrong argument types.
        SolverError: the state became NaN or inf.
    """
    if not callable(field):
        raise TypeError(f"field: expected a drift field(t, x) (e.g. a kuramoto.KuramotoField), got {type(field).__name__}")
    check_state_tensor(x0, "x0")
    solver = get_sde_solver(method)
    noise = check_noise(noise)
    ts, t_list, eps = check_times(t, x0)
    if len(t_list) > 1 and t_list[-1] < t_list[0]:
        raise ValueError("t: a noisy solve runs forwards in time; give increasing output times")
    dt = check_dt(float(dt) if isinstance(dt, torch.Tensor) else dt)
    if dt < 0:
        raise ValueError(f"dt: expected a positive step size, got {dt}")
    for flag, value in (("save_states", save_states), ("check_stability", check_stability), ("progress", progress)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag}: expected a bool, got {type(value).__name__}")
    observe_fns = check_observe(observe)
    check_finite(x0)
    if solver.stays_on_sphere:
        assert_state(x0.detach(), "x0")
    check_input = getattr(field, "check_input", None)
    if callable(check_input):
        check_input(x0, "x0")
    active = _is_active(noise)
    source = _brownian_source(brownian, generator, seed, x0, active)
    sigma = _sigma(noise, x0)
    grid = fixed_grid(t_list, dt, eps) if len(t_list) > 1 else None
    if grid is not None and check_stability:
        check_stability_of(solver, field, max(abs(h) for h in grid.steps))

    rec = Recorder(ts, t_list, solver.name, save_states, observe_fns)
    bar = Progress(t_list[0], t_list[-1], solver.name) if progress and grid is not None else None
    try:
        rec.record(x0)
        if grid is not None:
            if isinstance(solver, TorchsdeMethod):
                _run_torchsde(solver, field, x0, rec, grid, sigma, source, bar, drift_tol)
            else:
                _run_native(solver, field, stepping_layout(field, x0), rec, grid, sigma, source, bar)
    finally:
        if bar is not None:
            bar.close()
    return rec.finish()


def _run_native(solver: AbstractSDESolver, field: Any, x: torch.Tensor, rec: Recorder, grid: Any, sigma: Any,
                source: AbstractBrownian | None, bar: Any) -> None:
    t_list = rec.t_list
    cache, h_cache, steps = None, None, 0
    for a, b, m, h in zip(t_list[:-1], t_list[1:], grid.counts, grid.steps):
        if h != h_cache:  # the step cache (exp(hΩ) of the Lawson methods) depends on the step size only
            cache, h_cache = solver.init(field, a, x, dt=h), h
        for j in range(m):
            tj = a + j * h
            dW = None if source is None else sigma * source(tj, b if j == m - 1 else tj + h)
            x, _, cache = solver.step(field, tj, h, x, dW, cache)
        steps += m
        rec.stats.update(steps=steps, accepted=steps, nfe=steps * solver.stages)
        rec.record(x)
        if bar is not None:
            bar.update(b)


def _run_torchsde(solver: TorchsdeMethod, field: Any, x0: torch.Tensor, rec: Recorder, grid: Any, sigma: Any,
                  source: AbstractBrownian | None, bar: Any, drift_tol: float | None) -> None:
    if source is None:  # D = 0: torchsde still asks for increments; zeros cost one tensor
        shape = noise_shape(x0.shape)
        source = _Zeros(shape, x0.dtype, x0.device)
    norms0 = torch.linalg.vector_norm(x0.detach(), dim=-1)
    drifts = []
    x, extra, steps = x0, None, 0
    for a, b, m in zip(rec.t_list[:-1], rec.t_list[1:], grid.counts):
        x, extra = torchsde_step(solver, field, x, a, b, m, sigma, source, extra)
        steps += m
        rec.stats.update(steps=steps, accepted=steps, nfe=steps * solver.stages)
        rec.record(x)
        drifts.append(drift_of(x.detach().unsqueeze(0), norms0))
        if bar is not None:
            bar.update(b)
    if drift_tol is not None and drifts:
        warn_drift(torch.cat(drifts), rec.t_list[1:], drift_tol, solver.name)


class _Zeros(AbstractBrownian):
    """No noise: zero increments."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
        self.shape, self.dtype, self.device = shape, dtype, device

    def __call__(self, ta: float, tb: float) -> torch.Tensor:
        return torch.zeros(self.shape, dtype=self.dtype, device=self.device)
