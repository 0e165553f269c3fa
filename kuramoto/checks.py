"""Argument guards shared by every package: one place for the int / bool / positive / finite checks.

Each guard returns the value (converted to a plain Python ``int``/``float`` where that is
unambiguous) or raises with a message that names the argument: ``TypeError`` for a value of
the wrong kind (``True`` is not an integer, ``2.0`` is not one either), ``ValueError`` for a
value of the right kind outside its range. ``None`` passes only where ``optional=True``.

    steps = check_int(steps, "steps", minimum=1)
    gamma = check_positive(gamma, "gamma")
    ema = check_float(ema, "ema_decay", low=0.0, high=1.0, high_open=True, optional=True)

The constructors of couplings, solvers and layers raise ``ValueError`` for any bad size or step
count, of the wrong kind or not: :func:`check_count` is that guard, and ``kind_error=ValueError``
gives the same convention to :func:`check_float` and :func:`check_positive`.

    max_steps = check_count(max_steps, "max_steps")            # "max_steps: expected a positive integer, ..."
    rtol = check_positive(rtol, "rtol", kind_error=ValueError)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_bool", "check_choice", "check_count", "check_float", "check_int", "check_positive", "is_int",
           "is_real"]


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for ``bool`` (a subclass of ``int``) and floats."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def is_real(value: Any) -> bool:
    """True for Python and NumPy real numbers (ints and floats), False for ``bool``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              optional: bool = False) -> Any:
    """``value`` as an ``int`` in ``[minimum, maximum]``.

    Raises:
        TypeError: ``value`` is not an integer (``bool`` and floats are not).
        ValueError: ``value`` lies outside the range.
    """
    if value is None and optional:
        return None
    if not is_int(value):
        kind = "an int or None" if optional else "an int"
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__} ({value!r})")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name}: expected an int {_bounds(minimum, maximum)}, got {value}")
    return int(value)


def check_count(value: Any, name: str, *, minimum: int = 1, optional: bool = False) -> Any:
    """``value`` as an ``int >= minimum``: a size or a number of steps.

    Raises:
        ValueError: ``value`` is not an integer (``bool`` and floats are not) or lies below
            ``minimum``; one error type for both, as every constructor of the core packages raises
            for its sizes. The message says "a positive integer" (minimum 1), "a non-negative
            integer" (minimum 0) or "an integer >= minimum".
    """
    if value is None and optional:
        return None
    if not is_int(value) or value < minimum:
        expected = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name}: expected {expected}{' or None' if optional else ''}, got {value!r}")
    return int(value)


def check_float(value: Any, name: str, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                high_open: bool = False, optional: bool = False, kind_error: type[Exception] = TypeError) -> Any:
    """``value`` as a finite ``float`` in the interval from ``low`` to ``high`` (ends closed unless ``*_open``).

    Raises:
        TypeError: ``value`` is not a real number (``bool`` is not); ``kind_error`` instead if given.
        ValueError: ``value`` is NaN, infinite or outside the interval.
    """
    if value is None and optional:
        return None
    if not is_real(value):
        kind = "a number or None" if optional else "a number"
        raise kind_error(f"{name}: expected {kind}, got {type(value).__name__} ({value!r})")
    v = float(value)
    below = v <= low if low_open else v < low
    above = v >= high if high_open else v > high
    if not math.isfinite(v) or below or above:
        if (low, low_open, high) == (0.0, True, math.inf):
            raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name}: expected a finite number in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return v


def check_positive(value: Any, name: str, *, optional: bool = False, kind_error: type[Exception] = TypeError) -> Any:
    """``value`` as a positive finite ``float`` (:func:`check_float` with ``low=0`` open)."""
    return check_float(value, name, low=0.0, low_open=True, optional=optional, kind_error=kind_error)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a ``bool``.

    Raises:
        TypeError: ``value`` is anything else (``0`` and ``1`` included).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} ({value!r})")
    return value


def check_choice(value: Any, name: str, choices: tuple[Any, ...] | list[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Raises:
        ValueError: naming the valid choices.
    """
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if maximum is None:
        return f">= {minimum}"
    if minimum is None:
        return f"<= {maximum}"
    return f"in [{minimum}, {maximum}]"
