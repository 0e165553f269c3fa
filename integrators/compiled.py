"""Native fixed-step methods under ``torch.compile``: a whole solve as one compiled program.

:class:`Compiled` wraps a native fixed-step method. Given to :func:`integrators.solve` on a
uniform output grid (every output interval the same number of equal steps: ``torch.linspace``
times), the solve runs as one program, called once per ``outputs_per_call`` outputs:

- the steps *and* the observables (``observe={"r": kuramoto.order_parameter}``) are inside the
  compiled region, so an output costs no eager op;
- the method's step cache (``exp(hΩ/2)`` for ``lawson_rk4``) is computed once per solve and
  passed in as an input;
- times, step size, state, coupling strengths and frequencies are tensor inputs: changing their
  values never recompiles (one compile per method, shapes, dtype, observables and grid shape);
- finiteness is tracked per output (the sum of the state, one reduction) and checked on the host
  once per chunk of outputs, so a blow-up still raises :class:`~integrators.SolverError` naming
  the first non-finite output time, without a device sync per output.

On other grids (or through :func:`integrators.step_fixed`) the wrapper compiles one step.
If compilation fails (no C++ compiler, an unsupported backend), it warns once and runs the
same program eagerly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .base import AbstractSolver, StepResult, TimeLike

__all__ = ["Compiled"]


def _like(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``out`` in ``ref``'s memory order (a step may change it, e.g. pair rotations for n >= 4):
    the next call then sees the same strides and reuses the compiled program."""
    if out.stride() == ref.stride():
        return out
    return torch.empty_strided(ref.shape, ref.stride(), dtype=out.dtype, device=out.device).copy_(out)


def _run_steps(solver: AbstractSolver, field: Any, t: torch.Tensor, hi: torch.Tensor, x: torch.Tensor, cache: Any,
               count: int) -> torch.Tensor:
    x_in = x
    for j in range(count):
        x = solver.step(field, t + j * hi, hi, x, cache).x
    return _like(x, x_in)


def _step_program(solver: AbstractSolver, fuse: int, field: Any, t: torch.Tensor, dt: torch.Tensor, x: torch.Tensor,
                  cache: Any) -> StepResult:
    """One step of size ``dt`` made of ``fuse`` inner steps (unrolled by the tracer into one graph)."""
    h = dt / fuse
    y, error = x, None
    for j in range(fuse):
        y, error, cache = solver.step(field, t + j * h, h, y, cache)
    return StepResult(_like(y, x), error, cache)


def _solve_program(solver: AbstractSolver, field: Any, t0: torch.Tensor, hi: torch.Tensor, x: torch.Tensor,
                   cache: Any, observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], steps: int, outputs: int,
                   keep: bool) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor], torch.Tensor]:
    """``outputs`` outputs of ``steps`` inner steps of size ``hi`` each, from time ``t0``: the final
    state, the states (if ``keep``), the observations ``[outputs, ...]`` and the per-output sums."""
    xs, sums = [], []
    obs: dict[str, list[torch.Tensor]] = {k: [] for k in observe}
    for i in range(outputs):
        x = _run_steps(solver, field, t0 + (i * steps) * hi, hi, x, cache, steps)
        sums.append(x.sum() if x.dtype in (torch.float32, torch.float64) else x.sum(dtype=torch.float32))
        if keep:
            xs.append(x)
        for k, fn in observe.items():
            obs[k].append(fn(x))
    return (x, torch.stack(xs) if keep else None, {k: torch.stack(v) for k, v in obs.items()}, torch.stack(sums))


