"""``METHODS``: every accepted method name and its class. Adding a method is one line here."""

from __future__ import annotations

import difflib
from typing import Any

from .adaptive import Dopri5Normalized
from .ambient import (
    RK4,
    AdaptiveHeun,
    Bosh3,
    Dopri5,
    Dopri8,
    Euler,
    ExplicitAdams,
    Fehlberg2,
    FixedAdams,
    Heun2,
    Heun3,
    ImplicitAdams,
    Midpoint,
)
from .base import AbstractSolver
from .lawson import LawsonDopri5, LawsonRK4
from .liegroup import CF4, RKMK4, GeodesicEuler
from .reference import ScipyReference
from .retraction import EulerNormalized, HeunNormalized, RK4Normalized

__all__ = ["METHODS", "get_solver"]

METHODS: dict[str, type[AbstractSolver]] = {cls.name: cls for cls in (
    # retraction (AKOrN family)
    EulerNormalized,
    HeunNormalized,
    RK4Normalized,
    # Lie-group, exactly on the sphere
    GeodesicEuler,
    RKMK4,
    CF4,
    # exponential (integrating factor)
    LawsonRK4,
    # native adaptive
    Dopri5Normalized,
    LawsonDopri5,
    # torchdiffeq, fixed grid
    Euler,
    Midpoint,
    Heun2,
    Heun3,
    RK4,
    ExplicitAdams,
    ImplicitAdams,
    FixedAdams,
    # torchdiffeq, adaptive
    Dopri5,
    Dopri8,
    Bosh3,
    Fehlberg2,
    AdaptiveHeun,
    # float64 reference
    ScipyReference,
)}

# Names that exist elsewhere but are not methods here, with what to use instead.
_NOT_HERE = {
    "scipy_solver": "torchdiffeq's SciPy wrapper is not registered (its order depends on the SciPy method); "
                    "use 'scipy_reference' (DOP853, float64)",
    "rk45": "SciPy's RK45 is the Dormand–Prince pair: use 'dopri5', 'dopri5_normalized' or 'lawson_dopri5'",
}


def get_solver(method: str | AbstractSolver, **options: Any) -> AbstractSolver:
    """A solver instance from a registered name (with options) or an instance (returned as is).

    Args:
        method: a name in :data:`METHODS` or an :class:`AbstractSolver` instance.
        **options: the method's keyword options (only with a name).

    Returns:
        The solver.

    Raises:
        ValueError: unknown name (the message lists the valid ones), unknown option, or options
            given together with an instance.
        TypeError: ``method`` is neither a string nor a solver instance.
    """
    if isinstance(method, AbstractSolver):
        if options:
            raise ValueError(f"options: {sorted(options)} were given with a solver instance "
                             f"({type(method).__name__}); pass options to its constructor instead")
        return method
    if isinstance(method, type) and issubclass(method, AbstractSolver):
        raise TypeError(f"method: got the class {method.__name__}; pass its name {getattr(method, 'name', '?')!r} "
                        f"or an instance")
    if not isinstance(method, str):
        raise TypeError(f"method: expected a method name (str) or an AbstractSolver instance, got "
                        f"{type(method).__name__}")
    try:
        cls = METHODS[method]
    except KeyError:
        hint = _NOT_HERE.get(method.lower())
        close = difflib.get_close_matches(method, METHODS, n=3)
        raise ValueError(f"method: unknown method {method!r}"
                         + (f" ({hint})" if hint else "")
                         + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close and not hint else "")
                         + f"; valid methods: {', '.join(sorted(METHODS))}") from None
    return cls(**options)
