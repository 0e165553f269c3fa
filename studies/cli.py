"""The ``akorn`` command: one subcommand per study, plus ``akorn show FILE``.

``akorn <study> [--preset quick|paper] [--<field> value ...] [--out DIR]`` runs a study. Its
options are generated from the study's config dataclass (:mod:`studies.config`): one option
per field, with the field's help text, type, units and the quick/paper preset values.

Subcommands are listed in :data:`REGISTRY` (name → import target and a one-line help) and
imported only when used, so ``akorn --help`` does not import torch. A target is one of:

- a *study* module exposing ``Config`` (a :class:`~studies.config.StudyConfig`),
  ``FILENAME``, ``run(config, *, path=..., ...) -> xarray.Dataset`` and ``plot(ds, path)``
  (optionally ``summarize(ds) -> str``): the CLI is generated;
- a *command* module exposing ``add_arguments(parser)`` and ``main(args) -> int``: for
  commands with their own options or sub-subcommands (``akorn show``; later
  ``akorn sudoku train|eval`` adds sub-parsers in its ``add_arguments``);
- ``"module:function"``: a function ``main(argv: list[str]) -> int`` that parses its own
  arguments (``akorn bench``).

Adding a study is one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

__all__ = ["REGISTRY", "Entry", "build_parser", "config_error", "config_from_args", "main", "run_command"]


class Entry(NamedTuple):
    """A subcommand: what to import (``"pkg.module"`` or ``"pkg.module:function"``) and its one-line help."""

    target: str
    help: str


REGISTRY: dict[str, Entry] = {
    "sync": Entry("studies.sync", "synchronisation transition r(K) against mean-field theory (the main job)"),
    "landscape": Entry("studies.landscape", "energy landscapes: fixed points, their energies and basins"),
    "integrators": Entry("studies.methods", "integrator comparison: order, work-precision, sphere drift"),
    "sudoku": Entry("studies.sudoku.study", "Sudoku reasoning: train, then evaluate more steps and energy-based selection"),
    "objects": Entry("studies.objects.study", "unsupervised object discovery: SimCLR training, clustering, FG-ARI and MBO"),
    "robustness": Entry("studies.robustness.study",
                        "image classification: adversarial robustness, corruptions and calibration, AKOrN vs a ConvNet"),
    "bench": Entry("studies.bench:main", "performance benchmarks (results in a file)"),
    "show": Entry("studies.show", "print what a result file holds and write its plot"),
}

DEFAULT_OUT = "results"


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in REGISTRY) + 2
    lines = "\n".join(f"  {name:<{width}}{entry.help}" for name, entry in REGISTRY.items())
    parser = argparse.ArgumentParser(
        prog="akorn",
        usage="akorn <command> [options]",
        description="Studies of oscillator dynamics on products of spheres (Kuramoto models, AKOrN).",
        epilog=f"commands:\n{lines}\n\nRun 'akorn <command> --help' for a command's options; "
               f"'akorn sync' runs the main study with its quick preset.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(REGISTRY), metavar="<command>", help="one of the commands below")
    return parser


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _format_default(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


def _scalar_parser(tp: type, optional: bool, name: str):
    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return None
        try:
            return tp(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(tp, tp.__name__)
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    parse.__name__ = tp.__name__  # argparse names the type in its messages
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """Add ``--preset`` and one option per field of ``config_cls`` (defaults suppressed:
    only options given on the command line override the preset)."""
    from studies.config import field_options

    presets = config_cls.PRESETS
    parser.add_argument("--preset", choices=list(presets), default="quick",
                        help="parameter preset: 'quick' runs on a 2-core laptop in under 2 minutes, "
                             "'paper' is the full study for a workstation (default: quick)")
    group = parser.add_argument_group("study parameters (default: the quick preset's value)")
    defaults = {name: config_cls.preset(name) for name in presets}
    for f, spec in field_options(config_cls):
        names = [_option(f.name)] + ([f"--{f.name}"] if "_" in f.name else [])
        help_text = spec["help"].rstrip(".")
        if spec["units"]:
            help_text += f" [{spec['units']}]"
        values = {p: getattr(c, f.name) for p, c in defaults.items()}
        if len({repr(v) for v in values.values()}) == 1:
            shown = f"default: {_format_default(values['quick'])}"
        else:
            shown = "; ".join(f"{p}: {_format_default(v)}" for p, v in values.items())
        help_text += f" ({shown})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if spec["kind"] == "bool":
            group.add_argument(*names, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        kwargs["type"] = _scalar_parser(spec["type"], spec["optional"], f.name)
        if spec["choices"] is not None:
            kwargs["choices"] = list(spec["choices"])
        if spec["kind"] == "tuple":
            kwargs["nargs"] = "+"
        if spec["metavar"]:
            kwargs["metavar"] = spec["metavar"]
        elif spec["choices"] is None:
            kwargs["metavar"] = {int: "INT", float: "FLOAT", str: "STR"}[spec["type"]]
        group.add_argument(*names, **kwargs)


def _add_run_arguments(parser: argparse.ArgumentParser, run_fn: Any, filename: str) -> None:
    params = inspect.signature(run_fn).parameters
    group = parser.add_argument_group("running")
    group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                       help=f"directory for {filename} and its plot (default: {DEFAULT_OUT}/)")
    if "scheduler" in params:
        group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                           help="address of an existing Dask scheduler to run the sweep on (default: a local cluster)")
    if "workers" in params:
        group.add_argument("--workers", type=int, default=None, metavar="INT",
                           help="local Dask worker processes (default: one per core; 0 runs in this process)")
    if "overwrite" in params:
        group.add_argument("--overwrite", action="store_true",
                           help="replace an existing result file made with a different config "
                                "(by default a run resumes a matching file and refuses a different one)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    group.add_argument("--no-plot", dest="plot", action="store_false", help="do not write the PNG plot")


def build_parser(name: str) -> tuple[argparse.ArgumentParser, Any]:
    """The argument parser of subcommand ``name`` and its imported target (module or function).

    Raises:
        ValueError: ``name`` is not in :data:`REGISTRY`.
    """
    if name not in REGISTRY:
        raise ValueError(f"name: unknown command {name!r}; valid: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    module_name, _, attr = entry.target.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        return None, getattr(module, attr)  # type: ignore[return-value]
    # The first two paragraphs of the module doc: what the command does and its default.
    doc = "\n\n".join((module.__doc__ or entry.help).strip().split("\n\n")[:2])
    parser = argparse.ArgumentParser(prog=f"akorn {name}", description=doc,
                                     epilog=f"Details: python -m pydoc {module_name}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
        return parser, module
    for required in ("Config", "run", "plot", "FILENAME"):
        if not hasattr(module, required):
            raise TypeError(f"{module_name}: a study module must define {required} (or add_arguments and main)")
    add_config_arguments(parser, module.Config)
    _add_run_arguments(parser, module.run, module.FILENAME)
    return parser, module


def config_error(parser: argparse.ArgumentParser, exc: Exception) -> NoReturn:
    """Exit with argparse's usage error for a bad config value, naming its option (``--k-max``)."""
    field = getattr(exc, "field", None)
    reason = getattr(exc, "reason", str(exc))
    if field:
        parser.error(f"argument {_option(field)}: {reason}")
    parser.error(str(exc))


