"""Results on disk: xarray Datasets in netCDF4/HDF5 files, written atomically, streamed in chunks.

A result file is a netCDF4 file (HDF5 layout, written through h5netcdf) that plain
``xr.open_dataset`` and any netCDF viewer can read. Conventions:

- dimensions and coordinates are named (``K``, ``seed``, ``time``, ``method``, ...); every
  variable has a ``long_name`` and numeric ones have ``units`` (CF attributes; ``"1"`` for
  dimensionless);
- global attributes hold the study name (``akorn_study``), the full config as JSON
  (``config``), the seed, and the provenance (versions of this package, torch, numpy, xarray,
  the git commit when known) — see :func:`result_attrs`;
- a complex variable is stored as two real variables ``<name>_real`` and ``<name>_imag``
  (netCDF4 has no complex type); :func:`open_dataset` can recombine them.

**Atomic writes.** Every write goes to a temporary file in the target's directory that is
renamed over the target only when complete (:func:`studies.cache.atomic_path`), so a process
killed at any moment leaves the previous complete file or the new one, never a torn one.

**Streaming.** :func:`append` grows a file along its unlimited dimension (``time``): it
copies the current file to a temporary, resizes the unlimited dimension with h5netcdf,
writes the new slice and renames. ``to_netcdf(mode="a")`` cannot do this (it cannot extend
an existing dimension, pydata/xarray#1672). The copy makes an append cost O(file size), which
is small next to the simulation for the files studies write, and is what buys atomicity. A
file may also carry a ``checkpoint`` group (arrays needed to resume a run, e.g. the current
states); xarray ignores groups unless asked, so the root group stays a plain tidy Dataset.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
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
from studies.cache import atomic_path

__all__ = [
    "CHECKPOINT_GROUP",
    "finished_result",
    "StorageError",
    "append",
    "merge_complex",
    "open_dataset",
    "provenance",
    "read_checkpoint",
    "remove_stale_temporaries",
    "result_attrs",
    "split_complex",
    "write_dataset",
]

CHECKPOINT_GROUP = "checkpoint"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class StorageError(ValueError):
    """A file is missing, not an HDF5/netCDF4 file, truncated or corrupt, or not an akorn result."""


# -- provenance -----------------------------------------------------------------------------

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
    return _clean_attrs(attrs, "attrs")


def _clean_attrs(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
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


# -- complex variables ----------------------------------------------------------------------

def split_complex(ds: xr.Dataset) -> xr.Dataset:
    """Replace every complex variable ``z`` by real variables ``z_real`` and ``z_imag``.

    Both keep ``z``'s attributes, with ``long_name`` suffixed by "(real part)"/"(imaginary
    part)" and ``complex_part`` set, so :func:`merge_complex` can undo it.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected an xarray.Dataset, got {type(ds).__name__}")
    out = ds.copy()
    for name in list(ds.data_vars):
        var = ds[name]
        if not np.iscomplexobj(var.values):
            continue
        for part, fn, label in (("real", np.real, "real part"), ("imag", np.imag, "imaginary part")):
            attrs = dict(var.attrs)
            attrs["long_name"] = f"{attrs.get('long_name', name)} ({label})"
            attrs["complex_part"] = part
            attrs["complex_of"] = name
            out[f"{name}_{part}"] = xr.DataArray(fn(var.values), dims=var.dims, attrs=attrs)
        out = out.drop_vars(name)
    return out


