"""Multi-object scenes for the unsupervised object-discovery study: generators and loaders.

Three vectorised numpy generators (seeded, deterministic per seed; never the global RNG):

* :func:`shapes`: the official AKOrN "Shapes" toy set (40×40 grey, 2–4 hollow shapes,
  ``data/create_shapes.py`` as described in the spec); same recipe, but a different RNG,
  so not the same images as the official file.
* :func:`tetrominoes`: a look-alike of DeepMind's Tetrominoes (32×32 RGB, 3 pieces).
* :func:`dsprites`: a look-alike of DeepMind's multi-dSprites ``colored_on_grayscale`` (64×64 RGB,
  4–6 occluding sprites).

**These are look-alikes of the published datasets, not the datasets.** Sizes, colours and
placement follow the published descriptions, but the pixel statistics differ, so FG-ARI / MBO
measured on them are *not directly comparable* with the numbers in the AKOrN paper or README.
For comparable numbers use the loaders of the published files: :func:`load_tetrominoes`,
:func:`load_multi_dsprites`, :func:`load_clevr` (the official converter's ``.npz`` files or raw
DeepMind ``multi_object_datasets`` arrays) and :func:`load_clevrtex` (the CLEVRTex PNGs).

Every generator and loader returns a :class:`SceneData`; :func:`make_scenes` caches generated
sets on disk (HDF5, keyed by every parameter and :data:`GENERATOR_VERSION`) and
:class:`SceneDataset` wraps a :class:`SceneData` as a torch ``Dataset`` of ``(image, mask)``.

Mask convention (all datasets): ``0`` background, ``-1`` ignore (e.g. overlapping shapes),
``1..K`` object ids.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studies.cache import cached_arrays

__all__ = [
    "GENERATORS",
    "GENERATOR_VERSION",
    "SceneData",
    "SceneDataset",
    "count_objects",
    "dsprites",
    "load_arrays",
    "load_clevr",
    "load_clevrtex",
    "load_multi_dsprites",
    "load_tetrominoes",
    "make_scenes",
    "shape_templates",
    "shapes",
    "sprite_bank",
    "tetromino_orientations",
    "tetrominoes",
]

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
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ValueError(f"num: expected a non-negative int, got {num!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")


def _check_count_range(lo: int, hi: int, limit: int, what: str = "objects") -> None:
    for name, v in ((f"min_{what}", lo), (f"max_{what}", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
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


# ----------------------------------------------------------------------------------------------
# Shapes (official AKOrN toy recipe)
# ----------------------------------------------------------------------------------------------
SHAPE_NAMES = ("triangle", "square", "circle", "diamond")


@functools.lru_cache(maxsize=1)
def _shape_templates() -> np.ndarray:
    r, c = np.mgrid[0:18, 0:18]
    # triangle: outer apex (4, 8), base row 11 cols 1..15; inner (7, 8), (9, 6), (9, 10) removed
    outer = (r >= 4) & (r <= 11) & (np.abs(c - 8) <= r - 4)
    inner = (r <= 9) & (np.abs(c - 8) <= r - 7)
    triangle = outer & ~inner
    # square: 10x10 ring (rows/cols 3..12), 2 px wide
    sq_out = (r >= 3) & (r <= 12) & (c >= 3) & (c <= 12)
    sq_in = (r >= 5) & (r <= 10) & (c >= 5) & (c <= 10)
    square = sq_out & ~sq_in
    d2 = (r - 8) ** 2 + (c - 8) ** 2
    circle = (d2 <= 49) & (d2 > 25)                      # disk radius 7 minus disk radius 5
    l1 = np.abs(r - 8) + np.abs(c - 8)
    diamond = (l1 <= 6) & (l1 > 4)                       # vertices at distance 6 minus distance 4
    out = np.stack([triangle, square, circle, diamond])
    out.setflags(write=False)
    return out


def shape_templates() -> np.ndarray:
    """The four hollow 18×18 Shapes templates ``[4, 18, 18]`` bool: triangle, square, circle, diamond.

    Our reading of the official recipe (strokes about 2 px): triangle = outer triangle with apex
    (row 4, col 8) and base row 11 cols 1–15 minus the inner triangle (7, 8), (9, 6), (9, 10);
    square = 10×10 ring at rows/cols 3–12, 2 px wide; circle = disk of radius 7 minus disk of
    radius 5 about (8, 8); diamond = L1 ball of radius 6 minus L1 ball of radius 4 about (8, 8).
    """
    return _shape_templates().copy()


_CHUNK = 1024   # scenes rendered at once: keeps the working set in cache


def _render_shapes(bg: np.ndarray, k: np.ndarray, kinds: np.ndarray, corners: np.ndarray, templates: np.ndarray,
                   size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    num = bg.shape[0]
    hits = np.zeros((num, size, size), np.int8)      # how many shapes cover a pixel (saturates at 2)
    inst = np.zeros((num, size, size), np.int8)
    cls = np.zeros((num, size, size), np.int8)
    hit = np.zeros((num, size, size), bool)
    for j in range(kinds.shape[1]):
        which = np.flatnonzero(j < k)
        if which.size == 0:
            continue
        hit[:] = False
        _paste(hit, corners[which, j, 0], corners[which, j, 1], templates[kinds[which, j]],
               np.ones(which.size, bool), which)
        first = hit & (hits == 0)
        again = hit & (hits > 0)
        np.minimum(hits + hit, 2, out=hits)
        inst[first] = j + 1
        np.copyto(cls, (kinds[:, j] + 1).astype(np.int8)[:, None, None], where=first)
        inst[again] = -1
        cls[again] = -1
    grey = np.where(hits > 0, np.float32(1.0), bg[:, None, None].astype(np.float32))
    return grey[:, None], inst, cls


def shapes(num: int, seed: int = 0, *, min_objects: int = 2, max_objects: int = 4) -> SceneData:
    """The official AKOrN "Shapes" recipe: 40×40 grey images with 2–4 hollow shapes.

    Per image: background grey level ~ U[0.1, 0.6]; number of shapes uniform in
    ``{min_objects..max_objects}``; each shape type uniform over :func:`shape_templates`; top-left
    corner uniform in ``[0, 22]`` per axis; shape pixels 1.0. Instance map: shape index ``1..k``
    in drawing order; class map: type ``1..4``; a pixel hit by a second shape is ``-1`` in both
    maps for good.

    Same recipe as ``data/create_shapes.py`` but drawn with ``numpy.random.default_rng(seed)``,
    so the images are not those of the official file. A shape all of whose pixels are overlaps
    keeps no pixel of its own id (ids are not renumbered, as in the recipe); ``num_objects``
    counts the ids present, so it can be below the number of shapes drawn.

    Returns:
        :class:`SceneData` named ``"shapes"``; images ``[M, 3, 40, 40]`` (grey replicated),
        masks and classes ``[M, 40, 40]`` int8.
    """
    _check_num_seed(num, seed)
    _check_count_range(min_objects, max_objects, 127)
    rng = np.random.default_rng(seed)
    size, tsize = 40, 18
    templates = _shape_templates()
    bg = rng.uniform(0.1, 0.6, size=num)
    k = rng.integers(min_objects, max_objects + 1, size=num)
    kinds = rng.integers(0, len(templates), size=(num, max_objects))
    corners = rng.integers(0, size - tsize + 1, size=(num, max_objects, 2))
    images = np.empty((num, 3, size, size), np.float32)
    inst = np.empty((num, size, size), np.int8)
    cls = np.empty((num, size, size), np.int8)
    # every random draw is made above, so rendering in chunks (for cache locality) changes nothing
    for lo in range(0, num, _CHUNK):
        c = slice(lo, min(lo + _CHUNK, num))
        images[c], inst[c], cls[c] = _render_shapes(bg[c], k[c], kinds[c], corners[c], templates, size)
    return SceneData(images, inst, count_objects(inst), "shapes", classes=cls)


# ----------------------------------------------------------------------------------------------
# Tetrominoes look-alike
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _tetromino_cells() -> np.ndarray:
    free = {  # the seven one-sided tetrominoes as (row, col) cells
        "I": [(0, 0), (0, 1), (0, 2), (0, 3)], "O": [(0, 0), (0, 1), (1, 0), (1, 1)],
        "T": [(0, 0), (0, 1), (0, 2), (1, 1)], "S": [(0, 1), (0, 2), (1, 0), (1, 1)],
        "Z": [(0, 0), (0, 1), (1, 1), (1, 2)], "J": [(0, 0), (1, 0), (1, 1), (1, 2)],
        "L": [(0, 2), (1, 0), (1, 1), (1, 2)],
    }
    seen: list[frozenset] = []
    for cells in free.values():
        pts = np.array(cells)
        for _ in range(4):
            pts = np.stack([pts[:, 1], -pts[:, 0]], axis=1)      # rotate by 90 degrees
            norm = frozenset(map(tuple, (pts - pts.min(axis=0)).tolist()))
            if norm not in seen:
                seen.append(norm)
    grids = np.zeros((len(seen), 4, 4), bool)
    for i, cells in enumerate(seen):
        for r, c in cells:
            grids[i, r, c] = True
    grids.setflags(write=False)
    return grids


def tetromino_orientations() -> np.ndarray:
    """The 19 fixed tetromino orientations as ``[19, 4, 4]`` bool cell grids (top-left aligned)."""
    return _tetromino_cells().copy()


#: Six saturated colours, uint8 RGB (DeepMind's Tetrominoes also uses a small fixed palette).
TETROMINO_PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255]],
                             dtype=np.uint8)


def tetrominoes(num: int, seed: int = 0, *, num_objects: int = 3, size: int = 32, cell: int = 4,
                max_tries: int = 200) -> SceneData:
    """A look-alike of DeepMind's Tetrominoes: RGB scenes of non-overlapping tetrominoes on black.

    Each of ``num_objects`` pieces gets one of the 19 fixed orientations, a colour from
    :data:`TETROMINO_PALETTE` (repeats allowed) and a uniformly random pixel position with its
    bounding box inside the image; cells are ``cell × cell`` pixels. A piece that would overlap
    an earlier one is redrawn (orientation and position) up to ``max_tries`` times; pieces may
    touch. Look-alike only: scores are not comparable with the published Tetrominoes.

    Returns:
        :class:`SceneData` named ``"tetrominoes"``, masks int8 with ids ``1..num_objects``.

    Raises:
        RuntimeError: a piece found no free spot in ``max_tries`` attempts (too many or too big pieces).
    """
    _check_num_seed(num, seed)
    if isinstance(num_objects, bool) or not isinstance(num_objects, (int, np.integer)) or not 1 <= num_objects <= 127:
        raise ValueError(f"num_objects: expected an int in 1..127, got {num_objects!r}")
    if isinstance(max_tries, bool) or not isinstance(max_tries, (int, np.integer)) or max_tries < 1:
        raise ValueError(f"max_tries: expected a positive int, got {max_tries!r}")
    if isinstance(cell, bool) or not isinstance(cell, (int, np.integer)) or cell < 1:
        raise ValueError(f"cell: expected a positive int, got {cell!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 4 * cell:
        raise ValueError(f"size: expected an int >= 4 * cell = {4 * cell}, got {size!r}")
    rng = np.random.default_rng(seed)
    cells = _tetromino_cells()
    bank = np.repeat(np.repeat(cells, cell, axis=1), cell, axis=2)           # [19, 4c, 4c]
    box = 4 * cell
    extent = np.stack([cells.any(axis=2).sum(axis=1), cells.any(axis=1).sum(axis=1)], axis=1) * cell  # [19, 2]
    inst = np.zeros((num, size + box, size + box), np.int8)                 # padded bottom/right
    colours = rng.integers(0, len(TETROMINO_PALETTE), size=(num, num_objects))
    for j in range(num_objects):
        todo = np.arange(num)
        for _ in range(max_tries):
            if todo.size == 0:
                break
            kind = rng.integers(0, len(cells), size=todo.size)
            span = size - extent[kind] + 1
            pos = np.floor(rng.random((todo.size, 2)) * span).astype(np.int64)
            window = inst.reshape(-1)[_box_index(inst.shape, todo, pos[:, 0], pos[:, 1], (box, box))]
            ok = ~((window != 0) & bank[kind]).any(axis=(1, 2))
            if ok.any():
                sel = np.flatnonzero(ok)
                _paste(inst, pos[sel, 0], pos[sel, 1], bank[kind[sel]], np.full(sel.size, j + 1), todo[sel])
            todo = todo[~ok]
        if todo.size:
            raise RuntimeError(f"tetrominoes: piece {j + 1} found no free spot in {max_tries} tries for "
                               f"{todo.size} scene(s); use fewer pieces (num_objects), a smaller cell or a larger size")
    inst = np.ascontiguousarray(inst[:, :size, :size])
    lut = np.concatenate([np.zeros((num, 1, 3), np.uint8), TETROMINO_PALETTE[colours]], axis=1)  # [M, K+1, 3]
    return SceneData(_render(inst, lut), inst, count_objects(inst), "tetrominoes")


# ----------------------------------------------------------------------------------------------
# multi-dSprites look-alike
# ----------------------------------------------------------------------------------------------
SPRITE_SHAPES = ("square", "ellipse", "heart")
SPRITE_SCALES = tuple(np.linspace(0.5, 1.0, 6).tolist())    # dSprites: 6 scales in [0.5, 1]
SPRITE_ROTATIONS = 40                                        # dSprites: 40 orientations in [0, 2*pi)


@functools.lru_cache(maxsize=8)
def _sprite_bank(size: int) -> np.ndarray:
    half = 0.15 * size                      # half-extent of a scale-1 sprite (square side 0.3 * size)
    box = 2 * int(np.ceil(half * np.sqrt(2) + 1)) + 1
    ss = 4                                  # 4x4 supersampling; a pixel is in when >= half covered
    offs = (np.arange(box * ss) + 0.5) / ss - box / 2
    y, x = np.meshgrid(offs, offs, indexing="ij")
    scales = np.asarray(SPRITE_SCALES)[:, None, None, None]
    angles = (2 * np.pi * np.arange(SPRITE_ROTATIONS) / SPRITE_ROTATIONS)[None, :, None, None]
    cos, sin = np.cos(angles), np.sin(angles)
    u = (cos * x + sin * y) / (half * scales)   # sprite frame (inverse rotation), unit half-extent
    v = (-sin * x + cos * y) / (half * scales)
    square = np.maximum(np.abs(u), np.abs(v)) <= 1
    ellipse = u ** 2 + (v / 0.5) ** 2 <= 1
    hx, hy = 1.15 * u, -1.2 * v + 0.1            # classic heart curve, point downwards in image rows
    heart = (hx ** 2 + hy ** 2 - 1) ** 3 - hx ** 2 * hy ** 3 <= 0
    shapes_ = np.stack([square, ellipse, heart])                       # [3, S, R, box*ss, box*ss]
    cover = shapes_.reshape(*shapes_.shape[:3], box, ss, box, ss).mean(axis=(4, 6))
    bank = cover >= 0.5
    bank.setflags(write=False)
    return bank


def sprite_bank(size: int = 64) -> np.ndarray:
    """Pre-rendered binary sprites ``[3 shapes, 6 scales, 40 rotations, S, S]`` for ``size``-px scenes.

    Shapes (square, ellipse with axes 1 : 0.5, heart) have half-extent ``0.15 * size * scale``.
    """
    return _sprite_bank(int(size)).copy()


def dsprites(num: int, seed: int = 0, *, min_objects: int = 4, max_objects: int = 6, size: int = 64) -> SceneData:
    """A look-alike of multi-dSprites ``colored_on_grayscale``: occluding coloured sprites on grey.

    Per scene: background grey level uniform over the 256 8-bit levels; ``min_objects..max_objects``
    sprites, each with a uniform shape (square, ellipse, heart), scale (6 levels in [0.5, 1]),
    rotation (40 levels), centre pixel (anywhere in the image; sprites may be cut by the border)
    and an 8-bit RGB colour uniform per channel. Sprites are drawn in order from
    :func:`sprite_bank`; later ones occlude earlier ones.

    Occlusion rule: the mask holds the visible pixels; a sprite left with no visible pixel (fully
    hidden by later sprites; the border never hides a whole sprite, since its centre pixel lies in
    the image) is dropped and the ids are renumbered ``1..num_objects`` in drawing order, so
    ``num_objects`` can fall below ``min_objects``.
    Look-alike only: scores are not comparable with the published multi-dSprites.

    Returns:
        :class:`SceneData` named ``"dsprites"``, masks int8.
    """
    _check_num_seed(num, seed)
    _check_count_range(min_objects, max_objects, 127)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size: expected an int >= 8, got {size!r}")
    rng = np.random.default_rng(seed)
    bank = _sprite_bank(int(size))
    k = rng.integers(min_objects, max_objects + 1, size=num)
    choice = np.stack([rng.integers(0, n, size=(num, max_objects)) for n in bank.shape[:3]], axis=-1)
    centre = rng.integers(0, size, size=(num, max_objects, 2))
    colour = rng.integers(0, 256, size=(num, max_objects, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=num, dtype=np.uint8)
    images = np.empty((num, 3, size, size), np.float32)
    inst = np.empty((num, size, size), np.int8)
    count = np.empty(num, np.int64)
    # every random draw is made above, so rendering in chunks (for cache locality) changes nothing
    for lo in range(0, num, _CHUNK):
        c = slice(lo, min(lo + _CHUNK, num))
        images[c], inst[c], count[c] = _render_sprites(k[c], choice[c], centre[c], colour[c], grey[c], bank, size)
    return SceneData(images, inst, count, "dsprites")


def _render_sprites(k: np.ndarray, choice: np.ndarray, centre: np.ndarray, colour: np.ndarray, grey: np.ndarray,
                    bank: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    num, max_objects = choice.shape[:2]
    pad = bank.shape[-1] // 2
    inst = np.zeros((num, size + 2 * pad, size + 2 * pad), np.int8)
    for j in range(max_objects):
        which = np.flatnonzero(j < k)
        if which.size == 0:
            continue
        ch = choice[which, j]
        # the box is odd-sized with the sprite centre at index pad, so for centre pixel c (image
        # coords) the box's top-left corner in the padded canvas is c - pad + pad = c
        _paste(inst, centre[which, j, 0], centre[which, j, 1], bank[ch[:, 0], ch[:, 1], ch[:, 2]],
               np.full(which.size, j + 1), which)
    inst = np.ascontiguousarray(inst[:, pad:pad + size, pad:pad + size])
    # drop sprites without visible pixels and renumber the rest 1..n in drawing order
    top = max_objects + 1
    flat = (inst.reshape(num, size * size).astype(np.intp) + (top * np.arange(num, dtype=np.intp))[:, None]).ravel()
    visible = np.bincount(flat, minlength=num * top).reshape(num, top) > 0
    visible[:, 0] = False
    relabel = (np.cumsum(visible, axis=1) * visible).astype(np.int8)        # [M, K+1]; 0 -> 0
    inst = relabel.ravel().take(flat).reshape(inst.shape)
    lut = np.zeros((num, top, 3), np.uint8)
    lut[:, 0] = grey[:, None]
    rows, ids = np.nonzero(visible)
    lut[rows, relabel[rows, ids]] = colour[rows, ids - 1]
    return _render(inst, lut), inst, visible.sum(axis=1)


#: Generator name -> function ``f(num, seed=0, **params) -> SceneData``.
GENERATORS: dict[str, Callable[..., SceneData]] = {"shapes": shapes, "tetrominoes": tetrominoes,
                                                   "dsprites": dsprites}
# generators whose images are exact 8-bit levels: cached as uint8 (4x smaller), restored exactly
_QUANTISED = {"tetrominoes", "dsprites"}


def make_scenes(name: str, num: int, seed: int = 0, cache_dir: str | os.PathLike | None = None, *,
                cache: bool = True, **params: Any) -> SceneData:
    """Generate ``num`` scenes of generator ``name``, cached on disk.

    The cache key holds the generator name, :data:`GENERATOR_VERSION`, ``num``, ``seed`` and
    every generator parameter (defaults filled in, so passing a default explicitly hits the same
    file). Generated sets are look-alikes of the published datasets (see the module docstring).

    Args:
        name: one of :data:`GENERATORS` (``"shapes"``, ``"tetrominoes"``, ``"dsprites"``).
        num: number of scenes.
        seed: RNG seed; the result is a deterministic function of (name, num, seed, params).
        cache_dir: cache directory (default ``$AKORN_CACHE`` or ``~/.cache/akorn``).
        cache: ``False`` to generate without touching the disk.
        **params: keyword parameters of the generator (e.g. ``max_objects=5``).

    Raises:
        ValueError: unknown ``name``; TypeError: unknown parameter.
    """
    if name not in GENERATORS:
        raise ValueError(f"name: unknown generator {name!r}; expected one of {sorted(GENERATORS)}")
    gen = GENERATORS[name]
    try:
        bound = inspect.signature(gen).bind(num, seed, **params)
    except TypeError as exc:
        raise TypeError(f"params: {exc} (generator {name!r})") from exc
    bound.apply_defaults()
    args = dict(bound.arguments)
    _check_num_seed(args["num"], args["seed"])
    if not cache:
        return gen(**args)
    key = {"generator": name, "version": GENERATOR_VERSION,
           **{k: (int(v) if isinstance(v, np.integer) else v) for k, v in args.items()}}

    def build() -> dict[str, np.ndarray]:
        data = gen(**args)
        images = data.images
        if name in _QUANTISED:
            images = np.round(images * 255).astype(np.uint8)
        out = {"images": images, "masks": data.masks, "num_objects": data.num_objects}
        if data.classes is not None:
            out["classes"] = data.classes
        return out

    arrays = cached_arrays(f"scenes-{name}", key, build, root=cache_dir)
    images = arrays["images"]
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / np.float32(255)
    return SceneData(images, arrays["masks"], arrays["num_objects"], name, arrays.get("classes"))


# ----------------------------------------------------------------------------------------------
# loaders of the published formats
# ----------------------------------------------------------------------------------------------
_IMAGE_KEYS = ("images", "image")
_MASK_KEYS = ("masks", "labels", "mask", "pixelwise_instance_labels")


def _read_array_store(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise ValueError(f"path: directory {str(path)!r} holds no .npy files")
        return {f.stem: np.load(f, allow_pickle=False) for f in files}
    if not path.is_file():
        raise ValueError(f"path: no such file or directory {str(path)!r}")
    try:
        z = np.load(path, allow_pickle=False)
        if isinstance(z, np.ndarray):
            raise ValueError(f"path: {str(path)!r} is a single .npy array; expected an .npz file or "
                             f"a directory of .npy files with images and masks")
        with z:
            return {k: z[k] for k in z.files}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"path: cannot read {str(path)!r} as numpy data: {exc}") from exc
    except ValueError as exc:
        if str(exc).startswith("path:"):
            raise
        raise ValueError(f"path: cannot read {str(path)!r} as numpy data: {exc}") from exc


def _pick(store: Mapping[str, np.ndarray], keys: tuple[str, ...], what: str, path: Path) -> np.ndarray:
    for k in keys:
        if k in store:
            return store[k]
    raise ValueError(f"path: {str(path)!r} has no {what} array; expected one of the keys {list(keys)}, "
                     f"found {sorted(store)}")


def _masks_to_labels(masks: np.ndarray, path: Path) -> np.ndarray:
    """``[N, H, W]`` labels, or DeepMind one-hot entity masks ``[N, K, H, W(, 1)]`` -> argmax over K."""
    if masks.ndim == 5:
        if masks.shape[-1] != 1:
            raise ValueError(f"masks in {str(path)!r}: expected entity masks [N, K, H, W, 1], got {masks.shape}")
        masks = masks[..., 0]
    if masks.ndim == 4:
        if masks.shape[-1] == 1:   # [N, H, W, 1]
            masks = masks[..., 0]
        else:                      # [N, K, H, W] entity masks; entity 0 is the background
            return np.argmax(masks, axis=1).astype(np.int16)
    if masks.ndim != 3:
        raise ValueError(f"masks in {str(path)!r}: expected [N, H, W] labels or [N, K, H, W, 1] entity masks, "
                         f"got shape {masks.shape}")
    if masks.dtype.kind not in "iub":
        if not np.all(np.equal(np.mod(masks, 1), 0)):
            raise ValueError(f"masks in {str(path)!r}: expected integer labels, got non-integral {masks.dtype} values")
    return masks.astype(np.int16)


def _images_to_float(images: np.ndarray, hw: tuple[int, int], path: Path) -> np.ndarray:
    """``[N, H, W, 3]`` / ``[N, 3, H, W]`` (/ one channel), uint8 or float in [0, 1] -> ``[N, 3, H, W]`` float32."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images in {str(path)!r}: expected [N, H, W, 3] or [N, 3, H, W], got {images.shape}")
    if images.shape[1:3] == hw and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    elif not (images.shape[2:] == hw and images.shape[1] in (1, 3)):
        raise ValueError(f"images in {str(path)!r}: shape {images.shape} does not match the masks' image size "
                         f"{hw} as [N, H, W, C] or [N, C, H, W] with C in (1, 3)")
    if images.dtype == np.uint8:
        out = images.astype(np.float32) / np.float32(255)
    elif images.dtype.kind == "f":
        out = images.astype(np.float32)
        if out.size and (out.min() < 0 or out.max() > 1):
            raise ValueError(f"images in {str(path)!r}: float images must lie in [0, 1], got range "
                             f"[{out.min():.3g}, {out.max():.3g}] (uint8 images are divided by 255)")
    else:
        raise TypeError(f"images in {str(path)!r}: expected uint8 or float, got {images.dtype}")
    if out.shape[1] == 1:
        out = np.repeat(out, 3, axis=1)
    return np.ascontiguousarray(out)


