"""Initial oscillator states of a Kuramoto layer: random, from the stimulus, given cells, or learned.

The layer's state is a feature map ``[B, C, H, W]`` whose channels form ``C/n`` unit vectors per
position (consecutive groups of ``n``); every initial state here has unit length per group.

Feature maps given to a layer or a model (stimuli, images, initial states) are checked once per
call by :func:`check_feature_map`: type, shape, and on the CPU that every value is finite (a NaN
would otherwise spread silently through every step). On an accelerator the value check is
skipped, since reading its result forces a device synchronisation on every call.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from kuramoto.checks import check_count, is_int
from kuramoto.couplings.image import to_features, to_oscillators
from kuramoto.sphere import normalize

with warnings.catch_warnings():
    # geoopt 0.5.1 decorates helpers with torch.jit.script, which torch >= 2.10 deprecates at import.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=DeprecationWarning)
    import geoopt

__all__ = ["InitMode", "check_feature_map", "check_finite", "check_n", "initial_state", "learnable_initial_state"]

InitMode = Literal["random", "stimulus", "given", "learned"]


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` naming ``name`` if a CPU tensor holds NaN or inf (accelerator tensors are
    not read: that would synchronise the device); return ``x``."""
    if x.device.type == "cpu" and x.numel() and not bool(torch.isfinite(x.detach()).all()):
        first = tuple(torch.nonzero(~torch.isfinite(x.detach()))[0].tolist())
        raise ValueError(f"{name}: contains NaN or inf (first at index {first}); expected finite values")
    return x


def check_feature_map(x: object, name: str, channels: int | None = None, *, finite: bool = True) -> torch.Tensor:
    """``x`` if it is a floating-point feature map ``[B, C, H, W]`` (with ``channels`` channels, and
    finite on the CPU unless ``finite=False``); else ``TypeError``/``ValueError`` naming ``name``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B, C, H, W], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"{name}: expected a feature map [B, C, H, W], got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels, got shape {tuple(x.shape)}")
    return check_finite(x, name) if finite else x


def check_n(n: object, channels: int | None = None) -> int:
    if not is_int(n) or n < 2:
        raise ValueError(f"n: expected an integer oscillator dimension >= 2, got {n!r}")
    if channels is not None and channels % n:
        raise ValueError(f"n: the channel count {channels} must be a multiple of n={n}")
    return n


def _noise_like(c: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``c``; drawn where ``generator`` lives, then moved to ``c``."""
    if generator is None:
        return torch.randn(c.shape, dtype=c.dtype, device=c.device)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    return torch.randn(c.shape, generator=generator, dtype=c.dtype, device=generator.device).to(c.device)


def _unit_groups(x: torch.Tensor, n: int) -> torch.Tensor:
    """Unit length per group of ``n`` channels, ``[B, C, H, W]`` (zero groups stay zero)."""
    return to_features(normalize(to_oscillators(x, n)))


