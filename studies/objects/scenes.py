"""The scene container of the object-discovery study (:class:`SceneData`: images, instance masks,
name) and its torch ``Dataset`` (:class:`SceneDataset`), with the rendering helpers the generators share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kuramoto.checks import is_int

__all__ = ["GENERATOR_VERSION", "SceneData", "SceneDataset", "count_objects"]


#: Bumped whenever a generator's output for a given (parameters, seed) changes; part of the cache key.
GENERATOR_VERSION = 1


# ----------------------------------------------------------------------------------------------
# result type
# ----------------------------------------------------------------------------------------------
@dataclass(eq=False)
class SceneData:
    """A set of multi-object scenes with instance masks.

    The generated sets (:func:`shapes`, :func:`tetrominoes`, :func:`dsprites`) are
    **look-alikes** of the published datasets: scores on them are not directly comparable
    with the AKOrN paper's. Sets read by the ``load_*`` functions are the published data.

    Attributes:
        images: ``[M, 3, H, W]`` float32 in ``[0, 1]`` (grey images replicated to 3 channels).
        masks: ``[M, H, W]`` signed integers: ``0`` background, ``-1`` ignore, ``1..K`` objects.
        num_objects: ``[M]`` int64, number of distinct object ids (> 0) present in each mask.
        name: dataset name, e.g. ``"shapes"`` or ``"clevrtex_full/test"``.
        classes: optional ``[M, H, W]`` pixelwise class map (Shapes: shape type 1..4, ``0``
            background, ``-1`` overlap), else ``None``.
    """

    images: np.ndarray
    masks: np.ndarray
    num_objects: np.ndarray
    name: str
    classes: np.ndarray | None = None

    def __post_init__(self) -> None:
        imgs, masks = self.images, self.masks
        if not isinstance(imgs, np.ndarray) or imgs.ndim != 4 or imgs.shape[1] != 3:
            raise ValueError(f"images: expected a numpy array [M, 3, H, W], got "
                             f"{getattr(imgs, 'shape', type(imgs).__name__)}")
        if imgs.dtype != np.float32:
            raise TypeError(f"images: expected float32, got {imgs.dtype}")
        if not isinstance(masks, np.ndarray) or masks.shape != (imgs.shape[0], *imgs.shape[2:]):
            raise ValueError(f"masks: expected shape {(imgs.shape[0], *imgs.shape[2:])} to match images "
                             f"{imgs.shape}, got {getattr(masks, 'shape', type(masks).__name__)}")
        if masks.dtype.kind != "i":
            raise TypeError(f"masks: expected a signed integer dtype, got {masks.dtype}")
        self.num_objects = np.asarray(self.num_objects, dtype=np.int64)
        if self.num_objects.shape != (imgs.shape[0],):
            raise ValueError(f"num_objects: expected shape ({imgs.shape[0]},), got {self.num_objects.shape}")
        if self.classes is not None and (not isinstance(self.classes, np.ndarray) or self.classes.shape != masks.shape):
            raise ValueError(f"classes: expected shape {masks.shape}, got "
                             f"{getattr(self.classes, 'shape', type(self.classes).__name__)}")
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected str, got {type(self.name).__name__}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, index: Any) -> SceneData:
        """The scenes selected by ``index`` (slice, integer array or boolean mask)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return SceneData(self.images[index], self.masks[index], self.num_objects[index], self.name,
                         None if self.classes is None else self.classes[index])


