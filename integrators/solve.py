"""The entry points: :func:`solve` (output times, observables, statistics, adjoints) and
:func:`step_fixed` (T fixed steps, the primitive of a discrete AKOrN layer).

``solve`` validates everything once at its entry (the state, its fit to the field, times, the
method's pairings, the step grid, stability; :mod:`integrators.inputs`,
:func:`integrators.check_pairing`), then hands the stepping to the driver of the method's
family: :mod:`integrators.fixed_solve`, :mod:`integrators.adaptive_solve`, torchdiffeq
(:mod:`integrators.delegate`) or SciPy (:mod:`integrators.reference`). Native methods step the
state in component-major memory (:mod:`kuramoto.sphere`) and return it in the usual order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from kuramoto import assert_state
from kuramoto.checks import check_bool
from kuramoto.sphere import component_major

from .adaptive import AbstractEmbeddedRK
from .adaptive_solve import solve_adaptive
from .ambient import TORCHDIFFEQ_FAMILIES
from .base import AbstractSolver, TimeLike, check_state_tensor
from .checkpoint import RecursiveCheckpoint
from .compiled import Compiled
from .delegate import solve_torchdiffeq
from .fixed_solve import Grid, fixed_grid, run_steps, solve_fixed
from .guards import DEFAULT_DRIFT_TOL
from .guards import check_stability as check_stability_of
from .inputs import (
    check_adjoint,
    check_drift_tol,
    check_field,
    check_finite,
    check_first_step,
    check_segment,
    check_solve_dt,
    check_step_fixed_args,
    check_times,
    check_tolerances,
    solver_with_options,
)
from .pairing import check_pairing
from .reference import ScipyReference, solve_reference
from .solution import Progress, Recorder, Solution, check_observe

__all__ = ["solve", "step_fixed"]

_DEFAULT_RTOL, _DEFAULT_ATOL = 1e-6, 1e-8


def stepping_layout(field: Any, x0: torch.Tensor) -> torch.Tensor:
    """``x0`` in component-major memory when the field's coupling is written for any memory order
    (the built-in graph couplings declare ``any_layout``), else as given."""
    coupling = getattr(field, "coupling", None)
    if x0.dim() >= 2 and getattr(coupling, "any_layout", False):
        return component_major(x0)
    return x0


@dataclass(frozen=True)
class _Plan:
    """A solve whose arguments passed every check: the solver, the times, the step grid of a
    fixed-step method, and what to record."""

    solver: AbstractSolver
    ts: torch.Tensor
    t_list: list[float]
    eps: float
    dt: float | None
    rtol: float
    atol: float
    adjoint: RecursiveCheckpoint | bool
    observe: dict[str, Callable[[torch.Tensor], torch.Tensor]]
    save_states: bool
    drift_tol: float | None
    grid: Grid | None

    def run(self, field: Any, x0: torch.Tensor, progress: bool) -> Solution:
        """Step with the driver of the method's family and return the :class:`Solution`."""
        solver, t_list = self.solver, self.t_list
        rec = Recorder(self.ts, t_list, solver.name, self.save_states, self.observe)
        bar = Progress(t_list[0], t_list[-1], solver.name) if progress and len(t_list) > 1 else None
        adjoint = bool(self.adjoint)
        try:
            if isinstance(solver, ScipyReference):
                solve_reference(solver, field, x0, rec, bar)
            elif isinstance(solver, TORCHDIFFEQ_FAMILIES):
                solve_torchdiffeq(solver, field, x0, rec, self.dt, self.rtol, self.atol, adjoint, bar, self.eps,
                                  self.drift_tol)
            elif isinstance(solver, AbstractEmbeddedRK) or (isinstance(solver, Compiled) and solver.adaptive):
                solve_adaptive(solver, field, stepping_layout(field, x0), rec, self.dt, self.rtol, self.atol, adjoint,
                               bar)
            elif not solver.adaptive:
                spec = self.adjoint if isinstance(self.adjoint, RecursiveCheckpoint) else None
                if self.grid is None:
                    rec.record(x0)
                else:
                    solve_fixed(solver, field, stepping_layout(field, x0), rec, self.grid, spec, bar)
            else:
                raise TypeError(f"method: {type(solver).__name__} is adaptive but neither an AbstractEmbeddedRK nor a "
                                f"delegated method; solve() does not know how to control its steps")
        finally:
            if bar is not None:
                bar.close()
        return rec.finish()