def merge_complex(ds: xr.Dataset) -> xr.Dataset:
    """Inverse of :func:`split_complex`: rebuild ``z`` from ``z_real`` and ``z_imag``."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected an xarray.Dataset, got {type(ds).__name__}")
    out = ds
    for name in list(ds.data_vars):
        var = ds[name]
        if var.attrs.get("complex_part") != "real":
            continue
        base = var.attrs.get("complex_of", name[: -len("_real")])
        imag = f"{base}_imag"
        if imag not in ds:
            continue
        attrs = {k: v for k, v in var.attrs.items() if k not in ("complex_part", "complex_of")}
        attrs["long_name"] = str(attrs.get("long_name", base)).replace(" (real part)", "")
        z = xr.DataArray(var.values + 1j * ds[imag].transpose(*var.dims).values, dims=var.dims, attrs=attrs)
        out = out.drop_vars([name, imag]).assign({base: z})
    return out


# -- writing --------------------------------------------------------------------------------

def _check_variables(ds: xr.Dataset) -> None:
    for name, var in ds.variables.items():
        if "long_name" not in var.attrs:
            raise ValueError(f"ds: variable {name!r} has no 'long_name' attribute (CF); add one")
        if var.dtype.kind in "fiuc" and "units" not in var.attrs:
            raise ValueError(f"ds: numeric variable {name!r} has no 'units' attribute (CF); use '1' for "
                             f"dimensionless")
        if var.dtype.kind == "b":
            raise TypeError(f"ds: variable {name!r} is boolean, which netCDF4 cannot store; cast it to int8")


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "fiu" and var.size >= 65536:
            enc[name] = {"zlib": True, "complevel": 4}
    return enc


def _write_checkpoint(fh: Any, checkpoint: Mapping[str, np.ndarray]) -> None:
    """Write (or overwrite in place) the checkpoint group of an open h5netcdf file."""
    group = fh.groups[CHECKPOINT_GROUP] if CHECKPOINT_GROUP in fh.groups else fh.create_group(CHECKPOINT_GROUP)
    for name, value in checkpoint.items():
        value = np.ascontiguousarray(value)
        if value.dtype.kind not in "fiub":
            raise TypeError(f"checkpoint[{name!r}]: expected a numeric array, got dtype {value.dtype}")
        if value.dtype.kind == "b":
            value = value.astype(np.int8)
        dims = tuple(f"{name}_{i}" for i in range(value.ndim))
        if name in group.variables:
            var = group.variables[name]
            if var.shape != value.shape or var.dtype != value.dtype:
                raise ValueError(f"checkpoint[{name!r}]: shape/dtype {value.shape}/{value.dtype} differs from the "
                                 f"stored {var.shape}/{var.dtype}")
            var[...] = value
            continue
        for dim, size in zip(dims, value.shape):
            group.dimensions[dim] = size
        group.create_variable(name, dims, data=value)


def write_dataset(ds: xr.Dataset, path: str | os.PathLike, *, unlimited: str | None = None,
                  checkpoint: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write ``ds`` to ``path`` atomically as netCDF4 (h5netcdf).

    Complex variables are split (:func:`split_complex`); every variable must carry
    ``long_name`` (and ``units`` if numeric).

    Args:
        ds: the Dataset.
        path: destination file (``.h5`` or ``.nc``); replaced only once fully written.
        unlimited: a dimension to make unlimited, so that :func:`append` can grow it.
        checkpoint: arrays to store in the ``checkpoint`` group (to resume a run).

    Returns:
        The destination path.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected an xarray.Dataset, got {type(ds).__name__}")
    if unlimited is not None and unlimited not in ds.dims:
        raise ValueError(f"unlimited: {unlimited!r} is not a dimension of ds (dims: {list(ds.dims)})")
    ds = split_complex(ds)
    _check_variables(ds)
    ds = ds.copy()
    ds.attrs = _clean_attrs(ds.attrs, "ds.attrs")
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", unlimited_dims=[unlimited] if unlimited else None,
                     encoding=_encoding(ds))
        if checkpoint:
            import h5netcdf

            with h5netcdf.File(tmp, "a") as fh:
                _write_checkpoint(fh, checkpoint)
    return path


def append(path: str | os.PathLike, chunk: xr.Dataset, dim: str = "time", *, attrs: Mapping[str, Any] | None = None,
           checkpoint: Mapping[str, np.ndarray] | None = None) -> Path:
    """Append ``chunk`` along the unlimited dimension ``dim`` of an existing result file, atomically.

    Every variable of ``chunk`` that has ``dim`` is written after the file's current end
    (the order of the other dimensions may differ from the file's; sizes must match).
    Variables without ``dim`` are ignored. The file is copied to a temporary, extended with
    h5netcdf's resize of the unlimited dimension, and renamed over ``path``.

    Args:
        path: a file written by :func:`write_dataset` with ``unlimited=dim``.
        chunk: the new slice(s); complex variables are split as on write.
        dim: the unlimited dimension.
        attrs: global attributes to set or update (e.g. progress counters).
        checkpoint: arrays to store in (or overwrite in) the ``checkpoint`` group.

    Returns:
        ``path``.

    Raises:
        StorageError: ``path`` is not a readable result file.
        ValueError: ``dim`` is not unlimited there, or a variable is missing or mis-shaped.
    """
    import h5netcdf

    if not isinstance(chunk, xr.Dataset):
        raise TypeError(f"chunk: expected an xarray.Dataset, got {type(chunk).__name__}")
    if dim not in chunk.dims:
        raise ValueError(f"dim: {dim!r} is not a dimension of chunk (dims: {list(chunk.dims)})")
    path = Path(path)
    _check_readable(path)
    chunk = split_complex(chunk)
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        try:
            fh = h5netcdf.File(tmp, "a")
        except OSError as exc:
            raise StorageError(f"path: {str(path)!r} cannot be opened for appending: {exc}") from exc
        with fh:
            if dim not in fh.dimensions or not fh.dimensions[dim].isunlimited():
                raise ValueError(f"dim: {dim!r} is not an unlimited dimension of {str(path)!r}; write the file "
                                 f"with write_dataset(..., unlimited={dim!r})")
            old = fh.dimensions[dim].size
            new = old + chunk.sizes[dim]
            names = [n for n, v in chunk.variables.items() if dim in v.dims]
            for name in names:
                if name not in fh.variables:
                    raise ValueError(f"chunk: variable {name!r} is not in {str(path)!r}")
                file_dims = fh.variables[name].dimensions
                if set(file_dims) != set(chunk[name].dims):
                    raise ValueError(f"chunk: variable {name!r} has dims {chunk[name].dims}, the file has {file_dims}")
                for d in file_dims:
                    if d != dim and fh.dimensions[d].size != chunk.sizes[d]:
                        raise ValueError(f"chunk: dimension {d!r} has size {chunk.sizes[d]}, the file has "
                                         f"{fh.dimensions[d].size}")
            fh.resize_dimension(dim, new)
            for name in names:
                var = fh.variables[name]
                data = chunk[name].transpose(*var.dimensions).values
                index = tuple(slice(old, new) if d == dim else slice(None) for d in var.dimensions)
                var[index] = data.astype(var.dtype, copy=False)
            if attrs:
                for key, value in _clean_attrs(attrs, "attrs").items():
                    fh.attrs[key] = value
            if checkpoint:
                _write_checkpoint(fh, checkpoint)
    return path


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete temporaries that a killed writer of ``path`` left behind (``.<name>.*.tmp``).

    Call it only when no other process is writing ``path``.

    Returns:
        The removed paths.
    """
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for p in path.parent.glob(f".{path.name}.*.tmp"):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# -- reading --------------------------------------------------------------------------------

def _check_readable(path: Path) -> None:
    if not path.exists():
        raise StorageError(f"path: no such file {str(path)!r}")
    if path.is_dir():
        raise StorageError(f"path: {str(path)!r} is a directory, expected a result file")
    with open(path, "rb") as fh:
        head = fh.read(len(_HDF5_SIGNATURE))
    if head != _HDF5_SIGNATURE:
        kind = "an empty file" if not head else ("a netCDF3 file" if head.startswith(b"CDF") else "not an HDF5 file")
        raise StorageError(f"path: {str(path)!r} is {kind}; akorn results are netCDF4/HDF5 files written by an "
                           f"akorn study")


def open_dataset(path: str | os.PathLike, *, study: str | None = None, combine_complex: bool = False) -> xr.Dataset:
    """Open a result file, check that it is complete and one of ours, and load it into memory.

    The file is closed on return (so it can be replaced later).

    Args:
        path: the file.
        study: require this study name (``akorn_study`` attribute), if given.
        combine_complex: rebuild complex variables from their ``_real``/``_imag`` parts.

    Returns:
        The Dataset, fully loaded.

    Raises:
        StorageError: the file is missing, not HDF5, truncated or corrupt, not an akorn result
            file, or from another study. The file is never modified.
    """
    path = Path(path)
    _check_readable(path)
    try:
        with xr.open_dataset(path, engine="h5netcdf", decode_timedelta=False) as ds:
            ds = ds.load()
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise StorageError(f"path: {str(path)!r} is truncated or corrupt and cannot be read ({type(exc).__name__}: "
                           f"{exc}); it was left untouched") from exc
    if "akorn_study" not in ds.attrs:
        raise StorageError(f"path: {str(path)!r} is a netCDF4/HDF5 file but not an akorn result (no 'akorn_study' "
                           f"attribute); open it with xarray.open_dataset instead")
    if study is not None and ds.attrs["akorn_study"] != study:
        raise StorageError(f"path: {str(path)!r} holds a {ds.attrs['akorn_study']!r} study, expected {study!r}")
    return merge_complex(ds) if combine_complex else ds


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The arrays of the file's ``checkpoint`` group, or ``None`` if it has none."""
    import h5netcdf

    path = Path(path)
    _check_readable(path)
    try:
        with h5netcdf.File(path, "r") as fh:
            if CHECKPOINT_GROUP not in fh.groups:
                return None
            group = fh.groups[CHECKPOINT_GROUP]
            return {name: np.asarray(var[...]) for name, var in group.variables.items()}
    except OSError as exc:
        raise StorageError(f"path: {str(path)!r} is truncated or corrupt ({exc}); it was left untouched") from exc


def finished_result(path: str | os.PathLike | None, config: Any, study: str, *, overwrite: bool) -> xr.Dataset | None:
    """The result at ``path`` if it holds the same config (so a study returns it without recomputing).

    ``None`` when there is no file, or when ``overwrite`` is set (the run replaces the file).

    Raises:
        StorageError: the file holds a run with a different config (and ``overwrite`` is off).
    """
    if path is None or overwrite or not Path(path).exists():
        return None
    existing = open_dataset(path, study=study)
    if existing.attrs.get("config") == config.to_json():
        return existing
    raise StorageError(f"path: {str(path)!r} holds a run with a different config; pass --overwrite or choose "
                       f"another --out")
