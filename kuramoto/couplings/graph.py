"""Couplings on oscillator graphs, state ``[..., N, n]`` (oscillator axis ``-2``).

Coupling strengths are tensors that may carry batch axes: ``MeanField(K)`` with ``K`` of shape
``[B, 1, 1]`` couples every batch item ``b`` with its own ``K[b]`` (a whole r(K) sweep in one
solve), and ``Dense``/``Sparse`` take a ``scale`` of the same form. They are buffers (or
parameters with ``learnable=True``), so a compiled solve sees new values as new inputs and
never recompiles for them; a strength given as a Python float is kept in float64 and follows
the state's dtype and device when used. The matrices and edge weights themselves are data:
they must match the state's dtype and device (``TypeError`` otherwise; ``coupling.to(x)``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count
from .base import AbstractCoupling, check_strength

__all__ = ["Dense", "MeanField", "Sparse"]


def _as_param(value: torch.Tensor, learnable: bool, module: nn.Module, name: str) -> None:
    value = value.detach().clone()
    if learnable:
        setattr(module, name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def _register_strength(module: nn.Module, name: str, value: torch.Tensor | None, learnable: bool) -> None:
    """A strength as a parameter (``learnable``) or a buffer. A tensor that requires grad is kept
    as given, not copied, so gradients reach it."""
    if value is None:
        module.register_buffer(name, None)
    elif learnable:
        setattr(module, name, nn.Parameter(value.detach().clone()))
    else:
        module.register_buffer(name, value if value.requires_grad else value.detach().clone())


def _follow(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``value`` in the state's dtype and device (attribute compares only when they already match)."""
    if value.dtype != x.dtype or value.device != x.device:
        return value.to(device=x.device, dtype=x.dtype)
    return value


def _check_batch(strength: torch.Tensor | None, x: torch.Tensor, name: str, who: str) -> None:
    """A ``[*batch, 1, 1]`` strength must broadcast into the state's batch axes, never grow them."""
    if strength is None or strength.dim() == 0:
        return
    batch = tuple(x.shape[:-2])
    try:
        out = torch.broadcast_shapes(tuple(strength.shape[:-2]), batch)
    except RuntimeError:
        out = None
    if out != batch:
        raise ValueError(f"{name}: {who} has batch shape {tuple(strength.shape[:-2])}, which does not broadcast into "
                         f"the state's batch axes {batch} (state shape {tuple(x.shape)}); give the state those "
                         f"batch axes (e.g. x0.expand(*{name}.shape[:-2], N, n))")


def _check_data(tensor: torch.Tensor, x: torch.Tensor, name: str, who: str, what: str) -> None:
    if tensor.dtype != x.dtype or tensor.device != x.device:
        raise TypeError(f"{name}: dtype/device {x.dtype}/{x.device} does not match the {who}'s {what} "
                        f"{tensor.dtype}/{tensor.device}; move one of them (e.g. coupling.to(x))")


def _max_abs(value: torch.Tensor | None) -> float:
    return 1.0 if value is None else float(value.detach().abs().max())


def _spectral_norm(matvec, rmatvec, size: int, like: torch.Tensor, iters: int = 60) -> float:
    """``‖J‖₂`` by power iteration on ``JᵀJ`` from a fixed start (reproducible): the Rayleigh
    quotients increase towards the norm, to a few percent in a few dozen products."""
    with torch.no_grad():
        g = torch.Generator(device="cpu").manual_seed(0)
        v = (1.0 + 0.1 * torch.rand(size, generator=g, dtype=torch.float64)).to(like.device, like.dtype)
        sigma = 0.0
        for _ in range(iters):
            v = v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)
            w = matvec(v)
            sigma = max(sigma, float(w.norm()))
            v = rmatvec(w)
            if not float(v.norm()) > 0:
                break
    return sigma


