"""Benchmarks of the integrators (issue 4): four cases, each selectable, ratios measured in one run.

``python -m studies.bench integrators [-- OPTIONS]``; ``--issue`` switches every case to the
issue's sizes (long: the PyPI package alone takes ~10 min at N = 500).

- ``classic``: the classic model (all-to-all, Lorentzian ω with half-width 0.5, K = 2,
  t ∈ [0, 10], dt = 0.01) with this toolkit vs the PyPI package ``kuramoto`` 0.4.0 (SciPy
  ``odeint`` on a pairwise ``sin`` field), at equal or better accuracy of r(t) against a
  float64 SciPy DOP853 reference. That package imports as ``kuramoto`` too, so it is installed
  with ``pip install --target <cache>/kuramoto-0.4.0 --no-deps`` (its dependencies, NumPy and
  SciPy, are the environment's) and run in a subprocess with that folder first on
  ``sys.path`` and its working directory elsewhere; it times itself.
- ``large``: the mean-field model at large N, 1000 steps of an RK4-type method in float32,
  observing only r (the trajectory is never held); optionally through ``torch.compile``.
- ``dopri``: ``dopri5`` at rtol 1e-6 on a dense N×N coupling vs SciPy's RK45 on the same
  field and tolerances.
- ``train``: one training step (forward + backward) of a discrete Kuramoto block with a
  convolutional coupling: backprop vs the exact-discrete checkpointed adjoint
  (``step_fixed(checkpoint=True)``) at several T. Peak memory is measured in a fresh
  subprocess per case as the rise of the resident set over the baseline after imports and
  set-up (the kernel's VmHWM, reset before the step), with glibc's mmap threshold fixed so
  freed blocks return to the OS and the resident set tracks live memory; timings come from
  another fresh subprocess with the default allocator.

Wall and CPU time (user + system, all threads) are reported side by side; on a shared machine
the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import kuramoto as ku
from integrators import Compiled, solve, step_fixed
from studies.bench.memory import peak_bytes, reset_peak, rss_bytes
from studies.bench.pypi_kuramoto import pypi_kuramoto_dir, run_pypi_kuramoto, subprocess_env
from studies.cache import atomic_path

__all__ = ["run"]

SECTIONS = ("classic", "large", "dopri", "train")
_REPO = Path(__file__).resolve().parents[2]
# inductor's C++ wrapper: fewer Python calls per compiled step (0.21 → 0.14 ms at N = 100)
_COMPILE_OPTIONS = {"cpp_wrapper": True}


class _Clock:
    wall: float = math.nan
    cpu: float = math.nan

    def as_dict(self) -> dict[str, float]:
        return {"wall": self.wall, "cpu": self.cpu}


@contextlib.contextmanager
def _timed() -> Iterator[_Clock]:
    clock = _Clock()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield clock
    finally:
        clock.wall, clock.cpu = time.perf_counter() - w0, time.process_time() - c0




# --------------------------------------------------------------------------------------------
# classic: toolkit vs the PyPI package








def _classic(N: int, K: float, T: float, dt: float, method: str, seed: int, target: Path,
             per_output: list[int], compile_: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    omega = ku.lorentzian(N, width=0.5, generator=g, dtype=torch.float64)
    theta0 = 2 * math.pi * torch.rand(N, generator=g, dtype=torch.float64)
    t = np.linspace(0, T, int(T / dt))  # the PyPI package's output grid (spacing T/(len-1), not dt)
    # PyPI: dθ_i/dt = ω_i + K/(N−1) Σ_{j≠i} sin(θ_j − θ_i); MeanField is K'/N Σ_j (self-term vanishes).
    coupling = K * N / (N - 1)
    theirs = run_pypi_kuramoto(target, omega.numpy(), theta0.numpy(), K, T, dt)

    field = ku.KuramotoField(ku.MeanField(coupling), omega=ku.Frequencies(omega))
    x0 = ku.from_phases(theta0)
    ts = torch.from_numpy(t)
    observe = {"r": ku.order_parameter}
    with torch.no_grad(), _timed() as clock_ref:
        ref = solve(field, x0, ts, "scipy_reference", observe=observe, save_states=False,
                    options={"rtol": 1e-10, "atol": 1e-10})
    r_ref = ref.observed["r"].numpy()
    step = float(t[1] - t[0])  # one step per output
    out: dict[str, Any] = {"N": N, "max_abs_omega": float(omega.abs().max()), "outputs": len(t),
                           "pypi": {"wall": theirs["wall"], "cpu": theirs["cpu"],
                                    "r_err": float(np.abs(theirs["r"] - r_ref).max())},
                           "reference": {"wall": clock_ref.wall, "cpu": clock_ref.cpu, "nfe": ref.stats["nfe"]}}
    # Variants: steps per output (accuracy), eager or through torch.compile, float64 (float32 for
    # speed at its own accuracy). "Equal or better accuracy" picks the fastest variant whose
    # max |r − r_ref| is at most the PyPI package's.
    variants = [(k, False, torch.float64) for k in per_output] + [(per_output[0], False, torch.float32)]
    if compile_:
        variants += [(k, True, torch.float64) for k in per_output]
    out["toolkit"] = {}
    for k, compiled, dtype in variants:
        f = ku.KuramotoField(ku.MeanField(coupling), omega=ku.Frequencies(omega.to(dtype)))
        x = x0.to(dtype)
        # Compiled: the whole solve is one compiled step program (observables inside, the rotation
        # built once); k steps of the same size between two outputs, as in the eager variant.
        m = Compiled(method, compile_options=_COMPILE_OPTIONS) if compiled else method
        h = step / k
        with torch.no_grad():
            solve(f, x, ts[:3], m, dt=h, observe=observe, save_states=False)  # warm-up (and compile)
            with _timed() as clock:
                sol = solve(f, x, ts, m, dt=h, observe=observe, save_states=False)
        label = f"{'compiled ' if compiled else ''}{method} {str(dtype).split('.')[-1]} {k}/output"
        out["toolkit"][label] = {"wall": clock.wall, "cpu": clock.cpu, "steps": sol.stats["steps"],
                                 "r_err": float(np.abs(sol.observed["r"].double().numpy() - r_ref).max()),
                                 "speedup_wall": theirs["wall"] / clock.wall,
                                 "speedup_cpu": theirs["cpu"] / max(clock.cpu, 1e-9)}
    ok = {k: v for k, v in out["toolkit"].items() if v["r_err"] <= out["pypi"]["r_err"]}
    if ok:
        best = min(ok, key=lambda k: ok[k]["wall"])
        out["equal_accuracy"] = {"variant": best, **ok[best]}
    else:
        best = min(out["toolkit"], key=lambda k: out["toolkit"][k]["r_err"])
        out["equal_accuracy"] = {"variant": f"none as accurate; most accurate: {best}", **out["toolkit"][best]}
    return out


def _print_classic(res: dict[str, Any]) -> None:
    print(f"classic model, N={res['N']} (max |ω| = {res['max_abs_omega']:.0f}), {res['outputs']} outputs on t ∈ [0, 10]")
    print(f"  {'run':<40}{'wall s':>10}{'cpu s':>10}{'max|r−r_ref|':>14}{'speed-up wall':>15}{'cpu':>8}")
    p = res["pypi"]
    print(f"  {'PyPI kuramoto 0.4.0 (odeint/LSODA)':<40}{p['wall']:>10.3f}{p['cpu']:>10.3f}{p['r_err']:>14.2e}"
          f"{1.0:>15.0f}{1.0:>8.0f}")
    for label, o in res["toolkit"].items():
        print(f"  {label:<40}{o['wall']:>10.4f}{o['cpu']:>10.4f}{o['r_err']:>14.2e}{o['speedup_wall']:>15.0f}"
              f"{o['speedup_cpu']:>8.0f}")
    e = res["equal_accuracy"]
    print(f"  at equal or better accuracy: {e['variant']}: {e['speedup_wall']:.0f}× wall, {e['speedup_cpu']:.0f}× cpu")
    ref = res["reference"]
    print(f"  (reference: scipy_reference DOP853 float64 rtol 1e-10, {ref['wall']:.1f} s, {ref['nfe']} evaluations)")


# --------------------------------------------------------------------------------------------
# large: mean field at large N, observing only r


def _large(N: int, steps: int, methods: list[str], compile_: bool, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    omega = ku.lorentzian(N, width=0.5, quantile=True, dtype=torch.float32)
    field = ku.KuramotoField(ku.MeanField(2.0), omega=ku.Frequencies(omega))
    x0 = ku.random_states(N, n=2, generator=g, dtype=torch.float32)
    dt = 0.01
    t = torch.linspace(0, steps * dt, 11, dtype=torch.float64)
    out: dict[str, Any] = {"N": N, "steps": steps}
    with torch.no_grad():
        # What bounds a step: the field (Ω x + Proj(Jx)), its coupling part, one normalisation.
        for key, fn in (("field", lambda: field(0.0, x0)), ("coupling_term", lambda: field.coupling_term(0.0, x0)),
                        ("normalize", lambda: ku.normalize(x0))):
            fn()
            with _timed() as clock:
                for _ in range(3):
                    fn()
            out[f"one_{key}_ms"] = {"wall": 1e3 * clock.wall / 3, "cpu": 1e3 * clock.cpu / 3}
        variants = [(m, m) for m in methods] + ([(f"compiled:{m}", Compiled(m, compile_options=_COMPILE_OPTIONS))
                                                 for m in methods] if compile_ else [])
        for label, method in variants:
            compile_time = None
            if compile_ and label.startswith("compiled:"):
                with _timed() as clock:
                    solve(field, x0, t[:2], method, dt=dt, save_states=False)
                compile_time = clock.wall
            with _timed() as clock:
                sol = solve(field, x0, t, method, dt=dt, save_states=False, observe={"r": ku.order_parameter})
            r = sol.observed["r"]
            out[label] = {"wall": clock.wall, "cpu": clock.cpu, "ms_per_step_wall": 1e3 * clock.wall / sol.stats["steps"],
                          "ms_per_step_cpu": 1e3 * clock.cpu / sol.stats["steps"], "steps": sol.stats["steps"],
                          "r_final": float(r[-1]), "compile_s": compile_time}
    out["r_theory"] = float(ku.theory.order_parameter(2.0, "lorentzian", width=0.5))
    return out


def _print_large(res: dict[str, Any]) -> None:
    print(f"mean field, N={res['N']:.0e}, float32, {res['steps']} steps of dt = 0.01, observing r only")
    print(f"  {'method':<28}{'wall s':>10}{'cpu s':>10}{'ms/step wall':>14}{'cpu':>8}{'r(T)':>8}")
    for key, o in res.items():
        if isinstance(o, dict) and "steps" in o:
            extra = f"  (compile {o['compile_s']:.0f} s)" if o.get("compile_s") else ""
            print(f"  {key:<28}{o['wall']:>10.1f}{o['cpu']:>10.1f}{o['ms_per_step_wall']:>14.1f}"
                  f"{o['ms_per_step_cpu']:>8.1f}{o['r_final']:>8.3f}{extra}")
    for key in ("field", "coupling_term", "normalize"):
        o = res[f"one_{key}_ms"]
        print(f"  one {key} evaluation: {o['wall']:.1f} ms wall, {o['cpu']:.1f} ms cpu")
    print(f"  (stationary r from theory: {res['r_theory']:.3f}; the incoherent start needs t ≫ 10 to reach it)")


# --------------------------------------------------------------------------------------------
# dopri: toolkit dopri5 vs SciPy RK45 on the same field


def _dopri(N: int, T: float, rtol: float, atol: float, seed: int) -> dict[str, Any]:
    from scipy.integrate import solve_ivp

    g = torch.Generator().manual_seed(seed)
    omega = ku.lorentzian(N, width=0.5, quantile=True, dtype=torch.float64)
    J = torch.full((N, N), 2.0 / N, dtype=torch.float64) * (1 + 0.5 * torch.rand(N, N, generator=g, dtype=torch.float64))
    field = ku.KuramotoField(ku.Dense(J), omega=ku.Frequencies(omega))
    x0 = ku.random_states(N, n=2, generator=g, dtype=torch.float64)
    ts = [0.0, T]
    out: dict[str, Any] = {"N": N, "rtol": rtol, "atol": atol, "max_abs_omega": float(omega.abs().max())}
    with torch.no_grad():
        ref = solve(field, x0, ts, "scipy_reference", options={"rtol": 1e-10, "atol": 1e-10}).xs[-1]
        count = [0]

        def fun(t: float, y: np.ndarray) -> np.ndarray:
            count[0] += 1
            return field(t, torch.from_numpy(y).view(N, 2)).reshape(-1).numpy()

        y0 = x0.reshape(-1).numpy()
        fun(0.0, y0)
        count[0] = 0
        with _timed() as clock:
            sp = solve_ivp(fun, (0.0, T), y0, method="RK45", rtol=rtol, atol=atol)
        out["scipy_rk45"] = {"wall": clock.wall, "cpu": clock.cpu, "nfe": count[0], "steps": int(sp.t.size - 1),
                             "err": float(np.abs(sp.y[:, -1] - ref.reshape(-1).numpy()).max())}
        for method in ("dopri5", "dopri5_normalized"):
            solve(field, x0, [0.0, 0.1], method, rtol=rtol, atol=atol)  # warm-up
            with _timed() as clock:
                sol = solve(field, x0, ts, method, rtol=rtol, atol=atol)
            out[method] = {"wall": clock.wall, "cpu": clock.cpu, "nfe": sol.stats["nfe"], "steps": sol.stats["steps"],
                           "err": float((sol.xs[-1] - ref).abs().max()),
                           "vs_scipy_wall": clock.wall / out["scipy_rk45"]["wall"],
                           "vs_scipy_cpu": clock.cpu / max(out["scipy_rk45"]["cpu"], 1e-9)}
        with _timed() as clock:
            for _ in range(20):
                field(0.0, x0)
        out["one_field_ms"] = {"wall": 1e3 * clock.wall / 20, "cpu": 1e3 * clock.cpu / 20}
    return out


def _print_dopri(res: dict[str, Any]) -> None:
    print(f"adaptive solve, dense N={res['N']} (max |ω| = {res['max_abs_omega']:.0f}), t ∈ [0, 10], "
          f"rtol={res['rtol']:g}, atol={res['atol']:g}, float64")
    print(f"  {'run':<20}{'wall s':>9}{'cpu s':>9}{'nfe':>7}{'steps':>7}{'max err':>11}{'time/SciPy wall':>17}{'cpu':>7}")
    for key in ("scipy_rk45", "dopri5", "dopri5_normalized"):
        o = res[key]
        print(f"  {key:<20}{o['wall']:>9.3f}{o['cpu']:>9.3f}{o['nfe']:>7}{o['steps']:>7}{o['err']:>11.2e}"
              f"{o.get('vs_scipy_wall', 1.0):>17.2f}{o.get('vs_scipy_cpu', 1.0):>7.2f}")
    o = res["one_field_ms"]
    print(f"  one field evaluation: {o['wall']:.3f} ms wall, {o['cpu']:.3f} ms cpu")


# --------------------------------------------------------------------------------------------
# train: backprop vs exact-discrete adjoint, time and peak memory








def _checkpoint_of_mode(mode: str) -> bool | int:
    """``backprop`` → no checkpoints, ``adjoint`` → one per step, ``segments<L>`` → one per L steps."""
    fixed = {"backprop": False, "adjoint": True}
    return fixed[mode] if mode in fixed else int(mode.removeprefix("segments"))


def _train_setup(spec: dict[str, Any]):
    g = torch.Generator().manual_seed(0)
    B, C, S, n, k = spec["batch"], spec["channels"], spec["size"], spec["n"], spec["kernel"]
    coupling = ku.couplings.Conv(C, n, k, generator=g)
    field = ku.KuramotoField(coupling, omega=ku.RotationPairs(n, groups=None, spatial_dims=2))
    stem = torch.nn.Conv2d(3, C, 3, padding=1)
    images = torch.randn(B, 3, S, S, generator=g)
    x0 = ku.random_states(B, C // n, S, S, n=n, generator=g)
    weights = torch.randn(C // n, 1, 1, n, generator=g)

    def train_step() -> None:
        field.stimulus = ku.couplings.to_oscillators(stem(images), n)
        x_T, _, _ = step_fixed(field, x0, dt=1.0, steps=spec["T"], checkpoint=_checkpoint_of_mode(spec["mode"]))
        (x_T * weights).square().mean().backward()

    return train_step


def _train_case(spec_json: str) -> None:
    """Subprocess entry: one case of the training benchmark; prints JSON."""
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    train_step = _train_setup(spec)
    # The checkpoint machinery imports part of torch._dynamo on first use: do it before the baseline.
    probe = torch.ones(1, requires_grad=True)
    torch.utils.checkpoint.checkpoint(torch.sin, probe, use_reentrant=False).sum().backward()
    if spec["what"] == "memory":
        base = rss_bytes()
        reset = reset_peak()
        train_step()
        peak = peak_bytes(reset)
        print(json.dumps({"extra_mb": (peak - base) / 2**20, "baseline_mb": base / 2**20}))
    else:
        train_step()  # warm-up
        best = None
        for _ in range(spec["reps"]):
            with _timed() as clock:
                train_step()
            if best is None or clock.cpu < best["cpu"]:
                best = clock.as_dict()
        print(json.dumps(best))


def _train_subprocess(spec: dict[str, Any]) -> dict[str, float]:
    env = subprocess_env()
    if spec["what"] == "memory":
        # A fixed mmap threshold makes glibc return large freed blocks to the OS, so the resident
        # set tracks live tensors (with the default dynamic threshold, freed 4 MB blocks stay in
        # the heap and the peak measures allocator retention: measured 880 MB instead of 250 MB).
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    env["PYTHONPATH"] = str(_REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = f"from studies.bench.integrators import _train_case; _train_case({json.dumps(json.dumps(spec))})"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_REPO, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"training-step subprocess failed for {spec}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _train(steps: list[int], batch: int, channels: int, size: int, n: int, kernel: int, reps: int,
           threads: int, segment: int = 2) -> dict[str, Any]:
    out: dict[str, Any] = {"batch": batch, "channels": channels, "size": size, "n": n, "kernel": kernel,
                           "state_mb": batch * channels * size * size * 4 / 2**20, "segment": segment}
    modes = ("backprop", "adjoint", f"segments{segment}")
    for T in steps:
        row: dict[str, Any] = {}
        for mode in modes:
            spec = {"T": T, "mode": mode, "batch": batch, "channels": channels, "size": size, "n": n, "kernel": kernel,
                    "reps": reps, "threads": threads}
            timing = _train_subprocess(dict(spec, what="time"))
            memory = _train_subprocess(dict(spec, what="memory"))
            row[mode] = {**timing, "extra_mb": memory["extra_mb"]}
        row["time_ratio_cpu"] = row["adjoint"]["cpu"] / row["backprop"]["cpu"]
        row["time_ratio_wall"] = row["adjoint"]["wall"] / row["backprop"]["wall"]
        row["segments_time_ratio_cpu"] = row[modes[2]]["cpu"] / row["backprop"]["cpu"]
        out[f"T={T}"] = row
    lo, hi = f"T={min(steps)}", f"T={max(steps)}"
    for mode in modes:
        out[f"{mode}_memory_growth"] = out[hi][mode]["extra_mb"] / out[lo][mode]["extra_mb"]
    return out


def _print_train(res: dict[str, Any]) -> None:
    print(f"training step (fwd+bwd), conv coupling k={res['kernel']}, batch {res['batch']}, {res['channels']} channels, "
          f"{res['size']}×{res['size']}, n={res['n']} (one state = {res['state_mb']:.1f} MB)")
    seg = f"segments{res['segment']}"
    print(f"  {'T':>4}{'backprop s':>12}{'adjoint s':>11}{'ratio':>7}{'(wall)':>8}{'backprop MB':>13}{'adjoint MB':>12}"
          f"{'L=' + str(res['segment']) + ' s':>10}{'ratio':>7}{'MB':>7}")
    Ts = sorted(int(k[2:]) for k in res if k.startswith("T="))
    for T in Ts:
        row = res[f"T={T}"]
        print(f"  {T:>4}{row['backprop']['cpu']:>12.2f}{row['adjoint']['cpu']:>11.2f}{row['time_ratio_cpu']:>7.2f}"
              f"{row['time_ratio_wall']:>8.2f}{row['backprop']['extra_mb']:>13.0f}{row['adjoint']['extra_mb']:>12.0f}"
              f"{row[seg]['cpu']:>10.2f}{row['segments_time_ratio_cpu']:>7.2f}{row[seg]['extra_mb']:>7.0f}")
    print(f"  memory growth T={Ts[0]}→{Ts[-1]}: backprop {res['backprop_memory_growth']:.1f}×, adjoint "
          f"{res['adjoint_memory_growth']:.1f}× (one checkpoint per step), {res[seg + '_memory_growth']:.1f}× "
          f"(one per {res['segment']} steps)  (times are CPU seconds, best of the repetitions)")


# --------------------------------------------------------------------------------------------


def _parse(args: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m studies.bench integrators", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="cases to run (default: all)")
    p.add_argument("--issue", action="store_true", help="the issue's sizes for every case (long)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classic-sizes", type=int, nargs="+", default=[100], help="N of the classic case (issue: 100 500)")
    p.add_argument("--classic-method", default="lawson_rk4")
    p.add_argument("--classic-steps-per-output", type=int, nargs="+", default=[1, 2, 3, 4],
                   help="steps per output interval to try (accuracy ladder)")
    p.add_argument("--large-n", type=int, default=100_000, help="N of the large case (issue: 1000000)")
    p.add_argument("--large-steps", type=int, default=1000)
    p.add_argument("--large-methods", nargs="+", default=["rk4_normalized", "lawson_rk4"])
    p.add_argument("--compile", action="store_true", help="also run the classic and large cases through torch.compile")
    p.add_argument("--dopri-n", type=int, default=300, help="N of the dense adaptive case (issue: 1000)")
    p.add_argument("--dopri-rtol", type=float, default=1e-6)
    p.add_argument("--train-steps", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--train-batch", type=int, default=8, help="issue: 32")
    p.add_argument("--train-channels", type=int, default=64, help="issue: 128")
    p.add_argument("--train-size", type=int, default=8, help="H = W (issue: 16)")
    p.add_argument("--train-n", type=int, default=4)
    p.add_argument("--train-kernel", type=int, default=3)
    p.add_argument("--train-reps", type=int, default=2)
    p.add_argument("--train-segment", type=int, default=2,
                   help="steps per checkpoint segment of the third variant (step_fixed(checkpoint=L))")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ns = p.parse_args(args or [])
    if ns.issue:
        ns.classic_sizes, ns.large_n, ns.dopri_n, ns.compile = [100, 500], 1_000_000, 1000, True
        ns.train_batch, ns.train_channels, ns.train_size, ns.train_steps = 32, 128, 16, [4, 8, 16, 32]
    if min(ns.classic_sizes) < 2 or ns.large_n < 2 or ns.dopri_n < 2:
        p.error("sizes: expected N >= 2")
    if ns.train_channels % ns.train_n:
        p.error(f"--train-channels: expected a multiple of --train-n={ns.train_n}")
    return ns


def run(args: list[str] | None = None) -> dict:
    """Run the selected cases, print a table for each and return the figures.

    Args:
        args: command-line style options (``--help`` lists them); ``None`` means defaults.

    Returns:
        ``{"classic": {...}, "large": {...}, "dopri": {...}, "train": {...}}`` for the cases run.
    """
    opts = _parse(args)
    results: dict[str, Any] = {}
    if "classic" in opts.only:
        target = pypi_kuramoto_dir()
        results["classic"] = {}
        for N in opts.classic_sizes:
            res = _classic(N, K=2.0, T=10.0, dt=0.01, method=opts.classic_method, seed=opts.seed, target=target,
                           per_output=opts.classic_steps_per_output, compile_=opts.compile)
            _print_classic(res)
            results["classic"][f"N={N}"] = res
    if "large" in opts.only:
        res = _large(opts.large_n, opts.large_steps, opts.large_methods, opts.compile, opts.seed)
        _print_large(res)
        results["large"] = res
    if "dopri" in opts.only:
        res = _dopri(opts.dopri_n, 10.0, opts.dopri_rtol, opts.dopri_rtol * 1e-2, opts.seed)
        _print_dopri(res)
        results["dopri"] = res
    if "train" in opts.only:
        res = _train(sorted(opts.train_steps), opts.train_batch, opts.train_channels, opts.train_size, opts.train_n,
                     opts.train_kernel, opts.train_reps, opts.threads, opts.train_segment)
        _print_train(res)
        results["train"] = res
    if opts.json is not None:
        with atomic_path(opts.json) as tmp:
            tmp.write_text(json.dumps(results, indent=2, default=float))
    return results
