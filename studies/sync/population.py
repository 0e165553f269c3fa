"""The oscillator population of a synchronisation run: natural frequencies, coupling graph and the
field, built from a config's values (duck-typed, so that :mod:`studies.sync.config` can check a
config's step against the integrators' stability guard without an import cycle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import kuramoto as ku

__all__ = ["build_coupling", "build_field", "build_frequencies", "graph_edges", "seed_of", "torch_dtype"]


def seed_of(*parts: int | str) -> int:
    """A reproducible 63-bit seed from a tuple of ints and labels."""
    words = [p if isinstance(p, int) else int.from_bytes(p.encode()[:8].ljust(8, b"\0"), "little") for p in parts]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> np.uint64(1))


def torch_dtype(name: str) -> torch.dtype:
    return {"float64": torch.float64, "float32": torch.float32}[name]


def build_frequencies(config: Any, N: int, seed: int) -> tuple[Any, torch.Tensor]:
    """The natural-frequency module for N oscillators (``seed`` is ignored with quantile sampling).

    n = 2: ``Frequencies(ω)``, ``ω [N]`` from g. Even n > 2: one ω per component pair, each pair's
    frequencies a random permutation of a draw from g. Odd n: a rotation about a uniformly
    random axis at angular velocity ω_i (per-oscillator skew matrices). ``width = 0``
    (identical oscillators): no rotation at all (module ``None``, ω = 0).

    Returns:
        ``(module or None, omega)`` with ``omega`` the angular velocities (``[N]`` or ``[N, n/2]``).
    """
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"N: expected a positive integer, got {N!r}")
    if config.width == 0:
        return None, torch.zeros(N, dtype=torch.float64)
    dtype = torch_dtype(config.dtype)
    g = torch.Generator().manual_seed(seed_of(config.seed if config.quantile else seed, N, "omega"))
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
    if config.n != 3:
        raise ValueError(f"n: odd sphere dimensions other than 3 are not supported, got {config.n}")
    omega = draws[0]
    module = ku.random_axis_rotations(omega, generator=g)
    return module.to(dtype=dtype, device=config.device), omega


def graph_edges(config: Any, N: int, seed: int) -> tuple[torch.Tensor, float]:
    """Edge index ``[2, E]`` of the configured sparse graph (both directions) and its mean degree."""
    if config.graph == "ring":
        edges = ku.ring_edges(N, config.degree)
    elif config.graph == "lattice":
        edges = ku.lattice_edges(N)
    else:
        edges = ku.erdos_renyi_edges(N, config.degree, seed_of(config.seed if config.quantile else seed, N, "graph"))
    return edges, ku.graphs.mean_degree(edges, N)


def build_coupling(config: Any, K: float | torch.Tensor, N: int, seed: int) -> Any:
    """The coupling for strength K (a float, or a tensor ``[B, 1, 1, 1]`` for a batch of K values
    against states ``[B, seeds, N, n]``): ``MeanField(K)``, or a sparse graph of unit weights
    scaled by K/(mean degree); with the config's phase lag."""
    lag = getattr(config, "lag", 0.0) or None
    if isinstance(K, torch.Tensor):
        K = K.to(dtype=torch_dtype(config.dtype), device=config.device)
    if config.graph == "complete":
        return ku.MeanField(K if isinstance(K, torch.Tensor) else float(K), lag=lag)
    edges, mean_degree = graph_edges(config, N, seed)
    weight = torch.ones(edges.shape[1], dtype=torch_dtype(config.dtype), device=config.device)
    scale = K / mean_degree if isinstance(K, torch.Tensor) else float(K) / mean_degree
    return ku.Sparse(edges.to(config.device), weight, num_nodes=N, scale=scale, lag=lag)


def build_field(config: Any, K: float | torch.Tensor, N: int, seed: int) -> Any:
    """The drift ``KuramotoField`` of one batch of runs (noise is the solver's)."""
    freq, _ = build_frequencies(config, N, seed)
    return ku.KuramotoField(build_coupling(config, K, N, seed), omega=freq)
