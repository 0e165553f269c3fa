"""One task of a synchronisation run: a batch of K values (or sweep directions) × seeds solved as one
batched solve over one time chunk (:func:`advance`, shipped to Dask workers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import kuramoto as ku
from integrators import METHODS, SDE_METHODS, Compiled, solve, solve_sde
from studies.sync.config import Config
from studies.sync.population import (
    build_coupling,
    build_field,
    build_frequencies,
    graph_edges,
    seed_of,
    torch_dtype,
)

__all__ = ["BATCH_ELEMENTS", "COMPILE_WORK", "EAGER_BATCH_ELEMENTS", "LOCAL_WORK", "advance", "build_coupling", "build_field",
           "build_frequencies", "graph_edges", "initial_states", "plan", "work"]

#: State numbers (K values × seeds × N × n) per batched solve through the compiled program: 4·10^6
#: float64 values are 32 MB, and a lawson_rk4 step holds about a dozen such tensors.
BATCH_ELEMENTS = 4_000_000
#: ... and per eager batched solve: measured at the quick preset (one thread), batches of ~10^5
#: numbers ran 15% faster than one batch of all 2.5·10^5 (whose dozen temporaries leave the cache)
#: and as fast as one solve per K.
EAGER_BATCH_ELEMENTS = 100_000
#: Steps × state numbers from which a run goes through ``Compiled(method)``: its cold compile
#: took ~6 s here (2 s with inductor's disk cache warm) and saved ~2·10^-8 s per number-step
#: (lawson_rk4, N = 2000: 1.9 s instead of 4.9 s for 640 steps of 21 K × 3 seeds).
COMPILE_WORK = 5e8


#: Steps × state numbers below which a run stays in this process rather than starting a local Dask
#: cluster (whose start-up took 10–20 s here, about the time of 5·10^8 eager number-steps).
LOCAL_WORK = 1e9


def work(config: Config) -> float:
    """Steps × state numbers of the whole run (all K, seeds and N)."""
    steps = round((config.t_transient + config.t_average) / config.dt) * (1 if config.adiabatic else config.k_num)
    return float(steps * config.seeds * sum(config.N) * config.n * len(config.directions or (1,)))


def plan(config: Config) -> tuple[bool, list[tuple[int, int]]]:
    """Whether the run's solves go through ``Compiled(method)``, and the K-index ranges ``[a, b)``
    solved as one batch each. A function of the config only, so a resumed run (and the noise
    draws, which follow the batches) is the same on any machine."""
    per_k = config.seeds * max(config.N) * config.n
    cls = METHODS.get(config.method)
    compiled = (cls is not None and cls.native and not cls.adaptive and not config.stochastic
                and work(config) >= COMPILE_WORK)
    budget = BATCH_ELEMENTS if compiled else EAGER_BATCH_ELEMENTS
    size = max(1, min(config.k_num, budget // max(per_k, 1)))
    return compiled, [(a, min(a + size, config.k_num)) for a in range(0, config.k_num, size)]


def initial_states(config: Config, N: int, seeds: list[int], label: str | list[str], batch: int) -> torch.Tensor:
    """Uniform random states ``[batch, len(seeds), N, n]``: seed s's state is drawn from its own
    generator (so it does not depend on how seeds are grouped), the same for every K of a batch
    (one ``label``) or one per leading index (a list of labels: the sweep directions)."""
    labels = [label] if isinstance(label, str) else list(label)
    states = [[ku.random_states(N, n=config.n, generator=torch.Generator().manual_seed(seed_of(s, N, lab)),
                                dtype=torch.float64) for s in seeds] for lab in labels]
    x = torch.stack([torch.stack(row) for row in states]).to(dtype=torch_dtype(config.dtype), device=config.device)
    return x.expand(batch, *x.shape[1:]).contiguous() if isinstance(label, str) else x


def _mean_field(x: Any) -> Any:
    return ku.mean_field(x, dim=-2)


def advance(task: dict[str, Any]) -> dict[str, Any]:
    """Advance one batch of runs (K values or sweep directions × seeds; same N, frequencies and
    graph) over one chunk of time.

    Module-level so that Dask can ship it to workers; ``task`` holds the config JSON, the batch's
    K values (one per leading index of the state), N, the seeds, the chunk's start time and
    sample times, the current states ``[batch, seeds, N, n]`` (or ``None``) and, for a noisy
    run, the seed of this chunk's noise.

    Returns:
        ``r`` ``[time, batch, seeds]``, ``Z`` (n = 2), the final ``state``, and solver statistics.
    """
    config = Config.from_json(task["config"])
    N, seeds = task["N"], task["seeds"]
    dtype = torch_dtype(config.dtype)
    K = torch.as_tensor(task["K"], dtype=torch.float64).view(-1, 1, 1, 1)
    field = build_field(config, K, N, seeds[0])
    if task["state"] is None:
        x0 = initial_states(config, N, seeds, task["init_label"], K.shape[0])
    else:
        x0 = torch.as_tensor(task["state"], dtype=dtype, device=config.device)
    t = torch.as_tensor(np.concatenate([[task["t0"]], task["times"]]), dtype=torch.float64)
    observe = {"m": _mean_field}
    if config.method in SDE_METHODS:
        sol = solve_sde(field, x0, t, config.method, dt=config.dt, noise=config.noise,
                        generator=torch.Generator(device=config.device).manual_seed(task["noise_seed"]),
                        save_states=False, observe=observe)
    else:
        adaptive = METHODS[config.method].adaptive
        method = Compiled(config.method) if plan(config)[0] else config.method
        sol = solve(field, x0, t, method=method, dt=None if adaptive else config.dt, save_states=False,
                    observe=observe)
    m = sol.observed["m"][1:]  # [time, batch, seeds, n]
    r = torch.linalg.vector_norm(m, dim=-1)
    out = {
        "r": r.to(torch.float64).cpu().numpy(),
        "state": sol.x_final.detach().cpu().numpy(),
        "nfe": int(sol.stats.get("nfe", 0)),
        "steps": int(sol.stats.get("steps", 0)),
        "rejected": int(sol.stats.get("rejected", 0)),
        "status": str(getattr(sol, "status", "ok")),
    }
    if config.n == 2:
        out["Z"] = (m[..., 0] + 1j * m[..., 1]).to(torch.complex128).cpu().numpy()
    return out
