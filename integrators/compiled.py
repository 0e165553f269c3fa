"""Native fixed-step methods under ``torch.compile``: a solve as calls of one compiled program.

:class:`Compiled` wraps a native fixed-step method. Given to :func:`integrators.solve` on a
uniform output grid (every output interval the same number of equal steps: ``torch.linspace``
times), the solve runs as calls of one compiled program that does a step *and* evaluates the
observables (``observe={"r": kuramoto.order_parameter}``) on the new state, so nothing of a
solve runs as eager ops:

- the method's step cache (``exp(hΩ/2)`` for ``lawson_rk4``) is computed once per solve and
  passed in as an input;
- time, step size, state, coupling strengths and frequencies are tensor inputs: changing their
  values never recompiles (one compile per method, shapes, dtype and observables);
- finiteness is tracked per output (the sum of the state, computed in the program) and checked
  on the host once per chunk of outputs, so a blow-up still raises
  :class:`~integrators.SolverError` naming the first non-finite output time, without a device
  sync per output.

For the mean-field model (the classic one for n = 2) the program steps ``lawson_rk4`` on the
state's component planes (:mod:`kuramoto.planes`; :func:`uses_planes` says when), where
inductor fuses each stage's elementwise work into its mean-field reduction: at N = 10^6 in
float32 a step takes 7–8 ms instead of 15 ms on the state ``[N, 2]``. On the planes several
steps per call pay at small N: at N = 500 (float64, 4000 steps, r every 4 steps) one step per
call took 0.21 s, ``fuse=2`` 0.16 s, ``fuse=4`` 0.13 s (a call costs ~45 µs besides its kernel). A
larger program compiles longer: a new program took 6.3 s with ``fuse=2`` and 9.8 s with ``fuse=4``
in a fresh process, ~7 s more in the first process on a machine, whose empty inductor cache
also builds inductor's CPU-capability probes (``akorn bench peers -- --only W1 --cold-compile``).
On the state, unrolled steps made the kernel 1.6–4.3× slower per step (inductor recomputed each
step's stage values inside the next one), so ``fuse`` stays a choice.

On non-uniform grids (and through :func:`integrators.step_fixed`) the wrapper compiles one
step without the observables. If compilation fails (no C++ compiler, an unsupported backend),
it warns once and runs the same program eagerly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from kuramoto import order_parameter, planes
from kuramoto.checks import is_int

from .adaptive import AbstractEmbeddedRK
from .base import AbstractSolver, StepResult, TimeLike
from .registry import get_solver

__all__ = ["Compiled", "inner_method", "uses_planes"]


def _like(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``out`` in ``ref``'s memory order (a step may change it, e.g. pair rotations for n >= 4):
    the next call then sees the same strides and reuses the compiled program."""
    if out.stride() == ref.stride():
        return out
    return torch.empty_strided(ref.shape, ref.stride(), dtype=out.dtype, device=out.device).copy_(out)


def _step_program(solver: AbstractSolver, fuse: int, field: Any, t: torch.Tensor, dt: torch.Tensor, x: torch.Tensor,
                  cache: Any) -> StepResult:
    """One step of size ``dt`` made of ``fuse`` inner steps (unrolled by the tracer into one graph)."""
    h = dt / fuse
    y, error = x, None
    for j in range(fuse):
        y, error, cache = solver.step(field, t + j * h, h, y, cache)
    return StepResult(_like(y, x), error, cache)


def _solve_program(solver: AbstractSolver, fuse: int, field: Any, t: torch.Tensor, hi: torch.Tensor, x: torch.Tensor,
                   cache: Any, observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], on_planes: bool = False
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """``fuse`` inner steps of size ``hi`` from ``(t, x)`` with the given step cache, then the
    observables and the sum of the new state (its finiteness witness). ``on_planes``: the steps
    run on the state's component planes (``solver.step_planes``, see :func:`uses_planes`)."""
    if on_planes:
        p = planes.split(x)
        for j in range(fuse):
            p = solver.step_planes(field, t + j * hi, hi, p, cache)
        y = _like(planes.join(p), x)
        # r from the planes: its reduction fuses into the last stage's pass
        obs = {k: planes.order_parameter(p) if fn is order_parameter else fn(y) for k, fn in observe.items()}
        total = sum(pi.sum() for pi in p)
        return y, obs, total
    y = x
    for j in range(fuse):
        y = solver.step(field, t + j * hi, hi, y, cache).x
    y = _like(y, x)
    total = y.sum() if y.dtype in (torch.float32, torch.float64) else y.sum(dtype=torch.float32)
    return y, {k: fn(y) for k, fn in observe.items()}, total


