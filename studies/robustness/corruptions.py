"""Common image corruptions at five severities, applied on the fly to torch batches.

In the spirit of CIFAR-10-C (Hendrycks & Dietterich, 2019), restricted to the five corruptions
that are cheap to compute exactly on a batch of tensors: two noises, one blur and two
photometric changes. The parameters below were chosen for 32x32 images in [0, 1] so that each
step of severity degrades the image visibly more than the previous one; they are of the same
order as CIFAR-10-C's but are not claimed to be identical, so accuracies under these
corruptions are *not* CIFAR-10-C ("CC") numbers.

=================  ==============================================  ==============================
name               operation                                       severity 1 .. 5
=================  ==============================================  ==============================
gaussian_noise     ``x + sigma * N(0, 1)`` (per pixel and channel)   sigma = 0.04, 0.06, 0.08, 0.10, 0.13
shot_noise         ``Poisson(lam * x) / lam`` (photon counting)      lam = 500, 250, 100, 60, 35
gaussian_blur      separable Gaussian filter, replicate border       sigma = 0.5, 0.75, 1.0, 1.25, 1.5 px
contrast           ``(x - m) * c + m``, m = the image's mean value   c = 0.75, 0.5, 0.4, 0.3, 0.15
brightness         HSV value ``V -> min(V + b, 1)``, hue/sat kept    b = 0.1, 0.2, 0.3, 0.4, 0.5
=================  ==============================================  ==============================

Every result is clamped to [0, 1] and has the input's shape, dtype and device. Severity 0 is
accepted everywhere and returns an unchanged copy (handy for sweeps that include the clean
images). Random corruptions draw from an explicit ``torch.Generator``; pass one generator for
a whole pass over a data set so that batches receive different noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from kuramoto.checks import is_int

__all__ = [
    "CORRUPTIONS",
    "DEFAULT_SEED",
    "SEVERITY_PARAMS",
    "brightness",
    "contrast",
    "corrupt",
    "gaussian_blur",
    "gaussian_noise",
    "shot_noise",
]

DEFAULT_SEED = 0
"""Seed of the generator used when a random corruption is called with ``generator=None``."""

SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.10, 0.13),
    "shot_noise": (500.0, 250.0, 100.0, 60.0, 35.0),
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
}
"""The parameter of each corruption at severities 1..5 (see the module docstring)."""


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images: expected a floating-point tensor with values in [0, 1], got dtype {images.dtype}")
    if images.ndim < 3:
        raise ValueError(f"images: expected shape [..., C, H, W] (at least 3 dims), got {tuple(images.shape)}")
    if images.numel():
        lo, hi = torch.aminmax(images.detach())
        if not (float(lo) >= 0.0 and float(hi) <= 1.0):  # also rejects NaN
            raise ValueError(f"images: values must lie in [0, 1], got range [{float(lo):.4g}, {float(hi):.4g}]")


def _check_severity(severity: int) -> int:
    if not isinstance(severity, int) or isinstance(severity, bool) or not 0 <= severity <= 5:
        raise ValueError(f"severity: expected an int in 1..5 (or 0 for no corruption), got {severity!r}")
    return severity


def _generator(generator: torch.Generator | int | None, device: torch.device) -> torch.Generator:
    if generator is None or (is_int(generator)):
        seed = DEFAULT_SEED if generator is None else generator
        return torch.Generator(device=device).manual_seed(int(seed))
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, an int seed or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator: lives on {generator.device.type!r} but images are on {device.type!r}")
    return generator


def _work(images: torch.Tensor) -> torch.Tensor:
    """The images in a dtype of at least float32 precision (half inputs are computed in float32)."""
    return images.detach().to(torch.promote_types(images.dtype, torch.float32))


def _finish(result: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return result.clamp_(0.0, 1.0).to(images.dtype)


def _corrupt_with(images: torch.Tensor, severity: int, name: str, op: Callable[..., torch.Tensor],
                  generator: torch.Generator | int | None = None, *, random: bool = False) -> torch.Tensor:
    """Check the arguments, then ``op(x, parameter, generator)`` on the images in working precision.

    Every corruption takes ``images`` ``[..., C, H, W]`` (floating, in [0, 1]), ``severity`` 1..5
    (0 = unchanged) and ``generator`` (a ``torch.Generator``, an int seed, or ``None`` for one
    seeded with ``DEFAULT_SEED``; unused by the deterministic ones), and returns the corrupted
    images with the same shape, dtype and device, clamped to [0, 1].
    """
    _check_images(images)
    if _check_severity(severity) == 0:
        return images.detach().clone()
    gen = _generator(generator, images.device) if random else None
    x = _work(images)
    return _finish(op(x, SEVERITY_PARAMS[name][severity - 1], gen), images)


def gaussian_noise(images: torch.Tensor, severity: int,
                   generator: torch.Generator | int | None = None) -> torch.Tensor:
    """Additive Gaussian noise, independent per pixel and channel (arguments: see :func:`_corrupt_with`)."""
    def op(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
        return x + sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return _corrupt_with(images, severity, "gaussian_noise", op, generator, random=True)


def shot_noise(images: torch.Tensor, severity: int,
               generator: torch.Generator | int | None = None) -> torch.Tensor:
    """Poisson (photon-counting) noise ``Poisson(lam * x) / lam``: brighter pixels get more noise."""
    def op(x: torch.Tensor, lam: float, gen: torch.Generator) -> torch.Tensor:
        return torch.poisson(x * lam, generator=gen) / lam
    return _corrupt_with(images, severity, "shot_noise", op, generator, random=True)


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float, gen: None) -> torch.Tensor:
    k = _gaussian_kernel(sigma, x.dtype, x.device)
    r = (k.numel() - 1) // 2
    h, w = x.shape[-2:]
    flat = x.reshape(-1, 1, h, w)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return flat.reshape(x.shape)


def gaussian_blur(images: torch.Tensor, severity: int,
                  generator: torch.Generator | int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of each channel (kernel radius ``ceil(3 sigma)``, replicated border)."""
    return _corrupt_with(images, severity, "gaussian_blur", _blur, generator)


