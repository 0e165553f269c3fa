"""The shapes of a study, as values the ``akorn`` command is generated from (see :mod:`studies.commands`).

A *plain study* is described by a :class:`Study` in its torch-free ``config`` module, a trained
*task* by a :class:`Task` of two :class:`Action` values (``train``, ``eval``). Entry points are
``"module:function"`` strings, so a study's ``config`` imports nothing heavy and nothing of the
command line; an action returns an :class:`Outcome` for the report. This module imports no study.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Action", "CommandError", "Outcome", "Study", "Task", "check_scheduler_address", "non_negative_int",
           "positive_float", "positive_int", "scheduler_address"]


class CommandError(RuntimeError):
    """A run failed for a reason its message states in one line (the command prints it, exit 1):
    a sweep task failed, another process holds the output, ..."""


def _typed(kind: str, convert: Callable[[str], Any], ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text}")
        return value
    parse.__name__ = kind
    return parse


#: argparse types that reject a bad value as a usage error naming the option.
positive_int = _typed("a positive integer", int, lambda v: v >= 1)
non_negative_int = _typed("a non-negative integer", int, lambda v: v >= 0)
positive_float = _typed("a positive number", float, lambda v: v > 0 and v != float("inf"))

_ADDRESS = re.compile(r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?$")
_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


def check_scheduler_address(address: str) -> str:
    """``address`` if it is a Dask scheduler address (``[scheme://]host[:port]``, IPv6 in brackets).

    Raises:
        ValueError: naming ``scheduler`` and what is wrong.
    """
    if not isinstance(address, str):
        raise TypeError(f"scheduler: expected an address string, got {type(address).__name__}")
    m = _ADDRESS.match(address)
    if m is None:
        raise ValueError(f"scheduler: {address!r} is not a scheduler address; expected host:port or "
                         f"tcp://host:port (IPv6 in brackets, [::1]:8786)")
    if m["scheme"] is not None and m["scheme"] not in _SCHEMES:
        raise ValueError(f"scheduler: unknown protocol {m['scheme']!r} in {address!r}; expected one of "
                         f"{', '.join(_SCHEMES)}")
    if m["port"] is not None and not 1 <= int(m["port"]) <= 65535:
        raise ValueError(f"scheduler: port {m['port']} of {address!r} is not in 1..65535")
    return address


def scheduler_address(text: str) -> str:
    """argparse type of ``--scheduler`` (see :func:`check_scheduler_address`)."""
    try:
        return check_scheduler_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("scheduler: ")) from None


@dataclasses.dataclass(frozen=True)
class Study:
    """A plain study: ``run(config, *, path, progress, [scheduler, workers, overwrite]) -> Dataset``.

    Attributes:
        config: the :class:`~studies.config.StudyConfig` subclass (one option per field).
        filename: the result file inside ``--out``.
        runner: the module holding ``run``.
        plots: the module holding ``plot(ds, path)`` and ``summarize(ds)`` (also used by ``akorn show``).
        run_options: which of ``scheduler``, ``workers``, ``overwrite`` ``run`` accepts.
        cost: ``"module:function"``; ``function(config)`` raises a
            :class:`~studies.config.ConfigError` naming the option when the run cannot finish or
            fit (see :mod:`studies.cost`), before anything is built. Torch-free.
    """

    config: type
    filename: str
    runner: str
    plots: str
    run_options: tuple[str, ...] = ()
    cost: str = ""


class Outcome(NamedTuple):
    """What a task action did, for the report: lines to print, and for ``eval`` the result to plot.

    Attributes:
        lines: printed as they are (``train``: the run's summary).
        dataset: the evaluation Dataset (``eval``), plotted and summarised by the task's ``plots``.
        path: where ``dataset`` was written; plots go beside it.
        report: False on DDP ranks other than 0 (they print nothing).
    """

    lines: Sequence[str] = ()
    dataset: Any = None
    path: Path | None = None
    report: bool = True


@dataclasses.dataclass(frozen=True)
class Action:
    """``train`` or ``eval`` of a task.

    Attributes:
        config: its config class (one option per field).
        entry: ``"module:function"``; ``function(config, args) -> Outcome``.
        help: one line for ``akorn <task> --help``.
        description: the sub-command's description.
        preset_help: help of its ``--preset``.
        options: ``options(parser, group)`` adds the running options (``--out`` first).
        epilog: examples shown after the options.
        resume: what to tell a user who pressed Ctrl-C.
    """

    config: type
    entry: str
    help: str
    description: str
    preset_help: str
    options: Callable[[argparse.ArgumentParser, Any], None]
    epilog: str = ""
    resume: str = "rerun the same command to resume"


@dataclasses.dataclass(frozen=True)
class Task:
    """A trained task: ``akorn <name> train|eval``.

    Attributes:
        name: the subcommand (``"sudoku"``).
        description: first paragraph of ``akorn <name> --help``.
        train, eval: the two actions.
        plots: module with ``plot(ds, path) -> Path | list[Path]`` and ``summarize(ds) -> str`` for
            evaluation results (also used by ``akorn show``).
        action_required: ``akorn <name>`` without ``train``/``eval`` is a usage error; ``False``
            prints the help and returns 2 instead.
    """

    name: str
    description: str
    train: Action
    eval: Action
    plots: str
    action_required: bool = True
