"""Provenance of a result file: the versions and git commit it was made with, and its global
attributes (:func:`result_attrs`). Re-exported by :mod:`studies.storage`.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import h5netcdf
import numpy as np
import torch
import xarray as xr

import kuramoto

__all__ = ["clean_attrs", "provenance", "result_attrs"]


def _git_commit() -> tuple[str, bool | None]:
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return "unknown", None
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5)
        return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def provenance() -> dict[str, str]:
    """Versions of this package, Python, torch, numpy, xarray, h5netcdf, and the git commit.

    Returns:
        ``{"akorn_version": ..., "torch_version": ..., "numpy_version": ..., "git_commit": ...}``;
        ``git_commit`` is ``"unknown"`` outside a git checkout, with ``+dirty`` appended when
        tracked files have uncommitted changes.
    """
    try:
        version = metadata.version("akorn-toolkit")
    except metadata.PackageNotFoundError:
        version = kuramoto.__version__
    torch_version = str(torch.__version__)
    commit, dirty = _git_commit()
    return {
        "akorn_version": version,
        "python_version": platform.python_version(),
        "torch_version": torch_version,
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "h5netcdf_version": h5netcdf.__version__,
        "git_commit": commit + ("+dirty" if dirty else ""),
    }


def result_attrs(study: str, config: Any, seed: int, **extra: Any) -> dict[str, Any]:
    """Global attributes of a result file.

    Args:
        study: the study's CLI name (``"sync"``); :func:`open_dataset` uses it to recognise
            the file and ``akorn show`` to find the plot.
        config: the study config (its ``to_json()`` is stored) or a JSON string.
        seed: the base seed of the run.
        **extra: further attributes (numbers or strings).

    Returns:
        A dict of netCDF-compatible attributes.
    """
    if not isinstance(study, str) or not study:
        raise ValueError(f"study: expected a non-empty string, got {study!r}")
    text = config if isinstance(config, str) else config.to_json()
    attrs = {
        "Conventions": "CF-1.8",
        "title": f"akorn {study} study",
        "akorn_study": study,
        "config": text,
        "seed": int(seed),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **provenance(),
    }
    attrs.update(extra)
    return clean_attrs(attrs, "attrs")


def clean_attrs(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``attrs`` as netCDF attributes: ``None`` dropped, booleans as ints, containers as JSON text.

    Raises:
        TypeError: a value that is not a string, number or container (named by ``where[key]``).
    """
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        elif isinstance(value, str):
            value = str(value)  # str subclasses (torch.__version__) confuse h5py
        elif isinstance(value, (dict, list, tuple)) and not (
                isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value)):
            value = json.dumps(value, sort_keys=True, default=str)
        elif not isinstance(value, (str, int, float, np.integer, np.floating, np.ndarray, list, tuple)):
            raise TypeError(f"{where}[{key!r}]: netCDF attributes must be strings or numbers, got "
                            f"{type(value).__name__}")
        out[key] = value
    return out
