"""The torch.compile wrapper: same results, one graph for every time and step size."""

from __future__ import annotations

import pytest
import torch

from integrators import Compiled, solve, step_fixed

from .problems import kuramoto_problem


class _CountingBackend:
    """A torch.compile backend that runs the traced graph as is and counts compilations."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


@pytest.mark.parametrize("method", ["lawson_rk4"])
def test_compiled_matches_eager_and_compiles_once(method: str) -> None:
    torch._dynamo.reset()
    backend = _CountingBackend()
    field, x0 = kuramoto_problem(4, N=6, seed=40, batch=(2,))
    wrapped = Compiled(method, backend=backend)
    assert wrapped.order == 4 and wrapped.stays_on_sphere and not wrapped.adaptive and wrapped.native
    # output intervals of different lengths: different step sizes and times, still one graph
    t = [0.0, 0.13, 0.3, 0.31, 0.7]
    with torch.no_grad():
        a = solve(field, x0, t, wrapped, dt=0.05).xs
        b = solve(field, x0, t, method, dt=0.05).xs
        c, _, _ = step_fixed(field, x0, method=wrapped, dt=0.07, steps=5, t0=0.2)
        d, _, _ = step_fixed(field, x0, method=method, dt=0.07, steps=5, t0=0.2)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    torch.testing.assert_close(c, d, rtol=0, atol=1e-13)
    assert backend.graphs == 1
    assert "Compiled" in repr(wrapped)


def test_compiled_gradients_match() -> None:
    field, x0 = kuramoto_problem(2, N=4, seed=41, learnable=True)
    x0 = x0.requires_grad_()
    grads = []
    for method in ("heun_normalized", Compiled("heun_normalized", backend="eager")):
        x_T, _, _ = step_fixed(field, x0, method=method, dt=0.1, steps=4)
        grads.append(torch.autograd.grad(x_T.pow(3).sum(), [x0, field.coupling.J]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_compiled_refuses_what_it_cannot_wrap() -> None:
    with pytest.raises(ValueError, match="Compiled wraps native fixed-step methods, got 'dopri5_normalized'"):
        Compiled("dopri5_normalized")
    with pytest.raises(ValueError, match="got 'rk4'"):
        Compiled("rk4")
    with pytest.raises(TypeError, match="compile_options: expected a dict"):
        Compiled("rk4_normalized", compile_options=["cpp_wrapper"])


@pytest.mark.slow
def test_compiled_with_inductor() -> None:
    field, x0 = kuramoto_problem(2, N=64, seed=42, dtype=torch.float32)
    with torch.no_grad():
        a = solve(field, x0, [0.0, 0.5, 1.0], Compiled("lawson_rk4"), dt=0.01).xs
        b = solve(field, x0, [0.0, 0.5, 1.0], "lawson_rk4", dt=0.01).xs
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fuse", [1, 3])
def test_fused_steps_are_the_inner_steps(fuse: int) -> None:
    """``fuse`` steps per call: a step of size h equals ``fuse`` eager steps of size h / fuse."""
    torch._dynamo.reset()
    field, x0 = kuramoto_problem(3, N=5, seed=43)
    wrapped = Compiled("rk4_normalized", backend="eager", fuse=fuse)
    assert wrapped.stages == 4 * fuse and (f"fuse={fuse}" in repr(wrapped)) == (fuse > 1)
    t = [0.0, 0.3, 0.9]  # whole numbers of fused steps, so both grids are the same
    with torch.no_grad():
        a = solve(field, x0, t, wrapped, dt=0.1 * fuse)
        b = solve(field, x0, t, "rk4_normalized", dt=0.1)
    torch.testing.assert_close(a.xs, b.xs, rtol=0, atol=1e-13)
    assert a.stats["nfe"] == b.stats["nfe"]


@pytest.mark.parametrize("fuse", [0, -1, 1.5, True])
def test_fuse_must_be_a_positive_integer(fuse) -> None:
    with pytest.raises(ValueError, match="fuse: expected a positive integer"):
        Compiled("rk4_normalized", backend="eager", fuse=fuse)