def count_objects(masks: np.ndarray) -> np.ndarray:
    """Number of distinct ids > 0 in each ``[H, W]`` map of ``masks [M, H, W]`` (int64 ``[M]``)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks: expected [M, H, W], got shape {masks.shape}")
    m = masks.shape[0]
    if m == 0 or masks.size == 0:
        return np.zeros(m, dtype=np.int64)
    top = int(max(masks.max(), 0)) + 1
    flat = np.clip(masks.reshape(m, masks.shape[1] * masks.shape[2]).astype(np.int64), 0, None) + top * np.arange(m)[:, None]
    present = np.bincount(flat.ravel(), minlength=m * top).reshape(m, top) > 0
    return present[:, 1:].sum(axis=1).astype(np.int64)


class SceneDataset(torch.utils.data.Dataset):
    """A torch ``Dataset`` over a :class:`SceneData` yielding ``(image, mask)``.

    ``image`` is a float32 tensor ``[3, H, W]`` in ``[0, 1]`` (passed through ``transform`` if
    given), ``mask`` an int64 tensor ``[H, W]`` (0 background, -1 ignore, 1..K objects).
    """

    def __init__(self, scenes: SceneData, transform: Callable[[torch.Tensor], Any] | None = None):
        if not isinstance(scenes, SceneData):
            raise TypeError(f"scenes: expected SceneData, got {type(scenes).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")
        self.scenes = scenes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        image = torch.from_numpy(np.ascontiguousarray(self.scenes.images[index]))
        mask = torch.from_numpy(self.scenes.masks[index].astype(np.int64))
        if self.transform is not None:
            image = self.transform(image)
        return image, mask


# ----------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------
def _check_num_seed(num: int, seed: int) -> None:
    if not is_int(num) or num < 0:
        raise ValueError(f"num: expected a non-negative int, got {num!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")


def _check_count_range(lo: int, hi: int, limit: int, what: str = "objects") -> None:
    for name, v in ((f"min_{what}", lo), (f"max_{what}", hi)):
        if not is_int(v):
            raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if not 1 <= lo <= hi <= limit:
        raise ValueError(f"min_{what}, max_{what}: expected 1 <= min <= max <= {limit}, got {lo}, {hi}")


def _paste(canvas: np.ndarray, rows: np.ndarray, cols: np.ndarray, sprites: np.ndarray,
           value: np.ndarray, which: np.ndarray) -> None:
    """Write ``value[b]`` into ``canvas[which[b]]`` where ``sprites[b]`` is true, box at (rows[b], cols[b]).

    One box per image (``which`` has no repeats), so the fancy-index scatter has no collisions.
    """
    idx = _box_index(canvas.shape, which, rows, cols, sprites.shape[1:])
    flat = canvas.reshape(-1)
    flat[idx[sprites]] = np.broadcast_to(value[:, None, None], sprites.shape)[sprites]


def _box_index(shape: tuple[int, ...], which: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               box: tuple[int, int]) -> np.ndarray:
    """Flat indices ``[B, bh, bw]`` of the boxes at (rows, cols) of canvases ``which`` in a C-contiguous
    array of ``shape`` ``[M, H, W]``; 1-D indexing is much faster than 3-array fancy indexing."""
    _, c_h, c_w = shape
    start = (which.astype(np.intp) * c_h + rows) * c_w + cols
    return start[:, None, None] + (np.arange(box[0]) * c_w)[None, :, None] + np.arange(box[1])[None, None, :]


def _to_float_images(rgb_u8: np.ndarray) -> np.ndarray:
    """``[M, H, W, 3]`` uint8 -> ``[M, 3, H, W]`` float32 in [0, 1] (the cache reverses this exactly)."""
    return np.ascontiguousarray(rgb_u8.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255)


def _render(inst: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Colour an instance map: ``inst [M, H, W]`` ids 0..K, ``lut [M, K+1, 3]`` uint8 -> ``[M, 3, H, W]`` float32."""
    m, k1, _ = lut.shape
    flat = (inst.reshape(m, inst.shape[1] * inst.shape[2]).astype(np.intp)
            + (k1 * np.arange(m, dtype=np.intp))[:, None]).ravel()
    out = np.empty((m, 3, inst.shape[1] * inst.shape[2]), np.float32)
    for ch in range(3):
        out[:, ch] = lut[:, :, ch].ravel().take(flat).reshape(m, out.shape[2])
    out /= np.float32(255)
    return out.reshape(m, 3, *inst.shape[1:])
