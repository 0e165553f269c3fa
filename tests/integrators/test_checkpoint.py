"""Recursive (binomial) checkpointing of fixed-step solves: the gradient of backprop, in the
memory the schedule promises, with every step re-run a bounded number of times."""

from __future__ import annotations

import math

import pytest
import torch

import kuramoto as ku
from integrators import METHODS, RecursiveCheckpoint, get_solver, solve
from integrators.checkpoint import _spine

from .problems import GRAD_ATOL, NATIVE_FIXED, kuramoto_problem


def _learnable(n: int = 4, seed: int = 70):
    field, x0 = kuramoto_problem(n, N=5, seed=seed, batch=(2,), learnable=True)
    c = field.stimulus.clone().requires_grad_()
    field.stimulus = c
    return field, x0.clone().requires_grad_(), c


def _grads(field, x0, c, method: str, adjoint, t) -> tuple[torch.Tensor, ...]:
    sol = solve(field, x0, t, method, dt=0.05, adjoint=adjoint, observe={"r": ku.order_parameter, "E": field.energy})
    loss = (sol.xs[-1] * torch.arange(sol.xs.shape[-1], dtype=x0.dtype)).pow(2).sum() + sol.xs[2].sin().sum() \
        + sol.observed["r"].sum() + sol.observed["E"].sum()
    return torch.autograd.grad(loss, [x0, c, *field.parameters()])


SCHEDULES = [RecursiveCheckpoint(), RecursiveCheckpoint(segment=1), RecursiveCheckpoint(segment=3, snapshots=0),
             RecursiveCheckpoint(segment=1, snapshots=1), RecursiveCheckpoint(segment=2, snapshots=2),
             RecursiveCheckpoint(segment=1, snapshots=4)]


@pytest.mark.parametrize("spec", SCHEDULES, ids=repr)
def test_every_schedule_gives_the_backprop_gradient(spec: RecursiveCheckpoint) -> None:
    """23 steps over five output times (an uneven grid), a loss on states and observables: the
    gradient w.r.t. x0, the stimulus and every parameter equals backprop's (float64, 1e-10)."""
    field, x0, c = _learnable()
    t = [0.0, 0.2, 0.45, 0.8, 1.15]
    exact = _grads(field, x0, c, "lawson_rk4", False, t)
    got = _grads(field, x0, c, "lawson_rk4", spec, t)
    for a, b in zip(exact, got):
        torch.testing.assert_close(b, a, rtol=0, atol=GRAD_ATOL)
    assert all(g.abs().sum() > 0 for g in got)


@pytest.mark.parametrize("method", NATIVE_FIXED)
def test_binomial_schedule_for_every_fixed_step_method(method: str) -> None:
    field, x0, c = _learnable(3 if method in ("rkmk4", "cf4") else 4, seed=71)
    t = [0.0, 0.3, 0.7]
    spec = RecursiveCheckpoint(segment=1, snapshots=2)
    for a, b in zip(_grads(field, x0, c, method, False, t), _grads(field, x0, c, method, spec, t)):
        torch.testing.assert_close(b, a, rtol=0, atol=GRAD_ATOL)


@pytest.mark.parametrize("snapshots, repetitions", [(0, None), (1, None), (2, None), (3, None), (None, 1),
                                                    (None, 2), (None, 3), (None, None)])
