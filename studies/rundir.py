"""Run directories of the trained tasks: the stored config and the rule for resuming.

A run directory holds the study config it was trained with (``config.json``), the trainer's
``checkpoint.pt`` and its history. One rule decides whether a command may continue it: every
config field must match the stored one except the task's *resumable* fields (those that only
decide when training stops or what is monitored); a mismatch is a :class:`~studies.config.ConfigError`
naming the first differing field, so the command line reports it as ``argument --<field>``.

    prepare_run(config, run_dir, resumable=RESUMABLE)    # refuse a changed field, write config.json
    config = read_config(run_dir, TrainSettings)          # what eval rebuilds the model from

Directories written before the config was called ``config.json`` hold ``settings.json``; it is
read when there is no ``config.json`` (and a resumed run writes ``config.json`` beside it).

A command that writes a run directory holds its lock (:func:`claim`, one writer per directory;
see :mod:`studies.files`), builds the directory's path from user input with :func:`run_directory`
(a ``--tag`` cannot leave ``--out``) and, with ``--overwrite``, empties it of the run's files
first (:func:`start_over`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from studies.cache import atomic_path
from studies.config import ConfigError, StudyConfig
from studies.files import child_path, exclusive

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "LEGACY_CONFIG_NAMES", "changed_fields", "check_resumable", "claim",
           "config_path", "is_writer", "prepare_run", "read_config", "run_directory", "start_over", "write_config"]

C = TypeVar("C", bound=StudyConfig)

#: The study config of a run.
CONFIG_NAME = "config.json"
#: Older names of the same file, read when ``config.json`` is absent.
LEGACY_CONFIG_NAMES = ("settings.json",)
#: The trainer's checkpoint (see :mod:`studies.training`).
CHECKPOINT_NAME = "checkpoint.pt"


def config_path(run_dir: str | os.PathLike) -> Path:
    """The config file of ``run_dir``: ``config.json``, else an existing legacy file, else ``config.json``."""
    run_dir = Path(run_dir)
    for name in (CONFIG_NAME, *LEGACY_CONFIG_NAMES):
        if (run_dir / name).is_file():
            return run_dir / name
    return run_dir / CONFIG_NAME


def read_config(run_dir: str | os.PathLike, cls: type[C], *, hint: str = "train it first") -> C:
    """The ``cls`` config stored in ``run_dir``.

    Raises:
        FileNotFoundError: no config file (the run was never started); the message ends with ``hint``.
        ValueError: the file is not a valid ``cls`` config.
    """
    path = config_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"run: {str(run_dir)!r} holds no {CONFIG_NAME}; {hint}")
    try:
        return cls.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"run: {str(path)!r} is not a valid {cls.__name__} file ({exc})") from exc


def write_config(run_dir: str | os.PathLike, config: StudyConfig) -> Path:
    """Write ``config`` as ``run_dir/config.json`` (atomically, indented, sorted keys)."""
    path = Path(run_dir) / CONFIG_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config.to_dict(), sort_keys=True, indent=1) + "\n")
    return path


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], resumable: Iterable[str] = ()) -> list[str]:
    """Sorted names of the fields of ``old`` or ``new`` that differ, except the ``resumable`` ones."""
    keep = frozenset(resumable)
    missing = object()
    return [k for k in sorted(set(old) | set(new))
            if k not in keep and old.get(k, missing) != new.get(k, missing)]


def check_resumable(old: Mapping[str, Any], new: Mapping[str, Any], resumable: Iterable[str], *, where: str,
                    fix: str) -> None:
    """Refuse to continue a run whose stored config ``old`` differs from ``new`` outside ``resumable``.

    Args:
        old, new: the stored and the current config as dicts.
        resumable: fields allowed to change.
        where: the run directory (named in the message).
        fix: what to do instead (``"choose another run directory (--tag NAME)"``).

    Raises:
        ConfigError: naming the first differing field and listing every difference.
    """
    resumable = frozenset(resumable)
    changed = changed_fields(old, new, resumable)
    if changed:
        diffs = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in changed)
        raise ConfigError(changed[0], f"{str(where)!r} holds a run with other settings ({diffs}); only "
                                      f"{', '.join(sorted(resumable))} may change when resuming. {fix}")


def prepare_run(config: StudyConfig, run_dir: str | os.PathLike, *, resumable: Iterable[str], fix: str,
                write: bool = True) -> None:
    """Check ``config`` against a started run in ``run_dir`` and record it there.

    A stored config without a checkpoint (a run that never finished an epoch) is simply
    replaced. ``write=False`` (DDP ranks other than 0) only checks.

    Raises:
        ConfigError: see :func:`check_resumable`.
    """
    run_dir = Path(run_dir)
    stored = config_path(run_dir)
    if stored.is_file() and (run_dir / CHECKPOINT_NAME).is_file():
        old = read_config(run_dir, type(config)).to_dict()
        check_resumable(old, config.to_dict(), resumable, where=str(run_dir), fix=fix)
    if write:
        write_config(run_dir, config)


def run_directory(out: str | os.PathLike, *names: str, option: str = "tag") -> Path:
    """``out/names[0]/...``; a name from user input that would leave ``out`` is refused.

    Raises:
        ConfigError: naming ``option`` (the command line reports it as ``argument --<option>``).
    """
    try:
        return child_path(out, *names, option=option)
    except (TypeError, ValueError) as exc:
        raise ConfigError(option, str(exc).removeprefix(f"{option}: ")) from None


def is_writer() -> bool:
    """Whether this process writes run directories: a plain process, or rank 0 of a ``torchrun``
    launch (read from ``RANK``, so it holds before the process group exists)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


@contextlib.contextmanager
def claim(run_dir: str | os.PathLike, *, writer: bool = True) -> Iterator[Path]:
    """Hold the write lock of ``run_dir`` for the block (only when ``writer``: under DDP the
    processes other than rank 0 write nothing and take no lock).

    Raises:
        LockedError: another process is writing the run directory (the message names it).
    """
    run_dir = Path(run_dir)
    if not writer:
        yield run_dir
        return
    with exclusive(run_dir, hint="wait for it to finish, or choose another run directory (--tag / --out)"):
        yield run_dir


def start_over(run_dir: str | os.PathLike, extra: Iterable[str] = ()) -> list[Path]:
    """Delete a run's config, checkpoint and the ``extra`` files in ``run_dir`` (``--overwrite``).

    Call it while holding :func:`claim`. Other files in the directory are left alone.

    Returns:
        The deleted paths.
    """
    run_dir = Path(run_dir)
    removed = []
    for name in (CONFIG_NAME, *LEGACY_CONFIG_NAMES, CHECKPOINT_NAME, *extra):
        path = child_path(run_dir, name, option="extra")
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
