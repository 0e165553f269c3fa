"""Order parameters and other observables of oscillator states.

All functions are batched over leading axes and work for any sphere dimension ``n`` unless
they say otherwise; ``n = 2`` gives the classic Kuramoto quantities (``r e^{iψ} = mean e^{iθ}``).
"""

from __future__ import annotations

import math

import torch

from .checks import is_int
from .couplings import Dense, Sparse
from .sphere import geodesic_distance, inner, to_phases

__all__ = [
    "count_clusters",
    "group_order_parameter",
    "local_order_parameter",
    "mean_field",
    "mean_frequency",
    "mean_phase",
    "order_parameter",
    "phase_locking_value",
    "window_order_parameter",
]


def _state(x: object, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point torch.Tensor [..., n]")
    if x.dim() < 2 or x.shape[-1] < 2:
        raise ValueError(f"{name}: expected shape [..., N, n] with n >= 2, got {tuple(x.shape)}")
    return x


def _osc_dim(x: torch.Tensor, dim: int | tuple[int, ...]) -> tuple[int, ...]:
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    nd = x.dim()
    out = []
    for d in dims:
        if not -nd <= d < nd:
            raise ValueError(f"dim: {d} is out of range for a state of rank {nd}")
        d = d % nd
        if d == nd - 1:
            raise ValueError("dim: cannot average over the sphere axis (the last axis)")
        out.append(d)
    return tuple(out)


def mean_field(x: torch.Tensor, dim: int | tuple[int, ...] = -2) -> torch.Tensor:
    """The mean oscillator ``m = mean_j x_j`` over the oscillator axis (or axes) ``dim``.

    For ``n = 2`` its components are ``(r cos ψ, r sin ψ)``, the real and imaginary parts of the
    complex order parameter.

    Returns:
        ``[..., n]`` with ``dim`` removed.
    """
    _state(x)
    return x.mean(dim=_osc_dim(x, dim))


def order_parameter(x: torch.Tensor, dim: int | tuple[int, ...] = -2) -> torch.Tensor:
    """Global order parameter ``r = |mean_j x_j|`` in ``[0, 1]``.

    ``r = 1`` when all oscillators coincide; ``r ≈ 0.886/√N`` for N independent uniform phases.

    Args:
        x: ``[..., N, n]`` unit vectors.
        dim: oscillator axis or axes (``-2`` for graph layouts, ``(1, 2, 3)`` for all
            oscillators of an image state ``[B, C/n, H, W, n]``).

    Returns:
        ``[...]``, the state's shape without ``dim`` and the sphere axis.
    """
    m = mean_field(x, dim)
    return inner(m, m, keepdim=False).clamp_min(0).sqrt()


def mean_phase(x: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Phase ψ of the complex order parameter (``n = 2``), in ``(−π, π]``."""
    _state(x)
    if x.shape[-1] != 2:
        raise ValueError(f"x: the mean phase exists for n = 2 only, got n={x.shape[-1]}")
    return to_phases(mean_field(x, dim))


def local_order_parameter(x: torch.Tensor, graph) -> torch.Tensor:
    """Local order parameter ``r_i = |Σ_j A_ij x_j| / Σ_j A_ij`` over graph neighbourhoods.

    Args:
        x: ``[..., N, n]``.
        graph: a :class:`~kuramoto.couplings.Dense` (scalar) or
            :class:`~kuramoto.couplings.Sparse` coupling with non-negative weights, used as
            the adjacency ``A``.

    Returns:
        ``[..., N]`` (0 for an oscillator without neighbours).
    """
    _state(x)
    if not isinstance(graph, (Dense, Sparse)) or getattr(graph, "blocks", False):
        raise TypeError("graph: expected a scalar Dense or a Sparse coupling used as the adjacency matrix")
    s = graph(x)
    deg = graph(torch.ones_like(x[..., :1]).expand_as(x))[..., :1]
    return (inner(s, s).sqrt() / deg.clamp_min(torch.finfo(x.dtype).tiny)).squeeze(-1)


def window_order_parameter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Local order parameter over a spatial ``size × size`` window of an image layout.

    Args:
        x: ``[..., H, W, n]`` (e.g. ``[B, C/n, H, W, n]``).
        size: odd window size; windows are clipped at the border.

    Returns:
        ``[..., H, W]``.
    """
    _state(x)
    if not is_int(size) or size < 1 or size % 2 == 0:
        raise ValueError(f"size: expected an odd positive integer, got {size!r}")
    if x.dim() < 3:
        raise ValueError(f"x: expected at least [H, W, n], got shape {tuple(x.shape)}")
    *lead, H, W, n = x.shape
    flat = x.reshape(-1, H, W, n).permute(0, 3, 1, 2)
    pooled = torch.nn.functional.avg_pool2d(flat, size, stride=1, padding=size // 2, count_include_pad=False)
    m = pooled.permute(0, 2, 3, 1).reshape(*lead, H, W, n)
    return inner(m, m, keepdim=False).sqrt()


def group_order_parameter(x: torch.Tensor, labels: torch.Tensor, num_groups: int | None = None) -> torch.Tensor:
    """Order parameter within each group (cluster, population) of oscillators.

    Args:
        x: ``[..., N, n]``.
        labels: ``[N]`` integer group of each oscillator, in ``[0, num_groups)``.
        num_groups: G (default ``labels.max() + 1``).

    Returns:
        ``[..., G]`` (NaN for an empty group).
    """
    _state(x)
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32) or labels.dim() != 1:
        raise TypeError("labels: expected a 1-D integer torch.Tensor [N]")
    if labels.shape[0] != x.shape[-2]:
        raise ValueError(f"labels: expected {x.shape[-2]} entries (one per oscillator), got {labels.shape[0]}")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("labels: group ids must be non-negative")
    G = int(labels.max()) + 1 if num_groups is None else num_groups
    if labels.numel() and int(labels.max()) >= G:
        raise ValueError(f"num_groups: {G} is too small for label {int(labels.max())}")
    labels = labels.long()
    sums = torch.zeros(*x.shape[:-2], G, x.shape[-1], dtype=x.dtype, device=x.device).index_add(-2, labels, x)
    counts = torch.zeros(G, dtype=x.dtype, device=x.device).index_add(0, labels, torch.ones_like(labels, dtype=x.dtype))
    m = sums / counts.unsqueeze(-1)
    return inner(m, m, keepdim=False).sqrt()


def phase_locking_value(xs: torch.Tensor, time_dim: int = 0) -> torch.Tensor:
    """Pairwise phase-locking value ``PLV_ij = |mean_t e^{i(θ_i(t) − θ_j(t))}|`` (``n = 2``).

    1 for oscillators whose phase difference is constant in time, ≈ 0 for drifting ones.

    Args:
        xs: a trajectory ``[T, ..., N, 2]`` (time on ``time_dim``).
        time_dim: the time axis.

    Returns:
        ``[..., N, N]`` (O(N²) memory: meant for analysis of moderate N).
    """
    _state(xs, "xs")
    if xs.shape[-1] != 2:
        raise ValueError(f"xs: the phase-locking value is defined for n = 2, got n={xs.shape[-1]}")
    xs = xs.movedim(time_dim, 0)
    z = torch.complex(xs[..., 0], xs[..., 1])  # [T, ..., N]
    prod = z.unsqueeze(-1) * z.conj().unsqueeze(-2)
    return prod.mean(0).abs()


def mean_frequency(xs: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Time-averaged angular velocity ``(θ(t_end) − θ(t_0)) / (t_end − t_0)`` of each oscillator (n = 2).

    Phases are unwrapped by summing wrapped increments, so the sampling must resolve every
    turn (``|Δθ| < π`` between samples).

    Args:
        xs: ``[T, ..., N, 2]``.
        ts: ``[T]`` increasing times.

    Returns:
        ``[..., N]``.
    """
    _state(xs, "xs")
    if xs.shape[-1] != 2:
        raise ValueError(f"xs: the mean frequency is defined for n = 2, got n={xs.shape[-1]}")
    if not isinstance(ts, torch.Tensor) or ts.dim() != 1 or ts.shape[0] != xs.shape[0] or ts.shape[0] < 2:
        raise ValueError(f"ts: expected a 1-D tensor of {xs.shape[0]} (>= 2) times matching xs's first axis")
    th = to_phases(xs)
    d = torch.remainder(th[1:] - th[:-1] + math.pi, 2 * math.pi) - math.pi
    span = (ts[-1] - ts[0]).to(xs.dtype)
    if not bool(span > 0):
        raise ValueError("ts: expected increasing times")
    return d.sum(0) / span


def count_clusters(x: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Number of synchronised clusters: groups of oscillators linked by chains of geodesic
    distances below ``threshold`` (single linkage).

    For ``n = 2`` the phases are sorted on the circle and clusters are the arcs between gaps
    wider than ``threshold`` (O(N log N)). For ``n > 2`` the transitive closure of the
    ``[N, N]`` adjacency is computed by repeated squaring (O(N³ log N); moderate N).

    Args:
        x: ``[..., N, n]``.
        threshold: linking distance in radians (> 0).

    Returns:
        ``[...]`` integer counts.
    """
    _state(x)
    if not threshold > 0:
        raise ValueError(f"threshold: expected a positive distance, got {threshold}")
    N = x.shape[-2]
    if x.shape[-1] == 2:
        th, _ = torch.sort(to_phases(x), dim=-1)
        gaps = torch.diff(th, dim=-1, append=th[..., :1] + 2 * math.pi)
        big = (gaps > threshold).sum(-1)
        return torch.where(big == 0, torch.ones_like(big), big)
    d = geodesic_distance(x.unsqueeze(-2), x.unsqueeze(-3))
    reach = (d < threshold).to(x.dtype)
    for _ in range(max(1, math.ceil(math.log2(max(N, 2))))):
        reach = (reach @ reach).clamp_max(1.0)
    # Each cluster of size s contributes s rows, each with row-sum s: Σ 1/rowsum counts clusters.
    return (1.0 / reach.sum(-1)).sum(-1).round().long()