def load_arrays(path: str | os.PathLike, name: str | None = None) -> SceneData:
    """Read one split of images + instance labels from an ``.npz`` file or a directory of ``.npy`` files.

    Accepted layouts:

    * the official AKOrN converter (``data/convert_tfrecord_to_np.py``): ``images`` ``[N, 3, H, W]``
      float in [0, 1] and ``labels`` ``[N, H, W]`` uint8;
    * ``images`` ``[N, H, W, 3]`` uint8 and ``masks`` / ``labels`` ``[N, H, W]`` ints;
    * DeepMind ``multi_object_datasets`` arrays: ``image`` ``[N, H, W, 3]`` uint8 and ``mask``
      ``[N, K, H, W, 1]`` one-hot entity masks (0/255); the label is the argmax over K, entity 0
      being the background (this equals the converter's rule for exclusive masks).

    Keys tried for images: ``images``, ``image``; for masks: ``masks``, ``labels``, ``mask``,
    ``pixelwise_instance_labels``. Masks are returned as int16 with 0 background.

    Raises:
        ValueError: missing file or key, or inconsistent shapes.
    """
    path = Path(path)
    store = _read_array_store(path)
    labels = _masks_to_labels(np.asarray(_pick(store, _MASK_KEYS, "mask", path)), path)
    images = np.asarray(_pick(store, _IMAGE_KEYS, "image", path))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"path: {str(path)!r} holds {images.shape[0]} images but {labels.shape[0]} masks")
    images = _images_to_float(images, labels.shape[1:], path)
    return SceneData(images, labels, count_objects(labels), name or path.stem)


