"""Side-by-side benchmarks against peers (issue 14, item 9): W1–W5, toolkit vs the peer a user would pick.

``python -m studies.bench peers [-- OPTIONS]`` (or ``akorn bench peers -- OPTIONS``); ``--quick``
for small sizes, ``--only W1 W3``, ``--repeats N``; ``--help`` lists the rest.

- W1 classic model, N = 500, one trajectory, t ∈ [0, 10], 1000 outputs of r(t), K = 2, 4 RK4-type
  steps per output, float64: diffrax RK4 (``jax.jit``), PyPI ``kuramoto`` 0.4.0, a NumPy RK4
  loop, SciPy ``solve_ivp`` RK45.
- W2 sweep, N = 2000, 21 K ∈ [0, 4] × 3 seeds, t ∈ [0, 50], dt = 0.05: diffrax with ``jax.vmap``
  over K × seeds, torchode batched.
- W3 mean field, N = 10^6, float32, 100 steps, r after every step: a NumPy phase-form loop and the
  memory-bandwidth bound.
- W4 adaptive, dense N = 1000, J = 2(U + Uᵀ)/N, t ∈ [0, 10]: diffrax Dopri5 and SciPy RK45 (NumPy
  phase-form field, ``J @ sin``/``J @ cos``) at rtol = atol = 1e-8; the toolkit's best adaptive method.
- W5 dr(T)/dK through 200 RK4-type steps, N = 2000: toolkit backprop and ``adjoint=True``,
  torchode, diffrax (``RecursiveCheckpointAdjoint``); time and peak memory.

Every output is compared with a float64 DOP853 reference (:mod:`.problems` defines the data and
each workload's error metric). Compilation is reported apart from run time; every framework runs
on one thread; repeats alternate between the contenders and the medians are reported, wall and
CPU time. Peers that are not installed are skipped with a one-line note.

**When the core changes, update only the five functions of** :mod:`studies.bench.peers.toolkit`
(``w1`` … ``w5``): they are the toolkit's side, written against the public API.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from studies.bench.memory import peak_bytes, reset_peak, rss_bytes
from studies.cache import default_cache_dir

from . import jax_peers, numpy_peers, problems, toolkit, torchode_peers
from .cold import cold_compile
from .harness import CaseFailed, Runner, Unavailable, case_spec, measure, one_thread, run_case

__all__ = ["run"]


def _toolkit_runner(key: str, made: tuple[str, Any]) -> Runner:
    label, fn = made
    # jit: the toolkit's solve may compile in its first call (compile time = first call − median)
    return Runner(key, label, "toolkit", fn, jit=True)


def runners(w: problems.Workload, opts: argparse.Namespace, notes: list[str], keys: list[str] | None = None
            ) -> list[Runner]:
    """The contenders of workload ``w``, toolkit first; a missing peer adds a note instead."""
    peers = {
        "W1": {"diffrax": lambda: jax_peers.diffrax_runner(w),
               "pypi_kuramoto": lambda: numpy_peers.pypi_kuramoto(w, opts.kuramoto_dir),
               "numpy_rk4": lambda: numpy_peers.numpy_rk4(w),
               "scipy_rk45": lambda: numpy_peers.scipy_rk45(w, opts.scipy_rtol, opts.scipy_rtol)},
        "W2": {"diffrax": lambda: jax_peers.diffrax_runner(w), "torchode": lambda: torchode_peers.torchode_runner(w)},
        "W3": {"numpy_rk4": lambda: numpy_peers.numpy_rk4(w)},
        "W4": {"diffrax": lambda: jax_peers.diffrax_runner(w),
               "scipy_rk45": lambda: numpy_peers.scipy_rk45(w, w.params["rtol"], w.params["atol"])},
        "W5": {"torchode": lambda: torchode_peers.torchode_runner(w), "diffrax": lambda: jax_peers.diffrax_runner(w)},
    }[w.name]
    mine = {
        "W1": {"toolkit": lambda: toolkit.w1(w), "toolkit_fuse2": lambda: toolkit.w1(w, fuse=2)},
        "W2": {"toolkit": lambda: toolkit.w2(w)},
        "W3": {"toolkit": lambda: toolkit.w3(w)},
        "W4": {"toolkit": lambda: toolkit.w4(w, opts.w4_rtol, opts.w4_atol)},
        "W5": {"toolkit": lambda: toolkit.w5(w, adjoint=False), "toolkit_adjoint": lambda: toolkit.w5(w, adjoint=True)},
    }[w.name]
    out = [_toolkit_runner(k, make()) for k, make in mine.items() if keys is None or k in keys]
    for key, make in peers.items():
        if keys is not None and key not in keys:
            continue
        try:
            out.append(make())
        except Unavailable as exc:
            notes.append(f"skipped {key}: {exc}")
    return out


# --------------------------------------------------------------------------------------------
# Measurements in fresh subprocesses: W5 memory (one per contender), cold compiles


def _case_runner(spec: dict[str, Any]) -> Runner:
    """The runner a measurement subprocess's spec (:func:`.harness.case_spec`) names."""
    w = problems.make(spec["workload"], spec["size"], spec["seed"])
    (r,) = runners(w, argparse.Namespace(**spec["opts"]), [], keys=[spec["key"]])
    return r


