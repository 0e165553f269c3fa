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

**Atomic writes.** A file is built in memory (an HDF5 file image) and written with one plain
write to a temporary file in the target's directory that is renamed over the target only when
complete (:func:`studies.files.atomic_path`), so a process killed at any moment leaves the previous
complete file or the new one, never a torn one, and a full disk is a :class:`~studies.files.DiskFullError`
with the previous file intact (HDF5 writing straight to a full disk can crash the interpreter).

**Checksums.** Every file carries the SHA-256 of its content (:func:`studies.cache.hdf5_digest`,
root attribute ``akorn_sha256``), checked by :func:`open_dataset` and :func:`read_checkpoint`:
a file edited or damaged after it was written is a :class:`StorageError` that names it and
``--overwrite``. Files written before checksums existed are read unchecked.

**Streaming.** :func:`append` grows a file along its unlimited dimension (``time``): it
reads the current file into memory, resizes the unlimited dimension with h5netcdf,
writes the new slice and renames. ``to_netcdf(mode="a")`` cannot do this (it cannot extend
an existing dimension, pydata/xarray#1672). The copy makes an append cost O(file size), which
is small next to the simulation for the files studies write, and is what buys atomicity. A
file may also carry a ``checkpoint`` group (arrays needed to resume a run, e.g. the current
states); xarray ignores groups unless asked, so the root group stays a plain tidy Dataset.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5netcdf
import numpy as np
import xarray as xr

from studies.cache import CHECKSUM_ATTR, checksum_problem, stamp_checksum
from studies.files import remove_stale_temporaries, write_bytes
from studies.provenance import clean_attrs, provenance, result_attrs

__all__ = [
    "CHECKPOINT_GROUP",
    "StorageError",
    "append",
    "config_difference",
    "finished_result",
    "merge_complex",
    "netcdf_bytes",
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


def _local_locks() -> Any:
    """A context in which xarray takes no Dask-distributed lock: with a distributed client alive
    (a sweep), it would key one by the in-memory file, which the scheduler does not know."""
    try:
        import dask
    except ImportError:  # pragma: no cover - dask comes with distributed, a dependency
        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def netcdf_bytes(ds: xr.Dataset, **kwargs: Any) -> bytes:
    """``ds`` as the bytes of a netCDF4 file (h5netcdf), built in memory; ``kwargs`` go to ``to_netcdf``."""
    with _local_locks():
        return bytes(ds.to_netcdf(engine="h5netcdf", **kwargs))


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
    ds.attrs = clean_attrs(ds.attrs, "ds.attrs")
    path = Path(path)
    image = io.BytesIO(netcdf_bytes(ds, unlimited_dims=[unlimited] if unlimited else None, encoding=_encoding(ds)))
    if checkpoint:
        with h5netcdf.File(image, "a") as fh:
            _write_checkpoint(fh, checkpoint)
    return write_bytes(path, stamp_checksum(image.getvalue()))


def append(path: str | os.PathLike, chunk: xr.Dataset, dim: str = "time", *, attrs: Mapping[str, Any] | None = None,
           checkpoint: Mapping[str, np.ndarray] | None = None) -> Path:
    """Append ``chunk`` along the unlimited dimension ``dim`` of an existing result file, atomically.

    Every variable of ``chunk`` that has ``dim`` is written after the file's current end
    (the order of the other dimensions may differ from the file's; sizes must match).
    Variables without ``dim`` are ignored. The file is read into memory, extended with
    h5netcdf's resize of the unlimited dimension, and written over ``path`` atomically.

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
    if not isinstance(chunk, xr.Dataset):
        raise TypeError(f"chunk: expected an xarray.Dataset, got {type(chunk).__name__}")
    if dim not in chunk.dims:
        raise ValueError(f"dim: {dim!r} is not a dimension of chunk (dims: {list(chunk.dims)})")
    path = Path(path)
    _check_readable(path)
    chunk = split_complex(chunk)
    image = io.BytesIO(path.read_bytes())
    try:
        fh = h5netcdf.File(image, "a")
    except OSError as exc:
        raise StorageError(f"path: {str(path)!r} cannot be opened for appending: {exc}") from exc
    with fh:
        if dim not in fh.dimensions or not fh.dimensions[dim].isunlimited():
            raise ValueError(f"dim: {dim!r} is not an unlimited dimension of {str(path)!r}; write the file "
                             f"with write_dataset(..., unlimited={dim!r})")
        old = fh.dimensions[dim].size
        new = old + chunk.sizes[dim]
        names = [n for n, v in chunk.variables.items() if dim in v.dims]
        _check_chunk(fh, chunk, names, dim, path)
        fh.resize_dimension(dim, new)
        for name in names:
            var = fh.variables[name]
            data = chunk[name].transpose(*var.dimensions).values
            index = tuple(slice(old, new) if d == dim else slice(None) for d in var.dimensions)
            var[index] = data.astype(var.dtype, copy=False)
        if attrs:
            for key, value in clean_attrs(attrs, "attrs").items():
                fh.attrs[key] = value
        if checkpoint:
            _write_checkpoint(fh, checkpoint)
    return write_bytes(path, stamp_checksum(image.getvalue()))


def _check_chunk(fh: Any, chunk: xr.Dataset, names: list[str], dim: str, path: Path) -> None:
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


def _verified_image(path: Path) -> io.BytesIO:
    """The bytes of ``path`` in memory, after checking it is readable HDF5 and matches its checksum."""
    import h5py

    _check_readable(path)
    image = io.BytesIO(path.read_bytes())
    try:
        with h5py.File(image, "r") as fh:
            problem = checksum_problem(fh)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise StorageError(f"path: {str(path)!r} is truncated or corrupt and cannot be read ({type(exc).__name__}: "
                           f"{exc}); it was left untouched") from exc
    if problem is not None:
        raise StorageError(f"path: {str(path)!r}: {problem}; it was left untouched (rerun with --overwrite to "
                           f"replace it)")
    image.seek(0)
    return image


def open_dataset(path: str | os.PathLike, *, study: str | None = None, combine_complex: bool = False) -> xr.Dataset:
    """Open a result file, check that it is complete, intact and one of ours, and load it into memory.

    The file is closed on return (so it can be replaced later).

    Args:
        path: the file.
        study: require this study name (``akorn_study`` attribute), if given.
        combine_complex: rebuild complex variables from their ``_real``/``_imag`` parts.

    Returns:
        The Dataset, fully loaded.

    Raises:
        StorageError: the file is missing, not HDF5, truncated or corrupt, fails its checksum,
            is not an akorn result file, or is from another study. The file is never modified.
    """
    path = Path(path)
    image = _verified_image(path)
    try:
        with _local_locks(), xr.open_dataset(image, engine="h5netcdf", decode_timedelta=False) as ds:
            ds = ds.load()
        ds.attrs.pop(CHECKSUM_ATTR, None)  # describes the file, not the data
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
    """The arrays of the file's ``checkpoint`` group, or ``None`` if it has none (checksum checked)."""
    path = Path(path)
    image = _verified_image(path)
    try:
        with h5netcdf.File(image, "r") as fh:
            if CHECKPOINT_GROUP not in fh.groups:
                return None
            group = fh.groups[CHECKPOINT_GROUP]
            return {name: np.asarray(var[...]) for name, var in group.variables.items()}
    except (OSError, ValueError, KeyError) as exc:
        raise StorageError(f"path: {str(path)!r} is truncated or corrupt ({exc}); it was left untouched") from exc


def config_difference(stored: Any, config: Any, limit: int = 4) -> str:
    """The fields in which a stored config (JSON text or dict) differs from ``config``, both values each.

    Returns:
        ``"k_max: 4.0 in the file, 5.0 now; seeds: ..."`` (at most ``limit`` fields, then a count),
        or a sentence saying the stored config is not readable JSON.
    """
    new = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except json.JSONDecodeError:
            return "its stored config is not valid JSON"
    if not isinstance(stored, dict):
        return "its stored config is not a JSON object"
    missing = object()
    keys = [k for k in sorted(set(stored) | set(new)) if stored.get(k, missing) != new.get(k, missing)]

    def show(d: dict[str, Any], k: str) -> str:
        return repr(d[k]) if k in d else "absent"

    parts = [f"{k}: {show(stored, k)} in the file, {show(new, k)} now" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return "; ".join(parts) if parts else "no field differs"


def finished_result(path: str | os.PathLike | None, config: Any, study: str, *, overwrite: bool) -> xr.Dataset | None:
    """The result at ``path`` if it holds the same config (so a study returns it without recomputing).

    ``None`` when there is no file, or when ``overwrite`` is set (the run replaces the file,
    whatever it holds: another config, a damaged or a foreign file).

    Raises:
        StorageError: the file holds a run with a different config, or is unreadable or damaged
            (and ``overwrite`` is off); the message names the differing fields.
    """
    if path is None or overwrite or not Path(path).exists():
        return None
    existing = open_dataset(path, study=study)
    if existing.attrs.get("config") == config.to_json():
        return existing
    raise StorageError(f"path: {str(path)!r} holds a run with a different config "
                       f"({config_difference(existing.attrs.get('config'), config)}); pass --overwrite to replace it "
                       f"or choose another --out")
