"""Seeded vectorised generators of multi-object scenes (:func:`shapes`, the official toy recipe;
look-alikes of Tetrominoes and multi-dSprites) and :func:`make_scenes`, their on-disk cache.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from kuramoto.checks import is_int
from studies.cache import cached_arrays
from studies.objects.scenes import (
    GENERATOR_VERSION,
    SceneData,
    _box_index,
    _check_count_range,
    _check_num_seed,
    _paste,
    _render,
    count_objects,
)

__all__ = ["GENERATORS", "SHAPE_NAMES", "SPRITE_ROTATIONS", "SPRITE_SCALES", "SPRITE_SHAPES", "TETROMINO_PALETTE",
           "dsprites", "make_scenes", "shape_templates", "shapes", "sprite_bank", "tetromino_orientations",
           "tetrominoes"]


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

    Same recipe as the official ``data/create_shapes.py`` but drawn with ``numpy.random.default_rng(seed)``,
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
    if not is_int(num_objects) or not 1 <= num_objects <= 127:
        raise ValueError(f"num_objects: expected an int in 1..127, got {num_objects!r}")
    if not is_int(max_tries) or max_tries < 1:
        raise ValueError(f"max_tries: expected a positive int, got {max_tries!r}")
    if not is_int(cell) or cell < 1:
        raise ValueError(f"cell: expected a positive int, got {cell!r}")
    if not is_int(size) or size < 4 * cell:
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
    if not is_int(size) or size < 8:
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