def _memory_case(spec_json: str) -> None:
    """Subprocess entry: peak resident-set rise of one W5 gradient after a warm-up; prints JSON."""
    with one_thread():
        r = _case_runner(json.loads(spec_json))
        if r.compile is not None:
            r.compile()
        r.fn()  # warm-up: compilation and first-call caches are not the gradient's memory
        gc.collect()
        base = rss_bytes()
        reset = reset_peak()
        r.fn()
        # the warm-up's garbage freed during the call can leave the peak a few KB below the base
        print(json.dumps({"peak_extra_MB": max(peak_bytes(reset) - base, 0) / 2**20, "exact": reset}))


def _cold_case(spec_json: str) -> None:
    """Subprocess entry of :func:`.cold.cold_compile`: the first and second call of one toolkit
    row in this fresh process; prints the difference as JSON."""
    with one_thread():
        r = _case_runner(json.loads(spec_json))
        t0 = time.perf_counter()
        r.fn()
        t1 = time.perf_counter()
        r.fn()
        t2 = time.perf_counter()
    print(json.dumps({"compile": (t1 - t0) - (t2 - t1)}))


def _memory(key: str, size: str, seed: int, opts: argparse.Namespace) -> dict[str, Any]:
    # Every block of 4 KiB or more is its own mmap, returned to the OS when freed, so the resident
    # set tracks live memory (a W5 state is 16–32 KB) and a warm heap hides nothing.
    env = {"MALLOC_MMAP_THRESHOLD_": "4096", "MALLOC_TRIM_THRESHOLD_": "0"}
    try:
        return run_case("studies.bench.peers", "_memory_case", case_spec("W5", key, size, seed, opts), env)
    except CaseFailed as exc:
        return {"memory_failed": str(exc)}


# --------------------------------------------------------------------------------------------


def _winner(ratio: float) -> str:
    return f"toolkit {1 / ratio:.2f}×" if ratio < 1 else f"peer {ratio:.2f}×"


def _ratios(runs: dict[str, dict[str, Any]]) -> None:
    """toolkit/peer ratios against the first toolkit row, and which side is faster (wall time)."""
    base = next((v for v in runs.values() if v["side"] == "toolkit" and "wall" in v), None)
    for v in runs.values():
        if base is None or "wall" not in v or v is base:
            continue
        v["ratio_wall"] = base["wall"] / v["wall"]
        v["ratio_cpu"] = base["cpu"] / v["cpu"] if v.get("cpu", 0) > 0 else float("nan")
        if v["side"] == "bound":
            v["faster"] = f"toolkit at {v['ratio_wall']:.1f}× bound"
        elif v["side"] == "toolkit":
            ratio = v["ratio_wall"]
            v["faster"] = f"row 1 {1 / ratio:.2f}×" if ratio < 1 else f"this {ratio:.2f}×"
        else:
            v["faster"] = _winner(v["ratio_wall"])
            if v["ratio_cpu"] == v["ratio_cpu"] and (v["ratio_cpu"] < 1) != (v["ratio_wall"] < 1):
                v["faster"] += f" (cpu: {_winner(v['ratio_cpu'])})"


