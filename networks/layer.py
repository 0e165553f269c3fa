"""The AKOrN Kuramoto layer: a Kuramoto field on image-layout oscillators, run by an integrator.

A layer holds a coupling ``J`` (convolution or attention), an optional natural frequency Ω and
a stimulus normalisation; per call it builds the :class:`kuramoto.KuramotoField` with the
normalised stimulus ``ĉ`` (:meth:`KuramotoLayer.field`) and runs it:

- *discrete*: ``T`` steps of size γ of a fixed-step method. The default
  ``method="euler_normalized"`` is exactly the paper's update (AKOrN Eq. 4, docs/AKORN.md §1.9)::

      x_{t+1} = normalize(x_t + γ (Ω x_t + Proj_{x_t}(ĉ + J x_t)))

- *continuous*: the flow ``dx/dt = Ω x + Proj_x(ĉ + J x)`` over ``t_span = (t0, t1)`` with any
  registered method, adaptive included.

Feature maps ``[B, C, H, W]`` go in and out; inside, the state is the oscillator view
``[B, C/n, H, W, n]`` of the same memory (:func:`kuramoto.couplings.to_oscillators`), so the
convolution/attention and the sphere arithmetic share one memory order and no per-step layout
copies are made.

References:
    Miyato, Löwe, Geiger, Welling. Artificial Kuramoto Oscillatory Neurons. ICLR 2025,
    Eqs. 2–4 and §4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from integrators import METHODS, check_pairing, solve, step_fixed
from kuramoto.checks import check_bool, check_count, check_int, check_positive, is_real
from kuramoto.couplings.base import AbstractCoupling
from kuramoto.couplings.image import AbstractImageCoupling, to_features, to_oscillators
from kuramoto.field import KuramotoField
from kuramoto.frequencies import AbstractFrequencies, RotationPairs
from kuramoto.sphere import normalize

from .blocks import ScaleAndBias
from .states import check_feature_map, check_n, initial_state, learnable_initial_state

__all__ = ["KuramotoLayer", "Trajectory", "initial_state", "learnable_initial_state",  # these two: networks.states
           "use_integrator"]

StimulusNorm = Literal["gn", "sandb", "none"]
#: How the pairing messages name a discrete layer's run.
_DISCRETE = "a discrete layer (steps=T of size gamma, t_span=None)"


@dataclass(frozen=True)
class Trajectory:
    """What a Kuramoto layer went through, returned with ``return_trajectory=True``.

    Attributes:
        ts: ``[T+1]`` float64 times of the entries (discrete layers: ``t·γ``, with γ the
            effective step size).
        states: ``[T+1, B, C, H, W]`` states ``x_0 … x_T`` (``x_0`` normalised), or ``None``
            when the layer was called with ``save_states=False``.
        energy: ``[T+1, B]`` the paper's energy ``E(x_t) = −½ Σ x_tᵀ J(x_t) − Σ ĉᵀ x_t`` of every
            state (AKOrN Eq. 3; the coupling's bias counts as part of ``J x``).
        logged_energy: ``[T+1, B]`` the official code's per-step log (docs/AKORN.md §1.7): entry 0 is
            zero, entry ``t`` is ``−Σ x_{t−1} ⊙ (J(x_{t−1}) + ĉ)`` (state *before* step t, no ½).
    """

    ts: torch.Tensor
    states: torch.Tensor | None
    energy: torch.Tensor
    logged_energy: torch.Tensor


def _stimulus_norm(kind: object, channels: int, n: int) -> nn.Module:
    if kind == "gn":
        return nn.GroupNorm(channels // n, channels, affine=True)
    if kind == "sandb":
        return ScaleAndBias(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"stimulus_norm: expected 'gn', 'sandb' or 'none', got {kind!r}")


def _check_coupling(coupling: object, channels: int, n: int) -> None:
    if not isinstance(coupling, AbstractCoupling):
        raise TypeError(f"coupling: expected a kuramoto coupling (e.g. kuramoto.couplings.Conv or Attention), "
                        f"got {type(coupling).__name__}")
    if not isinstance(coupling, AbstractImageCoupling):
        raise ValueError(f"coupling: a Kuramoto layer needs an image coupling acting on [B, C/n, H, W, n] "
                         f"(state_dims = 4), got {type(coupling).__name__} with layout {coupling.layout}")
    if (coupling.channels, coupling.n) != (channels, n):
        raise ValueError(f"coupling: built for channels={coupling.channels}, n={coupling.n}, but the layer has "
                         f"channels={channels}, n={n}")


def _check_omega(omega: object, channels: int, n: int) -> None:
    if omega is None:
        return
    if not isinstance(omega, AbstractFrequencies):
        raise TypeError(f"omega: expected None or a kuramoto frequency module (e.g. RotationPairs), "
                        f"got {type(omega).__name__}")
    if isinstance(omega, RotationPairs):
        if omega.n != n:
            raise ValueError(f"omega: RotationPairs built for n={omega.n}, the layer has n={n}")
        if omega.groups not in (None, channels // n) or (omega.groups is not None and omega.spatial_dims != 2):
            raise ValueError(f"omega: expected RotationPairs(n) or RotationPairs(n, groups={channels // n}, "
                             f"spatial_dims=2), got groups={omega.groups}, spatial_dims={omega.spatial_dims}")


def _check_gamma(gamma: object, gamma_max: object, learn_gamma: object) -> tuple[float, float | None]:
    # ValueError for a step of the wrong kind too, as this layer always raised for its step sizes
    gamma = check_positive(gamma, "gamma", kind_error=ValueError)
    if gamma_max is None:
        return gamma, None
    gamma_max = check_positive(gamma_max, "gamma_max", kind_error=ValueError)
    if not learn_gamma:
        raise ValueError("gamma_max: bounds a learnable step; pass learn_gamma=True (or drop gamma_max for a "
                         "fixed γ)")
    if not gamma < gamma_max:
        raise ValueError(f"gamma: the initial step must lie below gamma_max={gamma_max}, got {gamma}")
    return gamma, gamma_max


def _method_error(method: object) -> ValueError:
    """The refusal of a ``method`` that is not a registered name (a solver object such as
    ``integrators.Compiled(...)``, or an unknown name)."""
    if isinstance(method, str):
        return ValueError(f"method: unknown integrator {method!r}; valid: {', '.join(sorted(METHODS))}")
    return ValueError(f"method: a KuramotoLayer takes a method by its registered name (a key of integrators.METHODS: "
                      f"a fixed-step one such as 'euler_normalized' for a discrete layer, any for a continuous one), "
                      f"not a {type(method).__name__} object; to run the layer compiled, compile the module "
                      f"instead: torch.compile(layer), or torch.compile(model) for the model around it")


def _check_discrete_method(method: str, gamma: object, adjoint: object, learn_gamma: bool) -> None:
    """A discrete layer's pairing of ``method`` with its fixed steps of size γ, a learnable γ and
    the checkpointed gradient (``adjoint``): :func:`integrators.check_pairing`, as ``step_fixed``
    and ``solve`` enforce it."""
    check_pairing(method, caller=_DISCRETE, dt=gamma, fixed_steps=True,
                  learnable_step="learn_gamma" if learn_gamma else None, checkpoint="adjoint" if adjoint else None)


def _check_schedule(method: object, t_span: object, adjoint: object, dt: object, rtol: object, atol: object,
                    gamma: float, learn_gamma: bool) -> float | None:
    """Check how the layer runs (method, continuous span or discrete steps, adjoint); returns ``dt``.

    The method pairings (adaptive vs discrete, ``dt`` for a fixed-step continuous solve, a
    native method for a learnable γ or the checkpointed gradient) are
    :func:`integrators.check_pairing`'s, checked once when the layer is built.
    """
    if not isinstance(adjoint, int):  # a bool is an int
        raise TypeError(f"adjoint: expected a bool or a segment length (int), got {type(adjoint).__name__}")
    if adjoint < 0 or (t_span is not None and not isinstance(adjoint, bool)):
        raise ValueError(f"adjoint: expected a bool, or for a discrete layer a positive number of steps per "
                         f"checkpoint segment, got {adjoint!r}")
    if not isinstance(method, str) or method not in METHODS:
        raise _method_error(method)
    if t_span is None:
        _check_discrete_method(method, gamma, adjoint, learn_gamma)
        if dt is not None:
            raise ValueError("dt: a discrete layer steps with gamma; dt is only for continuous layers (t_span)")
        return None
    if (not isinstance(t_span, (tuple, list)) or len(t_span) != 2
            or not all(is_real(v) and math.isfinite(v)
                       for v in t_span) or not t_span[1] > t_span[0]):
        raise ValueError(f"t_span: expected (t0, t1) with finite t1 > t0, got {t_span!r}")
    if learn_gamma:
        raise ValueError("learn_gamma: a continuous layer (t_span given) has no step size γ to learn")
    check_pairing(method, caller=f"a continuous layer (t_span={tuple(t_span)})", dt=dt, adjoint=bool(adjoint))
    check_positive(rtol, "rtol", kind_error=ValueError)
    check_positive(atol, "atol", kind_error=ValueError)
    return None if dt is None else check_positive(dt, "dt", kind_error=ValueError)


class KuramotoLayer(nn.Module):
    """The AKOrN Kuramoto layer on feature maps ``[B, C, H, W]`` (``C/n`` oscillators per position).

    The stimulus ``c`` is normalised once (``stimulus_norm``) and the flow
    ``dx/dt = Ω x + Proj_x(ĉ + J x)`` is run from ``x0`` either for ``steps`` discrete steps of
    size γ (``t_span=None``) or continuously over ``t_span``.

    **The official identity-Ω quirk.** In the official code a layer built without Ω adds
    ``x_t`` itself to the velocity (docs/AKORN.md §1.4), so its update is
    ``normalize(x + γ(x + v)) = normalize((1+γ)x + γv) = normalize(x + γ/(1+γ) · v)``: no
    rotation, but the effective step is ``γ/(1+γ)`` (0.5 for γ = 1). Every official
    object-discovery model ran this way. ``legacy_identity_omega=True`` reproduces it (for
    ``omega=None`` and the discrete ``euler_normalized`` update only) by stepping with
    ``γ/(1+γ)``, which is the same map; it is **off by default**, where ``omega=None`` means Ω = 0.

    Args:
        coupling: an image coupling (:class:`kuramoto.couplings.Conv` or
            :class:`kuramoto.couplings.Attention`) with ``C`` channels and oscillator dim ``n``.
        n: oscillator dimension.
        channels: number of channels C.
        omega: natural frequencies: ``None`` (Ω = 0) or a frequency module acting on the state
            ``[B, C/n, H, W, n]``, typically ``RotationPairs(n)`` (one ω for the layer) or
            ``RotationPairs(n, groups=C/n, spatial_dims=2)`` (one per channel pair).
        stimulus_norm: applied once to ``c`` before the steps: ``"gn"`` (GroupNorm with
            ``C/n`` groups, affine), ``"sandb"`` (per-channel scale 1 / bias 0), ``"none"``.
        steps: T, the number of discrete steps (discrete layers), or the number of equal
            intervals the trajectory of a continuous layer is reported at.
        gamma: step size γ of a discrete layer (> 0); with ``gamma_max``, its initial value.
        learn_gamma: make γ a trainable parameter (the official Sudoku model does).
        gamma_max: bound a learnable γ: ``γ = γ_max · sigmoid(θ)`` with θ the trained
            parameter (``gamma_logit``), so training can never push the step past ``γ_max``
            (the official model's free γ grew to 1.2 on 6×6 Sudoku and the network learnt a
            period-2 cycle of the discrete map). Needs ``learn_gamma=True`` and
            ``0 < gamma < gamma_max``. ``None`` (default): γ is the plain parameter ``gamma``.
        method: integrator name from ``integrators.METHODS``. Discrete layers accept the
            fixed-step ones (default ``"euler_normalized"``, the paper's update); native ones
            (``*_normalized``, Lie-group, ``lawson_rk4``) run through ``integrators.step_fixed``,
            torchdiffeq's (``"rk4"``, ...) through ``integrators.solve`` on the grid ``t_k = kγ``
            (fixed γ, no ``adjoint``). Continuous layers accept any method, adaptive included.
        t_span: ``(t0, t1)`` with ``t1 > t0`` for a continuous layer; ``None`` for a discrete one.
        adjoint: memory-lean gradients. Discrete: the exact gradient of the discrete map with
            every step recomputed in the backward pass (``integrators.step_fixed(...,
            checkpoint=True)``); an integer ``L > 1`` keeps one state per ``L`` steps instead of
            one per step (``checkpoint=L``: at T = 32 a conv layer's extra memory grew 1.75× from
            T = 4 with ``L = 2``, 2.6× with one per step). Continuous: torchdiffeq's adjoint
            (``integrators.solve(..., adjoint=True)``), a bool.
        project: apply the tangent projection to ``ĉ + Jx`` (``False`` is the official
            ``apply_proj=False`` ablation).
        legacy_identity_omega: reproduce the official identity-Ω quirk (see above).
        rtol, atol: tolerances of a continuous solve, passed on to methods that use them
            (adaptive ones); unused otherwise.
        dt: step of a fixed-step continuous solve (required for those; unused by discrete layers,
            whose step is γ).

    Shapes:
        ``forward(c [B, C, H, W], x0 [B, C, H, W] | None) -> x_T [B, C, H, W]``.

    References:
        AKOrN (Miyato et al., ICLR 2025) Eqs. 2–4; docs/AKORN.md §1.4–1.9.
    """

    def __init__(self, coupling: AbstractCoupling, n: int, channels: int, *,
                 omega: AbstractFrequencies | None = None, stimulus_norm: StimulusNorm = "none", steps: int = 3,
                 gamma: float = 1.0, learn_gamma: bool = False, gamma_max: float | None = None,
                 method: str = "euler_normalized",
                 t_span: tuple[float, float] | None = None, adjoint: bool = False, project: bool = True,
                 legacy_identity_omega: bool = False, rtol: float = 1e-6, atol: float = 1e-8,
                 dt: float | None = None) -> None:
        super().__init__()
        channels = check_int(channels, "channels", minimum=1)
        n = check_n(n, channels)
        _check_coupling(coupling, channels, n)
        _check_omega(omega, channels, n)
        steps = check_int(steps, "steps", minimum=1)
        gamma, gamma_max = _check_gamma(gamma, gamma_max, learn_gamma)
        for name, flag in (("learn_gamma", learn_gamma), ("project", project),
                           ("legacy_identity_omega", legacy_identity_omega)):
            check_bool(flag, name)
        dt = _check_schedule(method, t_span, adjoint, dt, rtol, atol, gamma, learn_gamma)
        if legacy_identity_omega:
            if omega is not None:
                raise ValueError("legacy_identity_omega: the official quirk exists only without Ω; pass omega=None")
            if t_span is not None or method != "euler_normalized":
                raise ValueError("legacy_identity_omega: the quirk is defined for the paper's discrete update only "
                                 "(method='euler_normalized', t_span=None)")

        self.n, self.channels, self.steps = n, channels, steps
        self.method, self.adjoint = method, adjoint
        self.t_span = None if t_span is None else (float(t_span[0]), float(t_span[1]))
        self.legacy_identity_omega = legacy_identity_omega
        self.rtol, self.atol, self.dt = float(rtol), float(atol), dt
        self.coupling = coupling
        self.omega = omega
        self.project = project
        self.stimulus_norm = _stimulus_norm(stimulus_norm, channels, n)
        self.gamma_max = gamma_max
        #: test-time factor on the step (see :meth:`use_integrator`); not part of the state dict
        self.step_scale = 1.0
        if gamma_max is not None:
            self.gamma_logit = nn.Parameter(torch.tensor(math.log(gamma / (gamma_max - gamma))))
        elif learn_gamma:
            self.gamma = nn.Parameter(torch.tensor(gamma))
        else:
            self.register_buffer("gamma", torch.tensor(gamma))

    @property
    def continuous(self) -> bool:
        return self.t_span is not None

    def step_gamma(self) -> torch.Tensor:
        """The step size γ as trained (a 0-d tensor): the parameter ``gamma``, or ``γ_max · sigmoid(θ)``."""
        if self.gamma_max is not None:
            return self.gamma_max * torch.sigmoid(self.gamma_logit)
        return self.gamma

    def step_size(self) -> torch.Tensor:
        """The effective step of the discrete update: γ, or ``γ/(1+γ)`` with the legacy identity-Ω quirk,
        times the test-time ``step_scale``."""
        gamma = self.step_gamma()
        h = gamma / (1 + gamma) if self.legacy_identity_omega else gamma
        return h * self.step_scale if self.step_scale != 1.0 else h

    def use_integrator(self, method: str | None = None, step_scale: float = 1.0) -> None:
        """Run this trained discrete layer with another fixed-step integrator and/or step at test time.

        The weights do not change: ``method`` replaces the update rule and every step becomes
        ``step_scale ·`` the trained one (0.5 with twice the steps covers the same time of the
        same flow, closer to the continuous dynamics). ``use_integrator()`` restores the
        default step; the method stays until changed again.

        Args:
            method: a fixed-step name from ``integrators.METHODS`` (``None``: keep the current one).
            step_scale: positive factor on the step.

        Raises:
            ValueError: a continuous layer, an adaptive or unknown method, a bad factor, or a
                method that cannot take this layer's γ (a learnt γ needs a native method).
        """
        if self.t_span is not None:
            raise ValueError("use_integrator: a continuous layer (t_span) has no discrete step; build one with the "
                             "method and dt you want")
        scale = check_positive(step_scale, "step_scale", kind_error=ValueError)
        if method is not None:
            if not isinstance(method, str) or method not in METHODS:
                raise _method_error(method)
            _check_discrete_method(method, self.step_gamma(), self.adjoint, self.step_gamma().requires_grad)
            if self.legacy_identity_omega and method != "euler_normalized":
                raise ValueError("method: the legacy identity-Ω quirk is defined for 'euler_normalized' only")
            self.method = method
        self.step_scale = scale

    def field(self, c: torch.Tensor) -> KuramotoField:
        """The layer's vector field for stimulus ``c`` ``[B, C, H, W]`` (normalised here by ``stimulus_norm``).

        A new :class:`kuramoto.KuramotoField` per call, sharing this layer's coupling and Ω:
        the stimulus is data of one call, and a gradient computed later (checkpoint recompute,
        adjoint) must see that call's stimulus, not the one of a later call. Use it to analyse
        the layer as a dynamical system (``field.energy(x)``, ``integrators.solve``); the state
        is ``to_oscillators(x, n)``.

        Raises:
            TypeError, ValueError: ``c`` is not a ``[B, C, H, W]`` map, or (on the CPU) holds NaN or inf.
        """
        check_feature_map(c, "c", self.channels)
        return self._field(c)

    def _field(self, c: torch.Tensor) -> KuramotoField:
        c_hat = self.stimulus_norm(c)
        return KuramotoField(self.coupling, self.omega, stimulus=to_oscillators(c_hat, self.n), project=self.project)

    def forward(self, c: torch.Tensor, x0: torch.Tensor | None = None, *, steps: int | None = None,
                generator: torch.Generator | None = None, return_trajectory: bool = False,
                save_states: bool = True) -> torch.Tensor | tuple[torch.Tensor, Trajectory]:
        """Run the layer.

        Args:
            c: stimulus ``[B, C, H, W]`` (normalised inside by ``stimulus_norm``, once).
            x0: initial state ``[B, C, H, W]`` (normalised per group of ``n`` channels), or
                ``None`` for a random state drawn from ``generator``.
            steps: T for this call (e.g. more steps at test time); default the constructor's.
                For a continuous layer: the number of trajectory intervals.
            generator: random generator of the initial state when ``x0`` is ``None``.
            return_trajectory: also return a :class:`Trajectory` (states and both energies).
            save_states: with ``return_trajectory``, keep the states in the trajectory
                (``False`` keeps only the energies, ``Trajectory.states = None``).

        Returns:
            ``x_T`` ``[B, C, H, W]``, or ``(x_T, Trajectory)``.

        Raises:
            TypeError, ValueError: naming the argument; a NaN or inf in ``c`` or ``x0`` is a
                ``ValueError`` (checked once per call, on the CPU only: reading the check's result
                on an accelerator would synchronise it).
        """
        check_feature_map(c, "c", self.channels)
        ref = self.step_gamma()
        if c.dtype != ref.dtype or c.device != ref.device:
            raise TypeError(f"c: dtype/device {c.dtype}/{c.device} does not match the layer's {ref.dtype}/{ref.device};"
                            f" move one of them (e.g. layer.to(c))")
        if x0 is None:
            x0 = initial_state(c, self.n, "random", generator=generator)
        else:
            check_feature_map(x0, "x0", self.channels)
            if x0.shape != c.shape:
                raise ValueError(f"x0: expected the stimulus's shape {tuple(c.shape)}, got {tuple(x0.shape)}")
            if x0.dtype != c.dtype or x0.device != c.device:
                raise TypeError(f"x0: dtype/device {x0.dtype}/{x0.device} does not match c's {c.dtype}/{c.device}")
        T = check_count(self.steps if steps is None else steps, "steps")
        check_bool(return_trajectory, "return_trajectory")

        field = self._field(c)  # c was checked above
        x = normalize(to_oscillators(x0, self.n))
        xT, xs, ts = self._run(field, x, T, return_trajectory)
        if not return_trajectory:
            return to_features(xT)
        energy, logged = [], [x.new_zeros(x.shape[0])]
        for t in range(xs.shape[0]):  # one state at a time: attention on all T+1 states at once can be huge
            e, le = field.energies(xs[t])
            energy.append(e)
            if t < xs.shape[0] - 1:
                logged.append(le)
        states = None
        if save_states:
            states = xs.permute(0, 1, 2, 5, 3, 4).reshape(xs.shape[0], x.shape[0], self.channels, *x.shape[2:4])
        traj = Trajectory(ts=ts, states=states, energy=torch.stack(energy), logged_energy=torch.stack(logged))
        return to_features(xT), traj

    def _run(self, field: KuramotoField, x: torch.Tensor, T: int,
             keep: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Integrate from the oscillator state ``x``; returns ``(x_T, states [T+1, ...] | None, ts [T+1])``."""
        solver_cls = METHODS[self.method]
        if self.t_span is None:
            dt = self.step_size()
            if solver_cls.native:
                xT, xs, _ = step_fixed(field, x, method=self.method, dt=dt, steps=T, checkpoint=self.adjoint,
                                       return_states=keep)
                ts = torch.arange(T + 1, dtype=torch.float64, device=x.device) * float(dt.detach()) if keep else None
                return xT, xs, ts
            # A torchdiffeq fixed-step method: T steps of size γ on the grid t_k = k γ (γ fixed here).
            h = float(dt)
            ts = torch.arange(T + 1, dtype=torch.float64, device=x.device) * h
            sol = solve(field, x, ts, method=self.method, dt=h, save_states=True)
            return sol.xs[-1], sol.xs, ts
        t0, t1 = self.t_span
        ts = torch.linspace(t0, t1, T + 1 if keep else 2, dtype=torch.float64, device=x.device)
        tol = {"rtol": self.rtol, "atol": self.atol} if solver_cls.uses_tolerances else {}
        sol = solve(field, x, ts, method=self.method, dt=self.dt, adjoint=self.adjoint, **tol)
        return sol.xs[-1], sol.xs, ts

    def extra_repr(self) -> str:
        run = f"steps={self.steps}" if self.t_span is None else f"t_span={self.t_span}"
        s = f"n={self.n}, channels={self.channels}, {run}, method={self.method!r}, adjoint={self.adjoint}"
        if self.gamma_max is not None:
            s += f", gamma_max={self.gamma_max}"
        if self.step_scale != 1.0:
            s += f", step_scale={self.step_scale}"
        return s + (", legacy_identity_omega=True" if self.legacy_identity_omega else "")


def use_integrator(model: nn.Module, method: str | None = None, step_scale: float = 1.0) -> int:
    """:meth:`KuramotoLayer.use_integrator` on every Kuramoto layer of ``model`` (a trained network
    run at test time with another fixed-step integrator and/or step). Returns how many layers
    changed (0 for a network without one, e.g. a Transformer baseline).

    Raises:
        TypeError: ``model`` is not a torch module.
        ValueError: as :meth:`KuramotoLayer.use_integrator`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {type(model).__name__}")
    layers = [m for m in model.modules() if isinstance(m, KuramotoLayer)]
    for layer in layers:
        layer.use_integrator(method, step_scale=step_scale)
    return len(layers)
