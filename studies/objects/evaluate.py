"""Evaluation of object discovery: features → masks → FG-ARI / MBO, and the oscillators over time.

The official ``eval_obj.py`` pipeline (docs/AKORN.md §5.2): the EMA weights; the feature map of
every test image (AKOrN: the final readout map; ItrSA/ViT: the final LayerNorm output),
optionally up-tiled; then :func:`studies.objects.metrics.cluster_features` (L2 normalisation,
per-image PCA to 128 dimensions, agglomerative clustering with average linkage into K
clusters, nearest upsampling) and the scores :func:`~studies.objects.metrics.fg_ari` and
:func:`~studies.objects.metrics.mbo`, summarised as mean ± std over images.

For AKOrN two views of *binding* are added:

* ``fg_ari_by_step``: the same clustering applied to the oscillator states ``x_t`` of the last
  block at every Kuramoto step ``t = 0..T`` (instead of the readout). At ``t = 0`` the
  oscillators are random and the score is near 0; it rises as oscillators of the same object
  synchronise, so the curve shows binding happen step by step.
* ``state_rgb``: a colour per token and step. For each example the final states ``x_T`` (all
  ``C/n`` oscillators of a token concatenated into one vector) are reduced by PCA to their
  three main directions; every step's states are projected on those directions and the three
  coordinates, scaled by their range at ``t = T``, are shown as red, green and blue. Tokens
  whose oscillators point the same way get the same colour, so objects appear as patches of
  one colour once their oscillators have synchronised; the random start is noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm import tqdm

from kuramoto.checks import check_int, is_int
from networks.layer import use_integrator
from networks.models import ObjectAKOrN, ObjectViT
from studies import storage
from studies.objects.config import Config, check_run_config, eval_path, run_dir
from studies.objects.data import load_scenes
from studies.objects.metrics import EMPTY_RULES, cluster_features, fg_ari, mbo, summarize, uptile
from studies.objects.models import MODEL_NAMES, build_model  # noqa: F401 (MODEL_NAMES: re-exported)
from studies.objects.scenes import SceneData
from studies.protocol import Outcome
from studies.files import exclusive
from studies.rundir import CHECKPOINT_NAME
from studies.training import load_model_weights, seed_everything

__all__ = ["MODEL_NAMES", "eval_command", "evaluate", "evaluate_run", "extract_features", "pca_colours",
           "predict_masks"]



def _is_akorn(model: nn.Module) -> bool:
    return isinstance(model, ObjectAKOrN)


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, (ObjectAKOrN, ObjectViT)):
        raise TypeError(f"model: expected an ObjectAKOrN or ObjectViT, got {type(model).__name__}")
    return model


def _feature_fn(model: nn.Module, steps: int | None,
                generator: torch.Generator | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if _is_akorn(model):
        return lambda x: model.features(x, steps=steps, generator=generator)
    return lambda x: model.features(x, steps=steps)


def extract_features(model: nn.Module, images: torch.Tensor, *, steps: int | None = None, batch_size: int = 64,
                     generator: torch.Generator | None = None, uptile_r: int = 1) -> torch.Tensor:
    """Feature maps of ``images`` in batches (no gradients), on the CPU.

    Args:
        model: an :class:`~networks.models.ObjectAKOrN` or :class:`~networks.models.ObjectViT`.
        images: ``[M, 3, H, W]`` float in ``[0, 1]`` (any device; moved to the model's).
        steps: Kuramoto steps / attention iterations (default: the model's).
        batch_size: images per forward pass.
        generator: random generator of AKOrN's initial oscillators (on the model's device).
        uptile_r: up-tiling factor r (1: plain feature map).

    Returns:
        ``[M, C, h·r, w·r]`` float32 on the CPU.
    """
    model = _check_model(model)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images: expected a tensor [M, 3, H, W], got {getattr(images, 'shape', type(images))}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    device = next(model.parameters()).device
    fn = _feature_fn(model, steps, generator)
    out = []
    with torch.no_grad():
        for lo in range(0, images.shape[0], batch_size):
            x = images[lo:lo + batch_size].to(device)
            out.append(uptile(fn, x, uptile_r, model.patch_size).float().cpu())
    return torch.cat(out, dim=0)


def predict_masks(model: nn.Module, images: torch.Tensor, *, clusters: int, pca_dim: int | None = 128,
                  uptile_r: int = 1, steps: int | None = None, batch_size: int = 64,
                  generator: torch.Generator | None = None) -> np.ndarray:
    """Cluster the feature map of every image into masks, a batch at a time (no gradients).

    Args:
        model, images, steps, batch_size, generator, uptile_r: as in :func:`extract_features`.
        clusters: K clusters per image.
        pca_dim: per-image PCA dimension (``None``: no PCA).

    Returns:
        ``[M, H, W]`` int16 labels in ``0..K-1``.
    """
    size = tuple(images.shape[-2:])
    out = [cluster_features(extract_features(model, images[lo:lo + batch_size], steps=steps, batch_size=batch_size,
                                             generator=generator, uptile_r=uptile_r),
                            clusters, pca_dim, image_size=size).astype(np.int16)
           for lo in range(0, images.shape[0], batch_size)]
    return np.concatenate(out, axis=0)


def pca_colours(maps: torch.Tensor, reference: torch.Tensor | None = None) -> np.ndarray:
    """RGB colours of feature vectors from a per-image 3-D PCA.

    For each image the PCA is fitted on ``reference`` (default: ``maps`` itself; for the
    oscillator states, the final step): centre the vectors over positions, take the three
    leading eigenvectors of their covariance, project, and map each coordinate linearly so that
    the reference's range becomes [0, 1] (values outside are clipped). Vectors that point the
    same way get the same colour.

    Args:
        maps: ``[S, B, C, h, w]`` (S maps per image, e.g. steps) or ``[B, C, h, w]``.
        reference: ``[B, C, h, w]`` vectors to fit the PCA on.

    Returns:
        ``[B, S, h, w, 3]`` (or ``[B, h, w, 3]`` for 4-D ``maps``) float32 in [0, 1].
    """
    single = maps.ndim == 4
    if single:
        maps = maps.unsqueeze(0)
    if maps.ndim != 5:
        raise ValueError(f"maps: expected [S, B, C, h, w] or [B, C, h, w], got shape {tuple(maps.shape)}")
    ref = maps[-1] if reference is None else reference
    s, b, c, h, w = maps.shape
    if ref.shape != (b, c, h, w):
        raise ValueError(f"reference: expected shape {(b, c, h, w)}, got {tuple(ref.shape)}")
    x = maps.detach().to(torch.float64).cpu().reshape(s, b, c, h * w).permute(1, 0, 3, 2)   # [B, S, N, C]
    r = ref.detach().to(torch.float64).cpu().reshape(b, c, h * w).transpose(1, 2)           # [B, N, C]
    mean = r.mean(dim=1, keepdim=True)
    rc = r - mean
    _, vecs = torch.linalg.eigh(rc.transpose(1, 2) @ rc)             # ascending eigenvalues
    top = vecs.flip(-1)[:, :, :3]                                       # [B, C, k<=3]
    proj_ref = rc @ top                                                  # [B, N, k]
    lo, hi = proj_ref.amin(dim=1, keepdim=True), proj_ref.amax(dim=1, keepdim=True)
    scale = torch.where(hi - lo > 1e-12, hi - lo, torch.ones_like(hi))
    proj = ((x - mean.unsqueeze(1)) @ top.unsqueeze(1) - lo.unsqueeze(1)) / scale.unsqueeze(1)   # [B, S, N, k]
    if proj.shape[-1] < 3:   # fewer than three channels: pad with mid-grey
        proj = torch.cat([proj, torch.full((*proj.shape[:-1], 3 - proj.shape[-1]), 0.5, dtype=proj.dtype)], dim=-1)
    out = proj.clamp(0.0, 1.0).reshape(b, s, h, w, 3).float().numpy()
    return out[:, 0] if single else out


def evaluate(model: nn.Module, scenes: SceneData, *, clusters: int, pca_dim: int | None = 128, uptile_r: int = 1,
             steps: int | None = None, batch_size: int = 64, num_examples: int = 8, seed: int = 0,
             progress: bool = False, fg_ari_empty: str = "skip") -> xr.Dataset:
    """Segment every scene by clustering the model's features and score the masks.

    Args:
        model: an :class:`~networks.models.ObjectAKOrN` or :class:`~networks.models.ObjectViT`
            (put in eval mode; its device is used).
        scenes: test scenes with ground-truth masks.
        clusters: K clusters per image.
        pca_dim: per-image PCA dimension (``None``: no PCA).
        uptile_r: up-tiling factor r.
        steps: Kuramoto steps / iterations (default: the model's).
        batch_size: images per forward pass.
        num_examples: scenes (the first ones) whose images, masks and colours are stored.
        seed: seed of AKOrN's random initial oscillators.
        progress: show a progress bar.
        fg_ari_empty: FG-ARI of a scene without foreground: ``"skip"`` (NaN, left out of the
            means) or ``"one"`` (1.0, the official evaluation's rule); stored as the attribute
            ``fg_ari_empty`` beside the results.

    Returns:
        The Dataset described in :func:`evaluate_run` (without file attributes).
    """
    model = _check_model(model)
    if fg_ari_empty not in EMPTY_RULES:
        raise ValueError(f"fg_ari_empty: expected one of {', '.join(map(repr, EMPTY_RULES))}, got {fg_ari_empty!r}")
    if not isinstance(scenes, SceneData):
        raise TypeError(f"scenes: expected a SceneData, got {type(scenes).__name__}")
    for name, value in (("clusters", clusters), ("num_examples", num_examples), ("batch_size", batch_size),
                        ("uptile_r", uptile_r)):
        check_int(value, name, minimum=1)
    if len(scenes) == 0:
        raise ValueError("scenes: no test scenes")
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(int(seed))
    e = min(num_examples, len(scenes))
    seg = _segment(model, scenes, clusters=clusters, pca_dim=pca_dim, uptile_r=uptile_r, steps=steps,
                   batch_size=batch_size, examples=e, generator=g, progress=progress, empty=fg_ari_empty)
    ds = _scores_dataset(scenes, seg, e, fg_ari_empty)
    ds.attrs.update({"fg_ari_empty": fg_ari_empty, "fg_ari_empty_rule": _EMPTY_TEXT[fg_ari_empty],
                     "clusters": int(clusters), "pca_dim": -1 if pca_dim is None else int(pca_dim),
                     "uptile": int(uptile_r), "eval_seed": int(seed), "dataset_name": scenes.name,
                     "model_class": type(model).__name__})
    return ds


#: How the FG-ARI of a scene without foreground is counted, stated beside the results.
_EMPTY_TEXT = {"skip": "a scene without foreground has no FG-ARI (NaN) and is left out of the means",
               "one": "a scene without foreground scores FG-ARI 1.0, as the official eval_obj.py scores it"}


class _Segmented(NamedTuple):
    """What segmenting the test scenes gives: predicted masks, AKOrN's per-step FG-ARI and the examples'
    features and oscillator states."""

    preds: np.ndarray
    step_ari: np.ndarray | None
    features: torch.Tensor
    states: torch.Tensor | None


def _segment(model: nn.Module, scenes: SceneData, *, clusters: int, pca_dim: int | None, uptile_r: int,
             steps: int | None, batch_size: int, examples: int, generator: torch.Generator,
             progress: bool, empty: str = "skip") -> _Segmented:
    """Cluster every scene's features (and, for AKOrN, its oscillator states at every step) into masks."""
    device = next(model.parameters()).device
    g, e, akorn = generator, examples, _is_akorn(model)
    size = scenes.image_size
    m = len(scenes)
    images = torch.from_numpy(scenes.images)
    masks = scenes.masks
    preds = np.empty((m, *size), np.int16)
    step_ari: np.ndarray | None = None
    ex_feats: list[torch.Tensor] = []
    ex_states: list[torch.Tensor] = []
    fn = _feature_fn(model, steps, g)
    bar = tqdm(range(0, m, batch_size), desc="eval", unit="batch", disable=not progress, dynamic_ncols=True)
    with torch.no_grad():
        for lo in bar:
            x = images[lo:lo + batch_size].to(device)
            hi = lo + x.shape[0]
            if akorn:
                feats, block_states = model.features(x, steps=steps, generator=g, return_states=True)
                states = block_states[-1].float().cpu()                       # [T+1, b, C, h, w]
                if uptile_r > 1:
                    feats = uptile(fn, x, uptile_r, model.patch_size)
                if step_ari is None:
                    step_ari = np.full((states.shape[0], m), np.nan)
                for t in range(states.shape[0]):   # a loop over the T+1 steps, each clustering the whole batch
                    labels = cluster_features(states[t], clusters, pca_dim, image_size=size)
                    step_ari[t, lo:hi] = fg_ari(masks[lo:hi], labels, empty=empty)
                if lo < e:
                    ex_states.append(states[:, :e - lo])
            else:
                feats = uptile(fn, x, uptile_r, model.patch_size)
            feats = feats.float().cpu()
            preds[lo:hi] = cluster_features(feats, clusters, pca_dim, image_size=size)
            if lo < e:
                ex_feats.append(feats[:e - lo])
    states_e = torch.cat(ex_states, dim=1) if akorn and step_ari is not None else None
    return _Segmented(preds, step_ari, torch.cat(ex_feats, dim=0), states_e)


#: What a NaN score means (attributes of the result variables).
_NO_OBJECTS = "NaN: an image without foreground objects (left out of the means)"
_NO_IMAGE = "NaN: no image with foreground objects to average over"


def _scores_dataset(scenes: SceneData, seg: _Segmented, e: int, empty: str = "skip") -> xr.Dataset:
    """FG-ARI and MBO per image with their summaries, the examples, and AKOrN's per-step views."""
    preds, step_ari, feats_e, masks = seg.preds, seg.step_ari, seg.features, scenes.masks
    m = len(scenes)
    ari, overlap = fg_ari(masks, preds, empty=empty), mbo(masks, preds)
    sa, so = summarize(ari), summarize(overlap)
    one = {"units": "1"}
    no_objects, none = {"comment": _NO_OBJECTS}, {"comment": _NO_IMAGE}
    rule = {"empty_foreground": _EMPTY_TEXT[empty], **(no_objects if empty == "skip" else {})}
    data_vars: dict[str, Any] = {
        "fg_ari": ("image", ari, {"long_name": "foreground adjusted Rand index of the predicted masks", **one,
                                  **rule}),
        "mbo": ("image", overlap, {"long_name": "mean best overlap (IoU) of the ground-truth objects", **one,
                                   **no_objects}),
        "num_objects": ("image", scenes.num_objects.astype(np.int64), {"long_name": "objects in the ground truth",
                                                                        **one}),
        "fg_ari_mean": ((), sa.mean, {"long_name": "FG-ARI, mean over images with objects" if empty == "skip" else
                                      "FG-ARI, mean over all images (no foreground scores 1.0)", **one, **none,
                                      "empty_foreground": _EMPTY_TEXT[empty]}),
        "fg_ari_std": ((), sa.std, {"long_name": "FG-ARI, standard deviation over images", **one, **none}),
        "mbo_mean": ((), so.mean, {"long_name": "MBO, mean over images with objects", **one, **none}),
        "mbo_std": ((), so.std, {"long_name": "MBO, standard deviation over images", **one, **none}),
        "images_scored": ((), np.int64(sa.count), {"long_name": "images in the FG-ARI mean", **one}),
        "example_index": ("example", np.arange(e, dtype=np.int64), {"long_name": "index of the example in the test set",
                                                                    **one}),
        "example_image": (("example", "channel", "y", "x"), scenes.images[:e],
                          {"long_name": "example image (RGB)", **one}),
        "example_true_mask": (("example", "y", "x"), masks[:e].astype(np.int16),
                              {"long_name": "ground-truth instance ids (0 background, -1 ignore)", **one}),
        "example_pred_mask": (("example", "y", "x"), preds[:e],
                              {"long_name": "predicted cluster labels", **one}),
        "example_feature_rgb": (("example", "fy", "fx", "channel"), pca_colours(feats_e),
                                {"long_name": "features shown as RGB: per-image 3-D PCA of the clustered feature map",
                                 **one}),
    }
    coords: dict[str, Any] = {
        "image": ("image", np.arange(m, dtype=np.int64), {"long_name": "test scene index", **one}),
        "channel": ("channel", np.array(["red", "green", "blue"]), {"long_name": "colour channel"}),
    }
    if seg.states is not None and step_ari is not None:
        states_e = seg.states                                                    # [T+1, E, C, h, w]
        coords["step"] = ("step", np.arange(step_ari.shape[0], dtype=np.int64),
                          {"long_name": "Kuramoto step t of the last block", **one})
        data_vars["fg_ari_by_step"] = (("step", "image"), step_ari,
                                       {"long_name": "FG-ARI of clustering the oscillator states x_t of the last "
                                                     "block", **one, **rule})
        data_vars["state_rgb"] = (("example", "step", "ty", "tx", "channel"), pca_colours(states_e),
                                  {"long_name": "oscillator states shown as RGB: per-image 3-D PCA of x_T, every "
                                                "step projected on it", **one})
    return xr.Dataset(data_vars, coords=coords)




def evaluate_run(config: Config, directory: str | Path, *, progress: bool = True, device: str = "auto") -> xr.Dataset:
    """Evaluate the EMA weights of a trained run and write :func:`~studies.objects.config.eval_path` atomically.

    Dataset (dims ``image`` = test scenes, ``example`` = the first ``num_examples`` scenes,
    ``step`` = Kuramoto steps 0..T (AKOrN only), ``y, x`` = image pixels, ``fy, fx`` = the
    clustered feature map, ``ty, tx`` = the token grid, ``channel`` = red/green/blue):

    * per image: ``fg_ari``, ``mbo`` (fractions; NaN for an image without objects, except
      ``fg_ari`` = 1.0 with ``fg_ari_empty="one"``, the official rule), ``num_objects``;
    * scalars: ``fg_ari_mean``, ``fg_ari_std``, ``mbo_mean``, ``mbo_std`` (over images),
      ``images_scored``;
    * examples: ``example_index``, ``example_image``, ``example_true_mask``,
      ``example_pred_mask``, ``example_feature_rgb``;
    * AKOrN: ``fg_ari_by_step (step, image)`` and ``state_rgb (example, step, ty, tx,
      channel)`` (see the module doc);
    * with ``eval_untrained``: ``untrained_fg_ari``, ``untrained_mbo`` (per image) and their
      ``_mean`` / ``_std``: the same pipeline on the run's initial weights (rebuilt from its
      seed), the level training has to beat.

    Attributes: the study config (JSON), seed, provenance (:func:`studies.storage.result_attrs`),
    ``model``, ``dataset``, ``look_alike`` (1 for generated look-alike scenes), ``weights``
    (``"ema"``), ``trained_epochs``, ``train_seconds``, ``clusters``,
    ``pca_dim`` (-1 = none), ``uptile``, ``eval_steps``, ``eval_method`` (``"as trained"`` or
    a method name), ``eval_step_scale``, ``fg_ari_empty`` (``"skip"`` or ``"one"``)
    and ``fg_ari_empty_rule`` (that rule in words; also on ``fg_ari`` and ``fg_ari_mean``).

    Raises:
        FileNotFoundError: the directory holds no checkpoint.
    """
    cfg = config.resolved()
    directory = Path(directory)
    if not (directory / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(f"run: no checkpoint in {str(directory)!r}; train it first with 'akorn objects train' "
                                f"and the same options")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model = build_model(cfg)
    load_model_weights(directory, model, ema=True)
    use_integrator(model, cfg.eval_method, cfg.eval_step_scale)
    model.to(dev)
    scenes = load_scenes(cfg, "test")
    ds = evaluate(model, scenes, clusters=cfg.clusters, pca_dim=cfg.pca_dim, uptile_r=cfg.uptile,
                  steps=cfg.eval_steps, batch_size=cfg.eval_batch, num_examples=cfg.num_examples, seed=cfg.eval_seed,
                  progress=progress, fg_ari_empty=cfg.fg_ari_empty)
    if cfg.eval_untrained:
        _add_untrained(ds, cfg, scenes, dev)
    trained = _training_record(directory)
    local = ds.attrs
    ds.attrs = storage.result_attrs(
        Config.study, config, cfg.seed, complete=1, model=cfg.model, dataset=cfg.dataset,
        look_alike=int(cfg.data_root is None and cfg.dataset != "shapes"), weights="ema",
        eval_steps=cfg.eval_steps if cfg.eval_steps is not None else model.steps,
        eval_method=cfg.eval_method or "as trained", eval_step_scale=cfg.eval_step_scale, **trained, **local)
    storage.write_dataset(ds, eval_path(config, directory))
    return ds


def _add_untrained(ds: xr.Dataset, cfg: Config, scenes: SceneData, device: torch.device) -> None:
    """Score the run's initial weights (rebuilt from its seed) with the same pipeline; adds ``untrained_*``."""
    seed_everything(cfg.seed)                 # as train_run does before building the model
    initial = build_model(cfg)
    use_integrator(initial, cfg.eval_method, cfg.eval_step_scale)
    initial = initial.to(device).eval()
    g = torch.Generator(device=device).manual_seed(cfg.eval_seed)
    pred = predict_masks(initial, torch.from_numpy(scenes.images), clusters=cfg.clusters, pca_dim=cfg.pca_dim,
                         uptile_r=cfg.uptile, steps=cfg.eval_steps, batch_size=cfg.eval_batch, generator=g)
    one = {"units": "1"}
    for key, values, what in (("fg_ari", fg_ari(scenes.masks, pred, empty=cfg.fg_ari_empty), "FG-ARI"),
                              ("mbo", mbo(scenes.masks, pred), "MBO")):
        summary = summarize(values)
        ds[f"untrained_{key}"] = ("image", values, {"long_name": f"{what} of the run's initial (untrained) weights",
                                                    **one, "comment": _NO_OBJECTS})
        ds[f"untrained_{key}_mean"] = ((), summary.mean, {"long_name": f"{what} of the initial weights, mean over "
                                                                       f"images", **one, "comment": _NO_IMAGE})
        ds[f"untrained_{key}_std"] = ((), summary.std, {"long_name": f"{what} of the initial weights, standard "
                                                                     f"deviation over images", **one,
                                                        "comment": _NO_IMAGE})


def _training_record(directory: Path) -> dict[str, Any]:
    """Epochs and seconds of training, from the run's ``train.h5`` (empty if it is missing)."""
    path = directory / "train.h5"
    if not path.is_file():
        return {}
    with xr.open_dataset(path, engine="h5netcdf") as h:
        out: dict[str, Any] = {"trained_epochs": int(h["epoch"].values[-1]) if h.sizes.get("epoch") else 0}
        if "epoch_seconds" in h:
            out["train_seconds"] = float(np.sum(h["epoch_seconds"].values))
    return out


def eval_command(config: Config, args: Any) -> Outcome:
    """``akorn objects eval``: evaluate the run directory of ``config`` under ``--out``."""
    directory = run_dir(config, args.out)
    check_run_config(config, directory, for_eval=True)
    with exclusive(eval_path(config, directory)):  # one writer per result file
        ds = evaluate_run(config, directory, progress=args.progress, device=args.device)
    return Outcome(dataset=ds, path=eval_path(config, directory))
