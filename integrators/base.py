"""The solver interface: one small object per method, stepped by :func:`integrators.solve`.

A solver is a value: its constructor takes explicit keyword options, and nothing is stored on
``self`` between steps. All per-run state lives in the ``cache`` that :meth:`AbstractSolver.init`
returns and :meth:`AbstractSolver.step` threads through, so a network layer can call ``step`` T
times by hand, and one solver instance can serve many solves at once.
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import Any, ClassVar, NamedTuple

import torch

from kuramoto.checks import is_real

__all__ = ["AbstractSolver", "DriftWarning", "SolverError", "StepResult", "TimeLike"]

TimeLike = float | torch.Tensor
"""A time or step size: a Python float or a 0-d tensor (which may require grad)."""


class StepResult(NamedTuple):
    """What one step returns.

    Attributes:
        x: the new state ``[..., n]`` (a point, never an increment).
        error: the local error estimate ``[..., n]`` of an adaptive method, else ``None``.
        cache: the cache to pass to the next step (e.g. the field at ``x`` for FSAL pairs).
    """

    x: torch.Tensor
    error: torch.Tensor | None
    cache: Any


class SolverError(RuntimeError):
    """A solve failed: non-finite state, step-size underflow, or ``max_steps`` reached.

    Attributes:
        method: the method's registry name.
        t: the time at which the failure was detected (``None`` if unknown).
        solution: the partial :class:`~integrators.Solution` up to the failure (outputs not
            reached are NaN), with ``status`` and ``message`` set, or ``None``.
    """

    def __init__(self, message: str, *, method: str | None = None, t: float | None = None,
                 solution: Any = None) -> None:
        super().__init__(message)
        self.method = method
        self.t = t
        self.solution = solution


class DriftWarning(UserWarning):
    """An ambient method (one that does not renormalise, e.g. torchdiffeq's ``rk4``) left the
    sphere: some ``| |x_i(t)| / |x_i(t0)| − 1 |`` exceeded :func:`integrators.solve`'s
    ``drift_tol``. The solution is returned as computed (never silently renormalised); the fix
    is a smaller step or tolerance, or a method that stays on the sphere."""


def _option_names(cls: type) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return sorted(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self")


# Options of torchdiffeq that have a different spelling here: a hint beats a bare "unknown".
_HINTS = {
    "step_size": "pass the step size as solve(..., dt=...)",
    "grid_constructor": "output times come from t and the step size from dt",
    "first_step": "pass the first step of an adaptive method as solve(..., dt=...)",
    "max_num_steps": "use options={'max_steps': ...}",
    "rtol": "pass tolerances as solve(..., rtol=..., atol=...)",
    "atol": "pass tolerances as solve(..., rtol=..., atol=...)",
}


def reject_unknown_options(solver: AbstractSolver, unknown: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the method, the unknown options and the valid ones."""
    if not unknown:
        return
    cls = type(solver)
    valid = _option_names(cls)
    names = ", ".join(repr(k) for k in sorted(unknown))
    hints = "; ".join(f"{k!r}: {_HINTS[k]}" for k in sorted(unknown) if k in _HINTS)
    raise ValueError(f"method {cls.name!r} got unknown option(s) {names}; valid options: "
                     f"{', '.join(valid) if valid else 'none (this method takes no options)'}"
                     + (f" ({hints})" if hints else ""))


class AbstractSolver(abc.ABC):
    """Interface of every integration method.

    Class attributes (declared by every concrete method):

    - ``name``: the registry name (``METHODS[name] is cls``).
    - ``order``: the global order of convergence of the solution it propagates.
    - ``adaptive``: whether ``step`` returns an error estimate and :func:`integrators.solve`
      chooses the step size (``dt`` is then only the first step).
    - ``stays_on_sphere``: whether every step returns unit vectors (to round-off) whatever the
      field; ambient methods keep ``|x_i|`` only up to their local error (``solve`` warns when
      they drift, :class:`DriftWarning`).
    - ``native``: stepped by this package (so :func:`integrators.step_fixed` and the
      exact-discrete adjoint apply); ``False`` for methods delegated to torchdiffeq or SciPy.
    - ``uses_tolerances``: whether ``rtol``/``atol`` affect the result (adaptive methods and the
      implicit Adams corrector).
    - ``stages``: field evaluations per step (per attempted step for adaptive methods).
    - ``exact_rotation``: whether the method reproduces the pure rotation ``x' = Ωx`` exactly at
      any step size (Lawson and Lie-group methods), so that the natural frequencies do not
      limit its step.
    - ``rotation_limit``: for a fixed-step method that does not rotate exactly, the largest
      ``h · max|Ω|`` :func:`integrators.solve` accepts: the method's stability boundary on the
      imaginary axis (``2√2`` for RK4, ``√3`` for RK3). Euler-, Heun- and Adams–Moulton-type
      methods have no such segment (they amplify, or once normalised lag, every rotation); for
      them it is 1 rad per step, the bound the synchronisation study has used.
    - ``coupling_limit``: the largest ``h · L`` for ``L`` the coupling's Lipschitz constant
      (:meth:`kuramoto.couplings.AbstractCoupling.lipschitz_constant`): the method's stability
      boundary on the negative real axis (2 for Euler and Heun, 2.51 for RK3, 2.79 for RK4).
      ``inf`` for adaptive methods, which choose their own steps.

    Constructors take explicit keyword options; an unknown option raises ``ValueError`` listing
    the valid ones (use :func:`reject_unknown_options`). A subclass is either abstract
    (``Abstract…``) or final; only abstract methods are overridden.

    The field is any callable ``field(t, x) -> dx/dt`` with ``x`` of shape ``[..., n]`` whose
    last axis is the sphere axis (usually a :class:`kuramoto.KuramotoField`). Lie-group
    methods also need ``field.generator(t, x)``; the Lawson methods need ``field.omega`` and
    ``field.coupling_term(t, x)``.

    The cache of a fixed-step method depends on the step size only (e.g. the rotation
    ``exp(hΩ/2)`` of ``lawson_rk4``), so that one cache serves every step of a fixed-step solve
    (``init(..., dt=h)`` builds it) and a compiled solve takes it as an input.
    """

    name: ClassVar[str]
    order: ClassVar[int]
    adaptive: ClassVar[bool]
    stays_on_sphere: ClassVar[bool]
    native: ClassVar[bool]
    uses_tolerances: ClassVar[bool]
    stages: ClassVar[int]
    exact_rotation: ClassVar[bool] = False
    rotation_limit: ClassVar[float] = math.inf
    coupling_limit: ClassVar[float] = math.inf

    def __init__(self, **options: Any) -> None:
        reject_unknown_options(self, options)

    @abc.abstractmethod
    def init(self, field: Any, t0: TimeLike, x0: torch.Tensor, dt: TimeLike | None = None) -> Any:
        """Build the cache for a run starting at ``(t0, x0)``.

        Args:
            field: the vector field ``field(t, x)``.
            t0: initial time.
            x0: initial state ``[..., n]``.
            dt: the step size when known (fixed-step solves), so a cache that depends on it is
                built once; ``step`` rebuilds the cache when called with another step size.

        Returns:
            The cache (``None`` for most methods), to pass to the first :meth:`step`.
        """

    @abc.abstractmethod
    def step(self, field: Any, t: TimeLike, dt: TimeLike, x: torch.Tensor, cache: Any) -> StepResult:
        """Advance from ``(t, x)`` to ``t + dt``.

        Args:
            field: the vector field ``field(t, x)``.
            t: current time (float or 0-d tensor).
            dt: step size (float or 0-d tensor; may require grad, e.g. a learnable γ).
            x: state ``[..., n]``; any leading shape, the sphere axis last.
            cache: the cache from :meth:`init` or the previous step.

        Returns:
            :class:`StepResult` ``(x_next, error, cache)``; ``x_next`` has the shape, dtype and
            device of ``x``; ``error`` is ``None`` unless the method is adaptive.
        """

    def __repr__(self) -> str:
        opts = {k: v for k, v in vars(self).items() if k in _option_names(type(self))}
        inner = ", ".join(f"{k}={v!r}" for k, v in opts.items())
        return f"{type(self).__name__}({inner})"


def require_attribute(field: Any, attribute: str, method: str, why: str) -> Any:
    """Fetch ``field.<attribute>`` or raise ``TypeError`` saying which method needs it and why."""
    try:
        return getattr(field, attribute)
    except AttributeError:
        raise TypeError(f"field: method {method!r} needs field.{attribute} ({why}); got a "
                        f"{type(field).__name__} without it. Use a kuramoto.KuramotoField or pick another "
                        f"method") from None


def check_dt(dt: Any, name: str = "dt") -> TimeLike:
    """Validate a step size: a finite non-zero float, or a 0-d floating tensor (not checked for
    value, so no device sync)."""
    if isinstance(dt, torch.Tensor):
        if dt.dim() != 0 or not dt.is_floating_point():
            raise TypeError(f"{name}: expected a float or a 0-d floating tensor, got a tensor of shape "
                            f"{tuple(dt.shape)} and dtype {dt.dtype}")
        return dt
    if not is_real(dt):
        raise TypeError(f"{name}: expected a float or a 0-d floating tensor, got {type(dt).__name__}")
    dt = float(dt)
    if not (dt == dt and abs(dt) != float("inf") and dt != 0.0):
        raise ValueError(f"{name}: expected a finite non-zero step size, got {dt}")
    return dt


def check_state_tensor(x: Any, name: str = "x0") -> torch.Tensor:
    """Cheap checks of a state (no device sync): a floating tensor ``[..., n]`` with ``n >= 2``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [..., n] (sphere axis last), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 1 or x.shape[-1] < 2:
        raise ValueError(f"{name}: expected shape [..., n] with the sphere axis last and n >= 2, got "
                         f"{tuple(x.shape)}")
    return x
