"""The model of one synchronisation run: natural frequencies, coupling graph, initial states, and
the solve of one group of seeds over one time chunk (:func:`advance`, shipped to Dask workers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import kuramoto as ku
from integrators import METHODS, solve
from studies.config import ConfigError
from studies.sync.config import MAX_ROTATION_PER_STEP, ROTATION_EXACT, Config

__all__ = ["advance", "build_coupling", "build_frequencies", "check_step", "graph_edges"]


def _seed(*parts: int | str) -> int:
    """A reproducible 63-bit seed from a tuple of ints and labels."""
    words = [p if isinstance(p, int) else int.from_bytes(p.encode()[:8].ljust(8, b"\0"), "little") for p in parts]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> np.uint64(1))


def _torch_dtype(name: str):
    return {"float64": torch.float64, "float32": torch.float32}[name]


def build_frequencies(config: Config, N: int, seed: int):
    """The natural-frequency module for N oscillators (``seed`` is ignored with quantile sampling).

    n = 2: ``Frequencies(ω)``, ``ω [N]`` from g. Even n > 2: one ω per component pair, each pair's
    frequencies a random permutation of a draw from g. Odd n: a rotation about a uniformly
    random axis at angular velocity ω_i (per-oscillator skew matrices).

    Returns:
        ``(module, omega)`` with ``omega`` the sampled angular velocities (``[N]`` or ``[N, n/2]``).
    """

    if not isinstance(N, int) or N < 1:
        raise ValueError(f"N: expected a positive integer, got {N!r}")
    dtype = _torch_dtype(config.dtype)
    g = torch.Generator().manual_seed(_seed(config.seed if config.quantile else seed, N, "omega"))
    sampler = {"lorentzian": ku.lorentzian, "gaussian": ku.gaussian, "uniform": ku.uniform}[config.distribution]
    pairs = config.n // 2
    draws = [sampler(N, config.width, quantile=config.quantile, generator=g, dtype=torch.float64)
             for _ in range(1 if config.n == 2 else max(pairs, 1))]
    if config.n == 2:
        omega = draws[0]
        return ku.Frequencies(omega.to(dtype=dtype, device=config.device)), omega
    if config.n % 2 == 0:
        omega = torch.stack([d[torch.randperm(N, generator=g)] for d in draws], dim=-1)
        return ku.Frequencies(omega.to(dtype=dtype, device=config.device)), omega
    omega = draws[0]
    if config.n != 3:
        raise ConfigError("n", f"odd sphere dimensions other than 3 are not supported, got {config.n}")
    module = ku.random_axis_rotations(omega, generator=g)
    return module.to(dtype=dtype, device=config.device), omega


def graph_edges(config: Config, N: int, seed: int) -> tuple[torch.Tensor, float]:
    """Edge index ``[2, E]`` of the configured sparse graph (both directions) and its mean degree."""
    if config.graph == "ring":
        edges = ku.ring_edges(N, config.degree)
    elif config.graph == "lattice":
        edges = ku.lattice_edges(N)
    else:
        edges = ku.erdos_renyi_edges(N, config.degree, _seed(config.seed if config.quantile else seed, N, "graph"))
    return edges, ku.graphs.mean_degree(edges, N)


def build_coupling(config: Config, K: float, N: int, seed: int):
    """The coupling for strength K: ``MeanField(K)`` or a sparse graph with weights K/(mean degree)."""

    if config.graph == "complete":
        return ku.MeanField(float(K))
    edges, mean_degree = graph_edges(config, N, seed)
    weight = torch.full((edges.shape[1],), float(K) / mean_degree, dtype=_torch_dtype(config.dtype),
                        device=config.device)
    return ku.Sparse(edges.to(config.device), weight, num_nodes=N)


def _initial_states(config: Config, N: int, seeds: list[int], label: str):
    states = [ku.random_states(N, n=config.n, generator=torch.Generator().manual_seed(_seed(s, N, label)),
                               dtype=torch.float64) for s in seeds]
    return torch.stack(states).to(dtype=_torch_dtype(config.dtype), device=config.device)


def check_step(config: Config, omega_max: float) -> None:
    if config.method in ROTATION_EXACT or getattr(METHODS[config.method], "adaptive", False):
        return
    turn = config.dt * omega_max
    if turn > MAX_ROTATION_PER_STEP:
        raise ConfigError("dt", f"with method {config.method!r} the fastest oscillator (|ω| = {omega_max:.4g}) turns "
                                f"h·|ω| = {turn:.3g} rad per step, beyond what an explicit step resolves (RK4 is "
                                f"unstable above ≈2.8 and garbage oscillators falsely lock the population); use "
                                f"--method lawson_rk4, which rotates exactly, or --dt "
                                f"{MAX_ROTATION_PER_STEP / omega_max:.3g} or smaller")


def _mean_field(x: Any) -> Any:
    return ku.mean_field(x, dim=-2)


def advance(task: dict[str, Any]) -> dict[str, Any]:
    """Advance one group of runs (same K, N, frequencies; a batch of seeds) over one chunk.

    Module-level so that Dask can ship it to workers; ``task`` holds the config JSON, K, N,
    the seeds, the start time, the sample times and the current states (or ``None``).
    """

    config = Config.from_json(task["config"])
    N, seeds = task["N"], task["seeds"]
    dtype = _torch_dtype(config.dtype)
    freq, _ = build_frequencies(config, N, seeds[0])
    field = ku.KuramotoField(build_coupling(config, task["K"], N, seeds[0]), omega=freq)
    if task["state"] is None:
        x0 = _initial_states(config, N, seeds, task["init_label"])
    else:
        x0 = torch.as_tensor(task["state"], dtype=dtype, device=config.device)
    t = torch.as_tensor(np.concatenate([[task["t0"]], task["times"]]), dtype=torch.float64)

    adaptive = getattr(METHODS[config.method], "adaptive", False)
    sol = solve(field, x0, t, method=config.method, dt=None if adaptive else config.dt, save_states=False,
                observe={"m": _mean_field})
    m = sol.observed["m"][1:]  # [time, seeds, n]
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