class Compiled(AbstractSolver):
    """A native fixed-step method run under ``torch.compile``.

    Use it wherever a method is accepted::

        solve(field, x0, torch.linspace(0, 10, 1001), Compiled("lawson_rk4"), dt=0.0025,
              save_states=False, observe={"r": kuramoto.order_parameter})

    Through :func:`integrators.solve` on a uniform grid every step is one call of a compiled
    program that also evaluates the observables (see the module docstring); the first call
    compiles it (a few seconds with inductor on a 2-core CPU). The wrapper declares the
    wrapped method's order and capabilities; its ``stats`` count the wrapped method's steps.

    Args:
        method: a native fixed-step method name (or instance), e.g. ``"lawson_rk4"``.
        backend, mode: passed to ``torch.compile`` (``backend="eager"`` only traces, for testing).
        compile_options: ``torch.compile(options=...)``.
        fuse: inner steps per step of the wrapper (and per compiled call): a step of size ``h``
            is ``fuse`` steps of size ``h / fuse``. Pass ``dt`` = the inner step size × ``fuse``.
        **options: the wrapped method's options.

    An adaptive native method (``Compiled("lawson_dopri5")``) is compiled step by step: its
    controller still runs in Python between the steps (one host sync per step, for the
    accept/reject decision), but the step itself is one call.

    Raises:
        ValueError: the method is not native (or adaptive without an embedded pair); a bad ``fuse``.
    """

    def __init__(self, method: str | AbstractSolver, *, backend: Any = "inductor", mode: str | None = None,
                 compile_options: dict[str, Any] | None = None, fuse: int = 1, **options: Any) -> None:
        inner = get_solver(method, **options)
        if not inner.native or isinstance(inner, Compiled) or (inner.adaptive and not isinstance(inner, AbstractEmbeddedRK)):
            raise ValueError(f"method: Compiled wraps native methods (fixed-step, or adaptive embedded pairs), got "
                             f"{inner.name!r}")
        if inner.adaptive and fuse != 1:
            raise ValueError(f"fuse: an adaptive method takes the steps its controller chooses, got fuse={fuse!r} "
                             f"for {inner.name!r}")
        if not is_int(fuse) or fuse < 1:
            raise ValueError(f"fuse: expected a positive integer (steps per compiled call), got {fuse!r}")
        if compile_options is not None and not isinstance(compile_options, dict):
            raise TypeError(f"compile_options: expected a dict for torch.compile(options=...), got "
                            f"{type(compile_options).__name__}")
        self.inner, self.fuse = inner, fuse
        self.backend, self.mode = backend, mode
        # Instance attributes mirror the wrapped method's class attributes (per step of the wrapper).
        self.name = f"compiled:{inner.name}"
        self.order, self.adaptive, self.stays_on_sphere = inner.order, inner.adaptive, inner.stays_on_sphere
        self.native, self.uses_tolerances, self.stages = True, inner.uses_tolerances, inner.stages * fuse
        if inner.adaptive:  # solve steps it with the wrapped method's controller
            self.controller, self.max_steps = inner.controller, inner.max_steps
        self.exact_rotation = inner.exact_rotation
        self.rotation_limit, self.coupling_limit = inner.rotation_limit * fuse, inner.coupling_limit * fuse
        self.compile_options = dict(compile_options or {})
        kwargs = dict(backend=backend, mode=mode, dynamic=False, options=self.compile_options or None)
        self._step = self._guarded(torch.compile(_step_program, **kwargs), _step_program)
        self._solve = self._guarded(torch.compile(_solve_program, **kwargs), _solve_program)

    def _guarded(self, compiled: Callable[..., Any], eager: Callable[..., Any]) -> Callable[..., Any]:
        """The compiled program; the first call (which traces and compiles) falls back, with one
        warning, to the eager program if compiling fails."""
        state: dict[str, Any] = {"fn": None}

        def call(*args: Any) -> Any:
            fn = state["fn"]
            if fn is not None:
                return fn(*args)
            try:
                with warnings.catch_warnings():
                    # dynamo reads .grad of a non-leaf input while tracing (a state that requires
                    # grad, e.g. the component-major copy of x0); torch then warns about itself
                    warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf",
                                            category=UserWarning)
                    out = compiled(*args)
            except torch._dynamo.exc.BackendCompilerFailed as exc:
                warnings.warn(f"Compiled({self.inner.name!r}): torch.compile failed ({type(exc.inner_exception).__name__}: "
                              f"{str(exc.inner_exception)[:200]}); running the same steps eagerly", RuntimeWarning,
                              stacklevel=3)
                state["fn"] = eager
                return eager(*args)
            state["fn"] = compiled
            return out
        return call

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> Any:
        if self.inner.adaptive:  # the FSAL stage, a tensor
            return self.inner.init(field, t0, x0)
        # A fixed-step cache depends on the step size only; the one-step program builds it
        # inside the graph from the step it is given (a Python float in a cache would be a
        # constant of the graph, recompiled for every new step size).
        return None

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        dt = torch.as_tensor(dt, dtype=torch.float64, device=x.device) if not isinstance(dt, torch.Tensor) else dt
        if self.inner.adaptive:
            return self._step(self.inner, 1, field, t, dt, x, cache)
        return StepResult(self._step(self.inner, self.fuse, field, t, dt, x, None).x, None, None)

    def program(self) -> Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]]:
        """The solve program: ``(inner, fuse, field, t, hi, x, cache, observe) -> (x', observed, sum)``
        for ``fuse`` inner steps of size ``hi`` (a 0-d float64 tensor; ``cache`` from
        ``inner.init(..., dt=hi)``)."""
        return self._solve

    def __repr__(self) -> str:
        fuse = f", fuse={self.fuse}" if self.fuse != 1 else ""
        return f"Compiled({self.inner!r}, backend={self.backend!r}{fuse})"


def uses_planes(solver: AbstractSolver, field: Any, x0: torch.Tensor) -> bool:
    """Whether a compiled solve of ``field`` from ``x0`` runs ``solver`` on the component planes:
    the method offers ``step_planes`` (``lawson_rk4``) and the field has a planes form
    (:func:`kuramoto.planes.supports`: the mean-field model, the classic one for n = 2)."""
    return callable(getattr(solver, "step_planes", None)) and planes.supports(field, x0)


def inner_method(solver: AbstractSolver) -> tuple[AbstractSolver, int]:
    """The method that takes the steps of ``solver``, and how many of them one step of ``solver`` is."""
    return (solver.inner, solver.fuse) if isinstance(solver, Compiled) else (solver, 1)