def _directions(c: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``normalize(c)`` per group, with every all-zero group replaced by a uniformly random unit vector.

    A zero group has no direction; left at zero it is not a point of the sphere, and the layer's
    projection ``y − (<y,x>/|x|²) x`` is 0/0 there, so its output would be NaN. The noise is drawn
    for the whole map (one fixed draw per call, whatever the data) so that the result does not
    depend on which groups happen to be zero."""
    groups = to_oscillators(c, n)
    noise = to_oscillators(_noise_like(c, generator), n)
    zero = (groups == 0).all(dim=-1, keepdim=True)
    return to_features(normalize(torch.where(zero, noise, groups)))


def initial_state(c: torch.Tensor, n: int, mode: InitMode = "random", *, generator: torch.Generator | None = None,
                  given_mask: torch.Tensor | None = None, learned: torch.Tensor | None = None) -> torch.Tensor:
    """An initial oscillator state for a layer with stimulus ``c``, unit length per group of ``n`` channels.

    Args:
        c: stimulus ``[B, C, H, W]`` (sets the shape, dtype and device of the result).
        n: oscillator dimension (``C % n == 0``).
        mode: ``"random"``: uniform on every sphere (normalised standard normal noise, the
            official default); ``"stimulus"``: ``normalize(c)``, where an all-zero group of
            ``c`` (no direction) starts uniformly at random instead (drawn from ``generator``);
            ``"given"``: ``c`` where ``given_mask`` is true and noise elsewhere (the
            Sudoku model starts given cells at their digit embedding); ``"learned"``: the
            learned state ``learned``, the same for every batch item.
        generator: random generator of the noise (``"random"``, ``"given"``, and the zero groups of
            ``"stimulus"``); the sample is drawn on the generator's device and moved, so a seed
            gives the same state anywhere.
        given_mask: ``[B, 1, H, W]`` or ``[B, H, W]`` (or anything broadcastable to ``c``),
            bool or 0/1, for ``mode="given"``.
        learned: ``[C/n, H, W, n]`` or ``[1, C/n, H, W, n]`` unit vectors for ``mode="learned"``,
            e.g. from :func:`learnable_initial_state`.

    Returns:
        ``[B, C, H, W]``.

    Raises:
        ValueError, TypeError: naming the offending argument (a NaN or inf in ``c`` on the CPU
            is a ``ValueError`` naming ``c``).
    """
    check_feature_map(c, "c")
    n = check_n(n, c.shape[1])
    if mode == "random":
        return _unit_groups(_noise_like(c, generator), n)
    if mode == "stimulus":
        return _directions(c, n, generator)
    if mode == "given":
        if given_mask is None:
            raise ValueError("given_mask: mode='given' needs the mask of given positions ([B, 1, H, W] or [B, H, W])")
        if not isinstance(given_mask, torch.Tensor):
            raise TypeError(f"given_mask: expected a torch.Tensor, got {type(given_mask).__name__}")
        mask = given_mask.unsqueeze(1) if given_mask.dim() == 3 else given_mask
        try:
            torch.broadcast_shapes(mask.shape, c.shape)
        except RuntimeError:
            raise ValueError(f"given_mask: shape {tuple(given_mask.shape)} does not broadcast to c's "
                             f"{tuple(c.shape)}; use [B, 1, H, W] or [B, H, W]") from None
        mask = mask.to(device=c.device, dtype=torch.bool) if mask.dtype != torch.bool else mask.to(c.device)
        return _unit_groups(torch.where(mask, c, _noise_like(c, generator)), n)
    if mode == "learned":
        if learned is None:
            raise ValueError("learned: mode='learned' needs the learned state [C/n, H, W, n] "
                             "(see learnable_initial_state)")
        if not isinstance(learned, torch.Tensor) or not learned.is_floating_point():
            raise TypeError(f"learned: expected a floating-point tensor [C/n, H, W, n], got {type(learned).__name__}")
        B, C, H, W = c.shape
        lead = learned.unsqueeze(0) if learned.dim() == 4 else learned
        if lead.dim() != 5 or lead.shape[0] not in (1, B) or lead.shape[1:] != (C // n, H, W, n):
            raise ValueError(f"learned: expected shape [{C // n}, {H}, {W}, {n}] to match c {tuple(c.shape)} "
                             f"with n={n}, got {tuple(learned.shape)}")
        if lead.dtype != c.dtype or lead.device != c.device:
            raise TypeError(f"learned: dtype/device {lead.dtype}/{lead.device} does not match c's {c.dtype}/{c.device}")
        return to_features(lead.expand(B, *lead.shape[1:]))
    raise ValueError(f"mode: expected 'random', 'stimulus', 'given' or 'learned', got {mode!r}")


def learnable_initial_state(channels: int, n: int, grid: tuple[int, int], *, generator: torch.Generator | None = None,
                            dtype: torch.dtype | None = None,
                            device: torch.device | str | None = None) -> geoopt.ManifoldParameter:
    """A learnable initial state on the product of spheres: ``[C/n, H, W, n]`` on ``geoopt.Sphere()``.

    Train it with ``geoopt.optim.RiemannianAdam`` (which treats ordinary parameters as
    Euclidean) and feed it to :func:`initial_state` with ``mode="learned"``; the optimiser keeps
    every oscillator on its sphere. Initialised uniformly on the spheres.

    Args:
        channels: C (a multiple of ``n``).
        n: oscillator dimension.
        grid: ``(H, W)``.
        generator, dtype, device: of the random initialisation.

    Returns:
        ``geoopt.ManifoldParameter`` of shape ``[C/n, H, W, n]``.
    """
    channels = check_count(channels, "channels")
    n = check_n(n, channels)
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or not all(is_int(g) and g >= 1 for g in grid)):
        raise ValueError(f"grid: expected a pair of positive integers (H, W), got {grid!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    dtype = dtype or torch.get_default_dtype()
    z = torch.randn(channels // n, grid[0], grid[1], n, generator=generator, dtype=dtype,
                    device=generator.device if generator is not None else device)
    sphere = geoopt.Sphere()
    return geoopt.ManifoldParameter(sphere.projx(z.to(device) if device is not None else z), manifold=sphere)