def _plan(field: Any, x0: Any, t: Any, method: Any, options: Any, dt: Any, rtol: Any, atol: Any, adjoint: Any,
          observe: Any, save_states: Any, check_stability: Any, drift_tol: Any) -> _Plan:
    """Every check of :func:`solve`'s arguments, once, before anything steps."""
    check_field(field)
    check_state_tensor(x0, "x0")
    solver = solver_with_options(method, options)
    ts, t_list, eps = check_times(t, x0)
    rtol, atol = check_tolerances(rtol, atol)
    adjoint = check_adjoint(adjoint, solver)
    check_bool(save_states, "save_states")
    check_bool(check_stability, "check_stability")
    drift_tol = check_drift_tol(drift_tol)
    observe_fns = check_observe(observe)
    dt = check_solve_dt(dt)
    given = {"rtol": rtol, "atol": atol} if (rtol, atol) != (_DEFAULT_RTOL, _DEFAULT_ATOL) else {}
    check_pairing(solver, dt=dt, adjoint=adjoint, **given)
    check_first_step(dt, t_list, solver)
    check_finite(x0)
    if solver.stays_on_sphere:
        assert_state(x0.detach(), "x0")
    check_input = getattr(field, "check_input", None)
    if callable(check_input) and not isinstance(solver, ScipyReference):  # the reference steps a float64 copy
        check_input(x0, "x0")
    grid = None
    if not solver.adaptive and len(t_list) > 1:
        grid = fixed_grid(t_list, dt, eps)
        if check_stability:
            check_stability_of(solver, field, max(abs(h) for h in grid.steps))
    return _Plan(solver, ts, t_list, eps, dt, rtol, atol, adjoint, observe_fns, save_states, drift_tol, grid)


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
            steps and the fewest snapshots with which no segment is re-run more than twice;
            pass an instance for another trade-off), the same
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
    plan = _plan(field, x0, t, method, options, dt, rtol, atol, adjoint, observe, save_states, check_stability,
                 drift_tol)
    return plan.run(field, x0, progress)


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
    check_field(field)
    check_state_tensor(x0, "x0")
    dt = check_step_fixed_args(x0, dt, steps, t0)
    solver = check_pairing(method, caller="step_fixed()", dt=dt, native=True)
    observe_fns = check_observe(observe)
    segment = check_segment(checkpoint)
    use_ckpt = segment > 0 and torch.is_grad_enabled()

    check_input = getattr(field, "check_input", None)
    if callable(check_input):
        check_input(x0, "x0")
    states = [x0] if return_states else None
    observed: dict[str, list[torch.Tensor]] = {k: [fn(x0)] for k, fn in observe_fns.items()}
    x = stepping_layout(field, x0)
    cache = solver.init(field, t0, x, dt=dt)
    span = segment if use_ckpt else max(steps, 1)  # steps per segment (one segment without checkpoints)
    for k in range(0, steps, span):
        x, cache, seg_states, seg_obs = run_steps(solver, field, t0, dt, k, min(span, steps - k), x, cache,
                                                  observe_fns, states is not None, use_ckpt)
        if states is not None:
            states.extend(seg_states)
        for key, values in seg_obs.items():
            observed[key].extend(values)
    x = x if x is x0 else x.contiguous()
    return x, (torch.stack(states) if states is not None else None), {k: torch.stack(v) for k, v in observed.items()}
