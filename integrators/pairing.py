"""Which arguments a method can be paired with: one check for :func:`integrators.solve`,
:func:`integrators.step_fixed` and the network layers that run a method.

A method's class attributes say what it can do (``adaptive``, ``native``, ``uses_tolerances``);
the caller says what it asks for (a step size, tolerances, gradients by adjoint or by
checkpointing the discrete map, a learnable step, steps it takes itself). A pairing that cannot
be honoured is a ``ValueError`` naming both sides before anything runs.
"""

from __future__ import annotations

from typing import Any

from .base import AbstractSolver
from .checkpoint import RecursiveCheckpoint
from .reference import ScipyReference
from .registry import get_solver

__all__ = ["check_pairing"]

_NATIVE_EXAMPLES = "'euler_normalized', 'rk4_normalized'"


def check_pairing(method: str | AbstractSolver, *, caller: str = "solve()", dt: Any = None,
                  rtol: float | None = None, atol: float | None = None,
                  adjoint: bool | RecursiveCheckpoint = False, native: bool = False, fixed_steps: bool = False,
                  learnable_step: str | None = None, checkpoint: str | None = None) -> AbstractSolver:
    """Refuse a method paired with arguments it cannot honour; return the solver.

    Args:
        method: a name in :data:`integrators.METHODS` or a solver instance.
        caller: who runs the method, as the messages should name it (``"solve()"``,
            ``"step_fixed()"``, ``"a discrete layer (steps=T)"``).
        dt: the step size the caller was given (``None``: none); a fixed-step method needs one.
        rtol, atol: tolerances the caller was given explicitly (``None``: the defaults); refused
            for a method that does not use them.
        adjoint: ``solve``'s ``adjoint``: ``True`` needs a method with gradients, a
            :class:`~integrators.RecursiveCheckpoint` a native fixed-step method.
        native: the caller steps the method itself (:func:`~integrators.step_fixed`), which
            needs a native fixed-step method.
        fixed_steps: the caller takes a given number of steps of a given size (a discrete
            layer), which needs a fixed-step method (native or delegated).
        learnable_step: the name of the caller's argument that makes the step size learnable
            (``"learn_gamma"``), or ``None``; a learnable step needs a native method.
        checkpoint: the name of the caller's argument that asks for the exact gradient of the
            discrete map by checkpointing (``"adjoint"`` of a discrete layer), or ``None``; that
            needs a native method.

    Returns:
        The solver (``method`` itself if it is an instance).

    Raises:
        ValueError: naming the caller's argument and the method.
    """
    solver = get_solver(method)
    name = solver.name
    if native and (solver.adaptive or not solver.native):
        raise ValueError(f"method: {caller} takes a native fixed-step method, got {name!r} "
                         f"({'adaptive' if solver.adaptive else 'delegated to torchdiffeq/SciPy'}); use solve() for it")
    if fixed_steps and solver.adaptive:
        raise ValueError(f"method: {name!r} is adaptive, but {caller} takes fixed steps: pick a fixed-step method "
                         f"such as 'euler_normalized' (adaptive methods run over a time span: solve(), or a "
                         f"continuous layer with t_span)")
    if not solver.adaptive and dt is None:
        raise ValueError(f"dt: method {name!r} takes fixed steps and needs dt in {caller} (e.g. dt=0.01); or pick an "
                         f"adaptive method such as 'lawson_dopri5' or 'dopri5'")
    if (rtol is not None or atol is not None) and (not solver.uses_tolerances or isinstance(solver, ScipyReference)):
        where = ("its own options (options={'rtol': ..., 'atol': ...})" if isinstance(solver, ScipyReference)
                 else "none: it takes fixed steps")
        raise ValueError(f"rtol, atol: method {name!r} does not use {caller}'s tolerances (it uses {where}); "
                         f"got rtol={rtol}, atol={atol}")
    _check_gradients(solver, caller, adjoint, learnable_step, checkpoint)
    return solver


def _check_gradients(solver: AbstractSolver, caller: str, adjoint: bool | RecursiveCheckpoint,
                     learnable_step: str | None, checkpoint: str | None) -> None:
    """The gradient pairings: adjoints, a learnable step, the checkpointed discrete map."""
    name = solver.name
    if isinstance(adjoint, RecursiveCheckpoint) and (solver.adaptive or not solver.native):
        raise ValueError(f"adjoint: a RecursiveCheckpoint schedule applies to native fixed-step methods, got "
                         f"method {name!r}; pass adjoint=True")
    if adjoint and isinstance(solver, ScipyReference):
        raise ValueError(f"adjoint: method {name!r} gives no gradients (a float64 SciPy reference); use a "
                         f"differentiable method with adjoint=True")
    if solver.native:
        return
    if learnable_step is not None:
        raise ValueError(f"{learnable_step}: a learnable γ needs a native method (e.g. {_NATIVE_EXAMPLES}); method "
                         f"{name!r} in {caller} is delegated to torchdiffeq, which does not differentiate the step size")
    if checkpoint is not None:
        raise ValueError(f"{checkpoint}: the exact-discrete checkpointed gradient needs a native method (e.g. "
                         f"{_NATIVE_EXAMPLES}); for method {name!r} in {caller} torchdiffeq's adjoint would be the "
                         f"continuous adjoint, a different gradient for fixed steps")
