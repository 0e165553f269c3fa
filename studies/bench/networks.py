"""Benchmark: forward + backward of one Kuramoto layer, the toolkit against a straightforward loop.

Case (from the networks issue): batch 32, 128 channels, 16 × 16 positions, n = 4, global Ω,
GroupNorm-ed stimulus, γ = 1, coupling conv (kernel 3) or attention (8 heads, no GTA), T ∈ {8, 32}.

- *toolkit*: :class:`networks.layer.KuramotoLayer` (plain backprop, and ``adjoint=True``: the
  exact-discrete checkpointed gradient).
- *naive*: the same update written the way the official code loops, a few lines below
  (:func:`naive_layer`): feature maps ``[B, C, H, W]``, ``view`` to ``[B, C/n, n, H, W]`` for the
  per-oscillator sums, 1×1 convolutions and an interleaved head split for attention.

Both run with the same parameters and inputs; the table reports the largest difference of
their outputs. Time is the best of ``--reps`` forward+backward passes (wall and process CPU
time; the machine is shared, so CPU time is the steadier figure). Peak memory is measured in a
fresh subprocess per case: the resident set size (``/proc/self/statm``) after the model and
inputs are built is the baseline; the kernel's peak-RSS counter is then reset (``5`` written to
``/proc/self/clear_refs``), one forward+backward runs, and the peak is ``VmHWM`` from
``/proc/self/status`` (fallback: ``ru_maxrss``); ``delta`` = peak − baseline is what the
training step itself needed. The subprocess runs with ``MALLOC_MMAP_THRESHOLD_=65536`` so that
glibc hands freed large blocks back to the OS and the resident set follows the live tensors
(with glibc's dynamic threshold, the recompute-heavy checkpointed runs kept freed blocks in
the heap and looked as large as plain backprop). Timing repetitions are round-robin over the
implementations, so that a drifting machine load affects all of them alike.

Run: ``OMP_WAIT_POLICY=PASSIVE python -m studies.bench networks`` (or call :func:`run`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from kuramoto.couplings.image import Attention, Conv
from kuramoto.frequencies import RotationPairs
from networks.layer import KuramotoLayer
from studies.bench.memory import peak_bytes, reset_peak, rss_bytes

__all__ = ["naive_layer", "run"]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _make_layer(coupling: str, T: int, *, channels: int, n: int, heads: int, adjoint: bool,
                seed: int = 0) -> KuramotoLayer:
    g = torch.Generator().manual_seed(seed)
    J = Conv(channels, n, 3, generator=g) if coupling == "conv" else Attention(channels, n, heads=heads, generator=g)
    return KuramotoLayer(J, n, channels, omega=RotationPairs(n, init_omega=1.0), stimulus_norm="gn", steps=T,
                         gamma=1.0, adjoint=adjoint)


def naive_layer(layer: KuramotoLayer, c: torch.Tensor, x0: torch.Tensor, T: int) -> torch.Tensor:
    """The layer's update as a straightforward per-step loop on feature maps (the official code's way).

    Reads the parameters of ``layer`` (conv or attention coupling, global ``RotationPairs`` Ω,
    GroupNorm stimulus normalisation), so its output equals ``layer(c, x0, steps=T)``.
    """
    B, C, H, W = c.shape
    n, J = layer.n, layer.coupling
    gn = layer.stimulus_norm
    c_hat = F.group_norm(c, gn.num_groups, gn.weight, gn.bias, gn.eps)
    w = torch.linalg.vector_norm(layer.omega.p)  # official ω = ‖p‖, pair (a, b) -> (ω b, −ω a)
    gamma = layer.gamma

    def coupling(x: torch.Tensor) -> torch.Tensor:
        if isinstance(J, Conv):
            return F.conv2d(x, J.weight, J.bias, padding=J.kernel_size // 2)
        h, d = J.heads, C // J.heads
        qkv = F.conv2d(x, J.qkv_weight[:, :, None, None], J.qkv_bias)
        q, k, v = (t.reshape(B, d, h, H * W).permute(0, 2, 3, 1) for t in qkv.chunk(3, dim=1))
        o = F.scaled_dot_product_attention(q, k, v)
        o = o.permute(0, 3, 1, 2).reshape(B, C, H, W)
        return F.conv2d(o, J.out_weight[:, :, None, None], J.out_bias)

    x = F.normalize(x0.view(B, C // n, n, H, W), dim=2).view(B, C, H, W)
    for _ in range(T):
        y = (coupling(x) + c_hat).view(B, C // n, n, H, W)
        xg = x.view(B, C // n, n, H, W)
        y = y - (y * xg).sum(2, keepdim=True) * xg
        rot = torch.stack((w * xg[:, :, 1::2], -w * xg[:, :, 0::2]), dim=3).reshape(B, C // n, n, H, W)
        x = F.normalize(xg + gamma * (rot + y), dim=2).view(B, C, H, W)
    return x


def _inputs(batch: int, channels: int, size: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, channels, size, size)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def _fwd_bwd(impl: str, layer: KuramotoLayer, c: torch.Tensor, x0: torch.Tensor, target: torch.Tensor,
             T: int) -> torch.Tensor:
    c = c.detach().requires_grad_()
    out = layer(c, x0, steps=T) if impl != "naive" else naive_layer(layer, c, x0, T)
    (out * target).sum().backward()
    return out.detach()


def _time(fn, reps: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)








def _memory_case(spec: str) -> None:
    """Subprocess entry: one forward+backward, print the peak-memory figures as JSON."""
    s = json.loads(spec)
    torch.set_num_threads(s["threads"])
    layer = _make_layer(s["coupling"], s["T"], channels=s["channels"], n=s["n"], heads=s["heads"],
                        adjoint=s["impl"] == "toolkit_adjoint")
    c, x0, target = _inputs(s["batch"], s["channels"], s["size"])
    # torch's checkpoint imports a large part of torch._dynamo on first use; do it before the baseline
    # so that the figure is the training step's memory, not a one-off import.
    probe = torch.ones(1, requires_grad=True)
    torch.utils.checkpoint.checkpoint(torch.sin, probe, use_reentrant=False).sum().backward()
    base = rss_bytes()
    reset = reset_peak()  # so that import-time transients do not count
    _fwd_bwd(s["impl"], layer, c, x0, target, s["T"])
    peak = peak_bytes(reset)
    print(json.dumps({"baseline_mb": base / 2**20, "peak_mb": peak / 2**20, "delta_mb": (peak - base) / 2**20}))


def _measure_memory(spec: dict[str, Any]) -> dict[str, float]:
    # A fixed mmap threshold makes glibc return every large freed block to the OS, so the resident
    # set tracks live tensors; with its default (dynamic) threshold, freed 4 MB blocks stay in the
    # heap and the RSS peak measures allocator retention rather than what the step needs.
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", MALLOC_MMAP_THRESHOLD_="65536")
    code = f"from studies.bench.networks import _memory_case; _memory_case({json.dumps(json.dumps(spec))})"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_REPO, env=env,
                         check=False)
    if res.returncode != 0:
        raise RuntimeError(f"memory subprocess failed for {spec}:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _parse(args: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m studies.bench networks", description=__doc__.splitlines()[0])
    p.add_argument("--couplings", default="conv,attn", help="comma list of conv, attn (default both)")
    p.add_argument("--steps", default="8,32", help="comma list of T (default 8,32)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--size", type=int, default=16, help="H = W")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per case (best is reported)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 repetition (a smoke test)")
    ns = p.parse_args(args)
    if ns.quick:
        ns.batch, ns.channels, ns.size, ns.reps, ns.steps = 2, 16, 4, 1, "2,4"
    ns.couplings = [s for s in ns.couplings.split(",") if s]
    if not set(ns.couplings) <= {"conv", "attn"}:
        p.error(f"--couplings: expected conv and/or attn, got {ns.couplings}")
    ns.steps = [int(s) for s in ns.steps.split(",") if s]
    return ns


def run(args: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and return the figures.

    Args:
        args: command-line style options (see ``--help``); ``None`` reads ``sys.argv``.

    Returns:
        ``{"config": {...}, "cases": {"conv_T8_toolkit": {coupling, T, impl, wall_s, cpu_s,
        max_abs_diff, peak_mb, delta_mb}, ...}, "summary": {...}}`` with speed-ups (naive time /
        toolkit time) and memory ratios (delta at the largest T / delta at the smallest T).
    """
    ns = _parse(args)
    torch.set_num_threads(ns.threads)
    cfg: dict[str, Any] = {k: getattr(ns, k) for k in ("batch", "channels", "size", "n", "heads", "reps", "threads")}
    cfg.update(couplings=ns.couplings, steps=ns.steps, torch=torch.__version__,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    cases: list[dict[str, Any]] = []
    print(f"Kuramoto layer fwd+bwd: batch {ns.batch}, C {ns.channels}, {ns.size}x{ns.size}, n {ns.n}, "
          f"threads {ns.threads}, best of {ns.reps}; OMP_WAIT_POLICY={cfg['omp_wait_policy']}")
    header = f"{'coupling':8s} {'T':>3s} {'impl':16s} {'wall s':>8s} {'cpu s':>8s} {'max|diff|':>10s} " \
             f"{'peak MB':>8s} {'delta MB':>9s}"
    print(header)
    print("-" * len(header))
    for coupling in ns.couplings:
        for T in ns.steps:
            layers = {impl: _make_layer(coupling, T, channels=ns.channels, n=ns.n, heads=ns.heads,
                                        adjoint=impl == "toolkit_adjoint")
                      for impl in ("toolkit", "toolkit_adjoint", "naive")}
            c, x0, target = _inputs(ns.batch, ns.channels, ns.size)
            outs = {impl: _fwd_bwd(impl, layer, c, x0, target, T) for impl, layer in layers.items()}  # + warm-up
            # Round-robin repetitions: on a shared machine the load drifts, and it should drift for all alike.
            best: dict[str, tuple[float, float]] = {}
            for _ in range(ns.reps):
                for impl, layer in layers.items():
                    wall, cpu = _time(lambda: _fwd_bwd(impl, layer, c, x0, target, T), 1)
                    old = best.get(impl, (math.inf, math.inf))
                    best[impl] = (min(old[0], wall), min(old[1], cpu))
            for impl in layers:
                wall, cpu = best[impl]
                row = {"coupling": coupling, "T": T, "impl": impl, "wall_s": wall, "cpu_s": cpu,
                       "max_abs_diff": float((outs[impl] - outs["naive"]).abs().max())}
                if not ns.no_memory:
                    row.update(_measure_memory({"coupling": coupling, "T": T, "impl": impl, "batch": ns.batch,
                                                "channels": ns.channels, "size": ns.size, "n": ns.n,
                                                "heads": ns.heads, "threads": ns.threads}))
                cases.append(row)
                mem = f"{row['peak_mb']:8.0f} {row['delta_mb']:9.0f}" if "peak_mb" in row else f"{'-':>8s} {'-':>9s}"
                print(f"{coupling:8s} {T:3d} {impl:16s} {wall:8.3f} {cpu:8.3f} {row['max_abs_diff']:10.1e} {mem}",
                      flush=True)
    summary: dict[str, Any] = {}
    for coupling in ns.couplings:
        for T in ns.steps:
            row = {r["impl"]: r for r in cases if r["coupling"] == coupling and r["T"] == T}
            for impl in ("toolkit", "toolkit_adjoint"):
                summary[f"{coupling}_T{T}_{impl}_speedup_cpu"] = row["naive"]["cpu_s"] / row[impl]["cpu_s"]
                summary[f"{coupling}_T{T}_{impl}_speedup_wall"] = row["naive"]["wall_s"] / row[impl]["wall_s"]
        if not ns.no_memory and len(ns.steps) > 1:
            lo, hi = min(ns.steps), max(ns.steps)
            for impl in ("toolkit", "toolkit_adjoint", "naive"):
                d = {r["T"]: r["delta_mb"] for r in cases if r["coupling"] == coupling and r["impl"] == impl}
                summary[f"{coupling}_{impl}_memory_ratio_T{hi}_over_T{lo}"] = d[hi] / max(d[lo], 1e-9)
    print("\nsummary (speed-up = naive / toolkit time; memory ratio = delta at largest T / delta at smallest T)")
    for k, v in summary.items():
        print(f"  {k:48s} {v:6.2f}")
    return {"config": cfg, "cases": {f"{r['coupling']}_T{r['T']}_{r['impl']}": r for r in cases}, "summary": summary}


if __name__ == "__main__":
    run()
