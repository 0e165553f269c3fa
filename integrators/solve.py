"""The entry points: :func:`solve` (output times, observables, statistics, adjoints) and
:func:`step_fixed` (T fixed steps, the primitive of a discrete AKOrN layer).

``solve`` validates everything once at its entry (the state, its fit to the field, times, the
step grid, stability), then steps without further checks; native methods step the state in
component-major memory (:mod:`kuramoto.sphere`) and return it in the usual order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from kuramoto import assert_state
from kuramoto.sphere import component_major

from .adaptive import AbstractEmbeddedRK
from .ambient import TORCHDIFFEQ_FAMILIES, solve_torchdiffeq
from .base import AbstractSolver, TimeLike, check_dt, check_state_tensor
from .checkpoint import RecursiveCheckpoint, checkpointed_solve
from .compiled import Compiled
from .guards import DEFAULT_DRIFT_TOL, step_counts
from .guards import check_stability as check_stability_of
from .reference import ScipyReference, solve_reference
from .registry import get_solver
from .solution import Recorder, Solution, check_observe

__all__ = ["solve", "step_fixed"]

_DEFAULT_RTOL, _DEFAULT_ATOL = 1e-6, 1e-8


def _check_field(field: Any) -> None:
    if not callable(field):
        raise TypeError(f"field: expected a vector field field(t, x) -> dx/dt (e.g. a kuramoto.KuramotoField), got "
                        f"{type(field).__name__}")


def _check_times(t: Any, x0: torch.Tensor) -> tuple[torch.Tensor, list[float], float]:
    """The output times as a tensor on the state's device, as floats, and the machine epsilon of
    the dtype they were given in (their rounding, which the step grid tolerates)."""
    if isinstance(t, (str, bytes)):
        raise TypeError(f"t: expected a 1-D tensor or sequence of output times (floats), got a string {t!r}")
    if isinstance(t, torch.Tensor):
        if t.dim() != 1 or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"t: expected a 1-D tensor of output times, got shape {tuple(t.shape)} and dtype {t.dtype}")
        ts = t.detach().to(x0.device)
        t_list = t.detach().double().cpu().tolist()
        eps = torch.finfo(t.dtype).eps if t.is_floating_point() else 0.0
    elif isinstance(t, (Sequence, np.ndarray)):
        if isinstance(t, np.ndarray) and t.ndim != 1:
            raise ValueError(f"t: expected a 1-D array of output times, got shape {t.shape}")
        try:
            t_list = [float(v) for v in t]
        except (TypeError, ValueError):
            raise TypeError("t: expected a 1-D tensor or sequence of output times (floats)") from None
        if any(isinstance(v, (str, bytes)) for v in t):
            raise TypeError("t: expected a 1-D tensor or sequence of output times (floats), got strings")
        ts = torch.tensor(t_list, dtype=torch.float64, device=x0.device)
        eps = float(np.finfo(t.dtype).eps) if isinstance(t, np.ndarray) and t.dtype.kind == "f" else \
            float(np.finfo(np.float64).eps)
    else:
        raise TypeError(f"t: expected a 1-D tensor or sequence of output times, got {type(t).__name__}")
    if not t_list:
        raise ValueError("t: expected at least one output time (the first is the initial time)")
    if not all(math.isfinite(v) for v in t_list):
        raise ValueError(f"t: output times must be finite, got {t_list[:5]}{'...' if len(t_list) > 5 else ''}")
    diffs = [b - a for a, b in zip(t_list[:-1], t_list[1:])]
    if diffs and not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        raise ValueError("t: output times must be strictly increasing or strictly decreasing")
    return ts, t_list, eps


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


@dataclass(frozen=True)
class _Grid:
    """The steps of a fixed-step solve: ``counts[i]`` equal steps of size ``steps[i]`` in output
    interval ``i``; ``uniform`` is the common step when every interval has the same count and
    the same step up to the rounding of the output times (then every step is exactly that)."""

    counts: list[int]
    steps: list[float]
    uniform: float | None

    @property
    def total(self) -> int:
        return sum(self.counts)

    def flat(self, t_list: list[float], substeps: int = 1) -> list[tuple[float, float]]:
        """``(t_k, h_k)`` of every step (each step split into ``substeps``)."""
        out = []
        for a, m, h in zip(t_list, self.counts, self.steps):
            hi = h / substeps
            out.extend((a + j * hi, hi) for j in range(m * substeps))
        return out


def _fixed_grid(t_list: list[float], dt: float, eps: float) -> _Grid:
    counts = step_counts(t_list, dt, eps)
    steps = [(b - a) / m for a, b, m in zip(t_list[:-1], t_list[1:], counts)]
    uniform = None
    if steps and len(set(counts)) == 1:
        mean = (t_list[-1] - t_list[0]) / sum(counts)
        tol = max(1e-12 * abs(mean), 4 * eps * max(abs(t_list[0]), abs(t_list[-1])) / counts[0])
        if all(abs(h - mean) <= tol for h in steps):
            uniform = mean
            steps = [mean] * len(steps)
    return _Grid(counts, steps, uniform)


def _inner(solver: AbstractSolver) -> tuple[AbstractSolver, int]:
    """The method that takes the steps, and how many of them one step of ``solver`` is."""
    return (solver.inner, solver.fuse) if isinstance(solver, Compiled) else (solver, 1)


def _update_stats(rec: Recorder, solver: AbstractSolver, steps: int) -> None:
    inner, _ = _inner(solver)
    rec.stats.update(steps=steps, accepted=steps, nfe=steps * inner.stages)


def _solve_fixed(solver: AbstractSolver, field: Any, x0: torch.Tensor, rec: Recorder, grid: _Grid,
                 adjoint: RecursiveCheckpoint | None, progress: _Progress | None) -> None:
    t_list = rec.t_list
    rec.record(x0)
    if len(t_list) == 1:
        return
    inner, fuse = _inner(solver)
    if adjoint is not None and torch.is_grad_enabled():
        outputs = [int(k) for k in np.cumsum([m * fuse for m in grid.counts])]
        for x in checkpointed_solve(inner, inner, field, x0, grid.flat(t_list, fuse), outputs, adjoint):
            rec.record(x)
        _update_stats(rec, solver, outputs[-1])
        if progress is not None:
            progress.update(t_list[-1])
        return
    if isinstance(solver, Compiled) and grid.uniform is not None:
        _solve_compiled(solver, field, x0, rec, grid, progress)
        return
    x, cache, h_cache, steps = x0, None, None, 0
    for a, b, m, h in zip(t_list[:-1], t_list[1:], grid.counts, grid.steps):
        if h != h_cache:  # the step cache (e.g. exp(hΩ/2)) depends on the step size only
            cache, h_cache = solver.init(field, a, x, dt=h), h
        for j in range(m):
            res = solver.step(field, a + j * h, h, x, cache)
            x, cache = res.x, res.cache
        steps += m * fuse
        _update_stats(rec, solver, steps)
        rec.record(x)
        if progress is not None:
            progress.update(b)


def _solve_compiled(solver: Compiled, field: Any, x0: torch.Tensor, rec: Recorder, grid: _Grid,
                    progress: _Progress | None) -> None:
    """A uniform grid as calls of the compiled solve program (one step and the observables per
    call), with the step cache built once and the times passed as tensors."""
    t_list = rec.t_list
    m, fuse = grid.counts[0], solver.fuse
    hi_value = grid.uniform / fuse
    device = x0.device
    hi = torch.tensor(hi_value, dtype=torch.float64, device=device)
    cache = solver.inner.init(field, t_list[0], x0, dt=hi)
    program = solver.program()
    # an autonomous field ignores t: one time tensor serves every call
    fixed_t = torch.tensor(t_list[0], dtype=torch.float64, device=device) if getattr(field, "autonomous", False) \
        else None
    x, observe = x0, rec.observe
    for i, a in enumerate(t_list[:-1]):
        for j in range(m):
            t = fixed_t if fixed_t is not None else \
                torch.tensor(a + j * fuse * hi_value, dtype=torch.float64, device=device)
            x, obs, total = program(solver.inner, fuse, field, t, hi, x, cache, observe)
        rec.record_computed(x, obs, total)
        _update_stats(rec, solver, (i + 1) * m * fuse)
        if progress is not None:
            progress.update(t_list[i + 1])


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
        # a method in the rotating frame steps the coupling term: size the first step by it
        inner, _ = _inner(solver)
        rhs = field.coupling_term if getattr(inner, "rotating_frame", False) else field
        h = controller.initial_step(rhs, t, x0, cache, solver.order - 1, rtol, atol, direction)
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


def _check_adjoint(adjoint: Any, solver: AbstractSolver) -> RecursiveCheckpoint | bool:
    if isinstance(adjoint, RecursiveCheckpoint):
        if solver.adaptive or not solver.native:
            raise ValueError(f"adjoint: a RecursiveCheckpoint schedule applies to native fixed-step methods, got "
                             f"method {solver.name!r}; pass adjoint=True")
        return adjoint
    if not isinstance(adjoint, bool):
        raise TypeError(f"adjoint: expected a bool or an integrators.RecursiveCheckpoint, got {type(adjoint).__name__}")
    if adjoint and solver.native and not solver.adaptive:
        return RecursiveCheckpoint()
    return adjoint


def _check_finite(x0: torch.Tensor) -> None:
    """A NaN/inf initial state is bad input (one sync), not a solver failure at t0."""
    if x0.numel() and not bool(torch.isfinite(x0.detach()).all()):
        bad = tuple(torch.nonzero(~torch.isfinite(x0.detach()))[0].tolist())
        raise ValueError(f"x0: contains NaN or inf (first at index {bad}); the initial state must be finite")


def _stepping_layout(field: Any, x0: torch.Tensor) -> torch.Tensor:
    """``x0`` in component-major memory when the field's coupling is written for any memory order
    (the built-in graph couplings declare ``any_layout``), else as given."""
    coupling = getattr(field, "coupling", None)
    if x0.dim() >= 2 and getattr(coupling, "any_layout", False):
        return component_major(x0)
    return x0


def solve(field: Any, x0: torch.Tensor, t: torch.Tensor | Sequence[float], method: str | AbstractSolver = "rk4", *,
          dt: float | None = None, rtol: float = _DEFAULT_RTOL, atol: float = _DEFAULT_ATOL,
          adjoint: bool | RecursiveCheckpoint = False,
          observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None, save_states: bool = True,
          options: Mapping[str, Any] | None = None, progress: bool = False, check_stability: bool = True,
          drift_tol: float | None = DEFAULT_DRIFT_TOL) -> Solution:
    """Integrate ``dx/dt = field(t, x)`` from ``x(t[0]) = x0`` and return the states at ``t``.

    The first four arguments are the main ones (as in ``torchdiffeq.odeint``); everything after
    them is keyword-only.

    Args:
        field: the vector field, ``field(t, x) -> dx/dt`` (a :class:`kuramoto.KuramotoField`
            or any ``nn.Module``/callable of that form).
        x0: initial state ``[..., n]``, any leading (batch, oscillator, image) shape, the sphere
            axis last; finite. Methods that stay on the sphere require unit vectors. For a
            sweep over a batched coupling strength (``MeanField(K.view(-1, 1, 1, 1))``) give
            the batch axes, e.g. ``x0.expand(len(K), *x0.shape)``.
        t: output times ``[T]`` (strictly monotone; ``t[0]`` is the initial time; decreasing
            times integrate backwards).
        method: a name in :data:`integrators.METHODS` (``"rk4"``, ``"euler_normalized"``,
            ``"lawson_rk4"``, ``"lawson_dopri5"``, ...) or an :class:`~integrators.AbstractSolver`
            (e.g. :class:`~integrators.Compiled`, which runs a uniform grid as one compiled program).
        dt: step size. Fixed-step methods need it: each output interval is split into equal
            steps no longer than ``dt`` (up to the rounding of the output times in their dtype,
            and one part in 10^6: ``torch.linspace(0, 50, 501)`` with ``dt=0.01`` is exactly
            5000 steps), so the outputs are steps, never interpolations; a grid of more than
            10^9 steps is refused. For an adaptive method it is the first step (chosen
            automatically when ``None``).
        rtol, atol: tolerances of adaptive methods (and of the implicit Adams corrector);
            changing them for a method that ignores them raises.
        adjoint: memory-saving gradients, exact for native methods. Native fixed-step methods:
            recursive checkpointing of the discrete map (``True`` is
            :class:`~integrators.RecursiveCheckpoint` ``()``: segments of ``√(T / (3·stages))``
            steps, one snapshot per segment; pass an instance for another trade-off), the same
            gradient as backprop to round-off. Native adaptive methods: each step recomputed in
            backward (accepted step sizes held fixed). torchdiffeq methods: ``odeint_adjoint``
            over the field's parameters (and its stimulus if it requires grad) with the
            seminorm; note this is the continuous adjoint, which for a coarse fixed-step solve
            is the gradient of a different problem.
        observe: ``{name: fn}``; ``fn(x)`` is evaluated at every output time and stacked in
            ``Solution.observed[name]`` (``[T, ...]``), e.g. ``{"r": kuramoto.order_parameter}``.
        save_states: keep the states at the output times (``False``: only the observations and
            the final state, so a long run of a large system never holds its trajectory).
        options: keyword options of the method's constructor (``ValueError`` lists the valid
            ones); only with a method name.
        progress: show a tqdm progress bar over the integration time.
        check_stability: refuse (``ValueError``) a fixed-step solve whose step is beyond the
            method's stability limit for the field's fastest natural frequency (``h·max|Ω|``,
            unless the method rotates Ω exactly) or for its coupling (``h·L``);
            see :mod:`integrators.guards`. ``False`` runs anyway.
        drift_tol: for ambient methods (which do not renormalise) on a field that keeps every
            ``|x_i|``: the largest ``| |x_i(t)| / |x_i(t0)| − 1 |`` before a
            :class:`~integrators.DriftWarning` (checked per chunk of outputs; the states are
            returned as computed). ``None`` switches the check off.

    Returns:
        :class:`~integrators.Solution` with ``ts``, ``xs`` (``[T, *x0.shape]`` or ``None``),
        ``observed``, ``stats`` (``nfe``, ``steps``, ``accepted``, ``rejected``), ``status``,
        ``message`` and ``x_final``.

    Raises:
        ValueError: bad arguments or pairings: unknown method or option, a fixed-step method
            without ``dt``, a ``dt`` too small to finish, tolerances given to a method that
            ignores them, ``adjoint=True`` with the SciPy reference, a NaN/inf ``x0``, ``x0``
            off the sphere for a method that stays on it or not fitting the field, a step
            beyond the method's stability limit.
        TypeError: wrong argument types.
        SolverError: the state became NaN/inf (checked per chunk of outputs, naming the first
            such output time), the step size underflowed, or an adaptive method reached
            ``max_steps``; the exception's ``solution`` holds the outputs reached so far.

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
    ts, t_list, eps = _check_times(t, x0)
    rtol, atol = _check_tolerances(rtol, atol)
    adjoint_spec = _check_adjoint(adjoint, solver)
    for flag, value in (("save_states", save_states), ("check_stability", check_stability)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag}: expected a bool, got {type(value).__name__}")
    if drift_tol is not None and (isinstance(drift_tol, bool) or not isinstance(drift_tol, (int, float))
                                  or not drift_tol > 0):
        raise ValueError(f"drift_tol: expected a positive float or None, got {drift_tol!r}")
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
                         f"or pick an adaptive method such as 'lawson_dopri5' or 'dopri5'")
    if solver.adaptive and dt is not None and len(t_list) > 1:
        floor = 1e-14 * max(1.0, abs(t_list[0]), abs(t_list[-1]))
        if dt <= floor:
            raise ValueError(f"dt: the first step {dt:g} of adaptive method {name!r} is below the smallest step it can "
                             f"take at these times ({floor:.1g}); pass a larger dt or None (chosen automatically)")
    tolerances_changed = (rtol, atol) != (_DEFAULT_RTOL, _DEFAULT_ATOL)
    if tolerances_changed and (not solver.uses_tolerances or isinstance(solver, ScipyReference)):
        where = ("its own options (options={'rtol': ..., 'atol': ...})" if isinstance(solver, ScipyReference)
                 else "none: it takes fixed steps")
        raise ValueError(f"rtol, atol: method {name!r} does not use solve()'s tolerances (it uses {where}); "
                         f"got rtol={rtol}, atol={atol}")
    if adjoint and isinstance(solver, ScipyReference):
        raise ValueError(f"adjoint: method {name!r} gives no gradients (a float64 SciPy reference); use a "
                         f"differentiable method with adjoint=True")
    _check_finite(x0)
    if solver.stays_on_sphere:
        assert_state(x0.detach(), "x0")
    check_input = getattr(field, "check_input", None)
    if callable(check_input) and not isinstance(solver, ScipyReference):  # the reference steps a float64 copy
        check_input(x0, "x0")
    grid = None
    if not solver.adaptive and len(t_list) > 1:
        grid = _fixed_grid(t_list, dt, eps)
        if check_stability:
            check_stability_of(solver, field, max(abs(h) for h in grid.steps))

    rec = Recorder(ts, t_list, name, save_states, observe_fns)
    bar = _Progress(t_list[0], t_list[-1], name) if progress and len(t_list) > 1 else None
    try:
        if isinstance(solver, ScipyReference):
            solve_reference(solver, field, x0, rec, bar)
        elif isinstance(solver, TORCHDIFFEQ_FAMILIES):
            solve_torchdiffeq(solver, field, x0, rec, dt, rtol, atol, bool(adjoint), bar, eps, drift_tol)
        elif isinstance(solver, AbstractEmbeddedRK) or (isinstance(solver, Compiled) and solver.adaptive):
            _solve_adaptive(solver, field, _stepping_layout(field, x0), rec, dt, rtol, atol, bool(adjoint), bar)
        elif not solver.adaptive:
            spec = adjoint_spec if isinstance(adjoint_spec, RecursiveCheckpoint) else None
            if grid is None:
                rec.record(x0)
            else:
                _solve_fixed(solver, field, _stepping_layout(field, x0), rec, grid, spec, bar)
        else:
            raise TypeError(f"method: {type(solver).__name__} is adaptive but neither an AbstractEmbeddedRK nor a "
                            f"delegated method; solve() does not know how to control its steps")
    finally:
        if bar is not None:
            bar.close()
    return rec.finish()


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

    check_input = getattr(field, "check_input", None)
    if callable(check_input):
        check_input(x0, "x0")
    states = [x0] if return_states else None
    observed: dict[str, list[torch.Tensor]] = {k: [fn(x0)] for k, fn in observe_fns.items()}
    x = _stepping_layout(field, x0)
    cache = solver.init(field, t0, x, dt=dt)
    span = segment if use_ckpt else max(steps, 1)  # steps per segment (one segment without checkpoints)
    for k in range(0, steps, span):
        x, cache, seg_states, seg_obs = _run_steps(solver, field, t0, dt, k, min(span, steps - k), x, cache,
                                                   observe_fns, states is not None, use_ckpt)
        if states is not None:
            states.extend(seg_states)
        for key, values in seg_obs.items():
            observed[key].extend(values)
    x = x if x is x0 else x.contiguous()
    return x, (torch.stack(states) if states is not None else None), {k: torch.stack(v) for k, v in observed.items()}
