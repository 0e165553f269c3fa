"""Multi-object scenes for the unsupervised object-discovery study: generators and loaders.

Three vectorised numpy generators (seeded, deterministic per seed; never the global RNG):

* :func:`shapes`: the official AKOrN "Shapes" toy set (40×40 grey, 2–4 hollow shapes,
  official ``data/create_shapes.py`` as described in the spec); same recipe, but a different RNG,
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

The pieces live in :mod:`~studies.objects.scenes` (:class:`SceneData`, the torch dataset),
:mod:`~studies.objects.generators` (the generators and :func:`make_scenes`) and
:mod:`~studies.objects.loaders` (the published files); :func:`load_scenes` picks a run's split.
"""

from __future__ import annotations

from studies.objects.config import Config
from studies.objects.generators import (GENERATORS, dsprites, make_scenes, shape_templates, shapes, sprite_bank,
                                        tetromino_orientations, tetrominoes)
from studies.objects.loaders import load_arrays, load_clevr, load_clevrtex, load_multi_dsprites, load_tetrominoes
from studies.objects.scenes import GENERATOR_VERSION, SceneData, SceneDataset, count_objects

__all__ = ["GENERATORS", "GENERATOR_VERSION", "SceneData", "SceneDataset", "count_objects", "dsprites", "load_arrays",
           "load_clevr", "load_clevrtex", "load_multi_dsprites", "load_scenes", "load_tetrominoes",
           "make_scenes", "shape_templates", "shapes", "sprite_bank", "tetromino_orientations",
           "tetrominoes"]


_LOADERS = {"tetrominoes": load_tetrominoes, "dsprites": load_multi_dsprites, "clevr": load_clevr}
_SEED_OFFSET = {"train": 0, "test": 1, "monitor": 2}


def load_scenes(config: Config, split: str) -> SceneData:
    """Scenes of one split: ``"train"``, ``"test"`` or ``"monitor"`` (validation scenes).

    Generated sets (no ``data_root``) use seed ``2·data_seed + {0, 1, 2}`` per split and the
    resolved ``num_train`` / ``num_test`` / ``monitor_images``; published sets read the
    ``train`` / ``test`` / ``val`` split and keep at most that many scenes.

    Raises:
        ValueError: unknown split, or the files do not give images of the dataset's size.
    """
    if split not in _SEED_OFFSET:
        raise ValueError(f"split: expected one of {sorted(_SEED_OFFSET)}, got {split!r}")
    cfg = config.resolved()
    count = {"train": cfg.num_train, "test": cfg.num_test, "monitor": cfg.monitor_images}[split]
    if cfg.data_root is None:
        return make_scenes(cfg.dataset, int(count), seed=2 * cfg.data_seed + _SEED_OFFSET[split])
    file_split = {"train": "train", "test": "test", "monitor": "val"}[split]
    if cfg.dataset == "clevrtex":
        scenes = load_clevrtex(cfg.data_root, file_split, imsize=cfg.image_size, limit=count)
    else:
        scenes = _LOADERS[cfg.dataset](cfg.data_root, file_split)
        if count is not None and count < len(scenes):
            scenes = scenes.subset(slice(0, count))
    if scenes.image_size != (cfg.image_size, cfg.image_size):
        raise ValueError(f"data_root: {cfg.dataset} images must be {cfg.image_size}x{cfg.image_size}, got "
                         f"{scenes.image_size}")
    return scenes
