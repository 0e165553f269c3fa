"""The torch.compile wrapper: same results, one graph for every time and step size."""

from __future__ import annotations

import math

import pytest
import torch

import kuramoto as ku
from integrators import Compiled, SolverError, solve, step_fixed

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
    with pytest.raises(ValueError, match="Compiled wraps native methods .*, got 'dopri5'"):
        Compiled("dopri5")
    with pytest.raises(ValueError, match="got 'rk4'"):
        Compiled("rk4")
    with pytest.raises(ValueError, match="fuse: an adaptive method takes the steps its controller chooses"):
        Compiled("lawson_dopri5", fuse=2)
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


def _classic_batch(K: torch.Tensor, seeds: int, N: int, seed: int = 60):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(seeds, N, 1, generator=g, dtype=torch.float64)
    field = ku.KuramotoField(ku.MeanField(K.view(-1, 1, 1, 1)), omega=ku.Frequencies(w))
    x0 = ku.random_states(seeds, N, n=2, generator=g, dtype=torch.float64).expand(len(K), seeds, N, 2)
    return field, x0


def test_solve_program_compiles_once_for_new_values() -> None:
    """One compile per (method, shapes, dtype, observables): new K, ω, t and x0 values are inputs
    of the same program (issue 14: a Python-float K recompiled for every value)."""
    torch._dynamo.reset()
    backend = _CountingBackend()
    method = Compiled("lawson_rk4", backend=backend)
    obs = {"r": ku.order_parameter}
    field, x0 = _classic_batch(torch.tensor([0.5, 1.5, 3.0], dtype=torch.float64), 2, 7)
    runs = []
    with torch.no_grad():
        for scale in (1.0, 2.0, 0.5):
            field.coupling.k.mul_(scale)
            field.omega.omega.mul_(scale)
            t = torch.linspace(0.1 * scale, 0.1 * scale + 1.0, 11, dtype=torch.float64)
            x = ku.normalize(x0 + 0.1 * scale)
            runs.append((solve(field, x, t, method, dt=0.025, observe=obs),
                         solve(field, x, t, "lawson_rk4", dt=0.025, observe=obs)))
    assert backend.graphs == 1
    for compiled, eager in runs:
        torch.testing.assert_close(compiled.xs, eager.xs, rtol=0, atol=1e-13)
        torch.testing.assert_close(compiled.observed["r"], eager.observed["r"], rtol=0, atol=1e-13)
        assert compiled.stats == eager.stats and compiled.xs.is_contiguous()


def test_a_sweep_over_K_is_one_batched_solve() -> None:
    """A whole r(K) × seeds sweep through the public API in one solve equals one solve per K."""
    torch._dynamo.reset()
    K = torch.linspace(0.0, 4.0, 5, dtype=torch.float64)
    field, x0 = _classic_batch(K, 3, 9)
    t = torch.linspace(0, 2, 5, dtype=torch.float64)
    obs = {"r": ku.order_parameter}
    with torch.no_grad():
        batched = solve(field, x0, t, Compiled("lawson_rk4", backend="eager"), dt=0.05, observe=obs,
                        save_states=False)
        for i, k in enumerate(K.tolist()):
            one = ku.KuramotoField(ku.MeanField(k), omega=field.omega)
            alone = solve(one, x0[i], t, "lawson_rk4", dt=0.05, observe=obs, save_states=False)
            torch.testing.assert_close(batched.observed["r"][:, i], alone.observed["r"], rtol=0, atol=1e-13)
    assert batched.observed["r"].shape == (5, 5, 3)


def test_blow_up_inside_the_compiled_program_names_the_time() -> None:
    """Finiteness is tracked inside the program and checked per chunk: the error still names the
    first non-finite output time and keeps the outputs before it."""
    torch._dynamo.reset()
    field, x0 = kuramoto_problem(2, N=4, seed=61)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    field.coupling.J[0, 0] = math.inf  # constructed finite, poisoned afterwards
    with torch.no_grad(), pytest.raises(SolverError, match=r"'compiled:rk4_normalized'.*NaN or inf by t = 0.1 ") as info:
        solve(field, x0, t, Compiled("rk4_normalized", backend="eager"), dt=0.05, check_stability=False)
    sol = info.value.solution
    assert sol.status == "nonfinite" and torch.equal(sol.xs[0], x0) and torch.isnan(sol.xs[1:]).all()


def test_compiled_adaptive_method_matches_eager() -> None:
    torch._dynamo.reset()
    field, x0 = kuramoto_problem(4, N=6, seed=62)
    with torch.no_grad():
        a = solve(field, x0, [0.0, 0.5, 1.0], Compiled("lawson_dopri5", backend="eager"), rtol=1e-8, atol=1e-10)
        b = solve(field, x0, [0.0, 0.5, 1.0], "lawson_dopri5", rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(a.xs, b.xs, rtol=0, atol=1e-12)
    assert a.stats == b.stats and a.stats["steps"] > 2