class MeanField(AbstractCoupling):
    """All-to-all coupling ``J_ij = K/N``: ``(Jx)_i = K · mean_j x_j``, in O(N).

    Never builds an N×N matrix. The self-term ``j = i`` is included, as in the classic model
    ``dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i)`` where it vanishes; the tangent projection
    removes it for any ``n``.

    Args:
        k: coupling strength K: a float, a 0-d tensor, or a tensor ``[*batch, 1, 1]`` that
            broadcasts over the state's batch axes (``K.view(-1, 1, 1, 1)`` against states
            ``[K, seeds, N, n]`` runs a sweep as one batch). Stored as the buffer ``k`` (float64
            for a Python float; it follows the state's dtype and device when used), or as a
            parameter with ``learnable=True``. A non-learnable tensor that requires grad is kept
            as given, so gradients reach it.
        learnable: make K a trainable parameter (a Python float then starts in torch's default
            dtype, as every parameter).
    """

    any_layout = True

    def __init__(self, k: float | torch.Tensor, learnable: bool = False) -> None:
        super().__init__()
        kt = check_strength(k, "k")
        if learnable and not isinstance(k, torch.Tensor):
            kt = kt.to(torch.get_default_dtype())
        self.learnable = bool(learnable)
        _register_strength(self, "k", kt, self.learnable)

    @property
    def strength(self) -> torch.Tensor:
        """K (the buffer or parameter ``k``)."""
        return self.k

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Type, rank and sphere axis of ``x``, and that K's batch axes broadcast into the state's
        (K follows the state's dtype and device)."""
        self.check_layout(x, name)
        _check_batch(self.k, x, "k", "MeanField's K")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=-2, keepdim=True)
        return (_follow(self.k, x) * m).expand(x.shape)

    def is_symmetric(self, atol: float = 0.0) -> bool:
        return True

    def lipschitz_constant(self) -> float:
        """``max |K|``: the norm of ``(K/N) 1 1ᵀ`` (exact)."""
        return _max_abs(self.k)

    def extra_repr(self) -> str:
        k = f"{float(self.k):g}" if self.k.numel() == 1 else f"tensor of shape {tuple(self.k.shape)}"
        return f"k={k}, learnable={self.learnable}"


