"""Unsupervised object discovery: data sets and metrics (AKOrN paper §4.1, spec §5.2).

Data (:mod:`studies.objects.data`): seeded vectorised generators of multi-object scenes
(:func:`shapes`, the official toy recipe; :func:`tetrominoes` and :func:`dsprites`,
**look-alikes** of DeepMind's Tetrominoes and multi-dSprites whose scores are not directly
comparable with the paper's), an on-disk cache (:func:`make_scenes`), a torch ``Dataset``
(:class:`SceneDataset`), and loaders of the published files (:func:`load_tetrominoes`,
:func:`load_multi_dsprites`, :func:`load_clevr`, :func:`load_clevrtex`, :func:`load_arrays`).

Metrics (:mod:`studies.objects.metrics`): :func:`fg_ari`, :func:`mbo`, :func:`summarize`,
and the evaluation pipeline from feature maps to masks: :func:`uptile`, :func:`cluster_features`.

The study (``akorn objects train|eval``, :mod:`studies.objects.study`): batched SimCLR views
(:class:`SimCLRAugment`), the InfoNCE objective (:func:`info_nce`, :class:`SimCLRObjective`),
training of a run (:func:`train_run`) and its evaluation (:func:`evaluate`, :func:`evaluate_run`).
These are imported on first access, so ``python -m studies.objects.study`` runs the command
without a second copy of that module.
"""

import importlib
from typing import Any

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

_LAZY = {
    "SimCLRAugment": "studies.objects.augment",
    "SimCLRObjective": "studies.objects.train",
    "info_nce": "studies.objects.train",
    "train_run": "studies.objects.train",
    "evaluate": "studies.objects.evaluate",
    "evaluate_run": "studies.objects.evaluate",
}

__all__ = [
    "GENERATORS",
    "GENERATOR_VERSION",
    "SceneData",
    "SceneDataset",
    "SimCLRAugment",
    "SimCLRObjective",
    "Summary",
    "cluster_features",
    "count_objects",
    "dsprites",
    "evaluate",
    "evaluate_run",
    "fg_ari",
    "info_nce",
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
    "train_run",
    "uptile",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
