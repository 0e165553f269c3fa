"""Unsupervised object discovery: data sets and metrics (AKOrN paper §4.1, spec §5.2).

Data (:mod:`studies.objects.data`): seeded vectorised generators of multi-object scenes
(:func:`shapes`, the official toy recipe; :func:`tetrominoes` and :func:`dsprites`,
**look-alikes** of DeepMind's Tetrominoes and multi-dSprites whose scores are not directly
comparable with the paper's), an on-disk cache (:func:`make_scenes`), a torch ``Dataset``
(:class:`SceneDataset`), and loaders of the published files (:func:`load_tetrominoes`,
:func:`load_multi_dsprites`, :func:`load_clevr`, :func:`load_clevrtex`, :func:`load_arrays`).

Metrics (:mod:`studies.objects.metrics`): :func:`fg_ari`, :func:`mbo`, :func:`summarize`,
and the evaluation pipeline from feature maps to masks: :func:`uptile`, :func:`cluster_features`.
"""

from studies.objects.data import (
    GENERATOR_VERSION,
    GENERATORS,
    SceneData,
    SceneDataset,
    count_objects,
    dsprites,
    load_arrays,
    load_clevr,
    load_clevrtex,
    load_multi_dsprites,
    load_tetrominoes,
    make_scenes,
    shape_templates,
    shapes,
    sprite_bank,
    tetromino_orientations,
    tetrominoes,
)
from studies.objects.metrics import Summary, cluster_features, fg_ari, mbo, summarize, uptile

__all__ = [
    "GENERATORS",
    "GENERATOR_VERSION",
    "SceneData",
    "SceneDataset",
    "Summary",
    "cluster_features",
    "count_objects",
    "dsprites",
    "fg_ari",
    "load_arrays",
    "load_clevr",
    "load_clevrtex",
    "load_multi_dsprites",
    "load_tetrominoes",
    "make_scenes",
    "mbo",
    "shape_templates",
    "shapes",
    "sprite_bank",
    "summarize",
    "tetromino_orientations",
    "tetrominoes",
    "uptile",
]
