"""The entry points: :func:`solve` (output times, observables, statistics, adjoints) and
:func:`step_fixed` (T fixed steps, the primitive of a discrete AKOrN layer)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from kuramoto import assert_state

from .adaptive import AbstractEmbeddedRK
from .ambient import TORCHDIFFEQ_FAMILIES, solve_torchdiffeq, substeps
from .base import AbstractSolver, TimeLike, check_dt, check_state_tensor
from .reference import ScipyReference, solve_reference
from .registry import get_solver
from .solution import Recorder, Solution, check_observe

__all__ = ["solve", "step_fixed"]

_DEFAULT_RTOL, _DEFAULT_ATOL = 1e-6, 1e-8


def _check_field(field: Any) -> None:
    if not callable(field):
        raise TypeError(f"field: expected a vector field field(t, x) -> dx/dt (e.g. a kuramoto.KuramotoField), got "
                        f"{type(field).__name__}")


def _check_times(t: Any, x0: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    if isinstance(t, torch.Tensor):
        if t.dim() != 1 or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"t: expected a 1-D tensor of output times, got shape {tuple(t.shape)} and dtype {t.dtype}")
        ts = t.detach().to(x0.device)
        t_list = t.detach().double().cpu().tolist()
    elif isinstance(t, (Sequence, np.ndarray)):
        try:
            t_list = [float(v) for v in t]
        except (TypeError, ValueError):
            raise TypeError("t: expected a 1-D tensor or sequence of output times (floats)") from None
        ts = torch.tensor(t_list, dtype=torch.float64, device=x0.device)
    else:
        raise TypeError(f"t: expected a 1-D tensor or sequence of output times, got {type(t).__name__}")
    if not t_list:
        raise ValueError("t: expected at least one output time (the first is the initial time)")
    if not all(math.isfinite(v) for v in t_list):
        raise ValueError(f"t: output times must be finite, got {t_list[:5]}{'...' if len(t_list) > 5 else ''}")
    diffs = [b - a for a, b in zip(t_list[:-1], t_list[1:])]
    if diffs and not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        raise ValueError("t: output times must be strictly increasing or strictly decreasing")
    return ts, t_list


def _check_tolerances(rtol: Any, atol: Any) -> tuple[float, float]:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name}: expected a non-negative finite float, got {value!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol, atol: at least one tolerance must be positive")
    return float(rtol), float(atol)


class _Progress:
    """A tqdm bar over the integration time (created only when asked for)."""

    def __init__(self, t0: float, t1: float, method: str) -> None:
        from tqdm.auto import tqdm

        self.t0, self.total = t0, abs(t1 - t0)
        self.bar = tqdm(total=self.total, desc=f"solve[{method}]", unit="t", bar_format="{l_bar}{bar}| {n:.3g}/{total:.3g} [{elapsed}<{remaining}]")

    def update(self, t: float) -> None:
        done = min(abs(t - self.t0), self.total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _checkpointed_step(solver: AbstractSolver, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor,
                       cache: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """One step under non-reentrant activation checkpointing: only ``x`` (and the cache) is kept;
    the step's intermediates are recomputed in backward. Gradients reach ``x``, ``dt``, the
    field's parameters and any tensor the field uses (such as a stimulus that requires grad)."""
    def run(x_in: torch.Tensor, cache_in: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        res = solver.step(field, t, dt, x_in, cache_in)
        return res.x, res.error, res.cache
    return _checkpoint(run, x, cache, use_reentrant=False)


def _check_segment(checkpoint: Any) -> int:
    """``step_fixed``'s ``checkpoint`` as a segment length (0: no checkpointing)."""
    if isinstance(checkpoint, bool):
        return int(checkpoint)
    if not isinstance(checkpoint, int) or checkpoint < 0:
        raise ValueError(f"checkpoint: expected a bool or a non-negative integer (steps per checkpoint segment), "
                         f"got {checkpoint!r}")
    return checkpoint


def _run_steps(solver: AbstractSolver, field: Any, t0: float, dt: TimeLike, first: int, count: int, x: torch.Tensor,
               cache: Any, observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], keep_states: bool,
               checkpoint: bool) -> tuple[torch.Tensor, Any, list[torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Steps ``first … first + count − 1``: the final state and cache, and the states and
    observations asked for after each step. With ``checkpoint``, the steps run under one
    non-reentrant checkpoint: only the segment's input and these outputs are kept, and backward
    recomputes the segment's intermediates."""
    def run(x_in: torch.Tensor, cache_in: Any) -> tuple[Any, ...]:
        xs, obs = [], {key: [] for key in observe}
        for k in range(first, first + count):
            res = solver.step(field, t0 + k * dt, dt, x_in, cache_in)
            x_in, cache_in = res.x, res.cache
            if keep_states:
                xs.append(x_in)
            for key, fn in observe.items():
                obs[key].append(fn(x_in))
        return x_in, cache_in, xs, obs
    return _checkpoint(run, x, cache, use_reentrant=False) if checkpoint else run(x, cache)


def _solve_fixed(solver: AbstractSolver, field: Any, x0: torch.Tensor, rec: Recorder, dt: float, adjoint: bool,
                 progress: _Progress | None) -> None:
    t_list = rec.t_list
    use_ckpt = adjoint and torch.is_grad_enabled()
    x = x0
    cache = solver.init(field, t_list[0], x0)
    rec.record(x0)
    steps = 0
    for a, b in zip(t_list[:-1], t_list[1:]):
        m = substeps(b - a, dt)
        h = (b - a) / m
        for j in range(m):
            tj = a + j * h
            if use_ckpt:
                x, _, cache = _checkpointed_step(solver, field, tj, h, x, cache)
            else:
                res = solver.step(field, tj, h, x, cache)
                x, cache = res.x, res.cache
        steps += m
        rec.stats.update(steps=steps, accepted=steps, nfe=steps * solver.stages)
        rec.record(x)
        if progress is not None:
            progress.update(b)


def _solve_adaptive(solver: AbstractEmbeddedRK, field: Any, x0: torch.Tensor, rec: Recorder, dt: float | None,
                    rtol: float, atol: float, adjoint: bool, progress: _Progress | None) -> None:
    controller = solver.controller
    t_list = rec.t_list
    stats = rec.stats
    use_ckpt = adjoint and torch.is_grad_enabled()
    direction = 1.0 if len(t_list) < 2 or t_list[-1] > t_list[0] else -1.0
    t = t_list[0]
    x = x0
    cache = solver.init(field, t, x0)
    stats["nfe"] = 1
    rec.record(x0)
    if len(t_list) == 1:
        return
    if dt is None:
        h = controller.initial_step(field, t, x0, cache, solver.order - 1, rtol, atol, direction)
        stats["nfe"] += 1
    else:
        h = direction * min(dt, controller.max_step)
    prev_ratio = 1e-4
    last_rejected = False
    for target in t_list[1:]:
        while direction * (target - t) > 0:
            if stats["steps"] >= solver.max_steps:
                rec.raise_failure("max_steps_reached", f"method {solver.name!r} reached max_steps={solver.max_steps} "
                                  f"attempted steps at t = {t:g} (target {target:g}); increase "
                                  f"options={{'max_steps': ...}} or loosen rtol/atol", t=t)
            remaining = target - t
            clamped = abs(h) >= abs(remaining) * (1 - 1e-12)
            h_try = remaining if clamped else h
            if abs(h_try) <= 1e-14 * max(1.0, abs(t)):
                rec.raise_failure("step_size_underflow", f"method {solver.name!r}: the step size underflowed "
                                  f"(h = {h_try:.3g}) at t = {t:g}; the field may be singular, non-finite or very stiff",
                                  t=t)
            if use_ckpt:
                x_new, err, cache_new = _checkpointed_step(solver, field, t, h_try, x, cache)
            else:
                x_new, err, cache_new = solver.step(field, t, h_try, x, cache)
            stats["steps"] += 1
            stats["nfe"] += solver.stages
            ratio = controller.error_ratio(err, x, x_new, rtol, atol)
            accepted = ratio <= 1.0
            h_next = controller.next_step(h_try, ratio, prev_ratio, solver.order - 1, accepted)
            if accepted:
                stats["accepted"] += 1
                x, cache = x_new, cache_new
                t = target if clamped else t + h_try
                prev_ratio = max(ratio, 1e-4)
                if last_rejected:
                    h_next = math.copysign(min(abs(h_next), abs(h_try)), h_next)
                # A step shortened to land on an output time says little about the step size.
                h = math.copysign(max(abs(h_next), abs(h)), h) if clamped else h_next
                last_rejected = False
            else:
                stats["rejected"] += 1
                h = h_next
                last_rejected = True
        rec.record(x)
        if progress is not None:
            progress.update(target)


def solve(field: Any, x0: torch.Tensor, t: torch.Tensor | Sequence[float], method: str | AbstractSolver = "rk4", *,
          dt: float | None = None, rtol: float = _DEFAULT_RTOL, atol: float = _DEFAULT_ATOL, adjoint: bool = False,
          observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None, save_states: bool = True,
          options: Mapping[str, Any] | None = None, progress: bool = False) -> Solution:
    """Integrate ``dx/dt = field(t, x)`` from ``x(t[0]) = x0`` and return the states at ``t``.

    The first four arguments are the main ones (as in ``torchdiffeq.odeint``); everything after
    them is keyword-only.

    Args:
        field: the vector field, ``field(t, x) -> dx/dt`` (a :class:`kuramoto.KuramotoField`
            or any ``nn.Module``/callable of that form).
        x0: initial state ``[..., n]``, any leading (batch, oscillator, image) shape, the sphere
            axis last. Methods that stay on the sphere require unit vectors.
        t: output times ``[T]`` (strictly monotone; ``t[0]`` is the initial time; decreasing
            times integrate backwards).
        method: a name in :data:`integrators.METHODS` (``"rk4"``, ``"euler_normalized"``,
            ``"lawson_rk4"``, ``"dopri5"``, ...) or an :class:`~integrators.AbstractSolver`
            (e.g. :class:`~integrators.Compiled`).
        dt: step size. Fixed-step methods need it: each output interval is split into equal
            steps no longer than ``dt`` (up to one part in 10^6), so the outputs are steps,
            never interpolations. For an adaptive method it is the first step (chosen
            automatically when ``None``).
        rtol, atol: tolerances of adaptive methods (and of the implicit Adams corrector);
            changing them for a method that ignores them raises.
        adjoint: memory-saving gradients. Native methods: the exact gradient of the discrete
            map, recomputing each step in backward (memory: one state per step, none of the
            step's intermediates). torchdiffeq methods: ``odeint_adjoint`` over the field's
            parameters (and its stimulus if it requires grad) with the seminorm; note this is
            the continuous adjoint, which for a coarse fixed-step solve is the gradient of a
            different problem.
        observe: ``{name: fn}``; ``fn(x)`` is evaluated at every output time and stacked in
            ``Solution.observed[name]`` (``[T, ...]``), e.g. ``{"r": kuramoto.order_parameter}``.
        save_states: keep the states at the output times (``False``: only the observations and
            the final state, so a long run of a large system never holds its trajectory).
        options: keyword options of the method's constructor (``ValueError`` lists the valid
            ones); only with a method name.
        progress: show a tqdm progress bar over the integration time.

    Returns:
        :class:`~integrators.Solution` with ``ts``, ``xs`` (``[T, *x0.shape]`` or ``None``),
        ``observed``, ``stats`` (``nfe``, ``steps``, ``accepted``, ``rejected``), ``status``,
        ``message`` and ``x_final``.

    Raises:
        ValueError: bad arguments or pairings: unknown method or option, a fixed-step method
            without ``dt``, tolerances given to a method that ignores them, ``adjoint=True`` with
            the SciPy reference, ``x0`` off the sphere for a method that stays on it.
        TypeError: wrong argument types.
        SolverError: the state became NaN/inf (checked at every output time, naming it), the
            step size underflowed, or an adaptive method reached ``max_steps``; the exception's
            ``solution`` holds the outputs reached so far.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018 (``odeint``'s
        interface); Kidger, "On Neural Differential Equations", 2021, §5 (adjoints, seminorms).
    """
    _check_field(field)
    check_state_tensor(x0, "x0")
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options: expected a dict of the method's keyword options, got {type(options).__name__}")
    if isinstance(method, AbstractSolver) and options:
        raise ValueError(f"options: given together with a solver instance ({type(method).__name__}); pass them to its "
                         f"constructor instead")
    solver = get_solver(method, **dict(options or {}))
    name = solver.name
    ts, t_list = _check_times(t, x0)
    rtol, atol = _check_tolerances(rtol, atol)
    if not isinstance(adjoint, bool):
        raise TypeError(f"adjoint: expected a bool, got {type(adjoint).__name__}")
    if not isinstance(save_states, bool):
        raise TypeError(f"save_states: expected a bool, got {type(save_states).__name__}")
    observe_fns = check_observe(observe)

    if dt is not None:
        if isinstance(dt, torch.Tensor):
            if dt.requires_grad:
                raise ValueError("dt: solve() does not differentiate through the step size; use step_fixed(..., dt=gamma) "
                                 "for a learnable step")
            dt = float(dt)
        dt = check_dt(dt)
        if dt < 0:
            raise ValueError(f"dt: expected a positive step size (the direction comes from t), got {dt}")
    if not solver.adaptive and dt is None:
        raise ValueError(f"dt: method {name!r} takes fixed steps and needs dt (e.g. solve(..., method={name!r}, dt=0.01)); "
                         f"or pick an adaptive method such as 'dopri5' or 'dopri5_normalized'")
    tolerances_changed = (rtol, atol) != (_DEFAULT_RTOL, _DEFAULT_ATOL)
    if tolerances_changed and (not solver.uses_tolerances or isinstance(solver, ScipyReference)):
        where = ("its own options (options={'rtol': ..., 'atol': ...})" if isinstance(solver, ScipyReference)
                 else "none: it takes fixed steps")
        raise ValueError(f"rtol, atol: method {name!r} does not use solve()'s tolerances (it uses {where}); "
                         f"got rtol={rtol}, atol={atol}")
    if adjoint and isinstance(solver, ScipyReference):
        raise ValueError(f"adjoint: method {name!r} gives no gradients (a float64 SciPy reference); use a "
                         f"differentiable method with adjoint=True")
    if solver.stays_on_sphere:
        assert_state(x0.detach(), "x0")

    rec = Recorder(ts, t_list, name, save_states, observe_fns)
    bar = _Progress(t_list[0], t_list[-1], name) if progress and len(t_list) > 1 else None
    try:
        if isinstance(solver, ScipyReference):
            solve_reference(solver, field, x0, rec, bar)
        elif isinstance(solver, TORCHDIFFEQ_FAMILIES):
            solve_torchdiffeq(solver, field, x0, rec, dt, rtol, atol, adjoint, bar)
        elif isinstance(solver, AbstractEmbeddedRK):
            _solve_adaptive(solver, field, x0, rec, dt, rtol, atol, adjoint, bar)
        elif not solver.adaptive:
            _solve_fixed(solver, field, x0, rec, dt, adjoint, bar)
        else:
            raise TypeError(f"method: {type(solver).__name__} is adaptive but neither an AbstractEmbeddedRK nor a "
                            f"delegated method; solve() does not know how to control its steps")
    finally:
        if bar is not None:
            bar.close()
    return rec.solution()


def step_fixed(field: Any, x0: torch.Tensor, *, method: str | AbstractSolver = "euler_normalized", dt: TimeLike,
               steps: int, t0: float = 0.0, checkpoint: bool = False,
               observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
               return_states: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
    """``steps`` fixed steps of a native method: the discrete AKOrN layer (``x ← normalize(x + γ f(x))``
    with the default method).

    No device syncs and no validation of values (shapes and types only): this is a layer
    primitive. ``x0`` should be unit vectors for the methods that stay on the sphere.

    Args:
        field: the vector field ``field(t, x)``.
        x0: initial state ``[..., n]`` (any leading shape, e.g. ``[B, C/n, H, W, n]``).
        method: a native, non-adaptive method name or instance (``euler_normalized``,
            ``heun_normalized``, ``rk4_normalized``, ``geodesic_euler``, ``rkmk4``, ``cf4``,
            ``lawson_rk4``).
        dt: the step size γ, a float or a 0-d tensor that may require grad.
        steps: the number of steps T (``>= 0``).
        t0: initial time (``t_k = t0 + k·dt``).
        checkpoint: exact gradient of the discrete map with the steps recomputed in backward.
            ``True`` (or 1): each step is a checkpoint segment, so memory grows by one state
            per step instead of every intermediate of every step. An integer ``L > 1``: segments
            of ``L`` steps; only each segment's input is kept (``T / L`` states) and backward
            recomputes one segment at a time (``L`` steps' intermediates alive at once). The
            gradient is the same; peak memory ``≈ (T / L)·|x| + L·C`` for a step whose
            intermediates take ``C``, smallest near ``L = √(T |x| / C)``, at the same cost
            (one extra forward). Gradients reach ``x0``, ``dt``, the field's parameters and its
            stimulus.
        observe: ``{name: fn}`` evaluated on every state ``x_0 … x_T`` (differentiable).
        return_states: also return all states stacked.

    Returns:
        ``(x_T, states, observed)``: ``x_T`` of ``x0``'s shape; ``states`` ``[T + 1, *x0.shape]``
        (``x_0`` first) or ``None``; ``observed[name]`` of shape ``[T + 1, ...]``.

    Raises:
        ValueError: an adaptive or non-native method, a negative ``steps``, a bad ``dt``.
        TypeError: wrong argument types.
    """
    _check_field(field)
    check_state_tensor(x0, "x0")
    solver = get_solver(method)
    if solver.adaptive or not solver.native:
        raise ValueError(f"method: step_fixed() takes a native fixed-step method, got {solver.name!r} "
                         f"({'adaptive' if solver.adaptive else 'delegated to torchdiffeq/SciPy'}); use solve() for it")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected a non-negative integer number of steps, got {steps!r}")
    dt = check_dt(dt)
    if isinstance(dt, torch.Tensor) and dt.device != x0.device:
        raise ValueError(f"dt: a tensor step size must live on the state's device {x0.device}, got {dt.device}")
    if isinstance(t0, bool) or not isinstance(t0, (int, float)):
        raise TypeError(f"t0: expected a float, got {type(t0).__name__}")
    observe_fns = check_observe(observe)
    segment = _check_segment(checkpoint)
    use_ckpt = segment > 0 and torch.is_grad_enabled()

    states = [x0] if return_states else None
    observed: dict[str, list[torch.Tensor]] = {k: [fn(x0)] for k, fn in observe_fns.items()}
    x = x0
    cache = solver.init(field, t0, x0)
    span = segment if use_ckpt else max(steps, 1)  # steps per segment (one segment without checkpoints)
    for k in range(0, steps, span):
        x, cache, seg_states, seg_obs = _run_steps(solver, field, t0, dt, k, min(span, steps - k), x, cache,
                                                   observe_fns, states is not None, use_ckpt)
        if states is not None:
            states.extend(seg_states)
        for key, values in seg_obs.items():
            observed[key].extend(values)
    return x, (torch.stack(states) if states is not None else None), {k: torch.stack(v) for k, v in observed.items()}
