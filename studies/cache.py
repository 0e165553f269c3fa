"""Atomic file writes, content checksums of HDF5 files, and a parameter-keyed on-disk cache of
numpy arrays (HDF5).

Everything a study writes goes through :func:`atomic_path` (re-exported from :mod:`studies.files`):
the data is written to a temporary file in the same directory and renamed over the target only
once it is complete, so a run killed at any moment leaves either the previous complete file or
the new one.

Every HDF5 file the toolkit writes carries the SHA-256 of its content in the root attribute
``akorn_sha256`` (:func:`hdf5_digest`: every dataset's values, dtype and shape and every
attribute, by path), so a file edited or damaged after it was written is recognised before its
content is trusted. HDF5 files are built in memory and written with one plain write, so a full
disk fails cleanly (HDF5 left with a half-written file can crash the interpreter).

:func:`cached_arrays` builds a dict of arrays once per parameter set (generated data sets:
Sudoku boards, synthetic scenes, ...) and stores it in ``<root>/<name>-<hash>.h5``; a second
call with the same parameters reads the file instead of rebuilding.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from studies.files import atomic_path, write_bytes

__all__ = ["CHECKSUM_ATTR", "atomic_path", "cache_key", "cached_arrays", "checksum_problem", "default_cache_dir",
           "hdf5_digest", "read_arrays", "stamp_checksum", "write_arrays"]

#: The root attribute of an HDF5 file that holds the SHA-256 of its content (see :func:`hdf5_digest`).
CHECKSUM_ATTR = "akorn_sha256"
# Attributes HDF5 and netCDF4 keep for themselves (object references and the dimension bookkeeping).
_INTERNAL_ATTRS = frozenset({CHECKSUM_ATTR, "DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME",
                             "_Netcdf4Dimid", "_Netcdf4Coordinates", "_nc3_strict"})


def default_cache_dir() -> Path:
    """The cache directory: ``$AKORN_CACHE`` if set, else ``~/.cache/akorn``."""
    env = os.environ.get("AKORN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "akorn"


def cache_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable parameter mapping (key order does not matter)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a mapping, got {type(params).__name__}")
    try:
        text = json.dumps(params, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:  # pragma: no cover - default=str makes this rare
        raise ValueError(f"params: not JSON-serialisable ({exc})") from exc
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _attr_bytes(value: Any) -> bytes | None:
    arr = np.asarray(value)
    if arr.dtype.kind == "O" or arr.dtype.kind in "SU":
        return "\x1f".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                            for v in arr.ravel()).encode()
    if arr.dtype.kind == "V" or arr.dtype.names is not None:
        return None  # object references and compound bookkeeping: not content
    return arr.dtype.str.encode() + repr(arr.shape).encode() + arr.tobytes()


def hdf5_digest(fh: Any) -> str:
    """SHA-256 (hex) of the content of an open ``h5py.File``: every group and dataset by path, each
    dataset's dtype, shape and values, and every attribute except :data:`CHECKSUM_ATTR` and the
    HDF5/netCDF4 bookkeeping. Equal content gives an equal digest, whatever the file layout."""
    import h5py

    digest = hashlib.sha256()

    def attrs(obj: Any) -> None:
        for key in sorted(obj.attrs.keys()):
            if key in _INTERNAL_ATTRS:
                continue
            try:
                encoded = _attr_bytes(obj.attrs[key])
            except (OSError, TypeError, ValueError):  # an attribute h5py cannot read back is not ours
                continue
            if encoded is not None:
                digest.update(b"A" + key.encode() + b"\0" + encoded + b"\0")

    attrs(fh)
    names: list[str] = []
    fh.visit(names.append)
    for name in sorted(names):
        obj = fh[name]
        digest.update(b"N" + name.encode() + b"\0")
        attrs(obj)
        if isinstance(obj, h5py.Dataset):
            values = obj[()]
            arr = np.asarray(values)
            digest.update(arr.dtype.str.encode() + repr(arr.shape).encode())
            encoded = _attr_bytes(arr) if arr.dtype.kind in "OSU" else np.ascontiguousarray(arr).tobytes()
            digest.update(encoded or b"")
    return digest.hexdigest()


def stamp_checksum(image: bytes | memoryview) -> bytes:
    """The HDF5 file image ``image`` with its :data:`CHECKSUM_ATTR` set to its content digest."""
    import h5py

    buffer = io.BytesIO(bytes(image))
    with h5py.File(buffer, "a") as fh:
        fh.attrs[CHECKSUM_ATTR] = hdf5_digest(fh)
    return buffer.getvalue()


def checksum_problem(fh: Any) -> str | None:
    """Why an open ``h5py.File`` fails its checksum, or ``None`` (it matches, or predates checksums)."""
    if CHECKSUM_ATTR not in fh.attrs:
        return None
    stored = fh.attrs[CHECKSUM_ATTR]
    stored = stored.decode() if isinstance(stored, bytes) else str(stored)
    actual = hdf5_digest(fh)
    if stored != actual:
        return (f"its content does not match the checksum written with it (sha256 {actual[:12]}... vs "
                f"{stored[:12]}...): it was modified or damaged after it was written")
    return None


def write_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None) -> Path:
    """Write ``arrays`` (name -> numpy array) and JSON ``attrs`` to an HDF5 file, atomically, with a checksum."""
    import h5py

    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError("arrays: expected a non-empty mapping of name -> array")
    path = Path(path)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as fh:
        for name, value in arrays.items():
            value = np.asarray(value)
            if value.dtype == object:
                raise TypeError(f"arrays[{name!r}]: object arrays cannot be stored; got dtype=object")
            fh.create_dataset(name, data=value, compression="gzip" if value.size > 4096 else None)
        fh.attrs["akorn_attrs"] = json.dumps(dict(attrs or {}), sort_keys=True, default=str)
        fh.attrs[CHECKSUM_ATTR] = hdf5_digest(fh)
    return write_bytes(path, buffer.getvalue())


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`write_arrays`; returns ``(arrays, attrs)``.

    Raises:
        ValueError: the file is missing, truncated, fails its checksum, or is not one of ours.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    try:
        with h5py.File(path, "r") as fh:
            if "akorn_attrs" not in fh.attrs:
                raise ValueError(f"path: {str(path)!r} is an HDF5 file but not an akorn array file")
            problem = checksum_problem(fh)
            if problem is not None:
                raise ValueError(f"path: {str(path)!r}: {problem}")
            attrs = json.loads(fh.attrs["akorn_attrs"])
            arrays = {name: fh[name][()] for name in fh.keys()}
    except OSError as exc:
        raise ValueError(f"path: {str(path)!r} is not a readable HDF5 file (corrupt or truncated?): {exc}") from exc
    return arrays, attrs


def cached_arrays(name: str, params: Mapping[str, Any], build: Callable[[], Mapping[str, np.ndarray]],
                  root: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Return ``build()``'s arrays, cached on disk under a key made from ``name`` and ``params``.

    A cached file that cannot be read (e.g. truncated by a crash in an older version) is rebuilt.

    Args:
        name: a short file-name-safe label, e.g. ``"sudoku"``.
        params: everything the result depends on (JSON-serialisable).
        build: computes the arrays when they are not cached.
        root: cache directory (default :func:`default_cache_dir`).
    """
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        raise ValueError(f"name: expected a non-empty file-name-safe string, got {name!r}")
    root = Path(root) if root is not None else default_cache_dir()
    path = root / f"{name}-{cache_key(params)}.h5"
    if path.is_file():
        try:
            arrays, attrs = read_arrays(path)
            if attrs.get("params") == json.loads(json.dumps(dict(params), sort_keys=True, default=str)):
                return arrays
        except ValueError:
            pass
    arrays = {k: np.asarray(v) for k, v in build().items()}
    write_arrays(path, arrays, {"name": name, "params": dict(params)})
    return arrays
