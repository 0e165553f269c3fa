"""The ``akorn`` commands generated from the studies' descriptions: options, runs and reports.

Two shapes of study, each described by a torch-free value of :mod:`studies.protocol` in the
study's ``config`` module, so that ``akorn <name> --help`` never imports torch:

- a *plain study* (``sync``, ``landscape``, ``integrators``) exposes ``STUDY = Study(...)``: its
  config class, result file name and the modules with ``run(config, *, path, ...)``, ``plot`` and
  ``summarize``. The command is ``akorn <name> [--preset P] [--<field> V ...] [--out DIR]``.
- a *task* (``sudoku``, ``objects``, ``robustness``) exposes ``TASK = Task(...)`` with a ``train``
  and an ``eval`` action. The commands are ``akorn <name> train|eval``; both take their options
  from the action's config class; ``train`` runs inside the DDP set-up and tear-down (so it runs
  unchanged under ``torchrun``) and reports on rank 0 only; ``eval`` writes its result, plots it
  and prints its summary. Both end with the time taken.

Entry points are ``"module:function"`` strings, imported once the arguments are parsed
(:func:`studies.registry.load`). Only :mod:`studies.cli` and the tasks' ``__main__`` modules
import this module; the studies import :mod:`studies.protocol` and :mod:`studies.registry`.
"""

from __future__ import annotations

import argparse
import dataclasses
import decimal
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from studies.config import ConfigError, field_options
from studies.files import check_output_dir, discard_stdout, exclusive
from studies.protocol import Action, CommandError, Outcome, Study, Task, non_negative_int, scheduler_address
from studies.registry import REGISTRY, Entry, load

__all__ = ["REGISTRY", "Entry", "Parser", "add_config_arguments", "add_study_arguments", "add_task_arguments", "check_out",
           "config_error", "config_from_args", "load", "one_line", "run_command", "run_study", "run_task",
           "show_progress", "standalone"]

DEFAULT_OUT = "results"


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2) pointing to ``--help``,
    instead of the usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# -- options from a config dataclass -----------------------------------------------------------

