"""Wrapping a fixed-step method in ``torch.compile``: the same step, fused into fewer kernels."""

from __future__ import annotations

from typing import Any

import torch

from .base import AbstractSolver, StepResult, TimeLike

__all__ = ["Compiled"]


def _call_steps(solver: AbstractSolver, fuse: int, field: Any, t: torch.Tensor, dt: torch.Tensor, x: torch.Tensor,
                cache: Any) -> StepResult:
    """``fuse`` steps of size ``dt / fuse`` (unrolled by the tracer into one graph)."""
    h = dt / fuse
    res = StepResult(x, None, cache)
    for j in range(fuse):
        res = solver.step(field, t + j * h, h, res.x, res.cache)
    return res


class Compiled(AbstractSolver):
    """A native fixed-step method whose ``step`` runs under ``torch.compile``.

    Use it wherever a method is accepted::

        solve(field, x0, t, Compiled("lawson_rk4"), dt=0.01, save_states=False,
              observe={"r": kuramoto.order_parameter})

    Elementwise-heavy steps on large states gain: one ``lawson_rk4`` step of the classic model at
    N = 10^6 (float32) took 106 ms of CPU compiled vs 234 ms eager; at N = 100, 0.2 ms vs ~1 ms. The first step
    compiles (25–30 s with inductor on a 2-core CPU); the step time and size are passed as 0-d
    tensors so that new times and step sizes do not trigger recompilation (dynamo specialises
    Python floats). The wrapper declares the wrapped method's order and capabilities.

    Args:
        method: a native fixed-step method name (or instance), e.g. ``"rk4_normalized"``.
        backend, mode: passed to ``torch.compile`` (``backend="eager"`` only traces, for testing).
        compile_options: ``torch.compile(options=...)``; for small states, where a step costs
            its kernel launches, ``{"cpp_wrapper": True}`` cut a ``lawson_rk4`` step at N = 100
            from 0.21 to 0.14 ms (inductor's default wrapper is Python).
        fuse: steps of the wrapped method per call: a step of size ``h`` is ``fuse`` steps of size
            ``h / fuse`` traced into one graph. For small states, where a step costs its calls
            rather than its arithmetic, this divides the per-call overhead by ``fuse``; the order
            is the wrapped method's, the step size that matters for accuracy is ``h / fuse`` and
            ``stats["nfe"]`` counts the inner steps' evaluations. Pass ``dt`` = the inner step
            size × ``fuse``.
        **options: the wrapped method's options.

    Raises:
        ValueError: the method is adaptive or not native.
    """

    def __init__(self, method: str | AbstractSolver, *, backend: Any = "inductor", mode: str | None = None,
                 compile_options: dict[str, Any] | None = None, fuse: int = 1, **options: Any) -> None:
        from .registry import get_solver

        inner = get_solver(method, **options)
        if inner.adaptive or not inner.native:
            raise ValueError(f"method: Compiled wraps native fixed-step methods, got {inner.name!r}")
        if isinstance(fuse, bool) or not isinstance(fuse, int) or fuse < 1:
            raise ValueError(f"fuse: expected a positive integer (steps per compiled call), got {fuse!r}")
        self.inner, self.fuse = inner, fuse
        self.backend, self.mode = backend, mode
        # Instance attributes mirror the wrapped method's class attributes.
        self.name = f"compiled:{inner.name}"
        self.order, self.adaptive, self.stays_on_sphere = inner.order, False, inner.stays_on_sphere
        self.native, self.uses_tolerances, self.stages = True, False, inner.stages * fuse
        if compile_options is not None and not isinstance(compile_options, dict):
            raise TypeError(f"compile_options: expected a dict for torch.compile(options=...), got "
                            f"{type(compile_options).__name__}")
        self.compile_options = dict(compile_options or {})
        self._step = torch.compile(_call_steps, backend=backend, mode=mode, dynamic=False,
                                   options=self.compile_options or None)

    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor) -> Any:
        return self.inner.init(field, t0, x0)

    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        dt = torch.as_tensor(dt, dtype=torch.float64, device=x.device) if not isinstance(dt, torch.Tensor) else dt
        return self._step(self.inner, self.fuse, field, t, dt, x, cache)

    def __repr__(self) -> str:
        fuse = f", fuse={self.fuse}" if self.fuse != 1 else ""
        return f"Compiled({self.inner!r}, backend={self.backend!r}{fuse})"
