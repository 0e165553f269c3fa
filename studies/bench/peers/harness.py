"""Timing harness: runners, one thread per framework, alternated repeats, medians, compile time apart."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CaseFailed", "Runner", "Unavailable", "case_spec", "measure", "one_thread", "run_case"]

_REPO = Path(__file__).resolve().parents[3]

# XLA's CPU client: no Eigen thread pool and one intra-op thread (set before jax is imported).
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
_BLAS_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class Unavailable(Exception):
    """A peer that cannot run here (not installed); the message is the one-line note printed instead."""


class CaseFailed(Exception):
    """A measurement subprocess (:func:`run_case`) failed; the message is the last line of its stderr."""


def case_spec(workload: str, key: str, size: str, seed: int, opts: argparse.Namespace) -> dict[str, Any]:
    """What a measurement subprocess needs to rebuild runner ``key`` of ``workload`` (JSON-able)."""
    return {"workload": workload, "key": key, "size": size, "seed": seed,
            "opts": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()}}


def run_case(module: str, entry: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Call ``module.entry(spec as JSON)`` in a fresh Python process (this repository first on its
    path, ``OMP_WAIT_POLICY=PASSIVE``, plus ``env``) and return the JSON object it prints last.

    Raises:
        CaseFailed: the process exited with an error.
    """
    full = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", **(env or {}))
    full["PYTHONPATH"] = str(_REPO) + (os.pathsep + full["PYTHONPATH"] if full.get("PYTHONPATH") else "")
    code = f"from {module} import {entry}; {entry}({json.dumps(json.dumps(spec))})"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_REPO, env=full, check=False)
    if res.returncode != 0:
        raise CaseFailed((res.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(res.stdout.strip().splitlines()[-1])


@dataclass
class Runner:
    """One contender of a workload.

    Attributes:
        key: short name used in the results (``"toolkit"``, ``"diffrax"``…).
        label: what runs, as printed.
        side: ``"toolkit"`` or ``"peer"``.
        fn: one full run; returns the outputs compared with the reference (NumPy), or
            ``(outputs, info)`` with statistics (``steps``, ``nfe``…); with ``self_timed`` the
            info holds ``wall`` and ``cpu`` as timed by the peer itself (in a subprocess).
        compile: an explicit ahead-of-time compile (e.g. ``jax.jit(...).lower(...).compile()``),
            timed apart; lazy compilers (``torch.compile``) compile in the first call instead.
        max_runs: cap on timed runs for slow peers (the first call counts as one when nothing
            compiles).
        jit: whether the first call compiles (``torch.compile``, ``jax.jit``); without it no
            compile time is reported.
        info: settings and statistics shown with the row (method, tolerance, steps…).
    """

    key: str
    label: str
    side: str
    fn: Callable[[], Any]
    compile: Callable[[], None] | None = None
    max_runs: int | None = None
    self_timed: bool = False
    jit: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One thread for torch, NumPy/SciPy's BLAS (threadpoolctl) and XLA (env, read when jax is imported);
    subprocesses (the PyPI package) inherit ``*_NUM_THREADS=1``. The process is also pinned to one
    CPU (Linux): XLA's CPU client keeps a worker pool of its own whatever its flags say (W4 measured
    1.9 s CPU in 1.1 s wall without the pin), and threads inherit the pin when they are created.
    Restores everything on exit."""
    import torch

    previous, saved_env = torch.get_num_threads(), dict(os.environ)
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    torch.set_num_threads(1)
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + XLA_ONE_THREAD).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    for var in _BLAS_VARS:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:  # scikit-learn's dependency; without it BLAS keeps its default
        limits = contextlib.nullcontext()
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(previous)
        if affinity:
            os.sched_setaffinity(0, affinity)
        os.environ.clear()
        os.environ.update(saved_env)


def _clock(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _call(r: Runner) -> tuple[Any, dict[str, Any], float, float]:
    """One run: ``(outputs, info, wall, cpu)``."""
    out, wall, cpu = _clock(r.fn)
    info: dict[str, Any] = {}
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
        out, info = out
    if r.self_timed:
        info = dict(info)
        wall, cpu = info.pop("wall"), info.pop("cpu")
    return out, info, wall, cpu


def _failed(r: Runner, exc: Exception) -> dict[str, str]:
    return {"label": r.label, "side": r.side, "failed": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def measure(runners: list[Runner], repeats: int, log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Compile and run every runner once, then ``repeats`` timed runs alternated between runners.

    The order of the runners is reversed on every other round, so that drift on a shared
    machine does not favour one side. ``compile_s`` is the explicit compile (if any) plus the
    first call's excess over the median run (the JIT of lazy compilers), NaN for runners that
    do not compile.

    Returns:
        ``{key: {"wall", "cpu", "runs", "compile_s", "first_wall", "output", **info}}``; a
        runner that raised has ``{"failed": message}`` instead.
    """
    res: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[tuple[float, float]]] = {}
    for r in runners:
        try:
            compile_s = 0.0
            if r.compile is not None:
                _, compile_s, _ = _clock(r.compile)
            out, info, wall, cpu = _call(r)
        except Exception as exc:  # one failing contender must not hide the others
            res[r.key] = _failed(r, exc)
            log(f"  {r.label}: failed ({res[r.key]['failed']})")
            continue
        res[r.key] = {"label": r.label, "side": r.side, "output": out, "first_wall": wall,
                      "explicit_compile_s": compile_s, **r.info, **info}
        # Without any compilation the first call is a sample too (slow peers run once).
        samples[r.key] = [(wall, cpu)] if (r.compile is None and r.max_runs is not None) or r.self_timed else []
        log(f"  {r.label}: first call {wall:.3g} s" + (f" (+ compile {compile_s:.3g} s)" if r.compile else ""))
    live = [r for r in runners if r.key in samples]
    for rnd in range(repeats):
        for r in (live if rnd % 2 == 0 else live[::-1]):
            if r.key not in samples or (r.max_runs is not None and len(samples[r.key]) >= r.max_runs):
                continue
            try:
                out, info, wall, cpu = _call(r)
            except Exception as exc:
                res[r.key] = _failed(r, exc)
                del samples[r.key]
                continue
            samples[r.key].append((wall, cpu))
            res[r.key].update(output=out, **info)
    for r in [r for r in live if r.key in samples]:
        walls = [w for w, _ in samples[r.key]] or [res[r.key]["first_wall"]]
        cpus = [c for _, c in samples[r.key]] or [math.nan]
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        first = res[r.key]["first_wall"]
        compile_s = res[r.key].pop("explicit_compile_s") + max(0.0, first - wall)
        res[r.key].update(wall=wall, cpu=cpu, runs=len(samples[r.key]),
                          compile_s=compile_s if r.jit or r.compile is not None else math.nan)
    return res