def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _format_default(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


def _integer(text: str) -> int:
    """An integer written as digits or in exact scientific notation (``1e6``, ``2.5e3``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        raise ValueError(text) from None
    if not value.is_finite() or value != value.to_integral_value() or abs(value.adjusted()) > 30:
        raise ValueError(text)
    return int(value)


def _scalar_parser(tp: type, optional: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return None
        try:
            return _integer(text) if tp is int else tp(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(tp, tp.__name__)
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    parse.__name__ = tp.__name__  # argparse names the type in its messages
    return parse


def _field_help(spec: dict[str, Any], values: dict[str, Any]) -> str:
    help_text = spec["help"].rstrip(".")
    if spec["units"]:
        help_text += f" [{spec['units']}]"
    if len({repr(v) for v in values.values()}) == 1:
        shown = f"default: {_format_default(values['quick'])}"
    else:
        shown = "; ".join(f"{p}: {_format_default(v)}" for p, v in values.items())
    return help_text + f" ({shown})".replace("%", "%%")


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type, preset_help: str | None = None) -> None:
    """Add ``--preset`` and one option per field of ``config_cls`` (defaults suppressed:
    only options given on the command line override the preset)."""
    presets = config_cls.PRESETS
    parser.add_argument("--preset", choices=list(presets), default="quick",
                        help=preset_help or "parameter preset: 'quick' runs on a 2-core laptop in under 2 minutes, "
                                            "'paper' is the full study for a workstation (default: quick)")
    group = parser.add_argument_group("study parameters (default: the quick preset's value)")
    defaults = {name: config_cls.preset_fields(name) for name in presets}
    for f, spec in field_options(config_cls):
        names = [_option(f.name)] + ([f"--{f.name}"] if "_" in f.name else [])
        values = {p: c[f.name] for p, c in defaults.items()}
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _field_help(spec, values)}
        if spec["kind"] == "bool":
            group.add_argument(*names, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        kwargs["type"] = _scalar_parser(spec["type"], spec["optional"])
        if spec["choices"] is not None:
            kwargs["choices"] = list(spec["choices"])
        if spec["kind"] == "tuple":
            kwargs["nargs"] = "+"
        if spec["metavar"]:
            kwargs["metavar"] = spec["metavar"]
        elif spec["choices"] is None:
            kwargs["metavar"] = {int: "INT", float: "FLOAT", str: "STR"}[spec["type"]]
        group.add_argument(*names, **kwargs)


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
    names = {f.name for f in dataclasses.fields(config_cls)}
    try:
        return config_cls.preset(args.preset, **{k: v for k, v in vars(args).items() if k in names})
    except ConfigError as exc:
        config_error(parser, exc)


# torch's allocators report exhaustion as RuntimeErrors (CPU: "can't allocate memory"; CUDA: OutOfMemoryError).
_OUT_OF_MEMORY = re.compile(r"can't allocate memory|out of memory", re.IGNORECASE)
_BYTES = re.compile(r"allocate (\d+) bytes")


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (an OSError as "reason: 'file'", without "[Errno N]")."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename!r}" if exc.filename and str(exc.filename) not in exc.strerror else "")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def run_command(command: str, parser: argparse.ArgumentParser, action: Callable[[], int], *,
                errors: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError),
                resume: str = "rerun the same command to resume") -> int:
    """Run ``action()`` and turn the failures a user can act on into an exit status.

    A :class:`~studies.config.ConfigError` is a usage error naming its option (exit 2); one of
    ``errors`` (missing or unusable data, runs or files: the message says which), a
    :class:`~studies.protocol.CommandError` (a failed sweep task, a locked output, ...) or an
    ``OSError`` (a full disk, a permission) prints ``"<command>: error: ..."`` on one line and
    returns 1, as does running out of memory; Ctrl-C prints ``"<command>: interrupted; <resume>"`` and returns 130. Anything else
    is a bug and propagates with its traceback.
    """
    try:
        return action()
    except ConfigError as exc:
        config_error(parser, exc)
    except BrokenPipeError:  # the reader of stdout has gone (``akorn sync | head``); the results are written
        discard_stdout()
        return 0
    except (*errors, CommandError, OSError) as exc:
        print(f"{command}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and not _OUT_OF_MEMORY.search(str(exc)):
            raise
        found = _BYTES.search(str(exc))
        what = f" ({int(found[1]) / 1e9:.3g} GB requested)" if found else ""
        print(f"{command}: error: out of memory{what}; use smaller sizes", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{command}: interrupted; {resume}", file=sys.stderr)
        return 130


def check_out(parser: argparse.ArgumentParser, out: str, option: str = "--out") -> Path:
    """``out`` as a Path, or a usage error (exit 2) saying why it cannot hold results."""
    problem = check_output_dir(out)
    if problem is not None:
        parser.error(f"argument {option}: {problem}")
    return Path(out)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only when asked for and stderr is a terminal (a log gets no bar frames)."""
    stream = sys.stderr
    return bool(getattr(args, "progress", True)) and hasattr(stream, "isatty") and stream.isatty()


def _time_line(wall: float, cpu: float) -> str:
    return f"time: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU (this process)"


# -- plain studies ------------------------------------------------------------------------------

def add_study_arguments(parser: argparse.ArgumentParser, study: Study) -> None:
    """The options of a plain study: its config fields, then ``--out`` and the running options."""
    add_config_arguments(parser, study.config)
    group = parser.add_argument_group("running")
    group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                       help=f"directory for {study.filename} and its plot (default: {DEFAULT_OUT}/)")
    if "scheduler" in study.run_options:
        group.add_argument("--scheduler", type=scheduler_address, default=None, metavar="ADDRESS",
                           help="address of an existing Dask scheduler to run the sweep on (default: a local cluster)")
    if "workers" in study.run_options:
        group.add_argument("--workers", type=non_negative_int, default=None, metavar="INT",
                           help="local Dask worker processes (default: one per core; 0 runs in this process)")
    if "overwrite" in study.run_options:
        group.add_argument("--overwrite", action="store_true",
                           help="start over, replacing whatever result file is there (by default a run resumes "
                                "a matching file and refuses a different, damaged or tampered one)")
    group.add_argument("--no-progress", dest="progress", action="store_false",
                       help="hide the progress bars (shown only on a terminal anyway)")
    group.add_argument("--no-plot", dest="plot", action="store_false", help="do not write the PNG plot")


