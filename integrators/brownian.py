"""Brownian increments for :func:`integrators.solve_sde`: where the randomness of a noisy solve comes from.

Every noisy solve takes its randomness from an explicit source, never from torch's global RNG:

- :class:`BrownianStream` draws fresh increments ``sqrt(h)·N(0, 1)`` from a ``torch.Generator``
  (or a seed) in the order the solver asks for them: the cheapest source, reproducible from its
  seed, for production runs of any length.
- :class:`BrownianPath` samples one path ``W`` on a fine uniform grid once and answers any step
  ``[t_a, t_b]`` whose ends lie on that grid with ``W(t_b) − W(t_a)``: the *same* path seen at
  every coarser step size, which is what strong-convergence tests (and comparing two methods on
  one realisation of the noise) need. It holds the whole path, ``(steps + 1) × shape`` values.

Both are called as ``brownian(t_a, t_b)`` and return a tensor of their ``shape`` (the shape
:func:`kuramoto.noise_shape` gives for the state), in their dtype and device.
"""

from __future__ import annotations

import abc
import math

import torch

__all__ = ["AbstractBrownian", "BrownianPath", "BrownianStream"]


def _check_shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                               for s in shape):
        raise TypeError(f"shape: expected a tuple of non-negative ints, got {shape!r}")
    return shape


def _generator(generator: torch.Generator | None, seed: int | None, device: torch.device) -> torch.Generator:
    """The generator to draw from: the one given (on ``device``), or a new one seeded with ``seed``."""
    if generator is not None and seed is not None:
        raise ValueError("generator, seed: give one source of randomness, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
        if torch.device(generator.device).type != device.type:
            raise ValueError(f"generator: it lives on {generator.device} but the increments are drawn on {device}; "
                             f"pass torch.Generator(device={str(device)!r}) (or a seed)")
        return generator
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer (or pass generator=torch.Generator), got {seed!r}")
    return torch.Generator(device=device).manual_seed(seed)


class AbstractBrownian(abc.ABC):
    """A source of Wiener increments of one shape: ``brownian(t_a, t_b) -> W(t_b) − W(t_a)``.

    Attributes:
        shape: the shape of every increment (``kuramoto.noise_shape(x0.shape)`` for a solve).
        dtype, device: those of the increments (the state's).
    """

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    @abc.abstractmethod
    def __call__(self, ta: float, tb: float) -> torch.Tensor:
        """The increment ``W(tb) − W(ta)`` (``tb > ta``), a tensor of :attr:`shape`."""

    def check_for(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, name: str = "brownian") -> None:
        """Refuse a source whose increments do not fit a solve's noise (shape, dtype, device)."""
        if tuple(self.shape) != tuple(shape):
            raise ValueError(f"{name}: increments of shape {tuple(self.shape)}, but the state needs {tuple(shape)} "
                             f"(kuramoto.noise_shape(x0.shape): one scalar per oscillator for n = 2, an n-vector "
                             f"for n >= 3)")
        if self.dtype != dtype or torch.device(self.device).type != torch.device(device).type:
            raise TypeError(f"{name}: increments in {self.dtype} on {self.device}, the state is {dtype} on {device}")


class BrownianStream(AbstractBrownian):
    """Fresh increments ``sqrt(t_b − t_a)·N(0, I)`` drawn from one generator, in call order.

    The times only set the variance: the source does not remember a path, so it must be asked
    for consecutive steps once each (as a solve does). Reproducible: the same seed (or a
    generator in the same state) gives the same increments, hence the same solve.

    Args:
        shape: shape of one increment.
        generator: a ``torch.Generator`` on ``device`` (advanced by the draws), or
        seed: a non-negative integer for a new generator; exactly one of the two.
        dtype: dtype of the increments (default: torch's default dtype).
        device: device of the increments (default: the generator's, else CPU).
    """

    def __init__(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None, seed: int | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        self.shape = _check_shape(shape)
        self.dtype = dtype or torch.get_default_dtype()
        if device is None:
            device = generator.device if isinstance(generator, torch.Generator) else "cpu"
        self.device = torch.device(device)
        self.generator = _generator(generator, seed, self.device)

    def __call__(self, ta: float, tb: float) -> torch.Tensor:
        z = torch.randn(self.shape, generator=self.generator, dtype=self.dtype, device=self.device)
        return z * math.sqrt(abs(tb - ta))

    def __repr__(self) -> str:
        return f"BrownianStream(shape={self.shape}, dtype={self.dtype}, device={self.device})"


class BrownianPath(AbstractBrownian):
    """One Wiener path on a uniform grid of ``steps`` intervals over ``[t0, t1]``, queried on it.

    ``path(t_a, t_b)`` is ``W(t_b) − W(t_a)`` for grid times ``t_a < t_b``: a solve with any step
    that is a whole number of grid intervals sees the same path, so refining the step converges
    to the solution *of this path* (strong convergence).

    Args:
        shape: shape of one increment.
        t0, t1: the time span (``t1 > t0``).
        steps: grid intervals (the finest step is ``(t1 − t0)/steps``).
        generator, seed: the randomness, exactly one of the two (as :class:`BrownianStream`).
        dtype, device: of the path (the cumulative sums are formed in float64, then cast).

    Raises:
        ValueError: a query off the grid (beyond 1e-9 of a grid interval) or outside ``[t0, t1]``.
    """

    def __init__(self, shape: tuple[int, ...], t0: float, t1: float, steps: int, *,
                 generator: torch.Generator | None = None, seed: int | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        self.shape = _check_shape(shape)
        for name, value in (("t0", t0), ("t1", t1)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite time, got {value!r}")
        if not t1 > t0:
            raise ValueError(f"t1: expected t1 > t0 = {t0!r}, got {t1!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: expected a positive integer number of grid intervals, got {steps!r}")
        self.dtype = dtype or torch.get_default_dtype()
        if device is None:
            device = generator.device if isinstance(generator, torch.Generator) else "cpu"
        self.device = torch.device(device)
        g = _generator(generator, seed, self.device)
        self.t0, self.t1, self.steps = float(t0), float(t1), steps
        self.h = (self.t1 - self.t0) / steps
        z = torch.randn((steps, *self.shape), generator=g, dtype=torch.float64, device=self.device)
        W = torch.cat((torch.zeros((1, *self.shape), dtype=torch.float64, device=self.device),
                       torch.cumsum(z * math.sqrt(self.h), dim=0)))
        self.W = W.to(self.dtype)

    def _index(self, t: float, name: str) -> int:
        u = (t - self.t0) / self.h
        k = round(u)
        if abs(u - k) > 1e-9 * max(1.0, abs(u)) or not 0 <= k <= self.steps:
            raise ValueError(f"{name}: time {t!r} is not on the path's grid t0 + k·{self.h:g}, k = 0..{self.steps} "
                             f"(use a step that is a whole number of grid intervals)")
        return k

    def __call__(self, ta: float, tb: float) -> torch.Tensor:
        return self.W[self._index(float(tb), "tb")] - self.W[self._index(float(ta), "ta")]

    def __repr__(self) -> str:
        return (f"BrownianPath(shape={self.shape}, t0={self.t0:g}, t1={self.t1:g}, steps={self.steps}, "
                f"dtype={self.dtype})")