class Dense(AbstractCoupling):
    """Dense coupling matrix ``J``: ``J[i, j]`` couples ``x_j`` into oscillator ``i``.

    On a component-major state the product is ``(xᵀ Jᵀ)ᵀ``: one matrix product whose operand
    and result are contiguous component planes.

    Args:
        J: ``[N, N]`` scalar couplings, or ``[N, N, n, n]`` blocks ``J_ij ∈ R^{n×n}``. The
            diagonal is used as given (for scalar J the projection removes the self-term).
        learnable: make J a trainable parameter (default: a buffer).
        scale: an optional strength multiplying ``J x``: a float or a tensor ``[*batch, 1, 1]``
            broadcasting over the state's batch axes (as :class:`MeanField`'s K), stored as
            the buffer ``scale``; it follows the state's dtype and device.
    """

    any_layout = True

    def __init__(self, J: torch.Tensor, learnable: bool = False, *, scale: float | torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(J, torch.Tensor) or not J.is_floating_point():
            raise TypeError("J: expected a floating-point torch.Tensor of shape [N, N] or [N, N, n, n]")
        if J.dim() not in (2, 4) or J.shape[0] != J.shape[1] or (J.dim() == 4 and J.shape[2] != J.shape[3]):
            raise ValueError(f"J: expected a square [N, N] or [N, N, n, n] tensor, got {tuple(J.shape)}")
        if not bool(torch.isfinite(J).all()):
            raise ValueError("J: contains NaN or inf")
        _as_param(J, learnable, self, "J")
        _register_strength(self, "scale", None if scale is None else check_strength(scale, "scale"), False)
        self.blocks = J.dim() == 4

    @property
    def num_nodes(self) -> int:
        return self.J.shape[0]

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Type, rank, oscillator count, block size, dtype/device of ``x`` against J, and the
        batch axes of ``scale``."""
        self.check_layout(x, name)
        self._check_shape(x, name)
        _check_batch(self.scale, x, "scale", "Dense's scale")

    def _check_shape(self, x: torch.Tensor, name: str) -> None:
        N = self.J.shape[0]
        if x.dim() < 2 or x.shape[-2] != N:
            raise ValueError(f"{name}: expected {N} oscillators on axis -2, got shape {tuple(x.shape)}")
        if self.blocks and x.shape[-1] != self.J.shape[-1]:
            n = self.J.shape[-1]
            raise ValueError(f"{name}: J has {n}×{n} blocks but the state has n={x.shape[-1]}")
        _check_data(self.J, x, name, "coupling", "J")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_shape(x, "x")
        J = self.J
        if not self.blocks:
            # component-major x: x.mT is contiguous, and so is the product's transpose
            y = (x.mT @ J.mT).mT if x.dim() >= 2 and x.stride(-2) == 1 else J @ x
        else:
            N, n = J.shape[0], J.shape[-1]
            big = J.permute(0, 2, 1, 3).reshape(N * n, N * n)
            y = (big @ x.reshape(*x.shape[:-2], N * n, 1)).reshape(x.shape)
        return y if self.scale is None else y * _follow(self.scale, x)

    def is_symmetric(self, atol: float = 0.0) -> bool:
        Jt = self.J.transpose(0, 1)
        if self.blocks:
            Jt = Jt.transpose(-1, -2)
        return bool(torch.allclose(self.J, Jt, rtol=0.0, atol=atol))

    def lipschitz_constant(self) -> float:
        """``‖J‖₂`` (of the ``[Nn, Nn]`` matrix for blocks) times ``max |scale|``, by power
        iteration (an estimate from below, to a few percent: it flags clearly stiff couplings
        without the √N pessimism of the row-sum bound on random matrices)."""
        J = self.J.detach()
        if self.blocks:
            N, n = J.shape[0], J.shape[-1]
            J = J.permute(0, 2, 1, 3).reshape(N * n, N * n)
        return _spectral_norm(lambda v: J @ v, lambda w: J.mT @ w, J.shape[1], J) * _max_abs(self.scale)

    def extra_repr(self) -> str:
        return f"N={self.num_nodes}, blocks={self.blocks}" + (", scaled" if self.scale is not None else "")


class Sparse(AbstractCoupling):
    """Sparse graph coupling in O(edges): ``(Jx)_i = Σ_{(j→i)} w_ji x_j``.

    Args:
        edge_index: ``[2, E]`` integer tensor; row 0 are sources j, row 1 targets i (messages
            flow source → target, as in PyTorch Geometric). Add both directions for an
            undirected graph.
        weight: ``[E]`` finite edge weights (default: all ones in torch's default dtype).
        num_nodes: N.
        learnable: make the weights trainable.
        scale: an optional strength multiplying ``J x``, as :class:`Dense`'s.
    """

    any_layout = True

    def __init__(self, edge_index: torch.Tensor, weight: torch.Tensor | None = None, num_nodes: int | None = None,
                 learnable: bool = False, *, scale: float | torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(edge_index, torch.Tensor) or edge_index.dtype not in (torch.int64, torch.int32):
            raise TypeError("edge_index: expected an integer torch.Tensor of shape [2, E]")
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index: expected shape [2, E], got {tuple(edge_index.shape)}")
        num_nodes = check_count(num_nodes, "num_nodes")
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(f"edge_index: node ids must lie in [0, {num_nodes}), got range "
                             f"[{int(edge_index.min())}, {int(edge_index.max())}]")
        E = edge_index.shape[1]
        if weight is None:
            weight = torch.ones(E, device=edge_index.device)
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
            raise TypeError("weight: expected a floating-point torch.Tensor of shape [E] or None")
        if weight.shape != (E,):
            raise ValueError(f"weight: expected shape [{E}] (one per edge), got {tuple(weight.shape)}")
        if E and not bool(torch.isfinite(weight).all()):
            raise ValueError("weight: contains NaN or inf")
        self.register_buffer("edge_index", edge_index.long().clone())
        _as_param(weight, learnable, self, "weight")
        _register_strength(self, "scale", None if scale is None else check_strength(scale, "scale"), False)
        self.num_nodes = num_nodes

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Type, rank, oscillator count, dtype/device of ``x`` against the weights, and the batch
        axes of ``scale``."""
        self.check_layout(x, name)
        self._check_shape(x, name)
        _check_batch(self.scale, x, "scale", "Sparse's scale")

    def _check_shape(self, x: torch.Tensor, name: str) -> None:
        if x.dim() < 2 or x.shape[-2] != self.num_nodes:
            raise ValueError(f"{name}: expected {self.num_nodes} oscillators on axis -2, got shape {tuple(x.shape)}")
        _check_data(self.weight, x, name, "coupling", "weights")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_shape(x, "x")
        src, dst = self.edge_index[0], self.edge_index[1]
        # gather and scatter along the last axis of the component planes x.mT [..., n, N]
        xt = x.mT
        messages = xt.index_select(-1, src) * self.weight
        y = torch.zeros_like(xt, memory_format=torch.contiguous_format).index_add_(-1, dst, messages).mT
        return y if self.scale is None else y * _follow(self.scale, x)

    def to_dense(self) -> torch.Tensor:
        """The equivalent ``[N, N]`` matrix (duplicate edges add up; ``scale`` not included)."""
        J = torch.zeros(self.num_nodes, self.num_nodes, dtype=self.weight.dtype, device=self.weight.device)
        return J.index_put((self.edge_index[1], self.edge_index[0]), self.weight, accumulate=True)

    def is_symmetric(self, atol: float = 0.0) -> bool:
        J = self.to_dense()
        return bool(torch.allclose(J, J.T, rtol=0.0, atol=atol))

    def lipschitz_constant(self) -> float:
        """``‖J‖₂`` times ``max |scale|``, by power iteration as :meth:`Dense.lipschitz_constant`."""
        w = self.weight.detach()
        src, dst = self.edge_index[0], self.edge_index[1]
        N = self.num_nodes

        def mv(v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(v).index_add_(0, b, v.index_select(0, a) * w)
        return _spectral_norm(lambda v: mv(v, src, dst), lambda v: mv(v, dst, src), N, w) * _max_abs(self.scale)

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, edges={self.edge_index.shape[1]}" + (
            ", scaled" if self.scale is not None else "")