def _fmt(x: Any, spec: str) -> str:
    width = int(spec.split(".")[0] or 0)
    return format(x, spec) if isinstance(x, (int, float)) and x == x else "—".rjust(width)


def print_table(name: str, res: dict[str, Any]) -> None:
    """The workload's table: one row per contender, ratios toolkit/row (> 1: the row is faster)."""
    print(f"{name}: {res['title']}")
    ref = res["reference"]
    print(f"  error = {res['metric']}; reference: {ref.get('what', 'DOP853 float64 rtol=atol=' + format(ref['tol'], 'g'))} "
          f"({ref['nfev']} evaluations{', cached' if ref['cached'] else ''})")
    width = max([len(v["label"]) for v in res["runs"].values()] + [3]) + 2
    print(f"  {'side':<8}{'run':<{width}}{'wall s':>9}{'cpu s':>9}{'compile s':>10}{'error':>9}"
          f"{'toolkit/row':>12}{'(cpu)':>7}  {'faster (wall)':<34}details")
    for v in res["runs"].values():
        if "failed" in v:
            print(f"  {v['side']:<8}{v['label']:<{width}}failed: {v['failed']}")
            continue
        extra = [f"{v['runs']} run{'s' if v['runs'] != 1 else ''}"] if "runs" in v else []
        extra += [f"{v[k]} {k}" for k in ("steps", "rejected", "nfe") if k in v]
        if "peak_extra_MB" in v:
            extra.append(f"peak memory +{v['peak_extra_MB']:.1f} MB")
        if "xla_temp_MB" in v:
            extra.append(f"XLA temp buffers {v['xla_temp_MB']:.2f} MB")
        if "diff_vs_toolkit" in v:
            extra.append(f"|Δ| vs toolkit backprop {v['diff_vs_toolkit']:.1e}")
        if "cold_new_s" in v:
            extra.append(f"compile cold: {v['cold_new_s']:.1f} s new program, {v['cold_empty_s']:.1f} s empty cache")
        for k in ("memory_failed", "cold_failed"):
            if k in v:
                extra.append(f"{k.split('_')[0]}: {v[k]}")
        print(f"  {v['side']:<8}{v['label']:<{width}}{_fmt(v['wall'], '9.3f')}{_fmt(v.get('cpu'), '9.3f')}"
              f"{_fmt(v.get('compile_s'), '10.2f')}{_fmt(v.get('error'), '9.1e')}"
              f"{_fmt(v.get('ratio_wall'), '12.2f')}{_fmt(v.get('ratio_cpu'), '7.2f')}  {v.get('faster', ''):<34}"
              f"{', '.join(extra)}")
    for note in res["notes"]:
        print(f"  note: {note}")


