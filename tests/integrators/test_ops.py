"""The eager hot path, counted (not timed): aten calls dispatched per step, as torch.profiler sees them."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

import kuramoto as ku
from integrators import get_solver
from kuramoto.sphere import component_major


def _top_level_aten_calls(fn) -> int:
    """aten ops called from Python (a profiler event named aten::* whose parent is not one)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    return sum(1 for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))


def test_an_eager_lawson_rk4_step_on_the_mean_field_is_at_most_60_aten_calls() -> None:
    """Issue 14 item 4: one step issued ~146 aten calls from Python (229 profiler events in all),
    with per-evaluation validation on top; the target is 60."""
    g = torch.Generator().manual_seed(0)
    N = 64
    field = ku.KuramotoField(ku.MeanField(2.0), omega=ku.Frequencies(ku.lorentzian(N, 0.5, generator=g,
                                                                                    dtype=torch.float64)))
    x = component_major(ku.random_states(N, n=2, generator=g, dtype=torch.float64))
    solver = get_solver("lawson_rk4")
    cache = solver.init(field, 0.0, x, dt=0.01)
    with torch.no_grad():
        solver.step(field, 0.0, 0.01, x, cache)
        calls = _top_level_aten_calls(lambda: solver.step(field, 0.0, 0.01, x, cache))
    assert calls <= 60, calls