def run_study(name: str, study: Study, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Build the config from ``args``, run the study into ``<out>/<filename>``, plot, summarise."""
    config = config_from_args(parser, study.config, args)
    if study.cost:
        try:
            load(study.cost)(config)
        except ConfigError as exc:
            config_error(parser, exc)
    path = check_out(parser, args.out) / study.filename
    kwargs: dict[str, Any] = {"path": path, "progress": show_progress(args)}
    kwargs.update({opt: getattr(args, opt) for opt in study.run_options})

    def action() -> int:
        wall, cpu = time.perf_counter(), time.process_time()
        run, plots = load(study.runner).run, load(study.plots)
        with exclusive(path):  # one writer per result file (the study may take it again)
            ds = run(config, **kwargs)
        print(f"wrote {path}")
        try:
            if args.plot:
                png = path.with_suffix(".png")
                plots.plot(ds, png)
                print(f"wrote {png}")
            print(plots.summarize(ds))
        except KeyError as exc:  # a file from another version (checked files never get here damaged)
            found = re.search(r"No variable named '([^']+)'", str(exc))
            what = f"the variable {found[1]!r}" if found else repr(exc.args[0] if exc.args else exc)
            raise ValueError(f"{str(path)!r} lacks {what}; it is damaged or from another version (rerun with "
                             f"--overwrite to replace it)") from exc
        print(_time_line(wall, cpu))
        return 0

    return run_command(f"akorn {name}", parser, action, errors=(ValueError,),
                       resume="rerun the same command to resume from the last complete chunk")


# -- tasks: train | eval -----------------------------------------------------------------------

def add_task_arguments(parser: argparse.ArgumentParser, task: Task) -> None:
    """Sub-commands ``train`` and ``eval`` of a task with their options."""
    sub = parser.add_subparsers(dest="action", metavar="{train,eval}", required=task.action_required)
    for name in ("train", "eval"):
        action: Action = getattr(task, name)
        p = sub.add_parser(name, help=action.help, description=action.description, epilog=action.epilog or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_config_arguments(p, action.config, action.preset_help)
        group = p.add_argument_group("running")
        action.options(p, group)
        group.add_argument("--no-progress", dest="progress", action="store_false",
                           help="hide the progress bars (shown only on a terminal anyway)")
        if name == "train":
            group.add_argument("--overwrite", action="store_true",
                               help="start the run over: replace the run directory's checkpoint, config and history "
                                    "(by default a run resumes and refuses other settings or a damaged checkpoint)")
        if name == "eval":
            group.add_argument("--no-plot", dest="plot", action="store_false", help="do not write the PNG figures")
        p.set_defaults(_parser=p, _task=task)
    parser.set_defaults(_parser=parser, _task=task)


def _train(task: Task, config: Any, args: argparse.Namespace) -> Outcome:
    from studies.training.distributed import cleanup_distributed, is_main_process  # torch-free --help: torch loads here

    try:
        outcome = load(task.train.entry)(config, args)
        main_process = is_main_process()  # asked before the process group is destroyed
    finally:
        cleanup_distributed()
    return outcome._replace(report=main_process and outcome.report)


def _eval(task: Task, config: Any, args: argparse.Namespace) -> Outcome:
    outcome = load(task.eval.entry)(config, args)
    lines = [*outcome.lines, f"wrote {outcome.path}"]
    plots = load(task.plots)
    if args.plot:
        written = plots.plot(outcome.dataset, Path(outcome.path).with_suffix(".png"))
        lines += [f"wrote {p}" for p in (written if isinstance(written, (list, tuple)) else [written])]
    lines.append(plots.summarize(outcome.dataset))
    return outcome._replace(lines=lines)


def run_task(args: argparse.Namespace) -> int:
    """Run ``akorn <task> train|eval`` with arguments parsed by :func:`add_task_arguments`; the exit status."""
    task: Task = args._task
    parser = args._parser
    if getattr(args, "action", None) is None:
        parser.print_help()
        return 2
    action: Action = getattr(task, args.action)
    config = config_from_args(parser, action.config, args)
    if getattr(args, "out", None) is not None:
        check_out(parser, args.out)
    args.progress = show_progress(args)

    def run() -> int:
        wall, cpu = time.perf_counter(), time.process_time()
        outcome = (_train if args.action == "train" else _eval)(task, config, args)
        if outcome.report:
            for line in outcome.lines:
                print(line)
            print(_time_line(wall, cpu))
        return 0

    return run_command(f"akorn {task.name} {args.action}", parser, run, resume=action.resume)


def standalone(task: Task, argv: list[str] | None = None) -> int:
    """``python -m studies.<task> train|eval ...``: the task's command without the ``akorn`` entry point."""
    parser = Parser(prog=f"akorn {task.name}", description=task.description)
    add_task_arguments(parser, task)
    return run_task(parser.parse_args(argv))
