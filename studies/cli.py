"""The ``akorn`` command: one subcommand per study, plus ``akorn show FILE``.

``akorn <study> [--preset quick|paper] [--<field> value ...] [--out DIR]`` runs a study and
``akorn <task> train|eval ...`` trains or evaluates a task; their options are generated from the
config dataclasses (:mod:`studies.commands`). Subcommands are listed in
:data:`~studies.commands.REGISTRY` (name → the module that describes it, and a one-line help) and
imported only when used, so ``akorn --help`` does not import torch. A target is one of:

- a study's ``config`` module exposing ``STUDY`` (a :class:`~studies.commands.Study`) or ``TASK``
  (a :class:`~studies.commands.Task`): the command is generated;
- a *command* module exposing ``add_arguments(parser)`` and ``main(args) -> int`` (``akorn show``);
- ``"module:function"``: a function ``main(argv: list[str]) -> int`` that parses its own
  arguments (``akorn bench``).

Nothing imports this module: it is the top of the studies package.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from studies.commands import (
    REGISTRY,
    Entry,
    Parser,
    add_study_arguments,
    add_task_arguments,
    config_error,
    config_from_args,
    load,
    run_command,
    run_study,
    run_task,
)

__all__ = ["REGISTRY", "Entry", "build_parser", "config_error", "config_from_args", "main", "run_command"]


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in REGISTRY) + 2
    lines = "\n".join(f"  {name:<{width}}{entry.help}" for name, entry in REGISTRY.items())
    parser = Parser(
        prog="akorn",
        usage="akorn <command> [options]",
        description="Studies of oscillator dynamics on products of spheres (Kuramoto models, AKOrN).",
        epilog=f"commands:\n{lines}\n\nRun 'akorn <command> --help' for a command's options; "
               f"'akorn sync' runs the main study with its quick preset.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(REGISTRY), metavar="<command>", help="one of the commands below")
    return parser


def _description(module: Any, entry: Entry) -> str:
    """The first two paragraphs of the study's package doc: what the command does and its default."""
    package = sys.modules[module.__name__.rpartition(".")[0]] if module.__name__.endswith(".config") else module
    return "\n\n".join((package.__doc__ or entry.help).strip().split("\n\n")[:2])


def build_parser(name: str) -> tuple[argparse.ArgumentParser | None, Any]:
    """The argument parser of subcommand ``name`` and its target (a module, or a ``main(argv)`` function).

    Raises:
        ValueError: ``name`` is not in :data:`REGISTRY`.
    """
    if name not in REGISTRY:
        raise ValueError(f"name: unknown command {name!r}; valid: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    target = load(entry.target)
    if ":" in entry.target:
        return None, target
    parser = Parser(prog=f"akorn {name}", description=_description(target, entry),
                                     epilog=f"Details: python -m pydoc {target.__name__.removesuffix('.config')}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if hasattr(target, "TASK"):
        add_task_arguments(parser, target.TASK)
    elif hasattr(target, "STUDY"):
        add_study_arguments(parser, target.STUDY)
    elif hasattr(target, "add_arguments"):
        target.add_arguments(parser)
    else:
        raise TypeError(f"{entry.target}: expected STUDY, TASK, or add_arguments and main")
    return parser, target


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``akorn`` console script.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 for a usage error, 1 for a failed run (one line on stderr),
        130 when interrupted.
    """
    # Before torch is imported: OpenMP threads that spin-wait make small ops ~100x slower on
    # a shared machine. An explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:  # during start-up (imports, parsing); a running command reports its own
        print(f"\nakorn{' ' + argv[0] if argv and argv[0] in REGISTRY else ''}: interrupted", file=sys.stderr)
        return 130


def _dispatch(argv: list[str]) -> int:
    top = _top_parser()
    if not argv:
        top.print_help()
        return 0
    if argv[0] not in REGISTRY:
        top.parse_args(argv[:1])  # prints help for -h, or a usage error for an unknown command
        return 2
    name, rest = argv[0], argv[1:]
    parser, target = build_parser(name)
    if parser is None:
        return int(target(rest) or 0)
    args = parser.parse_args(rest)
    if hasattr(target, "TASK"):
        return run_task(args)
    if hasattr(target, "STUDY"):
        return run_study(name, target.STUDY, parser, args)
    return int(target.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