def _contrast(x: torch.Tensor, c: float, gen: None) -> torch.Tensor:
    m = x.mean(dim=(-3, -2, -1), keepdim=True)
    return (x - m) * c + m


def contrast(images: torch.Tensor, severity: int,
             generator: torch.Generator | int | None = None) -> torch.Tensor:
    """Reduce contrast towards each image's mean value over C, H, W: ``(x - m) * c + m``."""
    return _corrupt_with(images, severity, "contrast", _contrast, generator)


def _brightness(x: torch.Tensor, b: float, gen: None) -> torch.Tensor:
    v = x.amax(dim=-3, keepdim=True)
    v_new = (v + b).clamp(max=1.0)
    scaled = x * (v_new / v.clamp(min=torch.finfo(x.dtype).tiny))
    return torch.where(v > 0, scaled, v_new.expand_as(x))


def brightness(images: torch.Tensor, severity: int,
               generator: torch.Generator | int | None = None) -> torch.Tensor:
    """Raise the HSV value channel by ``b`` (capped at 1), keeping hue and saturation.

    With ``V = max_c x_c`` the pixel's value, a colour of fixed hue and saturation scales
    linearly with ``V``, so the exact HSV operation is ``x * min(V + b, 1) / V``; black pixels
    (``V = 0``) become grey ``min(b, 1)``.
    """
    return _corrupt_with(images, severity, "brightness", _brightness, generator)


CORRUPTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "brightness": brightness,
}
"""Corruption name -> function ``(images, severity, generator=None) -> images``."""


def corrupt(images: torch.Tensor, name: str, severity: int,
            generator: torch.Generator | int | None = None) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` to a batch of images in [0, 1].

    Args:
        images: ``[..., C, H, W]`` floating tensor in [0, 1] (any device).
        name: one of :data:`CORRUPTIONS`.
        severity: 1..5 (0 = unchanged copy).
        generator: random source for the noise corruptions: a ``torch.Generator`` on the
            images' device, an int seed, or ``None`` (seed ``DEFAULT_SEED``).

    Returns:
        The corrupted images, same shape, dtype and device, in [0, 1].

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones), bad ``severity``,
            images outside [0, 1].
        TypeError: ``images`` is not a floating tensor.
    """
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise ValueError(f"name: unknown corruption {name!r}; valid: {', '.join(sorted(CORRUPTIONS))}")
    return CORRUPTIONS[name](images, severity, generator=generator)
