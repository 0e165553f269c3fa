"""``akorn show FILE``: what a result file holds, and its plot.

Prints the dimensions, coordinates and variables (with units and long names), the config the
run was made with, its provenance (package versions, git commit, creation time) and whether
it is complete; then writes the study's plot next to the file (``FILE`` with suffix ``.png``)
unless an up-to-date one exists, and opens it with ``--open``. A file that is not an akorn
result, or is truncated or corrupt, gets a clear error and is never modified. A file of an
earlier layout is read in the current one (its study's ``upgrade``, e.g. the integrators
comparison's ``method`` dimension as ``solver``) and says so. Piped into a reader that stops
early (``akorn show FILE | head``), it stops printing quietly and still writes the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from studies.files import discard_stdout
from studies.registry import REGISTRY, load
from studies.storage import StorageError, open_dataset

__all__ = ["add_arguments", "describe", "main"]

_PROVENANCE_KEYS = ("akorn_version", "git_commit", "torch_version", "numpy_version", "xarray_version",
                    "h5netcdf_version", "python_version", "created", "executor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``akorn show``."""
    parser.add_argument("file", metavar="FILE", help="a result file written by an akorn study (.h5)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="where to write the plot (default: FILE with suffix .png)")
    parser.add_argument("--no-plot", dest="make_plot", action="store_false", help="only print, write no plot")
    parser.add_argument("--replot", action="store_true", help="rewrite the plot even if an up-to-date one exists")
    parser.add_argument("--open", action="store_true", help="open the plot with the desktop's image viewer")


def _fmt_values(var: xr.DataArray) -> str:
    values = var.values
    if values.size == 0:
        return "(empty)"
    if values.dtype.kind in "OSU":
        uniq = list(dict.fromkeys(str(v) for v in values.ravel()[:50]))
        text = ", ".join(uniq[:6]) + (", …" if len(uniq) > 6 else "")
        return text
    if values.dtype.kind == "c":
        return f"|z| in [{np.nanmin(np.abs(values)):.4g}, {np.nanmax(np.abs(values)):.4g}]"
    if values.size == 1:
        return f"{values.ravel()[0]:.6g}"
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return "all NaN"
    if var.ndim == 1 and values.size <= 8:
        return " ".join(f"{v:.4g}" for v in values)
    return f"[{finite.min():.4g} … {finite.max():.4g}]"


def describe(ds: xr.Dataset, path: str | os.PathLike | None = None) -> str:
    """A human-readable description of a result Dataset (what ``akorn show`` prints)."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected an xarray.Dataset, got {type(ds).__name__}")
    lines = []
    if path is not None:
        size = Path(path).stat().st_size
        lines.append(f"file: {path} ({size / 1024:.1f} KiB, netCDF4/HDF5)")
    study = ds.attrs.get("akorn_study", "?")
    done, total = ds.attrs.get("chunks_done"), ds.attrs.get("chunks_total")
    state = "complete" if int(ds.attrs.get("complete", 1)) else "INCOMPLETE (rerun the same command to resume)"
    if done is not None and total is not None:
        state += f", {done}/{total} chunks"
    lines.append(f"study: {study}   seed: {ds.attrs.get('seed', '?')}   {state}")
    lines.append("dimensions: " + ", ".join(f"{d}={n}" for d, n in ds.sizes.items()))
    name_w = max([len(str(n)) for n in ds.variables] + [4])
    dims_w = max([len("(" + ", ".join(map(str, v.dims)) + ")") for v in ds.variables.values()] + [4])
    units_w = max([len(str(v.attrs.get("units", ""))) + 2 for v in ds.variables.values()] + [3])

    def row(name: Any, var: xr.DataArray) -> str:
        dims = "(" + ", ".join(map(str, var.dims)) + ")"
        units = var.attrs.get("units")
        return (f"  {str(name):<{name_w}} {dims:<{dims_w}} {str(var.dtype):<8} "
                f"{('[' + units + ']') if units else '':<{units_w}} {var.attrs.get('long_name', '')}: "
                f"{_fmt_values(var)}")

    lines.append("coordinates:")
    lines += [row(n, ds[n]) for n in ds.coords]
    lines.append("variables:")
    lines += [row(n, ds[n]) for n in ds.data_vars]
    if "config" in ds.attrs:
        try:
            config = json.loads(ds.attrs["config"])
            lines.append("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))
        except json.JSONDecodeError:
            lines.append(f"config (unparsed): {ds.attrs['config']}")
    if "units_convention" in ds.attrs:
        lines.append(f"units: {ds.attrs['units_convention']}")
    prov = [f"{k}={ds.attrs[k]}" for k in _PROVENANCE_KEYS if k in ds.attrs]
    if prov:
        lines.append("provenance: " + ", ".join(prov))
    return "\n".join(lines)


def _study_modules(study: str) -> tuple[Any, Any]:
    """The module describing a study (its ``config``, which may define ``upgrade(ds)`` for files of an
    earlier layout) and the module with its ``plot`` and ``summarize``; ``(None, None)`` if unknown."""
    entry = REGISTRY.get(study)
    if entry is None or ":" in entry.target:
        return None, None
    spec = load(entry.target)
    described = getattr(spec, "STUDY", None) or getattr(spec, "TASK", None)
    return (None, None) if described is None else (spec, load(described.plots))


def _upgrade(ds: xr.Dataset, spec: Any) -> tuple[xr.Dataset, str]:
    """``ds`` in its study's current layout (a file of an earlier layout is read, never rewritten),
    and a line saying what was renamed ("" if nothing)."""
    upgrade = getattr(spec, "upgrade", None)
    if upgrade is None:
        return ds, ""
    new = upgrade(ds)
    renamed = [f"{old!r} as {name!r}" for old, name in zip(ds.dims, new.dims) if old != name]
    note = f"note: a file of an earlier layout; read dimension {', '.join(renamed)}" if renamed else ""
    return new, note


def _say(text: str) -> None:
    """Print ``text``. Once the reader of stdout has gone (``akorn show FILE | head``), print nothing
    more and raise nothing, as Unix tools do; the plot is still written."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        discard_stdout()


def _open(path: Path) -> None:
    opener = shutil.which("xdg-open") or shutil.which("open")
    if opener is None:
        _say(f"no image viewer found (xdg-open/open); the plot is {path}")
        return
    subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _damaged(path: Path, exc: Exception) -> str:
    """The one line for a readable result that the study's summary or plot cannot use."""
    if isinstance(exc, json.JSONDecodeError):
        what = "holds a stored config that is not valid JSON"
    elif isinstance(exc, KeyError):
        found = re.search(r"No variable named '([^']+)'", str(exc))
        what = f"lacks the variable {found[1]!r}" if found else f"lacks {exc.args[0]!r}"
    else:
        what = f"cannot be summarised ({exc})"
    return (f"akorn show: error: {str(path)!r} {' '.join(what.split())}: it is damaged or from another version "
            f"(rerun its study with --overwrite to replace it)")


def _plot_target(args: argparse.Namespace, path: Path) -> tuple[Path | None, str | None]:
    """Where the plot goes, or a usage error: ``--plot`` naming a directory or the result file."""
    png = Path(args.plot) if args.plot else path.with_suffix(".png")
    if png.is_dir():
        return None, f"akorn show: error: argument --plot: {str(png)!r} is a directory; give a file name (x.png)"
    if png.resolve() == path.resolve():
        return None, f"akorn show: error: argument --plot: {str(png)!r} would overwrite the result file"
    return png, None


def main(args: argparse.Namespace) -> int:
    """Run ``akorn show`` with parsed arguments; returns the exit status (1 for a bad file or a plot
    that cannot be written, 2 for a bad ``--plot``)."""
    path = Path(args.file)
    png, problem = _plot_target(args, path) if args.make_plot else (None, None)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    try:
        ds = open_dataset(path, combine_complex=True)
    except StorageError as exc:
        print(f"akorn show: error: {exc}", file=sys.stderr)
        return 1
    spec, module = _study_modules(str(ds.attrs.get("akorn_study")))
    complete = bool(int(ds.attrs.get("complete", 1)))
    try:
        ds, note = _upgrade(ds, spec)
        _say(describe(ds, path))
        if note:
            _say(note)
        if module is not None and hasattr(module, "summarize") and complete:
            _say(module.summarize(ds))
        if not args.make_plot:
            return 0
        if not complete:
            _say("plot: none for an incomplete run")
            return 0
        if module is None:
            _say(f"plot: the {ds.attrs.get('akorn_study')!r} study has no plot")
            return 0
        if png.exists() and not args.replot and png.stat().st_mtime >= path.stat().st_mtime:
            _say(f"plot: {png} (up to date; --replot rewrites it)")
        else:
            module.plot(ds, png)
            _say(f"plot: wrote {png}")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"akorn show: error: cannot write the plot {str(png)!r} ({' '.join(reason.split())}); pass --plot "
              f"PATH somewhere writable, or --no-plot", file=sys.stderr)
        return 1
    except (KeyError, ValueError) as exc:
        print(_damaged(path, exc), file=sys.stderr)
        return 1
    if args.open:
        _open(png)
    return 0
