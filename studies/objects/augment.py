"""SimCLR augmentations on batches of image tensors (docs/AKORN.md §5.2), without torchvision.

The official object-discovery runs draw two views of every image with torchvision's
``RandomResizedCrop(imsize, scale=(0.08, 1))``, an optional horizontal flip (off for the
synthetic sets and CLEVRTex), ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` applied with probability
0.8, then ``RandomGrayscale(p=0.2)``. :class:`SimCLRAugment` does the same on a whole batch
``[B, 3, H, W]`` at once: every random choice is drawn for all images in one call from an
explicit ``torch.Generator`` (on the CPU, so a seed gives the same views on every device),
crops and flips are one ``F.grid_sample`` with a per-image affine grid, and the colour
operations are masked batch operations. No Python loop runs over the images.

Differences from torchvision, all deliberate: the crop is resampled bilinearly at the exact
crop box (torchvision crops whole pixels then resizes; for crops no larger than the output,
which ``scale <= 1`` guarantees, both are upsampling and agree up to interpolation detail);
and the random numbers come from our generator, so the views are not torchvision's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kuramoto.checks import is_int

__all__ = [
    "GRAY_WEIGHTS",
    "SimCLRAugment",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "grayscale",
    "hsv_to_rgb",
    "random_resized_crop_boxes",
    "resample_boxes",
    "rgb_to_hsv",
]

#: ITU-R 601-2 luma weights, as torchvision's ``rgb_to_grayscale``.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor [B, 3, H, W] in [0, 1], got shape "
                         f"{tuple(images.shape)} and dtype {images.dtype}")


def _factor(f: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per-image factors ``[B]`` as ``[B, 1, 1, 1]`` on the images' device and dtype."""
    return f.to(images.device, images.dtype).view(-1, 1, 1, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma ``[B, 1, H, W]`` of RGB images ``[B, 3, H, W]`` (weights :data:`GRAY_WEIGHTS`)."""
    r, g, b = images.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp(f · x, 0, 1)`` with one factor per image (``factor [B]``)."""
    return (images * _factor(factor, images)).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with the mean of its luma: ``clamp(f · x + (1 - f) · mean, 0, 1)``."""
    mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    f = _factor(factor, images)
    return (f * images + (1.0 - f) * mean).clamp_(0.0, 1.0)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each pixel with its luma: ``clamp(f · x + (1 - f) · gray, 0, 1)``."""
    f = _factor(factor, images)
    return (f * images + (1.0 - f) * grayscale(images)).clamp_(0.0, 1.0)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """RGB ``[B, 3, H, W]`` in [0, 1] to HSV with every channel in [0, 1] (hue in turns).

    Grey pixels (max = min) get hue 0 and saturation 0, as in torchvision.
    """
    r, g, b = images.unbind(1)
    maxc, _ = images.max(dim=1)
    minc, _ = images.min(dim=1)
    delta = maxc - minc
    grey = delta == 0
    # Where delta = 0 the hue is irrelevant: divide by 1 there to stay finite.
    safe = torch.where(grey, torch.ones_like(delta), delta)
    sat = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(grey, torch.zeros_like(hue), torch.remainder(hue / 6.0, 1.0))
    return torch.stack([hue, sat, maxc], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv` (``[B, 3, H, W]``, hue in turns)."""
    h, s, v = hsv.unbind(1)
    h6 = torch.remainder(h, 1.0) * 6.0
    sector = torch.floor(h6).clamp_(0, 5)
    frac = h6 - sector
    p = v * (1.0 - s)
    q = v * (1.0 - s * frac)
    t = v * (1.0 - s * (1.0 - frac))
    # Each output channel picks one of (v, q, p, t) by sector, as in the textbook table.
    table = torch.stack([v, q, p, t], dim=1)                                     # [B, 4, H, W]
    pick = torch.tensor([[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]], device=hsv.device)
    idx = pick[sector.long()].permute(0, 3, 1, 2)                                # [B, 3, H, W]
    return torch.gather(table, 1, idx)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image by ``shift [B]`` turns (in ``[-0.5, 0.5]``)."""
    hsv = rgb_to_hsv(images)
    hue = torch.remainder(hsv[:, :1] + _factor(shift, images), 1.0)
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1))


def random_resized_crop_boxes(batch: int, height: int, width: int, *, scale: tuple[float, float] = (0.08, 1.0),
                              ratio: tuple[float, float] = (3 / 4, 4 / 3), generator: torch.Generator | None = None,
                              attempts: int = 10) -> torch.Tensor:
    """Crop boxes ``[B, 4]`` = ``(top, left, height, width)`` (int64) by torchvision's rule.

    Per image: up to ``attempts`` draws of an area fraction ``U(scale)`` and a log-uniform
    aspect ratio in ``ratio``; the first draw whose box fits is used, at a uniformly random
    integer position. If none fits, the centre crop of the whole image clamped to ``ratio``.
    All draws for all images happen at once (on the CPU).
    """
    g = generator
    area = height * width
    frac = torch.empty(batch, attempts, dtype=torch.float64).uniform_(scale[0], scale[1], generator=g)
    log_r = torch.empty(batch, attempts, dtype=torch.float64).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                                         generator=g)
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(frac * area * aspect)).long()
    h = torch.round(torch.sqrt(frac * area / aspect)).long()
    fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = fits.long().argmax(dim=1, keepdim=True)        # index of the first fitting draw (0 if none)
    any_fit = fits.any(dim=1)
    h = h.gather(1, first).squeeze(1)
    w = w.gather(1, first).squeeze(1)
    # fallback: whole image, aspect clamped into the ratio range
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fh, fw = height, int(round(height * ratio[1]))
    else:
        fw, fh = width, height
    h = torch.where(any_fit, h, torch.full_like(h, fh))
    w = torch.where(any_fit, w, torch.full_like(w, fw))
    u = torch.rand(batch, 2, dtype=torch.float64, generator=g)
    top = torch.floor(u[:, 0] * (height - h + 1)).long()
    left = torch.floor(u[:, 1] * (width - w + 1)).long()
    top = torch.where(any_fit, top, (height - h) // 2)
    left = torch.where(any_fit, left, (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def resample_boxes(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int],
                   flip: torch.Tensor | None = None) -> torch.Tensor:
    """Resample box ``(top, left, h, w)`` of every image to ``size`` (bilinear), optionally mirrored.

    Output pixel ``u`` samples the input at ``left + (u + 1/2) · w / out_w - 1/2`` (pixel
    centres, as a resize of the cropped box); a flipped image reads its box right to left.

    Args:
        images: ``[B, C, H, W]`` float.
        boxes: ``[B, 4]`` integer ``(top, left, height, width)``.
        size: ``(out_h, out_w)``.
        flip: optional ``[B]`` bool, mirror horizontally.

    Returns:
        ``[B, C, out_h, out_w]``.
    """
    b, _, hh, ww = images.shape
    bx = boxes.to(torch.float64)
    top, left, h, w = bx.unbind(1)
    sx = w / ww
    sy = h / hh
    if flip is not None:
        sx = torch.where(flip.to(torch.bool), -sx, sx)
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * left + w) / ww - 1
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = (2 * top + h) / hh - 1
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, [b, images.shape[1], *size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class SimCLRAugment:
    """The SimCLR view generator of the official object-discovery training, batched.

    Calling it on ``[B, 3, H, W]`` images in ``[0, 1]`` returns one augmented view of each;
    :meth:`views` returns two independent views (the positive pairs of InfoNCE). Order per
    image: random resized crop (and flip), then with probability ``p_jitter`` the four colour
    jitters (brightness, contrast, saturation, hue) in a random order per image, as
    torchvision's ``ColorJitter``, then grayscale with probability ``p_gray``.

    Attributes:
        size: ``(H, W)`` of the views; ``None`` keeps the input size.
        scale: range of the crop's area fraction (torchvision default ``(0.08, 1)``).
        ratio: range of the crop's aspect ratio.
        hflip: mirror half of the views at random (off in the paper's object runs).
        brightness, contrast, saturation: jitter strengths ``s``; factors ``U[1 - s, 1 + s]``.
        hue: hue jitter strength; shift ``U[-hue, hue]`` turns (at most 0.5).
        p_jitter: probability of the colour jitter (0.8).
        p_gray: probability of grayscale (0.2).
    """

    size: tuple[int, int] | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = False
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p_jitter: float = 0.8
    p_gray: float = 0.2

    def __post_init__(self) -> None:
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2 or not all(is_int(s) and s >= 1 for s in size):
                raise ValueError(f"size: expected None or (H, W) positive ints, got {self.size!r}")
            object.__setattr__(self, "size", size)
        for name, lo_min, hi_max in (("scale", 0.0, 1.0), ("ratio", 0.0, math.inf)):
            lo, hi = getattr(self, name)
            if not (lo_min < lo <= hi <= hi_max):
                raise ValueError(f"{name}: expected {lo_min} < low <= high <= {hi_max}, got {getattr(self, name)!r}")
        if not isinstance(self.hflip, bool):
            raise TypeError(f"hflip: expected a bool, got {type(self.hflip).__name__}")
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name}: expected a strength in [0, 1], got {v!r}")
        if not (isinstance(self.hue, (int, float)) and 0.0 <= self.hue <= 0.5):
            raise ValueError(f"hue: expected a strength in [0, 0.5], got {self.hue!r}")
        for name in ("p_jitter", "p_gray"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name}: expected a probability in [0, 1], got {v!r}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One random view of every image.

        Args:
            images: ``[B, 3, H, W]`` float in ``[0, 1]`` (any device).
            generator: a CPU ``torch.Generator``; every random draw comes from it, so a seed
                fixes the views (``None``: torch's global generator).

        Returns:
            ``[B, 3, *size]`` in ``[0, 1]``, same device and dtype.
        """
        _check_images(images)
        if generator is not None and (not isinstance(generator, torch.Generator)
                                      or generator.device.type != "cpu"):
            raise TypeError("generator: expected a CPU torch.Generator (the draws are made on the CPU and moved)")
        b, _, hh, ww = images.shape
        g = generator
        boxes = random_resized_crop_boxes(b, hh, ww, scale=self.scale, ratio=self.ratio, generator=g)
        flip = torch.rand(b, generator=g) < 0.5 if self.hflip else None
        out = resample_boxes(images, boxes, self.size or (hh, ww), flip).clamp_(0.0, 1.0)

        jitter = torch.rand(b, generator=g) < self.p_jitter
        order = torch.argsort(torch.rand(b, 4, generator=g), dim=1)     # a random permutation per image
        factors = torch.stack([
            torch.empty(b).uniform_(1 - self.brightness, 1 + self.brightness, generator=g),
            torch.empty(b).uniform_(1 - self.contrast, 1 + self.contrast, generator=g),
            torch.empty(b).uniform_(1 - self.saturation, 1 + self.saturation, generator=g),
            torch.empty(b).uniform_(-self.hue, self.hue, generator=g),
        ], dim=1)                                                         # [B, 4]
        ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        for slot in range(4):
            for k, op in enumerate(ops):
                rows = torch.nonzero(jitter & (order[:, slot] == k)).squeeze(1)
                if rows.numel():
                    dev_rows = rows.to(out.device)
                    out[dev_rows] = op(out[dev_rows], factors[rows, k])
        gray = torch.rand(b, generator=g) < self.p_gray
        if gray.any():
            rows = torch.nonzero(gray).squeeze(1).to(out.device)
            out[rows] = grayscale(out[rows]).expand(-1, 3, -1, -1)
        return out

    def views(self, images: torch.Tensor, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views ``(v1, v2)`` of every image (each ``[B, 3, *size]``)."""
        both = self(torch.cat([images, images], dim=0), generator)
        return both[: images.shape[0]], both[images.shape[0]:]
