"""Edge lists of the coupling graphs used with :class:`~kuramoto.couplings.Sparse`.

Every builder returns an undirected graph as a directed ``edge_index`` ``[2, E]`` (int64) that
holds each edge in both directions, in :class:`~kuramoto.couplings.Sparse`'s convention (row 0
sources j, row 1 targets i), so ``Sparse(edges, weight, num_nodes=N)`` is symmetric. The mean
degree is ``edges.shape[1] / N``; divide the coupling strength by it to keep K comparable with
the all-to-all model.

    edges = ring_edges(1000, degree=10)
    J = Sparse(edges, torch.full((edges.shape[1],), K / mean_degree(edges, 1000)), num_nodes=1000)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .checks import check_int

__all__ = ["erdos_renyi_edges", "lattice_edges", "mean_degree", "ring_edges"]


def _both_directions(i: np.ndarray, j: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.stack([np.concatenate([i, j]), np.concatenate([j, i])]))


def ring_edges(num_nodes: int, degree: int) -> torch.Tensor:
    """A ring in which every node is joined to its ``degree/2`` nearest neighbours on each side.

    Args:
        num_nodes: N, more than ``degree``.
        degree: even number of neighbours of every node.

    Returns:
        ``[2, N·degree]`` int64 edge index.
    """
    N = check_int(num_nodes, "num_nodes", minimum=1)
    degree = check_int(degree, "degree", minimum=2)
    if degree % 2 or degree >= N:
        raise ValueError(f"degree: expected an even number below num_nodes={N}, got {degree}")
    k = degree // 2
    i = np.repeat(np.arange(N), k)
    j = (i + np.tile(np.arange(1, k + 1), N)) % N
    return _both_directions(i, j)


def lattice_edges(num_nodes: int) -> torch.Tensor:
    """A periodic 2-D square lattice (a torus) of ``L × L`` nodes, each joined to its 4 neighbours.

    Args:
        num_nodes: N = L², a square number >= 9 (smaller tori have multiple edges).

    Returns:
        ``[2, 4N]`` int64 edge index; node ``r·L + c`` sits at row r, column c.
    """
    N = check_int(num_nodes, "num_nodes", minimum=9)
    L = math.isqrt(N)
    if L * L != N:
        raise ValueError(f"num_nodes: expected a square number of nodes, got {N}")
    idx = np.arange(N).reshape(L, L)
    right, down = np.roll(idx, -1, axis=1), np.roll(idx, -1, axis=0)
    return _both_directions(np.concatenate([idx.ravel(), idx.ravel()]), np.concatenate([right.ravel(), down.ravel()]))


def erdos_renyi_edges(num_nodes: int, degree: int, seed: int) -> torch.Tensor:
    """An Erdős–Rényi graph G(N, M): ``M = N·degree/2`` distinct edges drawn uniformly.

    Args:
        num_nodes: N.
        degree: mean degree, below N.
        seed: seed of NumPy's ``default_rng`` (the same seed gives the same graph).

    Returns:
        ``[2, 2M]`` int64 edge index.
    """
    N = check_int(num_nodes, "num_nodes", minimum=2)
    degree = check_int(degree, "degree", minimum=1, maximum=N - 1)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    M = N * degree // 2
    total = N * (N - 1) // 2
    codes = np.unique(rng.integers(0, total, size=int(M * 1.3) + 16))
    codes = rng.permutation(codes)[:M]
    while codes.size < M:  # rare: too many collisions; top up (a handful of rounds at most)
        extra = rng.integers(0, total, size=M)
        codes = np.unique(np.concatenate([codes, extra]))
        codes = rng.permutation(codes)[:M]
    # decode pair index -> (i < j) in the upper triangle
    i = (N - 2 - np.floor(np.sqrt(-8.0 * codes + 4.0 * N * (N - 1) - 7) / 2.0 - 0.5)).astype(np.int64)
    j = (codes + i + 1 - N * (N - 1) // 2 + (N - i) * ((N - i) - 1) // 2).astype(np.int64)
    return _both_directions(i, j)


def mean_degree(edge_index: torch.Tensor, num_nodes: int) -> float:
    """Mean number of incoming edges per node, ``E / N``."""
    return edge_index.shape[1] / check_int(num_nodes, "num_nodes", minimum=1)