class Compiled(AbstractSolver):
    """A native fixed-step method run under ``torch.compile``.

    Use it wherever a method is accepted::

        solve(field, x0, torch.linspace(0, 10, 1001), Compiled("lawson_rk4"), dt=0.0025,
              save_states=False, observe={"r": kuramoto.order_parameter})

    Through :func:`integrators.solve` on a uniform grid the whole solve is one compiled program
    (see the module docstring); the first call compiles it (a few seconds with inductor on a
    2-core CPU; cached on disk by torch afterwards). The wrapper declares the wrapped method's
    order and capabilities; its ``stats`` count the wrapped method's steps.

    Args:
        method: a native fixed-step method name (or instance), e.g. ``"lawson_rk4"``.
        backend, mode: passed to ``torch.compile`` (``backend="eager"`` only traces, for testing).
        compile_options: ``torch.compile(options=...)``.
        fuse: inner steps per step of the wrapper: a step of size ``h`` is ``fuse`` steps of size
            ``h / fuse``. Pass ``dt`` = the inner step size × ``fuse``. (With the whole-solve
            program every output interval is already one call; ``fuse`` matters for
            :func:`integrators.step_fixed` and non-uniform grids.)
        outputs_per_call: outputs computed per call of the solve program (``None``: chosen from
            the work per output, more for small states whose steps cost less than a call). The
            last call may compute a few outputs past the end, which are discarded.
        **options: the wrapped method's options.

    Raises:
        ValueError: the method is adaptive or not native; a bad ``fuse`` or ``outputs_per_call``.
    """

    def __init__(self, method: str | AbstractSolver, *, backend: Any = "inductor", mode: str | None = None,
                 compile_options: dict[str, Any] | None = None, fuse: int = 1, outputs_per_call: int | None = None,
                 **options: Any) -> None:
        from .registry import get_solver

        inner = get_solver(method, **options)
        if inner.adaptive or not inner.native or isinstance(inner, Compiled):
            raise ValueError(f"method: Compiled wraps native fixed-step methods, got {inner.name!r}")
        if isinstance(fuse, bool) or not isinstance(fuse, int) or fuse < 1:
            raise ValueError(f"fuse: expected a positive integer (steps per compiled call), got {fuse!r}")
        if outputs_per_call is not None and (isinstance(outputs_per_call, bool) or not isinstance(outputs_per_call, int)
                                             or outputs_per_call < 1):
            raise ValueError(f"outputs_per_call: expected a positive integer or None, got {outputs_per_call!r}")
        if compile_options is not None and not isinstance(compile_options, dict):
            raise TypeError(f"compile_options: expected a dict for torch.compile(options=...), got "
                            f"{type(compile_options).__name__}")
        self.inner, self.fuse, self.outputs_per_call = inner, fuse, outputs_per_call
        self.backend, self.mode = backend, mode
        # Instance attributes mirror the wrapped method's class attributes (per step of the wrapper).
        self.name = f"compiled:{inner.name}"
        self.order, self.adaptive, self.stays_on_sphere = inner.order, False, inner.stays_on_sphere
        self.native, self.uses_tolerances, self.stages = True, False, inner.stages * fuse
        self.exact_rotation = inner.exact_rotation
        self.rotation_limit, self.coupling_limit = inner.rotation_limit * fuse, inner.coupling_limit * fuse
        self.compile_options = dict(compile_options or {})
        kwargs = dict(backend=backend, mode=mode, dynamic=False, options=self.compile_options or None)
        self._step = self._guarded(torch.compile(_step_program, **kwargs), _step_program)
        self._solve = self._guarded(torch.compile(_solve_program, **kwargs), _solve_program)

    def _guarded(self, compiled: Callable[..., Any], eager: Callable[..., Any]) -> Callable[..., Any]:
        """The compiled program, falling back (with one warning) to the eager one if compiling fails."""
        state = {"fn": compiled}

        def call(*args: Any) -> Any:
            try:
                with warnings.catch_warnings():
                    # dynamo reads .grad of a non-leaf input while tracing (a state that requires
                    # grad, e.g. the component-major copy of x0); torch then warns about itself
                    warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf",
                                            category=UserWarning)
                    return state["fn"](*args)
            except torch._dynamo.exc.BackendCompilerFailed as exc:
                warnings.warn(f"Compiled({self.inner.name!r}): torch.compile failed ({type(exc.inner_exception).__name__}: "
                              f"{str(exc.inner_exception)[:200]}); running the same steps eagerly", RuntimeWarning,
                              stacklevel=3)
                state["fn"] = eager
                return eager(*args)
        return call

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> None:
        # A fixed-step cache depends on the step size only; the one-step program builds it
        # inside the graph from the step it is given (a Python float in a cache would be a
        # constant of the graph, recompiled for every new step size).
        return None

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        dt = torch.as_tensor(dt, dtype=torch.float64, device=x.device) if not isinstance(dt, torch.Tensor) else dt
        return StepResult(self._step(self.inner, self.fuse, field, t, dt, x, None).x, None, None)

    def chunk_size(self, steps_per_output: int, x: torch.Tensor) -> int:
        """Outputs per call of the solve program: enough that a call's work (steps × state size)
        reaches ~10^6 element-steps, at most 16 (the program is unrolled, and compile time grows
        with it)."""
        if self.outputs_per_call is not None:
            return self.outputs_per_call
        work = max(1, steps_per_output * x.numel())
        return int(max(1, min(16, 1_000_000 // work)))

    def run(self, field: Any, t0: torch.Tensor, hi: torch.Tensor, x: torch.Tensor, cache: Any,
            observe: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], steps: int, outputs: int,
            keep: bool) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor], torch.Tensor]:
        """One call of the solve program (``steps`` inner steps of size ``hi`` per output)."""
        return self._solve(self.inner, field, t0, hi, x, cache, observe, steps, outputs, keep)

    def __repr__(self) -> str:
        fuse = f", fuse={self.fuse}" if self.fuse != 1 else ""
        return f"Compiled({self.inner!r}, backend={self.backend!r}{fuse})"