def config_from_args(parser: argparse.ArgumentParser, config_cls: type, args: argparse.Namespace) -> Any:
    """``config_cls.preset(args.preset, **fields)`` from the parsed options of its fields.

    A bad value exits with the usage error of :func:`config_error` (status 2).
    """
    from studies.config import ConfigError

    names = {f.name for f in dataclasses.fields(config_cls)}
    try:
        return config_cls.preset(args.preset, **{k: v for k, v in vars(args).items() if k in names})
    except ConfigError as exc:
        config_error(parser, exc)


def run_command(command: str, parser: argparse.ArgumentParser, action: Callable[[], int], *,
                errors: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError),
                resume: str = "rerun the same command to resume") -> int:
    """Run ``action()`` and turn the failures a user can act on into an exit status.

    A :class:`~studies.config.ConfigError` is a usage error naming its option (exit 2); one of
    ``errors`` (missing or unusable data, runs or files: the message says which) prints
    ``"<command>: error: ..."`` and returns 1; Ctrl-C prints ``"<command>: interrupted; <resume>"``
    and returns 130. Anything else is a bug and propagates with its traceback.
    """
    from studies.config import ConfigError

    try:
        return action()
    except ConfigError as exc:
        config_error(parser, exc)
    except errors as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{command}: interrupted; {resume}", file=sys.stderr)
        return 130


def run_study(name: str, module: Any, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Build the config from ``args``, run the study into ``<out>/<FILENAME>``, plot, summarise."""
    from studies.storage import StorageError

    config = config_from_args(parser, module.Config, args)
    path = Path(args.out) / module.FILENAME
    params = inspect.signature(module.run).parameters
    kwargs: dict[str, Any] = {"path": path, "progress": args.progress}
    for opt in ("scheduler", "workers", "overwrite"):
        if opt in params:
            kwargs[opt] = getattr(args, opt)

    def action() -> int:
        wall, cpu = time.perf_counter(), time.process_time()
        ds = module.run(config, **kwargs)
        print(f"wrote {path}")
        if args.plot:
            png = path.with_suffix(".png")
            module.plot(ds, png)
            print(f"wrote {png}")
        if hasattr(module, "summarize"):
            print(module.summarize(ds))
        print(f"time: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU (this process)")
        return 0

    return run_command(f"akorn {name}", parser, action, errors=(StorageError,),
                       resume="rerun the same command to resume from the last complete chunk")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``akorn`` console script.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0 on success; argparse exits with 2 on a usage error).
    """
    # Before torch is imported: OpenMP threads that spin-wait make small ops ~100x slower on
    # a shared machine. An explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
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
    if hasattr(target, "add_arguments"):
        return int(target.main(args) or 0)
    return run_study(name, target, parser, args)


if __name__ == "__main__":
    sys.exit(main())
