"""Figures of the studies: a Matplotlib figure without pyplot's global state, saved atomically.

    fig = new_figure((11, 4.6))
    ax = fig.subplots()
    ...
    return save_figure(fig, path, dpi=130)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from studies.cache import atomic_path

__all__ = ["check_result", "new_figure", "result_figure", "save_figure"]


def new_figure(figsize: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A figure with an Agg canvas (no pyplot, no display, safe in worker threads)."""
    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically, usual file modes); returns ``path``."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def check_result(ds: object, variable: str, what: str) -> xr.Dataset:
    """``ds`` if it is a Dataset holding ``variable``, else ``ValueError`` naming the study."""
    if not isinstance(ds, xr.Dataset) or variable not in ds:
        raise ValueError(f"ds: expected {what} Dataset with an {variable!r} variable")
    return ds


def result_figure(ds: object, variable: str, what: str, figsize: tuple[float, float]) -> tuple[Figure, dict]:
    """A new figure for the result ``ds`` (checked with :func:`check_result`) and its config as a dict."""
    ds = check_result(ds, variable, what)
    return new_figure(figsize), json.loads(ds.attrs["config"])