def _split_file(root: str | os.PathLike, prefix: str, split: str) -> Path:
    root = Path(root)
    if root.is_file() or root.suffix == ".npz":
        return root
    for cand in (root / f"{prefix}_{split}.npz", root / f"{prefix}_{split}", root / split):
        if cand.exists():
            return cand
    raise ValueError(f"root: found neither {prefix}_{split}.npz nor a {prefix}_{split}/ or {split}/ directory of "
                     f".npy files under {str(root)!r}")


def load_tetrominoes(root: str | os.PathLike, split: str = "test") -> SceneData:
    """Tetrominoes as written by the official converter (``tetrominoes_{split}.npz``, 32×32).

    ``root`` is the directory holding the split files (or the file itself). Raw 35×35 DeepMind
    arrays are cropped to rows/cols 1..32 as the converter does.
    """
    data = load_arrays(_split_file(root, "tetrominoes", split), name=f"tetrominoes/{split}")
    if data.image_size == (35, 35):
        masks = np.ascontiguousarray(data.masks[:, 1:33, 1:33])
        data = SceneData(np.ascontiguousarray(data.images[:, :, 1:33, 1:33]), masks, count_objects(masks), data.name)
    if data.image_size != (32, 32):
        raise ValueError(f"root: Tetrominoes images must be 32x32 (or raw 35x35), got {data.image_size}")
    return data


