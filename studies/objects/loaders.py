"""Loaders of the published object-discovery sets: the official converter's ``.npz`` files or raw
DeepMind ``multi_object_datasets`` arrays (Tetrominoes, multi-dSprites, CLEVR) and the CLEVRTex PNGs.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from kuramoto.checks import is_int
from studies.objects.scenes import (
    SceneData,
    _to_float_images,
    count_objects,
)

__all__ = ["load_arrays", "load_clevr", "load_clevrtex", "load_multi_dsprites", "load_tetrominoes"]


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

    * the official converter, the official repository's ``data/convert_tfrecord_to_np.py``: ``images`` ``[N, 3, H, W]``
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

    if split is not None and split not in _CLEVRTEX_SPLITS:
        raise ValueError(f"split: expected one of {sorted(_CLEVRTEX_SPLITS)} or None, got {split!r}")
    if limit is not None and (not is_int(limit) or limit < 0):
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
