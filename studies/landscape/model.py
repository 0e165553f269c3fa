"""The landscape's model: the coupling (dense, lattice or Hopfield patterns), the field, and the
clustering of final states into fixed points modulo the global symmetry.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.sparse.csgraph import connected_components

import kuramoto as ku
from kuramoto.couplings import AbstractCoupling
from studies.landscape.config import Config

__all__ = ["PatternCoupling", "build_field", "cluster_states"]


class PatternCoupling(AbstractCoupling):
    """Hopfield coupling ``J_ij = (1/N) Σ_μ ξ_i^μ ξ_j^μᵀ`` (``J_ii = 0``) in O(P·N·n), never N×N.

    ``(Jx)_i = (1/N) Σ_μ ξ_i^μ (m^μ − ξ_i^μᵀ x_i)`` with the overlaps ``m^μ = Σ_j ξ_j^μᵀ x_j``;
    the subtracted term removes the self-coupling. Symmetric (``J_ij = J_jiᵀ``).

    Args:
        patterns: ``[P, N, n]`` stored patterns (unit vectors).
    """

    def __init__(self, patterns: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(patterns, torch.Tensor) or patterns.dim() != 3 or not patterns.is_floating_point():
            raise ValueError("patterns: expected a floating-point tensor [P, N, n]")
        self.register_buffer("patterns", patterns.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        xi = self.patterns
        if x.shape[-2:] != xi.shape[1:]:
            raise ValueError(f"x: expected [..., {xi.shape[1]}, {xi.shape[2]}], got {tuple(x.shape)}")
        own = torch.einsum("pin,...in->...pi", xi, x)  # ξ_i^μᵀ x_i
        overlap = own.sum(-1, keepdim=True)  # m^μ
        return torch.einsum("pin,...pi->...in", xi, overlap - own) / xi.shape[1]

    def is_symmetric(self, atol: float = 0.0) -> bool:
        return True

    def extra_repr(self) -> str:
        return f"patterns={self.patterns.shape[0]}, N={self.patterns.shape[1]}, n={self.patterns.shape[2]}"


def _torch_dtype(name: str):
    return {"float64": torch.float64, "float32": torch.float32}[name]


def build_field(config: Config):
    """The Kuramoto field of the study (coupling, frequencies and stimulus from ``config.seed``)."""

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a landscape Config, got {type(config).__name__}")
    g = torch.Generator().manual_seed(config.seed)
    dtype, dev = _torch_dtype(config.dtype), config.device
    N, n = config.N, config.n
    if config.coupling == "dense":
        A = torch.randn(N, N, generator=g, dtype=torch.float64)
        J = (A + A.T) / math.sqrt(2.0 * N)
        J.fill_diagonal_(0.0)
        coupling = ku.Dense(J.to(dtype=dtype, device=dev))
    elif config.coupling == "lattice":
        edges = ku.lattice_edges(N)  # every edge twice: the second half reverses the first
        w = torch.randn(edges.shape[1] // 2, generator=g, dtype=torch.float64)
        coupling = ku.Sparse(edges.to(dev), torch.cat([w, w]).to(dtype=dtype, device=dev), num_nodes=N)
    else:
        xi = ku.random_states(config.patterns, N, n=n, generator=g, dtype=torch.float64)  # [P, N, n]
        coupling = PatternCoupling(xi.to(dtype=dtype, device=dev))
    stimulus = None
    if config.stimulus > 0:
        stimulus = config.stimulus * ku.random_states(N, n=n, generator=g, dtype=torch.float64).to(dtype=dtype,
                                                                                                    device=dev)
    omega = None
    if config.omega_width > 0:
        omega = ku.Frequencies(ku.gaussian(N, config.omega_width, generator=g, dtype=dtype).to(dev))
    return ku.KuramotoField(coupling, omega=omega, stimulus=stimulus)


def _pairwise_distance(x: Any, symmetry: str) -> Any:
    """Mean geodesic distance between every pair of states ``x [M, N, n]`` modulo ``symmetry``.

    For O(n) the second state is aligned to the first by the orthogonal Procrustes rotation
    ``R = U Vᵀ`` of ``Σ_i x_i yᵢᵀ = U S Vᵀ`` (batched over all pairs).
    """

    if symmetry == "O(n)":
        H = torch.einsum("ain,bim->abnm", x, x)  # Σ_i x_a,i x_b,iᵀ   [M, M, n, n]
        U, _, Vh = torch.linalg.svd(H)
        R = U @ Vh  # rotates states of b onto a
        aligned = torch.einsum("abnm,bim->abin", R, x)  # [M, M, N, n]
        return ku.geodesic_distance(x.unsqueeze(1), aligned).mean(-1)
    d = ku.geodesic_distance(x.unsqueeze(1), x.unsqueeze(0)).mean(-1)
    if symmetry == "sign":
        d = torch.minimum(d, ku.geodesic_distance(x.unsqueeze(1), -x.unsqueeze(0)).mean(-1))
    return d


def cluster_states(x: Any, threshold: float, symmetry: str = "none") -> np.ndarray:
    """Group states into fixed points: single linkage on the mean geodesic distance.

    Args:
        x: final states ``[M, N, n]``.
        threshold: linking distance (mean over oscillators, radians).
        symmetry: ``"O(n)"`` (align by a global rotation/reflection), ``"sign"`` (identify
            ``x`` with ``−x``) or ``"none"``.

    Returns:
        ``[M]`` integer labels ``0 .. C−1`` in order of first appearance.
    """

    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError("x: expected a tensor of states [M, N, n]")
    if symmetry not in ("O(n)", "sign", "none"):
        raise ValueError(f"symmetry: expected 'O(n)', 'sign' or 'none', got {symmetry!r}")
    if not threshold > 0:
        raise ValueError(f"threshold: expected a positive distance, got {threshold}")
    d = _pairwise_distance(x, symmetry).cpu().numpy()
    _, labels = connected_components(d < threshold, directed=False)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))  # relabel by first appearance
    return order[labels].astype(np.int64)