def load_multi_dsprites(root: str | os.PathLike, split: str = "test",
                        variant: str = "colored_on_grayscale") -> SceneData:
    """Multi-dSprites as written by the official converter (``{variant}_{split}.npz``, 64×64)."""
    data = load_arrays(_split_file(root, variant, split), name=f"multi_dsprites_{variant}/{split}")
    if data.image_size != (64, 64):
        raise ValueError(f"root: multi-dSprites images must be 64x64, got {data.image_size}")
    return data


def _resize_nearest_pil(arr: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((size, size), resample=Image.Resampling.NEAREST))


def load_clevr(root: str | os.PathLike, split: str = "test", max_objects: int | None = 6) -> SceneData:
    """CLEVR (``clevr_with_masks``) as written by the official converter (``clevr_with_masks_{split}.npz``, 128×128).

    Raw 240×320 DeepMind arrays are converted as the converter does: crop rows 29–220 and cols
    64–255, nearest-resize image and labels to 128, keep scenes whose largest label is
    ``<= max_objects`` (CLEVR6; ``None`` keeps all). Already converted files are filtered the same way.
    """
    data = load_arrays(_split_file(root, "clevr_with_masks", split), name=f"clevr/{split}")
    if data.image_size == (240, 320):
        rgb = np.round(data.images.transpose(0, 2, 3, 1) * 255).astype(np.uint8)[:, 29:221, 64:256]
        lab = data.masks[:, 29:221, 64:256]
        if lab.min(initial=0) < 0 or lab.max(initial=0) > 255:
            raise ValueError("root: CLEVR labels must lie in 0..255")
        images = np.stack([_resize_nearest_pil(np.ascontiguousarray(x), 128) for x in rgb]) if len(rgb) else \
            np.zeros((0, 128, 128, 3), np.uint8)
        labels = np.stack([_resize_nearest_pil(np.ascontiguousarray(x.astype(np.uint8)), 128) for x in lab]) \
            if len(lab) else np.zeros((0, 128, 128), np.uint8)
        masks = labels.astype(np.int16)
        data = SceneData(_to_float_images(images), masks, count_objects(masks), data.name)
    if data.image_size != (128, 128):
        raise ValueError(f"root: CLEVR images must be 128x128 (or raw 240x320), got {data.image_size}")
    if max_objects is not None:
        keep = data.masks.reshape(len(data), 128 * 128).max(axis=1, initial=0) <= max_objects
        data = data.subset(keep)
    return data


