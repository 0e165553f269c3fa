"""Unsupervised object discovery (``akorn objects train|eval``; AKOrN paper §4.1, spec §5.2).

Data: seeded vectorised generators of multi-object scenes (:func:`shapes`, the official toy
recipe; :func:`tetrominoes` and :func:`dsprites`, **look-alikes** of DeepMind's Tetrominoes and
multi-dSprites whose scores are not directly comparable with the paper's) in
:mod:`~studies.objects.generators` with an on-disk cache (:func:`make_scenes`); the scene container
and torch ``Dataset`` (:class:`SceneData`, :class:`SceneDataset`) in :mod:`~studies.objects.scenes`;
loaders of the published files (:func:`load_tetrominoes`, :func:`load_multi_dsprites`,
:func:`load_clevr`, :func:`load_clevrtex`, :func:`load_arrays`) in :mod:`~studies.objects.loaders`.

Metrics (:mod:`~studies.objects.metrics`): :func:`fg_ari`, :func:`mbo`, :func:`summarize`, and the
pipeline from feature maps to masks: :func:`uptile`, :func:`cluster_features`.

The study: the config and command (:mod:`~studies.objects.config`, torch-free), batched SimCLR
views (:class:`SimCLRAugment`), the InfoNCE objective (:func:`info_nce`, :class:`SimCLRObjective`),
training of a run (:func:`train_run`), its evaluation (:func:`evaluate`, :func:`evaluate_run`) and
the figures (:mod:`~studies.objects.plots`). Names are imported on first access, so that
``studies.objects.config`` (all that ``--help`` needs) loads without torch.
"""

from __future__ import annotations

from studies.lazy import lazy_attributes

__all__ = ["GENERATORS", "GENERATOR_VERSION", "SceneData", "SceneDataset", "SimCLRAugment", "SimCLRObjective",
           "Summary", "cluster_features", "count_objects", "dsprites", "evaluate", "evaluate_run", "fg_ari",
           "info_nce", "load_arrays", "load_clevr", "load_clevrtex", "load_multi_dsprites",
           "load_tetrominoes", "make_scenes", "mbo", "shape_templates", "shapes", "sprite_bank",
           "summarize", "tetromino_orientations", "tetrominoes", "train_run", "uptile"]

__getattr__ = lazy_attributes(__name__, "scenes generators loaders metrics augment train evaluate")