def run_workload(name: str, opts: argparse.Namespace) -> dict[str, Any]:
    size = "quick" if opts.quick else "full"
    w = problems.make(name, size, opts.seed)
    notes: list[str] = []
    t0 = time.perf_counter()
    cache = None if opts.no_cache else opts.cache_dir
    tol = opts.ref_tol or problems.REF_TOLS.get(name, problems.REF_TOL)
    ref = problems.cached_reference(w, opts.seed, tol, cache)
    ref_info = {"tol": tol, "nfev": int(ref.get("nfev", -1)), "seconds": time.perf_counter() - t0,
                "cached": bool(ref.get("cached", False)), "what": problems.reference_label(w, tol)}
    if opts.ref_check is not None and (not opts.ref_check or name in opts.ref_check):
        # the reference's own error, estimated against a 10× tighter tolerance
        tight = problems.cached_reference(w, opts.seed, tol / 10, cache)
        ref_info["self_check"] = problems.error(w, ref["value"], tight["value"])
        notes.append(f"reference self-check: its error metric against {problems.reference_label(w, tol / 10)} "
                     f"is {ref_info['self_check']:.1e}")
    with one_thread():
        contenders = runners(w, opts, notes)
        runs = measure(contenders, opts.repeats, log=lambda s: print(s, flush=True))
        if name == "W3":
            bounds = numpy_peers.bandwidth_bound(w)
            for key, what in (("stream", "memory"), ("cache", "cache")):
                b = bounds[key]
                runs[f"bound_{key}"] = {"label": f"{what} bound: 56 B/osc/step at {b['bandwidth_GBps']:.1f} GB/s "
                                                 f"({b['copy_MB']:.3g} MB copy)", "side": "bound", **b, "cpu": b["wall"]}
    mine = runs.get("toolkit", {}).get("output")
    for key, v in runs.items():
        if "output" not in v:
            continue
        out = v.pop("output")
        v["error"] = problems.error(w, out, ref["value"])
        if name == "W5" and mine is not None and key != "toolkit":
            v["diff_vs_toolkit"] = float(np.abs(np.asarray(out) - mine).max())
    if name == "W5" and not opts.no_memory:
        for key in [k for k, v in runs.items() if "wall" in v]:
            runs[key].update(_memory(key, size, opts.seed, opts))
    if opts.cold_compile:
        for key in [k for k, v in runs.items() if v["side"] == "toolkit" and v.get("compile_s") is not None]:
            runs[key].update(cold_compile(name, key, size, opts.seed, opts))
    _ratios(runs)
    return {"title": w.title, "metric": w.metric, "reference": ref_info, "runs": runs, "notes": notes,
            "params": {k: v for k, v in w.params.items()}}


def _parse(args: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m studies.bench peers --", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (tests, CI)")
    p.add_argument("--only", nargs="+", choices=problems.WORKLOADS, default=list(problems.WORKLOADS),
                   metavar="W", help="workloads to run (default: all of W1 … W5)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per contender after the first (default: 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kuramoto-dir", type=Path, default=numpy_peers.default_kuramoto_dir(),
                   help="folder holding PyPI kuramoto 0.4.0 (pip install --target DIR kuramoto==0.4.0; "
                        "default: $AKORN_PYPI_KURAMOTO or <cache>/kuramoto-0.4.0)")
    p.add_argument("--scipy-rtol", type=float, default=1e-8, help="W1: SciPy RK45's rtol = atol (default: 1e-8)")
    p.add_argument("--w4-rtol", type=float, default=1.5e-7,
                   help="W4: the toolkit's rtol (default: 1.5e-7, at which its error, 2.9e-4, is below diffrax's at "
                        "1e-8, 3.6e-4)")
    p.add_argument("--w4-atol", type=float, default=1.5e-7, help="W4: the toolkit's atol (default: 1.5e-7)")
    p.add_argument("--ref-tol", type=float, default=None,
                   help=f"the reference's rtol = atol (default: {problems.REF_TOL:g}; W3: {problems.REF_TOLS['W3']:g})")
    p.add_argument("--ref-check", nargs="*", choices=problems.WORKLOADS, default=None, metavar="W",
                   help="also solve the reference at a 10× tighter tolerance and report the difference "
                        "(for the workloads listed, or all selected ones)")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir() / "bench-peers",
                   help="where references are stored (default: <cache>/bench-peers)")
    p.add_argument("--no-cache", action="store_true", help="recompute the references")
    p.add_argument("--no-memory", action="store_true", help="W5: skip the peak-memory subprocesses")
    p.add_argument("--cold-compile", action="store_true",
                   help="also time each compiled toolkit row's compile in fresh processes with an empty inductor "
                        "cache and with a cache that lacks only this program (see studies.bench.peers.cold)")
    ns = p.parse_args(args or [])
    if ns.repeats < 1:
        p.error("--repeats: expected a positive integer")
    return ns


def run(args: list[str] | None = None) -> dict[str, Any]:
    """Run the selected workloads, print a table for each and return the figures.

    Args:
        args: command-line style options (``--help`` lists them); ``None`` means defaults.

    Returns:
        ``{"W1": {"title", "metric", "reference", "runs": {key: {...}}, "notes"}, ...}``.
    """
    opts = _parse(args)
    results: dict[str, Any] = {}
    for name in opts.only:
        print(f"-- {name} --", flush=True)
        results[name] = run_workload(name, opts)
        print_table(name, results[name])
    return results
