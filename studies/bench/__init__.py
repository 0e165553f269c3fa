"""Benchmarks: ``python -m studies.bench SUITE [options]`` or ``akorn bench SUITE [options]``.

Each suite is a module with ``run(args: list[str] | None) -> dict`` that prints a table of
timings measured in one process (wall and CPU time, ratios against a baseline run in the same
process) and returns the figures. ``main`` runs one or more suites and writes their figures
to ``<out>/bench.json`` and ``<out>/bench.h5`` (a flat xarray Dataset, one entry per metric).

Timings are only comparable within one run on one machine. On a shared machine set
``OMP_WAIT_POLICY=PASSIVE`` before Python starts: torch's OpenMP threads otherwise spin-wait
and small operations become up to ~100× slower.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from studies.cache import atomic_path

__all__ = ["SUITES", "flatten", "main", "timeit"]

SUITES = {
    "core": "studies.bench.core",
    "integrators": "studies.bench.integrators",
    "networks": "studies.bench.networks",
    "peers": "studies.bench.peers",
    "readme": "studies.bench.readme",
}


def timeit(fn, *, repeat: int = 5, warmup: int = 1, min_time: float = 0.0) -> dict[str, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs.

    CPU time is the process's user+system time (all threads), so ``cpu/wall`` shows how many
    cores a run kept busy; a spinning OpenMP pool shows up as CPU time without progress.
    """
    if not callable(fn):
        raise TypeError("fn: expected a callable")
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat: expected a positive integer, got {repeat!r}")
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    start = time.perf_counter()
    while len(walls) < repeat or time.perf_counter() - start < min_time:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    walls.sort()
    cpus.sort()
    return {"wall": walls[len(walls) // 2], "cpu": cpus[len(cpus) // 2], "runs": len(walls)}


def flatten(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"a": {"b": 1.0}}`` → ``{"a/b": 1.0}``; keeps numbers only."""
    out: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _environment() -> dict[str, str]:
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "machine": platform.machine(),
        "cpu_count": str(os.cpu_count()),
    }


def write_results(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.h5`` (metric → value) atomically into ``out``."""
    import numpy as np  # `akorn bench --help` stays light: numpy and xarray load only to write
    import xarray as xr

    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    flat = flatten(results)
    json_path, h5_path = out / "bench.json", out / "bench.h5"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps({"environment": env, "results": results}, indent=2, default=str))
    ds = xr.Dataset({"value": ("metric", np.array(list(flat.values()), dtype=float))},
                    coords={"metric": np.array(list(flat.keys()), dtype=str)},
                    attrs={"study": "bench", "environment": json.dumps(env)})
    ds["value"].attrs.update(long_name="benchmark figure (seconds, bytes, ratio or error; see metric name)")
    with atomic_path(h5_path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return json_path, h5_path


def main(argv: list[str] | None = None) -> int:
    """Run benchmark suites; ``argv`` = ``[SUITE ...] [--out DIR] [-- suite options]``."""
    parser = argparse.ArgumentParser(prog="akorn bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="*", default=["core"], metavar="SUITE",
                        help=f"suites to run (default: core); one or more of {', '.join(SUITES)}, or 'all'")
    parser.add_argument("--out", default="results/bench", help="directory for bench.json and bench.h5 "
                        "(default: results/bench)")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    args = parser.parse_args(argv)
    names = list(SUITES) if args.suites == ["all"] else args.suites
    unknown = [s for s in names if s not in SUITES]
    if unknown:
        parser.error(f"SUITE: unknown suite(s) {unknown}; valid: {', '.join(SUITES)} or 'all'")
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("note: OMP_WAIT_POLICY is not PASSIVE; on a shared machine set it before Python starts "
              "(spin-waiting OpenMP threads distort timings)", file=sys.stderr)
    results: dict[str, Any] = {}
    for name in names:
        module = importlib.import_module(SUITES[name])
        print(f"== {name} ==")
        results[name] = module.run(extra)
    json_path, h5_path = write_results(results, Path(args.out))
    print(f"wrote {json_path} and {h5_path}")
    return 0
