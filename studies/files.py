"""Files a run writes, made safe against other runs, kills and full disks.

Three rules, used by every writer of :mod:`studies` (result files, run directories, caches):

- **One writer per target.** :func:`exclusive` takes an exclusive ``flock`` on a lock file beside
  the target (``.<name>.lock``) for as long as a run writes it. A second writer fails at once
  with :class:`LockedError`, whose one-line message names the target and the holder (pid, host,
  command, start time, which the holder writes into the lock file). The kernel drops the lock
  when its process dies, however it dies, so a lock is never stale: the lock file left behind is
  empty of meaning until someone locks it again (it is never deleted, since deleting a lock file
  another process has open would let two writers hold "the" lock). Locks are re-entrant within a
  process, so a command and the study it runs may both take the lock of the same file.
- **Writes are atomic and owned.** :func:`atomic_path` writes to a temporary beside the target
  named after its writer (``.<name>.<host>-<pid>.<random><suffix>.tmp``) and renames it over the
  target once complete, so a kill leaves the previous file or the new one. A run removes only
  temporaries of writers that are dead (:func:`remove_stale_temporaries`), never another live
  run's.
- **A full disk is one line.** A write that fails for lack of space raises
  :class:`DiskFullError` naming the target; the previous file is untouched.

:func:`child_path` keeps paths built from user input (``--tag``) inside the output directory, and
:func:`check_output_dir` says in one line why a directory cannot take results. This module is
torch-free (the command line imports it before torch).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from studies.protocol import CommandError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; locking is then skipped
    fcntl = None  # type: ignore[assignment]

__all__ = ["DiskFullError", "LockedError", "atomic_path", "check_output_dir", "child_path", "discard_stdout",
           "exclusive", "lock_path", "remove_stale_temporaries", "write_bytes"]

_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# HDF5 reports a failed write inside its own message ("errno = 28, error message = ...").
_SPACE_TEXT = re.compile(r"errno = (28|27|122)\b|No space left on device|Disk quota exceeded|File too large")
_TMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<host>[^.]*)-(?P<pid>\d+)\.[0-9a-f]{8}(?:\..*)?\.tmp$")


class LockedError(CommandError):
    """Another process is writing the target; the message names the target and the holder."""


class DiskFullError(OSError):
    """A write failed for lack of space (or a file-size limit); the previous file is intact."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def _is_space_error(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS:
            return True
        if _SPACE_TEXT.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# -- atomic, writer-owned temporaries ------------------------------------------------------------

def _temporary(path: Path, suffix: str) -> Path:
    return path.parent / f".{path.name}.{_host()}-{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}.tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary lives in the target's directory (so the rename is atomic on POSIX), carries
    its writer's host and pid in its name, and is removed if the block raises. The parent
    directory is created if needed.

    Args:
        path: final destination.
        suffix: suffix of the temporary file (default: the destination's suffix).

    Yields:
        Path of the temporary file to write.

    Raises:
        ValueError: ``path`` is a directory.
        DiskFullError: the device is full (or a file-size limit was hit); ``path`` is unchanged.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a directory, expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temporary(path, suffix if suffix is not None else path.suffix)
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)  # the temporary is private while written; results get the usual permissions
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except Exception as exc:
        if _is_space_error(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(errno.ENOSPC, f"no space left to write {str(path)!r} (the previous file, if any, "
                                              f"is intact); free some space and rerun", str(path)) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` left by writers that are dead (killed mid-write).

    Only temporaries named by :func:`atomic_path` on this host whose process no longer exists
    are removed; a live writer's (this one's included) and other hosts' are left alone.

    Returns:
        The removed paths.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    host = _host()
    for p in path.parent.glob(f".{path.name}.*.tmp"):
        m = _TMP_NAME.match(p.name)
        if m is None or m["target"] != path.name or m["host"] != host or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


# -- exclusive locks -----------------------------------------------------------------------------

_held: dict[str, tuple[int, int]] = {}  # resolved lock path -> (fd, depth), this process's locks
_held_lock = threading.Lock()


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target`` (a file or a directory): ``.<name>.lock`` beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        info = json.loads(text)
        return (f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not recorded itself yet)"


def _describe_self() -> bytes:
    command = " ".join([Path(sys.argv[0]).name or "python", *sys.argv[1:]])[:160] if sys.argv else "python"
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    return json.dumps(info).encode()


@contextlib.contextmanager
def exclusive(target: str | os.PathLike, *, hint: str = "wait for it to finish, or choose another --out") \
        -> Iterator[Path]:
    """Hold the exclusive write lock of ``target`` for the duration of the block.

    Args:
        target: the file or run directory about to be written (it need not exist yet; its
            parent directory is created).
        hint: what the message of a refused writer suggests.

    Yields:
        ``target`` as a Path.

    Raises:
        LockedError: another process holds the lock (one line naming ``target`` and the holder).
    """
    target = Path(target)
    lock = lock_path(target)
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = str(lock.resolve())
    with _held_lock:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield target
        finally:
            with _held_lock:
                fd, depth = _held[key]
                _held[key] = (fd, depth - 1)
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockedError(f"{str(target)!r} is being written by {_holder(fd)}; {hint}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, _describe_self(), 0)
        with _held_lock:
            _held[key] = (fd, 1)
        try:
            yield target
        finally:
            with _held_lock:
                del _held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


# -- paths from user input -----------------------------------------------------------------------

def child_path(root: str | os.PathLike, *names: str, option: str = "--tag") -> Path:
    """``root / names[0] / names[1] / ...``, refusing any name that would leave ``root``.

    Each name must be one plain path component: not empty, not ``.`` or ``..``, without a path
    separator or a NUL byte.

    Raises:
        ValueError: naming ``option`` and the bad value.
    """
    path = Path(root)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{option}: expected a name, got {type(name).__name__}")
        if name in ("", ".", "..") or "/" in name or "\0" in name or (os.sep != "/" and os.sep in name) \
                or (os.altsep is not None and os.altsep in name):
            raise ValueError(f"{option}: {name!r} is not a plain name (no '/', '.' or '..'); the run must stay "
                             f"inside {str(root)!r}")
        path = path / name
    return path


def check_output_dir(out: str | os.PathLike) -> str | None:
    """Why ``out`` cannot hold results, in a few words, or ``None`` if it can.

    ``out`` may not exist yet (it is created); an existing one must be a directory in which a
    file can be created. The check creates and removes a probe file (``os.access`` is not enough:
    it says yes to root on a read-only file system).
    """
    out = Path(out)
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{str(existing)!r} is not a directory" + ("" if existing == out else f" (in {str(out)!r})")
    probe = existing / f".akorn-probe.{_host()}-{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        return f"cannot write in {str(existing)!r} ({exc.strerror or exc})"
    with contextlib.suppress(OSError):
        probe.unlink()
    return None


def discard_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (``akorn ... | head``): what is still
    buffered, and any later print, then goes nowhere instead of raising ``BrokenPipeError`` again
    when the interpreter flushes stdout on exit. Unix tools end quietly there; so do ours."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
