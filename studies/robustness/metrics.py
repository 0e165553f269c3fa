"""Accuracy and calibration metrics, reliability diagrams, and ensembled predictions.

All fractions (accuracy, confidence, expected calibration error) are in [0, 1]; multiply by 100
for the percentages the paper reports (e.g. "ECE 1.3" means 0.013 here).

Calibration uses the usual top-label definition: a prediction's *confidence* is its largest
class probability, it is *correct* if that class is the label. Confidences are put into
``n_bins`` equal-width bins ``(0, 1/B], (1/B, 2/B], ..., ((B-1)/B, 1]`` (a confidence of exactly 0,
impossible for a softmax, goes into the first bin) and

    ECE = sum_b (n_b / N) * |accuracy_b - mean confidence_b|.

The binning of the AKOrN paper is not documented; 15 bins is the common choice and the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.patches import Patch

from kuramoto.checks import is_int
from studies.figures import new_figure, save_figure

__all__ = [
    "ReliabilityDiagram",
    "accuracy",
    "ensemble_predict",
    "expected_calibration_error",
    "plot_reliability_diagram",
    "reliability_diagram",
    "to_probabilities",
]


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: cannot convert {type(value).__name__} to an array") from exc


def _check_scores(scores: Any, name: str) -> np.ndarray:
    arr = _as_numpy(scores, name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real-valued array [N, n_classes], got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2:
        raise ValueError(f"{name}: expected shape [N, n_classes] with N >= 1 and n_classes >= 2, got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def _check_labels(labels: Any, n: int, n_classes: int) -> np.ndarray:
    arr = _as_numpy(labels, "labels")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labels: expected integer class indices, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},) to match the predictions, got {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"labels: values must lie in [0, {n_classes - 1}], got [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def _check_n_bins(n_bins: Any) -> int:
    if not is_int(n_bins) or n_bins < 1:
        raise ValueError(f"n_bins: expected an int >= 1, got {n_bins!r}")
    return int(n_bins)


def to_probabilities(probs_or_logits: Any, kind: str = "auto") -> np.ndarray:
    """Class probabilities ``[N, C]`` (float64) from probabilities or logits.

    Args:
        probs_or_logits: array or tensor ``[N, C]``.
        kind: ``"probs"``, ``"logits"`` (softmax is applied) or ``"auto"``: treated as
            probabilities when every entry is in [0, 1] and every row sums to 1 within 1e-3,
            as logits otherwise.
    """
    if kind not in ("auto", "probs", "logits"):
        raise ValueError(f"kind: expected 'auto', 'probs' or 'logits', got {kind!r}")
    arr = _check_scores(probs_or_logits, "probs_or_logits")
    is_probs = bool((arr >= 0).all() and (arr <= 1).all() and np.allclose(arr.sum(axis=1), 1.0, atol=1e-3))
    if kind == "probs" and not is_probs:
        raise ValueError("probs_or_logits: kind='probs' but rows are not probability vectors "
                         "(entries in [0, 1] summing to 1)")
    if kind == "probs" or (kind == "auto" and is_probs):
        return arr / arr.sum(axis=1, keepdims=True)
    z = arr - arr.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(logits: Any, labels: Any) -> float:
    """Top-1 accuracy in [0, 1].

    Args:
        logits: scores ``[N, C]`` (logits or probabilities; only the argmax matters).
        labels: integer labels ``[N]``.
    """
    scores = _check_scores(logits, "logits")
    y = _check_labels(labels, scores.shape[0], scores.shape[1])
    return float(np.mean(scores.argmax(axis=1) == y))


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin calibration statistics.

    Attributes:
        bin_edges: ``[B + 1]`` edges ``0, 1/B, ..., 1``.
        confidence: ``[B]`` mean confidence of the predictions in each bin (NaN if empty).
        accuracy: ``[B]`` fraction correct in each bin (NaN if empty).
        count: ``[B]`` number of predictions in each bin.
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def n(self) -> int:
        """Total number of predictions."""
        return int(self.count.sum())

    @property
    def ece(self) -> float:
        """Expected calibration error: count-weighted mean of ``|accuracy - confidence|``."""
        filled = self.count > 0
        w = self.count[filled] / self.count.sum()
        return float(np.sum(w * np.abs(self.accuracy[filled] - self.confidence[filled])))

    @property
    def overall_accuracy(self) -> float:
        """Accuracy over all predictions."""
        filled = self.count > 0
        return float(np.sum(self.count[filled] * self.accuracy[filled]) / self.count.sum())

    @property
    def mean_confidence(self) -> float:
        """Mean confidence over all predictions."""
        filled = self.count > 0
        return float(np.sum(self.count[filled] * self.confidence[filled]) / self.count.sum())


def reliability_diagram(probs_or_logits: Any, labels: Any, n_bins: int = 15, kind: str = "auto") -> ReliabilityDiagram:
    """Bin predictions by confidence (equal-width bins) and measure accuracy per bin.

    Args:
        probs_or_logits: ``[N, C]`` probabilities or logits (see :func:`to_probabilities`).
        labels: integer labels ``[N]``.
        n_bins: number of equal-width confidence bins on [0, 1].
        kind: ``"auto"``, ``"probs"`` or ``"logits"``.
    """
    n_bins = _check_n_bins(n_bins)
    probs = to_probabilities(probs_or_logits, kind)
    y = _check_labels(labels, probs.shape[0], probs.shape[1])
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    # Bin b holds (b/B, (b+1)/B]; ceil keeps exact edges in the lower bin.
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
        mean_acc = np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan)
    return ReliabilityDiagram(np.linspace(0.0, 1.0, n_bins + 1), mean_conf, mean_acc, count.astype(np.int64))


def expected_calibration_error(probs_or_logits: Any, labels: Any, n_bins: int = 15, kind: str = "auto") -> float:
    """Expected calibration error (top-label, equal-width bins), a fraction in [0, 1].

    Args:
        probs_or_logits: ``[N, C]`` probabilities or logits (see :func:`to_probabilities`).
        labels: integer labels ``[N]``.
        n_bins: number of equal-width confidence bins (15 by default).
        kind: ``"auto"``, ``"probs"`` or ``"logits"``.

    Returns:
        ``sum_b (n_b / N) |acc_b - conf_b|``.
    """
    return reliability_diagram(probs_or_logits, labels, n_bins, kind).ece


def plot_reliability_diagram(diagram: ReliabilityDiagram, path: str | os.PathLike, title: str | None = None,
                             dpi: int = 120) -> Path:
    """Write a reliability diagram as a PNG (atomically).

    Top panel: accuracy per bin as bars, the diagonal of perfect calibration, and the gap
    between each bin's accuracy and its mean confidence shaded (red hatching: over-confident,
    green: under-confident); the ECE is printed in the corner. Bottom panel: fraction of
    predictions per bin.

    Args:
        diagram: from :func:`reliability_diagram`.
        path: destination ``.png`` file.
        title: figure title.
        dpi: resolution.

    Returns:
        The written path.
    """
    if not isinstance(diagram, ReliabilityDiagram):
        raise TypeError(f"diagram: expected a ReliabilityDiagram, got {type(diagram).__name__}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title: expected a string or None, got {type(title).__name__}")
    path = Path(path)
    edges = diagram.bin_edges
    width = np.diff(edges)
    filled = diagram.count > 0
    acc = np.where(filled, diagram.accuracy, 0.0)
    conf = np.where(filled, diagram.confidence, 0.0)

    fig = new_figure((4.2, 5.2))
    ax, ax_n = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(edges[:-1], acc, width=width, align="edge", color="#4c72b0", edgecolor="white", linewidth=0.6,
           label="accuracy")
    over = filled & (conf > acc)
    under = filled & (conf < acc)
    for mask, colour, hatch in ((over, "#c44e52", "//"), (under, "#55a868", "\\\\")):
        lo = np.minimum(acc, conf)[mask]
        ax.bar(edges[:-1][mask], np.abs(conf - acc)[mask], bottom=lo, width=width[mask], align="edge",
               color=colour, alpha=0.35, edgecolor=colour, hatch=hatch, linewidth=0.6)
    ax.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1.0, label="perfect calibration")
    ax.plot((edges[:-1] + width / 2)[filled], diagram.confidence[filled], "o", color="k", markersize=2.5,
            label="mean confidence")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(facecolor="#c44e52", alpha=0.35, hatch="//", label="gap (over-confident)"),
                Patch(facecolor="#55a868", alpha=0.35, hatch="\\\\", label="gap (under-confident)")]
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.text(0.97, 0.04, f"ECE = {100 * diagram.ece:.2f}%\nN = {diagram.n}", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax_n.bar(edges[:-1], diagram.count / max(diagram.n, 1), width=width, align="edge", color="0.6",
             edgecolor="white", linewidth=0.6)
    ax_n.set_xlabel("confidence")
    ax_n.set_ylabel("fraction")
    return save_figure(fig, path, dpi=dpi)


def ensemble_predict(model: torch.nn.Module, x: torch.Tensor, k: int = 1, batch_size: int | None = None,
                     eval_mode: bool = True) -> torch.Tensor:
    """Class probabilities averaged over ``k`` forward passes (for stochastic models).

    Args:
        model: classifier returning logits ``[N, C]``.
        x: inputs ``[N, ...]``; moved to the model's device, the result comes back to ``x``'s.
        k: number of forward passes whose softmax outputs are averaged (``k = 1``: plain softmax).
        batch_size: split ``x`` into chunks of this size (default: all at once).
        eval_mode: run the model in eval mode (its mode is restored afterwards).

    Returns:
        Probabilities ``[N, C]`` (float32 or wider), no gradient.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x: expected a non-empty batch [N, ...], got shape {tuple(x.shape)}")
    if not is_int(k) or k < 1:
        raise ValueError(f"k: expected an int >= 1, got {k!r}")
    if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size: expected None or an int >= 1, got {batch_size!r}")
    device = next((p.device for p in model.parameters()), x.device)
    step = batch_size or x.shape[0]
    was_training = model.training
    if eval_mode:
        model.eval()
    outs = []
    try:
        with torch.no_grad():
            for i in range(0, x.shape[0], step):
                xb = x[i:i + step].to(device)
                acc = None
                for _ in range(k):
                    logits = model(xb)
                    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != xb.shape[0]:
                        raise ValueError(f"model: expected logits [{xb.shape[0]}, n_classes], got "
                                         f"{getattr(logits, 'shape', type(logits).__name__)}")
                    p = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
                    acc = p if acc is None else acc + p
                outs.append((acc / k).to(x.device))
    finally:
        model.train(was_training)
    return torch.cat(outs)
