"""torchsde's methods for the noisy flow in the ambient space (delegated, as torchdiffeq is for ODEs).

torchsde (an optional dependency: ``pip install akorn-toolkit[sde]``) integrates
``dy = F(t, y) dt + G(t, y) ∘ dW`` on flat states ``[B, d]``. The noisy Kuramoto flow is handed
to it as such an SDE with *general* noise given as a product ``G(t, y)·v`` (``g_prod``: the
``[d, m]`` diffusion matrix is never built), ``y`` the state flattened to ``[B, N·n]``:

- Stratonovich methods (``torchsde_heun``, ``torchsde_midpoint``, ``torchsde_euler_heun``) take
  the drift as it is (``reversible_heun`` and ``milstein``/``srk`` need the full diffusion matrix or
  diagonal noise and are not offered);
- the Itô method ``torchsde_euler`` (Euler–Maruyama) takes the Itô drift ``f − D(n − 1) x/|x|²``
  (``f − D x`` for the n = 2 phase noise ``sqrt(2D) J x ∘ dW``), the Stratonovich-to-Itô
  correction of Brownian motion on the sphere, so both describe the same process.

They do not renormalise: the states drift off the spheres by their own error (solve_sde warns
beyond ``drift_tol``, as :func:`integrators.solve` does for torchdiffeq). Their Wiener increments
come from the same source as the native methods' (:mod:`integrators.brownian`), so a torchsde
method and a native one can be compared on one path. torchsde's strong orders are stated for
general noise (1/2); with the n = 2 phase noise, which commutes, its Heun and midpoint reach 1.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import torch

from kuramoto import sphere_noise

from .brownian import AbstractBrownian
from .sde import AbstractSDESolver

__all__ = ["TORCHSDE_METHODS", "TorchsdeMethod", "have_torchsde", "torchsde_step"]

HAVE_TORCHSDE = importlib.util.find_spec("torchsde") is not None


def have_torchsde() -> bool:
    """Whether the optional torchsde package is installed."""
    return HAVE_TORCHSDE


class TorchsdeMethod(AbstractSDESolver):
    """A torchsde method on the ambient form (module docstring); ``name`` is ``torchsde_<method>``."""

    native: ClassVar[bool] = False
    stays_on_sphere: ClassVar[bool] = False
    torchsde_name: ClassVar[str]
    sde_type: ClassVar[str] = "stratonovich"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not HAVE_TORCHSDE:
            raise ValueError(f"method: {self.name!r} delegates to torchsde, which is not installed; "
                             f"pip install 'akorn-toolkit[sde]' (or torchsde), or use a native method "
                             f"('lawson_heun', 'stratonovich_heun', 'euler_maruyama')")

    def step(self, field: Any, t: Any, dt: Any, x: torch.Tensor, dW: torch.Tensor | None, cache: Any) -> Any:
        raise TypeError(f"method: {self.name!r} is stepped by torchsde over whole output intervals "
                        f"(solve_sde), not step by step")


def _method(method: str, order: float, stages: int, ode: str, sde_type: str = "stratonovich") -> type[TorchsdeMethod]:
    doc = (f"torchsde's ``{method}`` ({sde_type}), ambient; {stages} drift evaluation(s) per step; strong order "
           f"{order:g} with the n = 2 phase noise, 1/2 for n ≥ 3 (module docstring); without noise "
           f"torchdiffeq's ``{ode}`` up to rounding.")
    return type(f"Torchsde_{method}", (TorchsdeMethod,), {
        "__doc__": doc, "name": f"torchsde_{method}", "torchsde_name": method, "strong_order": order,
        "stages": stages, "sde_type": sde_type, "ode_method": ode, "__module__": __name__})


TORCHSDE_METHODS: dict[str, type[TorchsdeMethod]] = {cls.name: cls for cls in (
    _method("euler", 0.5, 1, "euler", "ito"),
    _method("heun", 1.0, 2, "heun2"),
    _method("midpoint", 1.0, 2, "midpoint"),
    _method("euler_heun", 1.0, 1, "euler"),
)}


class _AmbientSDE(torch.nn.Module):
    """The noisy flow on flat states ``[B, N·n]`` in torchsde's protocol (``f``, ``g_prod``)."""

    noise_type = "general"

    def __init__(self, field: Any, shape: tuple[int, ...], sigma: Any, sde_type: str) -> None:
        super().__init__()
        self.field, self.shape, self.sigma, self.sde_type = field, shape, sigma, sde_type
        self.n = shape[-1]
        self.noise_shape = (*shape[:-1], 1) if self.n == 2 else shape

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = y.reshape(self.shape)
        v = self.field(t, x)
        if self.sde_type == "ito":
            D = 0.5 * self.sigma * self.sigma
            # Itô correction of sqrt(2D) g ∘ dW: ½ Σ (∂g) g = −D (n − 1) x/|x|² (−D x for the phase noise)
            scale = 1.0 if self.n == 2 else (self.n - 1) / (x * x).sum(-1, keepdim=True)
            v = v - D * scale * x
        return v.reshape(y.shape)

    def g_prod(self, t: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = y.reshape(self.shape)
        return (self.sigma * sphere_noise(x, v.reshape(self.noise_shape))).reshape(y.shape)


def _brownian_adapter(brownian: AbstractBrownian, batch: int) -> Any:
    """The toolkit's increments in torchsde's ``BaseBrownian`` form (``[B, m]`` per query)."""
    import torchsde  # optional dependency, present when a TorchsdeMethod was built

    width = int(torch.Size(brownian.shape).numel()) // max(batch, 1)

    class _Adapter(torchsde.BaseBrownian):
        __slots__ = ()

        def __call__(self, ta: Any, tb: Any = None, return_U: bool = False, return_A: bool = False) -> torch.Tensor:
            return brownian(float(ta), float(tb)).reshape(batch, width)

        def __repr__(self) -> str:
            return f"toolkit {brownian!r}"

        dtype = property(lambda self: brownian.dtype)
        device = property(lambda self: brownian.device)
        shape = property(lambda self: torch.Size((batch, width)))
        levy_area_approximation = property(lambda self: "none")

    return _Adapter()


def torchsde_step(solver: TorchsdeMethod, field: Any, x: torch.Tensor, a: float, b: float, steps: int,
                  sigma: Any, brownian: AbstractBrownian, extra: Any) -> tuple[torch.Tensor, Any]:
    """Advance ``x`` from ``a`` to ``b`` in ``steps`` equal steps with torchsde; returns the state
    and torchsde's extra solver state (carried to the next interval, e.g. by reversible Heun)."""
    import torchsde  # optional dependency, present when a TorchsdeMethod was built

    shape = tuple(x.shape)
    batch = 1 if x.dim() <= 2 else int(torch.Size(shape[:-2]).numel())
    sde = _AmbientSDE(field, shape, sigma, solver.sde_type)
    h = (b - a) / steps
    ts = torch.tensor([a, b], dtype=torch.float64, device=x.device)
    # a step a hair longer than h so that accumulated times land on b after exactly `steps` steps
    ys, extra = torchsde.sdeint(sde, x.reshape(batch, -1), ts, bm=_brownian_adapter(brownian, batch),
                                method=solver.torchsde_name, dt=h * (1 + 1e-10), extra=True,
                                extra_solver_state=extra)
    return ys[-1].reshape(shape), extra
