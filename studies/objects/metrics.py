"""Object-discovery metrics and the feature-map → mask pipeline of the AKOrN evaluation.

* :func:`fg_ari`: foreground adjusted Rand index per image (background and ignore pixels removed).
* :func:`mbo`: mean best overlap per image.
* :func:`summarize`: mean / std / count over images, NaN (= image skipped) ignored.
* :func:`cluster_features`: L2-normalise, per-image PCA, agglomerative clustering (average
  linkage, Euclidean) into ``k`` clusters, nearest upsampling: the official ``eval_obj.py``
  pipeline.
* :func:`uptile`: the paper's up-tiling (``--saccade_r``): r² shifted passes interleaved into a
  feature map r times finer.

All metrics return fractions in [0, 1] (ARI can be negative); tables multiply by 100.
Mask convention: ``0`` background, negative = ignore, ``1..K`` objects (predictions: any ints).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from kuramoto.checks import is_int

__all__ = ["EMPTY_RULES", "Summary", "cluster_features", "fg_ari", "mbo", "summarize", "uptile"]

#: What :func:`fg_ari` gives an image without foreground: ``"skip"`` (NaN, left out of the means,
#: this toolkit's default) or ``"one"`` (1.0, as the official ``eval_obj.py`` scores it: sklearn's
#: ``adjusted_rand_score`` of two empty labelings).
EMPTY_RULES = ("skip", "one")


def _as_label_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    elif not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer labels, got dtype {x.dtype} (cast with .astype(int) / .long())")
    if x.ndim != 3:
        raise ValueError(f"{name}: expected label maps [B, H, W], got shape {x.shape}")
    return x


def _check_pair(true_masks: Any, pred_masks: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _as_label_array(true_masks, "true_masks")
    p = _as_label_array(pred_masks, "pred_masks")
    if t.shape != p.shape:
        raise ValueError(f"pred_masks: shape {p.shape} does not match true_masks {t.shape}")
    return t, p


def fg_ari(true_masks: Any, pred_masks: Any, *, empty: str = "skip") -> np.ndarray:
    """Foreground adjusted Rand index of each image.

    Per image, the ARI between the ground-truth ids and the predicted labels over the pixels with
    ``true > 0`` (background 0 and ignore < 0 removed), exactly as scikit-learn's
    ``adjusted_rand_score`` on those pixels (same pair-counting formula, exact integer arithmetic,
    vectorised over the batch; the official ``eval_obj.py`` calls sklearn per image).

    Conventions (sklearn's): 1.0 when the two partitions agree (including one foreground pixel);
    for an image with a single object, 1.0 if the object's pixels get one predicted label, else
    0.0. An image with no foreground pixel follows ``empty``: ``"skip"`` gives NaN, which
    :func:`summarize` leaves out of the mean; ``"one"`` gives 1.0, as sklearn does for empty input
    and the official script averages in (with 1 image in 10 empty, means of 0.551 and 0.596).

    Args:
        true_masks: ``[B, H, W]`` integer ground truth (numpy or torch).
        pred_masks: ``[B, H, W]`` integer predictions (any label values).
        empty: the rule for images without foreground, one of :data:`EMPTY_RULES`.

    Returns:
        ``[B]`` float64 (NaN for images without foreground with ``empty="skip"``).

    Raises:
        ValueError: ``empty`` is not a rule, or the masks do not match.
    """
    if empty not in EMPTY_RULES:
        raise ValueError(f"empty: expected one of {', '.join(map(repr, EMPTY_RULES))}, got {empty!r}")
    t, p = _check_pair(true_masks, pred_masks)
    b = t.shape[0]
    out = np.full(b, np.nan if empty == "skip" else 1.0)
    fg = t > 0
    if b == 0 or not fg.any():
        return out
    img = np.nonzero(fg)[0].astype(np.int64)
    tv = t[fg].astype(np.int64)
    pv = p[fg].astype(np.int64)
    tv, nt = _rank(tv)
    pv, np_ = _rank(pv)
    n = np.bincount(img, minlength=b)

    # sums of squared cluster sizes: contingency cells, true clusters, predicted clusters
    s_joint = _sum_squares(img * (nt * np_) + tv * np_ + pv, nt * np_, b)
    s_true = _sum_squares(img * nt + tv, nt, b)
    s_pred = _sum_squares(img * np_ + pv, np_, b)
    for i in np.flatnonzero(n):
        # sklearn's pair_confusion_matrix and adjusted_rand_score, in Python ints (exact)
        ni, sj, st, sp = int(n[i]), int(s_joint[i]), int(s_true[i]), int(s_pred[i])
        tp = sj - ni
        fp = sp - sj
        fn = st - sj
        tn = ni * ni - fp - fn - sj
        if fn == 0 and fp == 0:
            out[i] = 1.0
        else:
            out[i] = 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    return out


#: Key spaces up to this size are counted with ``np.bincount`` (O(n)); larger ones with ``np.unique``.
_DENSE_LIMIT = 1 << 24


def _rank(v: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace int64 labels by their rank among the distinct values; returns (ranks, #distinct)."""
    lo, hi = int(v.min()), int(v.max())
    if hi - lo < _DENSE_LIMIT:
        present = np.bincount(v - lo, minlength=hi - lo + 1) > 0
        lut = np.cumsum(present) - 1
        return lut[v - lo], int(present.sum())
    uniq, inv = np.unique(v, return_inverse=True)
    return inv.reshape(v.shape).astype(np.int64), int(uniq.size)


def _cells(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``keys`` (all in ``[0, size)``) and how often each occurs."""
    if size <= _DENSE_LIMIT:
        cnt = np.bincount(keys, minlength=size)
        nz = np.flatnonzero(cnt)
        return nz, cnt[nz].astype(np.int64)
    uniq, cnt = np.unique(keys, return_counts=True)
    return uniq, cnt.astype(np.int64)


def _sum_squares(keys: np.ndarray, stride: int, b: int) -> np.ndarray:
    """Per image (``key // stride``), the sum of squared counts of the distinct keys (int64 ``[b]``)."""
    uniq, cnt = _cells(keys, b * stride)
    return _int_bincount(uniq // stride, cnt ** 2, b)


def _int_bincount(idx: np.ndarray, weights: np.ndarray, b: int) -> np.ndarray:
    """``np.bincount`` with int64 weights summed exactly (bincount's float64 weights would round)."""
    order = np.argsort(idx, kind="stable")
    idx, weights = idx[order], weights[order]
    out = np.zeros(b, np.int64)
    if idx.size:
        starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
        out[idx[starts]] = np.add.reduceat(weights, starts)
    return out


def mbo(true_masks: Any, pred_masks: Any) -> np.ndarray:
    """Mean best overlap of each image.

    Per image: pixels with ``true < 0`` are removed from both maps; for every ground-truth id
    ``> 0`` take the best IoU against all predicted labels (IoU over the remaining pixels,
    background included in the predicted segments); average over the image's objects. This is
    the official ``mean_best_overlap_single_sample``.

    Args:
        true_masks: ``[B, H, W]`` integer ground truth (instance ids for MBO_i, classes for MBO_c).
        pred_masks: ``[B, H, W]`` integer predictions.

    Returns:
        ``[B]`` float64 in [0, 1], NaN for images without objects.
    """
    t, p = _check_pair(true_masks, pred_masks)
    b = t.shape[0]
    out = np.full(b, np.nan)
    valid = t >= 0
    if b == 0 or not (t > 0).any():
        return out
    img = np.nonzero(valid)[0].astype(np.int64)
    tv = t[valid].astype(np.int64)            # >= 0
    first_obj = int((tv == 0).any())          # ranks keep order: rank >= first_obj <=> id > 0
    tv, nt = _rank(tv)
    pv, np_ = _rank(p[valid].astype(np.int64))
    # intersections: counts of (image, gt id, pred label) cells
    cell, inter = _cells(img * (nt * np_) + tv * np_ + pv, b * nt * np_)
    c_img, rest = np.divmod(cell, nt * np_)
    c_t, c_p = np.divmod(rest, np_)
    tkey, tcnt = _cells(img * nt + tv, b * nt)
    pkey, pcnt = _cells(img * np_ + pv, b * np_)
    area_t = tcnt[np.searchsorted(tkey, c_img * nt + c_t)]
    area_p = pcnt[np.searchsorted(pkey, c_img * np_ + c_p)]
    iou = inter / (area_t + area_p - inter)
    obj = c_t >= first_obj
    # best IoU per (image, gt object): cells are sorted by (image, gt, pred), so groups are runs
    gkey = c_img[obj] * nt + c_t[obj]
    iou = iou[obj]
    starts = np.flatnonzero(np.r_[True, gkey[1:] != gkey[:-1]])
    best = np.maximum.reduceat(iou, starts)
    g_img = gkey[starts] // nt
    total = np.bincount(g_img, weights=best, minlength=b)
    count = np.bincount(g_img, minlength=b)
    has = count > 0
    out[has] = total[has] / count[has]
    return out


class Summary(NamedTuple):
    """Mean and (population) std over the images that have a value, and how many they are."""

    mean: float
    std: float
    count: int


def summarize(values: Any) -> Summary:
    """Mean, std (ddof=0, as ``np.std`` in the official ``eval_obj.py``) and count of ``values``, ignoring NaN.

    With no finite value, mean and std are NaN and count is 0 (no warning).
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Summary(float("nan"), float("nan"), 0)
    return Summary(float(v.mean()), float(v.std()), int(v.size))


def _pca(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-image PCA ``[B, N, C] -> [B, N, dim]`` (centred, top eigenvectors of the covariance).

    torch, not numpy: numpy's OpenBLAS ``eigh`` was ~30x slower than torch's on this CPU.
    """
    xc = x - x.mean(dim=1, keepdim=True)
    cov = torch.bmm(xc.transpose(1, 2), xc) / max(x.shape[1] - 1, 1)
    _, vecs = torch.linalg.eigh(cov)                    # ascending eigenvalues
    top = vecs.flip(-1)[:, :, :dim]
    return torch.bmm(xc, top)


def cluster_features(features: Any, k: int, pca_dim: int | None = 128,
                     image_size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Cluster each feature map's pixels into ``k`` segments (the official evaluation pipeline).

    Per image: L2-normalise each pixel's feature vector along channels; PCA to ``pca_dim``
    components when ``C > pca_dim`` (``None`` disables it); agglomerative clustering with average
    linkage and Euclidean distance (``sklearn.cluster.AgglomerativeClustering``, the same tree as
    the official fastcluster/``fcluster(maxclust)``; sklearn always cuts into exactly ``k``
    clusters, fcluster into at most ``k`` when merge heights tie); nearest-upsample the label
    map to ``image_size``.

    Args:
        features: ``[B, C, h, w]`` float, torch or numpy.
        k: number of clusters, ``1 <= k <= h * w``.
        pca_dim: PCA output dimension (no-op when ``C <= pca_dim``); ``None`` = no PCA.
        image_size: ``H`` or ``(H, W)`` of the returned maps; ``None`` keeps ``(h, w)``.

    Returns:
        ``[B, H, W]`` int64 labels in ``0..k-1``.
    """
    from sklearn.cluster import AgglomerativeClustering

    if isinstance(features, torch.Tensor):
        if features.is_complex() or features.dtype == torch.bool:
            raise TypeError(f"features: expected a real-valued tensor, got dtype {features.dtype}")
        features = features.detach().cpu().to(torch.float64).numpy()
    features = np.asarray(features)
    if features.dtype.kind not in "fiu":
        raise TypeError(f"features: expected a real-valued array, got dtype {features.dtype}")
    if features.ndim != 4:
        raise ValueError(f"features: expected [B, C, h, w], got shape {features.shape}")
    b, c, h, w = features.shape
    if not is_int(k):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if not 1 <= k <= h * w:
        raise ValueError(f"k: expected 1 <= k <= h * w = {h * w}, got {k}")
    if pca_dim is not None and (not is_int(pca_dim)
                                or pca_dim < 1):
        raise ValueError(f"pca_dim: expected a positive int or None, got {pca_dim!r}")
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
        if len(size) != 2 or not all(is_int(s) and s >= 1
                                     for s in size):
            raise ValueError(f"image_size: expected a positive int or (H, W), got {image_size!r}")
    x = torch.from_numpy(features.astype(np.float64)).reshape(b, c, h * w).transpose(1, 2)   # [B, N, C]
    if not torch.isfinite(x).all():
        raise ValueError("features: contains NaN or inf")
    x = F.normalize(x, dim=2)                       # eps=1e-12: zero vectors stay 0
    if pca_dim is not None and c > pca_dim:
        x = _pca(x, int(pca_dim))
    x = x.numpy()
    labels = np.empty((b, h * w), np.int64)
    for i in range(b):
        if k == 1:
            labels[i] = 0
            continue
        model = AgglomerativeClustering(n_clusters=int(k), linkage="average", metric="euclidean")
        with warnings.catch_warnings():
            # scipy warns when an [N, N] observation matrix happens to look like a distance matrix
            # (e.g. all-zero features with N == C); ours are always observations
            warnings.filterwarnings("ignore", message=".*looks suspiciously like an uncondensed distance matrix")
            labels[i] = model.fit_predict(x[i])
    labels = labels.reshape(b, h, w)
    if image_size is not None and size != (h, w):
        up = F.interpolate(torch.from_numpy(labels[:, None].astype(np.float32)), size=size, mode="nearest")
        labels = up[:, 0].round().numpy().astype(np.int64)
    return labels


def uptile(model_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, r: int, patch: int,
           max_batch: int | None = None) -> torch.Tensor:
    """The paper's up-tiling: r² shifted passes of a patch model interleaved into an r× finer map.

    The images ``[B, C, H, W]`` are resized bicubically (``align_corners=False``, no clamping, as
    the official ``gen_saccade_imgs``) to ``H + patch - patch/r`` per side; the r² crops of size
    ``H × W`` at offsets ``{0, s, 2s, …} (s = patch / r)`` in both axes go through ``model_fn``
    (batched into one call, or calls of at most ``max_batch`` images), and the outputs
    ``[B, D, h, w]`` are interleaved: output pixel ``(y·r + i, x·r + j)`` is feature ``(y, x)`` of
    the crop at offset ``(i·s, j·s)``. With ``r = 1``, returns ``model_fn(images)`` unchanged.

    Args:
        model_fn: maps ``[N, C, H, W]`` to features ``[N, D, h, w]``.
        images: ``[B, C, H, W]`` float tensor.
        r: up-tiling factor (CLEVRTex: 4), ``r >= 1``.
        patch: the model's patch size ``p``; must be divisible by ``r``.
        max_batch: largest number of images per ``model_fn`` call (``None``: all r²·B at once).

    Returns:
        ``[B, D, h·r, w·r]``.
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn: expected a callable, got {type(model_fn).__name__}")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images: expected a float tensor [B, C, H, W], got shape {tuple(images.shape)} "
                         f"and dtype {images.dtype}")
    for name, v in (("r", r), ("patch", patch)):
        if not is_int(v):
            raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if r < 1:
        raise ValueError(f"r: expected r >= 1, got {r}")
    if patch < 1 or patch % r:
        raise ValueError(f"patch: expected a positive multiple of r = {r}, got {patch}")
    if max_batch is not None and (not is_int(max_batch) or max_batch < 1):
        raise ValueError(f"max_batch: expected a positive int or None, got {max_batch!r}")
    if r == 1:
        return _call(model_fn, images, images.shape[0])
    b, _, hh, ww = images.shape
    step = patch // r
    big = F.interpolate(images, size=(hh + patch - step, ww + patch - step), mode="bicubic", align_corners=False)
    crops = torch.cat([big[:, :, i * step:i * step + hh, j * step:j * step + ww]
                       for i in range(r) for j in range(r)], dim=0)               # [(i, j, b), C, H, W]
    if max_batch is None or max_batch >= crops.shape[0]:
        feats = _call(model_fn, crops, crops.shape[0])
    else:
        feats = torch.cat([_call(model_fn, crops[s:s + max_batch], min(max_batch, crops.shape[0] - s))
                           for s in range(0, crops.shape[0], max_batch)], dim=0)
    _, d, h, w = feats.shape
    out = feats.reshape(r, r, b, d, h, w).permute(2, 3, 4, 0, 5, 1)             # [B, D, h, i, w, j]
    return out.reshape(b, d, h * r, w * r)


def _call(model_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n: int) -> torch.Tensor:
    y = model_fn(x)
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[0] != n:
        raise ValueError(f"model_fn: expected a tensor [{n}, D, h, w] for an input of shape {tuple(x.shape)}, got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    return y
