"""Benchmark of the dynamics core: one field evaluation, ``MeanField`` vs ``Dense``.

``python -m studies.bench core [-- --sizes 1000 10000 --big 1000000]`` prints the time of one
evaluation of the classic field (n = 2, float32, Lorentzian ω) for the O(N) mean-field
coupling and the O(N²) dense matrix at the same N, and the per-oscillator cost of
``MeanField`` at N = 10^6 (it must be O(N)).
"""

from __future__ import annotations

import argparse

import torch

import kuramoto as ku
from studies.bench import timeit


def _field(coupling, N: int, dtype: torch.dtype, g: torch.Generator):
    w = ku.lorentzian(N, width=0.5, generator=g, dtype=dtype)
    return ku.KuramotoField(coupling, omega=ku.Frequencies(w))


def run(args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench core")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    opts = parser.parse_args(args or [])
    if any(s < 2 for s in opts.sizes) or opts.big < 2:
        parser.error("--sizes/--big: expected N >= 2")
    dtype = getattr(torch, opts.dtype)
    g = torch.Generator().manual_seed(0)
    out: dict = {}
    print(f"{'case':<28}{'wall ms':>10}{'cpu ms':>10}{'ns/osc':>10}{'ratio':>10}")
    for N in opts.sizes:
        x = ku.random_states(N, n=2, generator=g, dtype=dtype)
        mf = _field(ku.MeanField(2.0), N, dtype, g)
        dense = _field(ku.Dense(torch.full((N, N), 2.0 / N, dtype=dtype)), N, dtype, g)
        with torch.no_grad():
            t_mf = timeit(lambda: mf(0.0, x), repeat=20)
            t_d = timeit(lambda: dense(0.0, x), repeat=5)
        ratio = t_d["wall"] / t_mf["wall"]
        for name, t in (("MeanField", t_mf), ("Dense", t_d)):
            print(f"{name + f' N={N}':<28}{1e3 * t['wall']:>10.3f}{1e3 * t['cpu']:>10.3f}"
                  f"{1e9 * t['wall'] / N:>10.1f}{(ratio if name == 'Dense' else 1.0):>10.1f}")
        out[f"N={N}"] = {"meanfield": t_mf, "dense": t_d, "dense_over_meanfield": ratio}
    N = opts.big
    x = ku.random_states(N, n=2, generator=g, dtype=dtype)
    mf = _field(ku.MeanField(2.0), N, dtype, g)
    with torch.no_grad():
        t = timeit(lambda: mf(0.0, x), repeat=10)
    per = t["wall"] / N
    print(f"{f'MeanField N={N}':<28}{1e3 * t['wall']:>10.3f}{1e3 * t['cpu']:>10.3f}{1e9 * per:>10.1f}")
    small = out[f"N={opts.sizes[-1]}"]["meanfield"]["wall"] / opts.sizes[-1]
    print(f"per-oscillator cost at N={N} vs N={opts.sizes[-1]}: {per / small:.2f}x (O(N) means ~1 or below)")
    out[f"N={N}"] = {"meanfield": t, "ns_per_oscillator": 1e9 * per, "per_osc_vs_small": per / small}
    out["threads"] = torch.get_num_threads()
    return out
