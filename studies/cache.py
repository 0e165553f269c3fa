"""Atomic file writes and a parameter-keyed on-disk cache of numpy arrays (HDF5).

Everything a study writes goes through :func:`atomic_path`: the data is written to a
temporary file in the same directory and renamed over the target only once it is complete,
so a run killed at any moment leaves either the previous complete file or the new one.

:func:`cached_arrays` builds a dict of arrays once per parameter set (generated data sets:
Sudoku boards, synthetic scenes, ...) and stores it in ``<root>/<name>-<hash>.h5``; a second
call with the same parameters reads the file instead of rebuilding.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_path", "cache_key", "cached_arrays", "default_cache_dir", "read_arrays", "write_arrays"]


def default_cache_dir() -> Path:
    """The cache directory: ``$AKORN_CACHE`` if set, else ``~/.cache/akorn``."""
    env = os.environ.get("AKORN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "akorn"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the target's directory (so the rename is atomic on POSIX) and
    is removed if the block raises. The parent directory is created if needed.

    Args:
        path: final destination.
        suffix: suffix of the temporary file (default: the destination's suffix).

    Yields:
        Path of the temporary file to write.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a directory, expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(suffix if suffix is not None else path.suffix) + ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates files readable by the owner only; give results the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def cache_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable parameter mapping (key order does not matter)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a mapping, got {type(params).__name__}")
    try:
        text = json.dumps(params, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:  # pragma: no cover - default=str makes this rare
        raise ValueError(f"params: not JSON-serialisable ({exc})") from exc
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None) -> Path:
    """Write ``arrays`` (name -> numpy array) and JSON ``attrs`` to an HDF5 file, atomically."""
    import h5py

    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError("arrays: expected a non-empty mapping of name -> array")
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as fh:
            for name, value in arrays.items():
                value = np.asarray(value)
                if value.dtype == object:
                    raise TypeError(f"arrays[{name!r}]: object arrays cannot be stored; got dtype=object")
                fh.create_dataset(name, data=value, compression="gzip" if value.size > 4096 else None)
            fh.attrs["akorn_attrs"] = json.dumps(dict(attrs or {}), sort_keys=True, default=str)
    return path


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`write_arrays`; returns ``(arrays, attrs)``.

    Raises:
        ValueError: the file is missing, truncated, or not one of ours.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    try:
        with h5py.File(path, "r") as fh:
            if "akorn_attrs" not in fh.attrs:
                raise ValueError(f"path: {str(path)!r} is an HDF5 file but not an akorn array file")
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