_CLEVRTEX_RE = re.compile(r"^CLEVRTEX_(?P<variant>[A-Za-z0-9]+)_(?P<index>\d+)\.png$")
_CLEVRTEX_SPLITS = {"test": (0.0, 0.1), "val": (0.1, 0.2), "train": (0.2, 1.0)}


def _center_crop_resize(img: Any, imsize: int, resample: int) -> np.ndarray:
    w, h = img.size
    side = int(0.8 * min(h, w))
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    img = img.crop((left, top, left + side, top + side))
    return np.asarray(img.resize((imsize, imsize), resample=resample))


def load_clevrtex(root: str | os.PathLike, split: str | None = "test", *, imsize: int = 128,
                  limit: int | None = None) -> SceneData:
    """CLEVRTex images ``CLEVRTEX_<variant>_XXXXXX.png`` with instance masks ``..._flat.png``.

    Files are found recursively under ``root`` and sorted by index. Split by index fraction as
    the official loader does: ``"test"`` first 10%, ``"val"`` 10–20%, ``"train"`` 20–100%; ``None``
    takes every file (CLEVRTex-OOD is evaluated whole; CAMO uses ``"test"``). Preprocessing:
    centre crop of a square of side ``int(0.8 * min(H, W))`` (192 of 240×320), resize to
    ``imsize`` (bilinear image, nearest mask, both with PIL as torchvision does on PIL images).
    Mask PNG values are palette indices (or grey values), 0 = background.

    Args:
        limit: read at most this many files of the split (first ones by index).

    Raises:
        ValueError: no images, a missing ``_flat`` mask, a mask PNG that is RGB, or a bad split.
    """
    from PIL import Image

    if split is not None and split not in _CLEVRTEX_SPLITS:
        raise ValueError(f"split: expected one of {sorted(_CLEVRTEX_SPLITS)} or None, got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit: expected a non-negative int or None, got {limit!r}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root: no such directory {str(root)!r}")
    found = []
    for p in root.rglob("CLEVRTEX_*.png"):
        m = _CLEVRTEX_RE.match(p.name)
        if m:
            found.append((int(m["index"]), m["variant"], p))
    if not found:
        raise ValueError(f"root: no CLEVRTEX_<variant>_<index>.png images under {str(root)!r}")
    found.sort(key=lambda t: t[0])
    variants = sorted({v for _, v, _ in found})
    if split is not None:
        lo, hi = _CLEVRTEX_SPLITS[split]
        n = len(found)
        found = found[int(lo * n):int(hi * n)]
    if limit is not None:
        found = found[:limit]
    images = np.zeros((len(found), imsize, imsize, 3), np.uint8)
    masks = np.zeros((len(found), imsize, imsize), np.int16)
    for i, (_, _, p) in enumerate(found):
        mpath = p.with_name(p.stem + "_flat.png")
        if not mpath.is_file():
            raise ValueError(f"root: image {str(p)!r} has no instance mask {mpath.name!r}")
        with Image.open(p) as im:
            im_size = im.size
            images[i] = _center_crop_resize(im.convert("RGB"), imsize, Image.Resampling.BILINEAR)
        with Image.open(mpath) as mk:
            if mk.mode not in ("P", "L", "I", "I;16"):
                raise ValueError(f"root: mask {str(mpath)!r} has PIL mode {mk.mode!r}; expected a palette/index "
                                 f"or grey PNG (P, L, I, I;16)")
            if mk.size != im_size:
                raise ValueError(f"root: mask {str(mpath)!r} is {mk.size}, image is {im_size}")
            masks[i] = _center_crop_resize(mk, imsize, Image.Resampling.NEAREST)
    name = f"clevrtex_{'+'.join(variants)}/{split or 'all'}"
    return SceneData(_to_float_images(images), masks, count_objects(masks), name)
