"""Natural frequencies Ω: the rotation every oscillator performs on its own.

Each ``Ω_i`` is an antisymmetric ``n × n`` matrix, so ``Ω_i x_i`` is tangent to the sphere
and ``exp(tΩ_i)`` is a rotation. Three parametrisations:

- :class:`Frequencies` — given angular velocities per oscillator (data, not learned by
  default): for ``n = 2`` it is the classic ``dθ_i/dt = ω_i``; for even ``n`` the same (or a
  per-pair) ω turns every consecutive component pair ``(x_{2m}, x_{2m+1})``.
- :class:`RotationPairs` — the paper's learnable Ω (docs/AKORN.md §1.3): ω = ‖p‖ of a 2-vector
  parameter, global or per group of channel pairs.
- :class:`Skew` — a full learnable skew-symmetric matrix, global or per group.

Rotation sense: every frequency turns counter-clockwise, ``Ω = ω [[0, −1], [1, 0]]`` on each
pair. Samplers :func:`lorentzian`, :func:`gaussian`, :func:`uniform` draw ω at random or, with
``quantile=True``, deterministically at the quantiles ``j/(N+1)`` of the distribution (the
usual low-noise choice for finite-N synchronisation studies).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import check_count, is_int, is_real

__all__ = ["AbstractFrequencies", "Frequencies", "RotationPairs", "Skew", "gaussian", "lorentzian", "uniform"]


def _even_n(x: torch.Tensor, who: str) -> int:
    n = x.shape[-1]
    if n % 2:
        raise ValueError(f"x: {who} rotates component pairs and needs an even sphere dimension n, got n={n}")
    return n


def _same_kind(w: torch.Tensor, x: torch.Tensor, who: str, what: str) -> None:
    """Frequencies are data: a float64 ω must not promote a float32 state (nor the reverse)."""
    if w.dtype != x.dtype or w.device != x.device:
        raise TypeError(f"x: dtype/device {x.dtype}/{x.device} does not match {who}'s {what} {w.dtype}/{w.device}; "
                        f"move one of them (e.g. field.to(x0) or omega.to(x0.dtype))")


class Rotation:
    """The map ``x ↦ exp(tΩ) x`` for one ``t``, with its trigonometry (or matrix exponential)
    computed once, to be applied to many states (Lawson methods rotate five to thirteen vectors
    per step by the same few angles; a fixed-step solve builds the map once per solve).

    Built by :meth:`AbstractFrequencies.rotation`; ``inverse()`` is ``exp(−tΩ)``. Pairwise
    rotations hold ``cos``/``sin`` of every pair angle; a :class:`Skew` holds the matrices.
    """

    __slots__ = ("c", "s", "ss", "R", "who")

    def __init__(self, *, c: torch.Tensor | None = None, s: torch.Tensor | None = None,
                 R: torch.Tensor | None = None, who: str = "Frequencies") -> None:
        self.c, self.s, self.R, self.who = c, s, R, who
        self.ss = None
        if c is not None and (c.dim() == 0 or c.shape[-1] == 1):
            # one angle per oscillator (the classic model): x ↦ c·x + s·(−x1, x0), with the signed
            # sines laid out as component planes like the states solve steps
            s1 = s if s.dim() == 0 else s.squeeze(-1)
            self.ss = torch.stack((-s1, s1), dim=-1) if s1.dim() == 0 else torch.stack((-s1, s1), dim=-2).mT

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.R is not None:
            return (self.R @ x.unsqueeze(-1)).squeeze(-1)
        c, s = self.c, self.s
        if self.ss is not None and x.shape[-1] == 2:
            return torch.addcmul(x * c, x.flip(-1), self.ss)
        _even_n(x, self.who)
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((c * a - s * b, s * a + c * b), dim=-1).reshape(x.shape)

    def inverse(self) -> Rotation:
        """``exp(−tΩ)``."""
        if self.R is not None:
            return Rotation(R=self.R.mT, who=self.who)
        return Rotation(c=self.c, s=-self.s, who=self.who)


class AbstractFrequencies(nn.Module):
    """Interface of a natural-frequency term ``x ↦ Ω x`` with ``Ω`` skew-symmetric.

    Subclasses implement :meth:`pair_omega` (pairwise rotations) or override :meth:`apply`,
    :meth:`rotation`, :meth:`matrix` and :meth:`max_rate` together (a general skew matrix).
    Frequencies are data: their tensors must match the state's dtype and device (a float32
    state is never promoted to float64 by float64 frequencies; ``TypeError`` instead).
    """

    def pair_omega(self) -> torch.Tensor:
        """Angular velocity of every component pair, broadcastable against ``x[..., 0::2]``."""
        raise NotImplementedError(f"{type(self).__name__} does not act by pairwise rotations")

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Full check of a state against these frequencies (run once per public call): an even
        ``n`` for pairwise rotations, and dtype/device."""
        _even_n(x, type(self).__name__)
        _same_kind(self.pair_omega(), x, type(self).__name__, "frequencies")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``Ω x`` for a state ``[..., n]``; same shape as ``x``."""
        _even_n(x, type(self).__name__)
        w = self.pair_omega()
        _same_kind(w, x, type(self).__name__, "frequencies")
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((-w * b, w * a), dim=-1).reshape(x.shape)

    def rotation(self, t: float | torch.Tensor) -> Rotation:
        """The map ``x ↦ exp(tΩ) x``, exact (closed-form rotation of every pair), with its cos/sin
        computed once: integrators that rotate several vectors by the same ``t`` take the map
        once and apply it to each (a :class:`Rotation`)."""
        phi = self.pair_omega() * t
        # real arithmetic: inductor has no complex codegen
        return Rotation(c=torch.cos(phi), s=torch.sin(phi), who=type(self).__name__)

    def rotate(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """``exp(tΩ) x``, exactly (see :meth:`rotation`)."""
        self.check_input(x)
        return self.rotation(t)(x)

    def max_rate(self) -> float:
        """``max |ω|`` over every pair: the fastest angular velocity (one device sync). A fixed-step
        method that does not rotate Ω exactly needs ``dt · max_rate()`` within its stability limit."""
        w = self.pair_omega().detach()
        return float(w.abs().max()) if w.numel() else 0.0

    def matrix(self, n: int) -> torch.Tensor:
        """The skew matrices ``Ω``, shape ``[..., n, n]`` broadcastable over the oscillator axes."""
        if n % 2:
            raise ValueError(f"n: {type(self).__name__} needs an even sphere dimension, got n={n}")
        w = self.pair_omega()
        w = w.expand(*w.shape[:-1], n // 2) if w.dim() else w.expand(n // 2)
        return _block_diag_pairs(w, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x)


def _block_diag_pairs(w: torch.Tensor, n: int) -> torch.Tensor:
    """Block-diagonal skew matrices from pair velocities ``w [..., n/2]``."""
    out = torch.zeros(*w.shape[:-1], n, n, dtype=w.dtype, device=w.device)
    idx = torch.arange(0, n, 2, device=w.device)
    out[..., idx + 1, idx] = w
    out[..., idx, idx + 1] = -w
    return out


class Frequencies(AbstractFrequencies):
    """Given natural frequencies per oscillator.

    Args:
        omega: ``[N]`` (one angular velocity per oscillator, applied to every component pair),
            or ``[*batch, N, P]`` with ``P = n/2`` (one per pair) or ``P = 1`` (one per
            oscillator, the same on every pair). The oscillator axis must match the state's
            axis ``-2`` exactly (it never broadcasts across oscillators); ``batch`` axes
            broadcast over the state's leading axes, so ``omega`` of shape ``[S, N, 1]`` gives
            each of S seeds its own sample. Stored as the buffer ``omega`` (a parameter with
            ``learnable=True``); it must have the state's dtype and device.
        learnable: make ω a trainable parameter (default: a buffer, i.e. data).
    """

    def __init__(self, omega: torch.Tensor, learnable: bool = False) -> None:
        super().__init__()
        if not isinstance(omega, torch.Tensor) or not omega.is_floating_point():
            raise TypeError("omega: expected a floating-point torch.Tensor of shape [N] or [*batch, N, n/2]")
        if omega.dim() < 1 or omega.numel() == 0:
            raise ValueError(f"omega: expected shape [N] or [*batch, N, n/2] with N >= 1, got {tuple(omega.shape)}")
        if not bool(torch.isfinite(omega).all()):
            raise ValueError("omega: contains NaN or inf")
        omega = omega.detach().clone()
        if learnable:
            self.omega = nn.Parameter(omega)
        else:
            self.register_buffer("omega", omega)

    @property
    def num_oscillators(self) -> int:
        return self.omega.shape[0] if self.omega.dim() == 1 else self.omega.shape[-2]

    def pair_omega(self) -> torch.Tensor:
        return self.omega.unsqueeze(-1) if self.omega.dim() == 1 else self.omega

    def _check_fast(self, x: torch.Tensor) -> None:
        """Attribute compares only (every evaluation): oscillator count, pairs, dtype/device."""
        w = self.omega
        N = self.num_oscillators
        if x.dim() < 2 or x.shape[-2] != N:
            raise ValueError(f"x: omega has {N} oscillators but the state has {x.shape[-2] if x.dim() >= 2 else 0} on "
                             f"its oscillator axis -2 (shape {tuple(x.shape)}); frequencies never broadcast across "
                             f"oscillators")
        n = x.shape[-1]
        if n % 2:
            raise ValueError(f"x: Frequencies rotates component pairs and needs an even sphere dimension n, got n={n}")
        if w.dim() >= 2 and w.shape[-1] not in (1, n // 2):
            raise ValueError(f"x: omega has {w.shape[-1]} values per oscillator (one per component pair), but the "
                             f"state has n={n}, i.e. {n // 2} pair(s)")
        _same_kind(w, x, "Frequencies", "omega")

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Oscillator count, pairs, dtype/device, and that ω's batch axes broadcast into the state's."""
        try:
            self._check_fast(x)
        except (TypeError, ValueError) as exc:
            raise type(exc)(str(exc).replace("x: ", f"{name}: ", 1)) from None
        w = self.omega
        if w.dim() > 2:
            batch = tuple(x.shape[:-2])
            try:
                ok = torch.broadcast_shapes(tuple(w.shape[:-2]), batch) == batch
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(f"{name}: omega has batch shape {tuple(w.shape[:-2])}, which does not broadcast into "
                                 f"the state's batch axes {batch}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._check_fast(x)
        if x.shape[-1] == 2:  # the classic model: Ω x = ω (−x1, x0), in the state's memory order
            w = self.pair_omega()
            return x.flip(-1) * torch.cat((-w, w), dim=-1)
        w = self.pair_omega()
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((-w * b, w * a), dim=-1).reshape(x.shape)

    def extra_repr(self) -> str:
        per = "per_pair" if self.omega.dim() >= 2 and self.omega.shape[-1] > 1 else "per_oscillator"
        batch = f", batch={tuple(self.omega.shape[:-2])}" if self.omega.dim() > 2 else ""
        return f"N={self.num_oscillators}, {per}{batch}"


class RotationPairs(AbstractFrequencies):
    """The paper's learnable Ω: ω = ‖p‖ from a 2-vector parameter p, on every channel pair.

    Matches the official code's ``OmegaLayer`` (docs/AKORN.md §1.3), including its sign: there the
    pair velocity is ``(ω b, −ω a)``, i.e. clockwise, so this module's angular velocity is the
    official ``−ω`` (``pair_omega() = −‖p‖``). This matters only for parity with official
    checkpoints.

    Args:
        n: sphere dimension (even).
        groups: ``None`` for one ω shared by the whole layer (``global_omg=True``), or the
            number of oscillator slots ``C/n`` for one ω per channel pair (``[groups, n/2]``).
        spatial_dims: number of axes between the group axis and the sphere axis in the state
            (2 for image layout ``[B, C/n, H, W, n]``, 0 for ``[..., N, n]``).
        init_omega: initial ω (every parameter entry starts at ``init_omega/√2``).
        learnable: whether p is trained (``learn_omg``).
    """

    def __init__(self, n: int, groups: int | None = None, spatial_dims: int = 2, init_omega: float = 1.0,
                 learnable: bool = True) -> None:
        super().__init__()
        if not is_int(n) or n < 2 or n % 2:
            raise ValueError(f"n: expected an even integer >= 2, got {n!r}")
        groups = check_count(groups, "groups", optional=True)
        spatial_dims = check_count(spatial_dims, "spatial_dims", minimum=0)
        if not math.isfinite(init_omega):
            raise ValueError(f"init_omega: expected a finite float, got {init_omega}")
        self.n, self.groups, self.spatial_dims = n, groups, spatial_dims
        shape = (2,) if groups is None else (groups, n // 2, 2)
        self.p = nn.Parameter(torch.full(shape, float(init_omega) / math.sqrt(2.0)), requires_grad=learnable)

    def pair_omega(self) -> torch.Tensor:
        w = -torch.linalg.vector_norm(self.p, dim=-1)
        if self.groups is None:
            return w
        return w.reshape(self.groups, *([1] * self.spatial_dims), self.n // 2)

    def extra_repr(self) -> str:
        return f"n={self.n}, groups={self.groups}, spatial_dims={self.spatial_dims}"


class Skew(AbstractFrequencies):
    """A full learnable skew-symmetric ``Ω = P − Pᵀ``, global or per group.

    Args:
        n: sphere dimension (any ``n >= 2``).
        groups: ``None`` for one matrix, or the number of groups for ``[groups, n, n]``.
        spatial_dims: axes between the group axis and the sphere axis in the state.
        init_std: standard deviation of the initial entries of P.
        generator: random generator for the initialisation.
        learnable: whether P is trained.
    """

    def __init__(self, n: int, groups: int | None = None, spatial_dims: int = 0, init_std: float = 0.1,
                 generator: torch.Generator | None = None, learnable: bool = True) -> None:
        super().__init__()
        n = check_count(n, "n", minimum=2)
        groups = check_count(groups, "groups", optional=True)
        if not init_std >= 0:
            raise ValueError(f"init_std: expected a non-negative float, got {init_std}")
        self.n, self.groups, self.spatial_dims = n, groups, spatial_dims
        shape = (n, n) if groups is None else (groups, n, n)
        self.P = nn.Parameter(init_std * torch.randn(*shape, generator=generator), requires_grad=learnable)

    def matrix(self, n: int | None = None) -> torch.Tensor:
        if n is not None and n != self.n:
            raise ValueError(f"n: this Skew frequency is {self.n}×{self.n}, got n={n}")
        S = self.P - self.P.transpose(-1, -2)
        if self.groups is None:
            return S
        return S.reshape(self.groups, *([1] * self.spatial_dims), self.n, self.n)

    def max_rate(self) -> float:
        """The largest rotation rate, ``max ‖Ω‖₂`` over the groups (the spectral norm of a skew
        matrix is its fastest angular velocity)."""
        return float(torch.linalg.matrix_norm(self.matrix().detach(), ord=2).max())

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Sphere dimension and dtype/device of the state against the matrix."""
        if x.shape[-1] != self.n:
            raise ValueError(f"{name}: expected sphere dimension n={self.n}, got {x.shape[-1]}")
        _same_kind(self.P, x, "Skew", "matrix")

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.n:
            raise ValueError(f"x: expected sphere dimension n={self.n}, got {x.shape[-1]}")
        _same_kind(self.P, x, "Skew", "matrix")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return (self.matrix() @ x.unsqueeze(-1)).squeeze(-1)

    def rotation(self, t: float | torch.Tensor) -> Rotation:
        # One small matrix per group: matrix_exp is cheap here (not per oscillator), and done once.
        return Rotation(R=torch.linalg.matrix_exp(self.matrix() * t), who="Skew")

    def extra_repr(self) -> str:
        return f"n={self.n}, groups={self.groups}"


def _quantiles(num: int, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.arange(1, num + 1, dtype=torch.float64, device=device).div(num + 1).to(dtype)


def _sampler_args(num: int, width: float, name: str, center: float, dtype: torch.dtype | None) -> None:
    if not is_int(num) or num < 1:
        raise ValueError(f"num: expected a positive integer number of oscillators, got {num!r}")
    if not (is_real(width) and math.isfinite(width) and width > 0):
        raise ValueError(f"width: expected a positive finite {name}, got {width!r}")
    if not (is_real(center) and math.isfinite(center)):
        raise ValueError(f"center: expected a finite float, got {center!r}")
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating dtype (frequencies are real numbers), got {dtype}")


def _uniform01(num, quantile, generator, dtype, device):
    dtype = dtype or torch.get_default_dtype()
    if device is None and generator is not None:
        device = generator.device
    if quantile:
        return _quantiles(num, torch.float64, device), dtype
    u = torch.rand(num, generator=generator, dtype=torch.float64, device=device)
    return u.clamp(1e-300, 1.0), dtype


def lorentzian(num: int, width: float = 1.0, *, center: float = 0.0, quantile: bool = False,
               generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Natural frequencies from a Lorentzian (Cauchy) ``g(ω) = (Δ/π) / ((ω−ω0)² + Δ²)``.

    Args:
        num: number of oscillators N.
        width: half-width Δ (> 0).
        center: ω0.
        quantile: deterministic quantiles ``j/(N+1)`` (sorted) instead of random draws. Their
            tails reach ``|ω| ≈ Δ N/π``: thousands for N = 20000.
        generator: random generator (ignored with ``quantile=True``).
        dtype, device: of the result (computed in float64 and cast).

    Returns:
        ``[num]`` frequencies.
    """
    _sampler_args(num, width, "half-width Δ", center, dtype)
    u, dtype = _uniform01(num, quantile, generator, dtype, device)
    return (center + width * torch.tan(math.pi * (u - 0.5))).to(dtype)


def gaussian(num: int, width: float = 1.0, *, center: float = 0.0, quantile: bool = False,
             generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
             device: torch.device | str | None = None) -> torch.Tensor:
    """Natural frequencies from a Gaussian with standard deviation σ = ``width``.

    Arguments as in :func:`lorentzian`.
    """
    _sampler_args(num, width, "standard deviation σ", center, dtype)
    u, dtype = _uniform01(num, quantile, generator, dtype, device)
    u = u.clamp(1e-16, 1 - 1e-16)
    return (center + width * math.sqrt(2.0) * torch.erfinv(2 * u - 1)).to(dtype)


def uniform(num: int, width: float = 1.0, *, center: float = 0.0, quantile: bool = False,
            generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Natural frequencies uniform on ``[center − w, center + w]`` (w = ``width``, the half-width).

    Arguments as in :func:`lorentzian`.
    """
    _sampler_args(num, width, "half-width", center, dtype)
    u, dtype = _uniform01(num, quantile, generator, dtype, device)
    return (center + width * (2 * u - 1)).to(dtype)


def random_axis_rotations(omega: torch.Tensor, *, generator: torch.Generator | None = None) -> Skew:
    """Per-oscillator rotations of S² about uniformly random axes at angular velocities ``omega``.

    Oscillator i turns about a unit axis ``a_i`` (drawn in float64 from ``generator``) at rate ω_i:
    ``Ω_i = ω_i [a_i]_×``, with ``[a]_×`` the cross-product matrix. The n = 3 analogue of
    :class:`Frequencies` for the classic model.

    Args:
        omega: ``[N]`` angular velocities.
        generator: random generator of the axes.

    Returns:
        A non-learnable :class:`Skew` with ``groups=N`` (float64; cast with ``.to``).
    """
    if not isinstance(omega, torch.Tensor) or omega.dim() != 1:
        raise ValueError(f"omega: expected a 1-D tensor [N], got {getattr(omega, 'shape', type(omega).__name__)}")
    N = omega.shape[0]
    axis = torch.randn(N, 3, generator=generator, dtype=torch.float64)
    a = axis / axis.norm(dim=-1, keepdim=True)
    zero = torch.zeros_like(a[:, 0])
    cross = torch.stack([torch.stack([zero, -a[:, 2], a[:, 1]], -1), torch.stack([a[:, 2], zero, -a[:, 0]], -1),
                         torch.stack([-a[:, 1], a[:, 0], zero], -1)], dim=-2)  # [N, 3, 3], [a]_x
    module = Skew(3, groups=N, spatial_dims=0, learnable=False)
    with torch.no_grad():
        module.P.copy_(0.5 * omega.to(torch.float64)[:, None, None] * cross)  # Skew's matrix is P − Pᵀ
    return module
