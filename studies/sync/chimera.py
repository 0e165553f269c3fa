"""A chimera state: identical oscillators on a ring with non-local coupling and a phase lag, split into
a synchronised and an incoherent half (Abrams & Strogatz, PRL 93, 174102, 2004).

    dφ_i/dt = ω + Σ_j (2π/N) G(x_i − x_j) sin(φ_j − φ_i − α),   G(x) = (1 + A cos x)/(2π),

x_i = −π + 2π i/N on the ring, A = 0.995, α = π/2 − β with β = 0.18, identical ω (0 in the
rotating frame). In this toolkit that is ``Dense(J, lag=α)`` with ``J_ij = (1 + A cos(x_i − x_j))/N``
and the paper's initial phases ``φ(x) = 6 r exp(−0.76 x²)``, r uniform in [−½, ½].

    python -m studies.sync.chimera --out docs/chimera.png

writes the figure: the phases along the ring at the end of the run (one half flat, the other
scattered) and the time-averaged phase velocity of every oscillator (the coherent half turns at
one common rate; the incoherent ones drift faster, the more so the farther they sit from it).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

import kuramoto as ku
from integrators import solve
from studies.figures import new_figure, save_figure

__all__ = ["chimera", "main", "plot_chimera"]


def chimera(N: int = 256, *, A: float = 0.995, beta: float = 0.18, t_transient: float = 1000.0,
            t_average: float = 200.0, dt: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Integrate the Abrams–Strogatz ring and measure the chimera.

    Args:
        N: oscillators on the ring (even).
        A: the coupling kernel's modulation, ``G(x) = (1 + A cos x)/(2π)`` (``0 ≤ A ≤ 1``).
        beta: ``π/2 − α`` (the lag α close to π/2 is what makes a chimera possible).
        t_transient, t_average: time before measuring, and the window of the phase velocities.
        dt: RK4 step (``rk4_normalized``; the coupling's rate is about 1).
        seed: of the initial phases.

    Returns:
        ``x`` [N] positions, ``phase`` [N] final phases relative to the locked group's mean
        phase (in (−π, π]), ``velocity`` [N] mean phase velocities over the window, ``locked``
        [N] whether an oscillator turns at the locked group's rate (within 10^-3), ``local_r``
        [N] the order parameter of each oscillator's neighbourhood (±N/16), and the parameters.
    """
    if isinstance(N, bool) or not isinstance(N, int) or N < 16 or N % 2:
        raise ValueError(f"N: expected an even number of oscillators >= 16, got {N!r}")
    if not 0 <= A <= 1:
        raise ValueError(f"A: expected 0 <= A <= 1, got {A!r}")
    if not 0 < beta < math.pi / 2:
        raise ValueError(f"beta: expected 0 < β < π/2 (α = π/2 − β), got {beta!r}")
    x = -math.pi + 2 * math.pi * torch.arange(N, dtype=torch.float64) / N
    J = (1 + A * torch.cos(x[:, None] - x[None, :])) / N
    field = ku.KuramotoField(ku.Dense(J, lag=math.pi / 2 - beta))
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(N, generator=g, dtype=torch.float64) - 0.5
    x0 = ku.from_phases(6 * r * torch.exp(-0.76 * x * x))
    warm = solve(field, x0, [0.0, t_transient], "rk4_normalized", dt=dt, save_states=False).x_final
    outputs = torch.linspace(0.0, t_average, int(round(t_average / 0.25)) + 1, dtype=torch.float64)
    sol = solve(field, warm, outputs, "rk4_normalized", dt=dt, save_states=False, observe={"phase": ku.to_phases})
    phases = np.unwrap(sol.observed["phase"].numpy(), axis=0)          # [T, N]
    velocity = (phases[-1] - phases[0]) / t_average
    final = sol.x_final
    local = _local_order(final, max(2, N // 16))
    # the locked group turns at one common rate: that of the most coherent neighbourhood
    v_ref = velocity[int(np.argmax(local))]
    locked = np.abs(velocity - v_ref) <= 1e-3 * max(1.0, abs(v_ref))
    z = final[torch.from_numpy(locked)].mean(0)
    rel = np.angle(np.exp(1j * (ku.to_phases(final).numpy() - math.atan2(float(z[1]), float(z[0])))))
    return {"x": x.numpy(), "phase": rel, "velocity": velocity, "local_r": local, "locked": locked, "N": N, "A": A,
            "beta": beta, "t": t_transient + t_average, "t_average": t_average}


def _local_order(x: torch.Tensor, half: int) -> np.ndarray:
    """|mean of the 2·half + 1 unit vectors around each oscillator| on the ring."""
    N = x.shape[0]
    idx = (torch.arange(N)[:, None] + torch.arange(-half, half + 1)[None, :]) % N
    return torch.linalg.vector_norm(x[idx].mean(1), dim=-1).numpy()


def plot_chimera(result: dict[str, Any], path: str | Path) -> Path:
    """Phases along the ring and the mean phase velocity profile (atomically written PNG)."""
    fig = new_figure((10, 3.8))
    ax, ax_v = fig.subplots(1, 2)
    locked = result["locked"]
    ax.scatter(result["x"][locked], result["phase"][locked], s=9, color="tab:blue",
               label=f"coherent: locked at one rate ({int(locked.sum())})")
    ax.scatter(result["x"][~locked], result["phase"][~locked], s=9, color="tab:orange",
               label=f"incoherent: drifting ({int((~locked).sum())})")
    ax.set_xlim(-math.pi, math.pi)
    ax.set_ylim(-math.pi, math.pi)
    ax.set_xlabel("position x on the ring")
    ax.set_ylabel("phase φ − φ_coherent (rad)")
    ax.set_title(f"phases at t = {result['t']:g}", fontsize=10)
    ax.legend(fontsize=7.5, loc="lower left")
    ax.grid(alpha=0.3)
    ax_v.plot(result["x"][locked], result["velocity"][locked], ".", ms=4, color="tab:blue")
    ax_v.plot(result["x"][~locked], result["velocity"][~locked], ".", ms=4, color="tab:orange")
    ax_v.set_xlim(-math.pi, math.pi)
    ax_v.set_xlabel("position x on the ring")
    ax_v.set_ylabel("mean phase velocity (rad per time unit)")
    ax_v.set_title(f"mean phase velocity over the last {result['t_average']:g} time units", fontsize=10)
    ax_v.grid(alpha=0.3)
    fig.suptitle(f"Chimera state (Abrams & Strogatz 2004): N = {result['N']}, G(x) = (1 + {result['A']:g} cos x)/2π, "
                 f"α = π/2 − {result['beta']:g}", fontsize=10.5)
    return save_figure(fig, path, dpi=130)


def main(argv: list[str] | None = None) -> int:
    """``python -m studies.sync.chimera [--N 256] [--seed 0] [--out docs/chimera.png]``."""
    parser = argparse.ArgumentParser(prog="python -m studies.sync.chimera", description=__doc__.split("\n\n")[0])
    parser.add_argument("--N", type=int, default=256, help="oscillators on the ring (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial phases (default 0)")
    parser.add_argument("--out", default="docs/chimera.png", help="the figure (default docs/chimera.png)")
    args = parser.parse_args(argv)
    result = chimera(args.N, seed=args.seed)
    locked = result["locked"]
    print(f"locked (coherent) oscillators: {int(locked.sum())} of {args.N}; mean phase velocity: locked "
          f"{result['velocity'][locked].mean():.4f}, drifting {result['velocity'][~locked].mean():.4f} "
          f"(range {result['velocity'][~locked].min():.4f} to {result['velocity'][~locked].max():.4f})")
    print(f"wrote {plot_chimera(result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