def test_snapshots_bound_the_states_kept_and_the_reruns(snapshots: int | None, repetitions: int | None) -> None:
    """The forward pass keeps x0 and at most ``snapshots`` states; backward re-runs each step at most
    ``r`` times with C(s + r, s) ≥ the number of segments (Griewank's bound), plus once with a graph.
    Given ``repetitions`` (default 2) instead, the budget is the fewest snapshots that bound the
    re-runs by it."""
    field, x0, c = _learnable(seed=72)
    T = 20
    counter = {"no_grad": 0}
    solver = get_solver("rk4_normalized")
    step = solver.step

    def counted(*args, **kwargs):
        if not torch.is_grad_enabled():
            counter["no_grad"] += 1
        return step(*args, **kwargs)
    solver.step = counted  # an instance attribute: the count of this solve only
    spec = RecursiveCheckpoint(segment=1, snapshots=snapshots, repetitions=repetitions)
    sol = solve(field, x0, [0.0, T * 0.05], solver, dt=0.05, adjoint=spec, save_states=False)
    node = sol.x_final.grad_fn
    while type(node).__name__ != "_CheckpointedBackward":
        node = node.next_functions[0][0]
    kept = len(node.saved_tensors)  # what backward holds on to: x0 and the snapshots
    forward = counter["no_grad"]
    sol.x_final.pow(2).sum().backward()
    s = spec.snapshot_budget(T)
    if snapshots is None:  # the fewest snapshots for the repetition bound: C(s + r, s) >= T > C(s - 1 + r, s - 1)
        r_max = 2 if repetitions is None else repetitions
        assert math.comb(s + r_max, s) >= T and (s == 0 or math.comb(s - 1 + r_max, s - 1) < T)
        assert s == T - 1 if r_max == 1 else s < T - 1
    else:
        assert s == snapshots
    assert forward == T
    assert kept <= 1 + s, f"{kept} states kept for snapshots={snapshots}"
    reruns = counter["no_grad"] - forward
    if s == 0:  # no snapshot: every segment is reached from x0 again
        assert reruns <= T * (T - 1) // 2
    else:
        r = 0
        while math.comb(s + r, s) < T:
            r += 1
        assert reruns <= max(r - 1, 0) * T, (reruns, r)


def test_spine_uses_at_most_the_budget() -> None:
    for n in range(1, 60):
        for s in range(0, 8):
            pts = _spine(0, n, s)
            assert len(pts) <= s and pts == sorted(set(pts)) and all(0 < p < n for p in pts)


def test_default_segment_is_the_square_root_rule() -> None:
    spec = RecursiveCheckpoint()
    assert spec.segment_length(200, 4) == 4 and spec.segment_length(5000, 4) == 20 and spec.segment_length(3, 4) == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="segment: expected a positive integer"):
            RecursiveCheckpoint(segment=bad)
    with pytest.raises(ValueError, match="snapshots: expected a non-negative integer"):
        RecursiveCheckpoint(snapshots=-1)
    with pytest.raises(ValueError, match="repetitions: expected a positive integer"):
        RecursiveCheckpoint(repetitions=0)
    with pytest.raises(ValueError, match="snapshots, repetitions: give one of them"):
        RecursiveCheckpoint(snapshots=3, repetitions=2)
    with pytest.raises(ValueError, match="adjoint: a RecursiveCheckpoint schedule applies to native fixed-step"):
        solve(*kuramoto_problem(2, N=3, seed=73), [0.0, 1.0], "dopri5", adjoint=RecursiveCheckpoint())


def test_a_tensor_the_field_reaches_by_a_closure_is_named_not_dropped() -> None:
    """A tensor requiring grad that is not an attribute of the field would silently get no
    gradient from a checkpointed backward; it is an error instead."""
    field, x0 = kuramoto_problem(2, N=4, seed=74)
    hidden = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def closure_field(t, x):
        return field(t, x) * (1 + hidden)

    with pytest.raises(RuntimeError, match="adjoint: the field uses a tensor that requires grad but is neither x0 nor"):
        solve(closure_field, x0, [0.0, 0.5], "euler_normalized", dt=0.1, adjoint=True)
    # without anything to differentiate, adjoint=True is a plain solve
    plain = solve(field, x0, [0.0, 0.5], "euler_normalized", dt=0.1, adjoint=True)
    assert not plain.xs.requires_grad
    torch.testing.assert_close(plain.xs, solve(field, x0, [0.0, 0.5], "euler_normalized", dt=0.1).xs, rtol=0, atol=0)


def test_adjoint_true_is_recursive_checkpointing_for_native_fixed_methods() -> None:
    from integrators.inputs import check_adjoint as _check_adjoint

    for name in NATIVE_FIXED:
        assert _check_adjoint(True, get_solver(name)) == RecursiveCheckpoint()
    for name in ("dopri5_normalized", "lawson_dopri5", "rk4", "dopri5"):
        assert _check_adjoint(True, get_solver(name)) is True
    assert METHODS["lawson_rk4"].native
