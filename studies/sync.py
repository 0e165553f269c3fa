"""``akorn sync``: the synchronisation transition of the Kuramoto model, r(K) against theory.

The classic experiment (Kuramoto 1975; Strogatz 2000): N oscillators with natural
frequencies ω_i drawn from a density g(ω), coupled all-to-all with strength K,

    dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i)     (n = 2; in vector form on S^{n−1} in general),

run through a transient from random phases, then the order parameter r = |mean_j e^{iθ_j}|
averaged over time, for K on a grid and several seeds. Above K_c = 2/(π g(0)) (K_c = 2Δ for a
Lorentzian of half-width Δ) a locked cluster forms and r follows Kuramoto's self-consistency
curve (``sqrt(1 − 2Δ/K)`` for the Lorentzian); below it r is O(1/√N). The default is the
textbook case: n = 2, all-to-all, quantile-sampled Lorentzian ω with Δ = 0.5, N = 2000,
K ∈ [0, 4] at 21 values, 3 seeds. Options cover Gaussian and uniform g (the uniform case
jumps at K_c), adiabatic forward/backward sweeps (hysteresis), several N (finite-size
scaling), vector oscillators (n = 3, 4) and sparse graphs (ring, Erdős–Rényi, 2-D lattice).

**Why the integrator treats the rotation exactly.** The Lorentzian has heavy tails:
quantile-sampled at N = 2000 the fastest oscillators turn at |ω| ≈ ΔN/π ≈ 320 (thousands at
N = 20000). An explicit Runge–Kutta step is stable for a rotation only while h|ω| stays below
its stability limit (≈ 2.8 for RK4); beyond it those oscillators blow up or, renormalised,
jump around the circle at random. Their garbage enters the mean field that every other
oscillator feels and can make the whole population falsely lock (r ≈ 0.99 at K = 0.5 with
RK4 at h = 0.05, where the true r is ≈ 0). Dropping the fast oscillators would change g(ω)
and hence the physics. The default method, ``lawson_rk4`` (an integrating-factor /
exponential Runge–Kutta method), writes the flow as ``x' = Ωx + F(x)``, integrates the
rotation ``exp(tΩ)`` in closed form and applies RK4 only to the coupling in the rotating
frame. The rotation is then exact for every |ω| (a fast oscillator just turns, as it should,
and its contribution to the mean field averages out) and the step size is limited only by
the coupling (h·K ≲ 1), not by the fastest oscillator. A method that does not treat the
rotation exactly is accepted only with a step that resolves the fastest rotation
(h·max|ω| ≤ 1); otherwise :func:`run` refuses with an error that names ``dt``. Adaptive
methods control their step and are accepted as they are (they are slow on the tails).

Results (``sync.h5``): ``r`` (time-averaged order parameter) over ``K × N × seed`` (and
``direction`` for adiabatic sweeps), the trajectories ``r_t`` and, for n = 2, the complex
order parameter ``Z_t`` (stored as ``Z_t_real``, ``Z_t_imag``) over ``time``, the theory
curve ``r_theory``, ``K_c``, the solver statistics, and the fastest natural frequency. The run
streams: after every time chunk the new samples are appended to the file and the states are
checkpointed, so a killed run resumes from its last complete chunk with an identical result.

References:
    Y. Kuramoto, *Chemical Oscillations, Waves, and Turbulence* (1984);
    S. H. Strogatz, "From Kuramoto to Crawford", Physica D 143 (2000);
    J. D. Lawson, "Generalized Runge–Kutta processes ...", SIAM J. Numer. Anal. 4 (1967).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import xarray as xr

from studies.config import ConfigError, StudyConfig, param

__all__ = ["FILENAME", "ROTATION_EXACT", "Config", "build_coupling", "build_frequencies", "plot", "run", "summarize"]

FILENAME = "sync.h5"

#: Methods that integrate the natural rotation exp(tΩ) in closed form, so that their step is
#: not limited by the fastest oscillator.
ROTATION_EXACT = frozenset({"lawson_rk4"})

#: Largest h·max|ω| accepted for a fixed-step method that does not rotate exactly.
MAX_ROTATION_PER_STEP = 1.0


@dataclasses.dataclass(frozen=True)
class Config(StudyConfig):
    """Parameters of the synchronisation study (defaults: the quick preset)."""

    study: ClassVar[str] = "sync"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"N": (20000,), "k_num": 41, "seeds": 8, "t_transient": 200.0, "t_average": 200.0, "dt": 0.05,
                  "chunks": 10},
    }

    N: tuple[int, ...] = param((2000,), "numbers of oscillators (several values for finite-size scaling)",
                               metavar="INT")
    n: int = param(2, "sphere dimension of an oscillator: 2 is the classic phase model, 3 and 4 vector oscillators")
    k_min: float = param(0.0, "smallest coupling strength K", units="1")
    k_max: float = param(4.0, "largest coupling strength K", units="1")
    k_num: int = param(21, "number of K values, evenly spaced from k_min to k_max")
    distribution: Literal["lorentzian", "gaussian", "uniform"] = param(
        "lorentzian", "natural-frequency density g(ω) (uniform shows the first-order jump)")
    width: float = param(0.5, "width of g(ω): Lorentzian half-width Δ, Gaussian σ, uniform half-width", units="1")
    quantile: bool = param(True, "deterministic quantile frequencies (seeds then differ only in initial states); "
                                 "--no-quantile draws them at random per seed")
    graph: Literal["complete", "ring", "erdos_renyi", "lattice"] = param(
        "complete", "coupling graph; sparse graphs use weight K/(mean degree) so that K is comparable")
    degree: int = param(10, "mean degree of the ring (even) and Erdős–Rényi graphs (the 2-D lattice has 4)")
    sweep: Literal["independent", "forward", "backward", "both"] = param(
        "independent", "independent: every K starts from random phases; forward/backward/both: adiabatic "
                       "continuation along increasing/decreasing K (hysteresis)")
    seeds: int = param(3, "number of seeds (random initial states; frequencies too with --no-quantile)")
    seed: int = param(0, "first seed")
    t_transient: float = param(40.0, "transient discarded before averaging r (per K value)", units="1")
    t_average: float = param(40.0, "time over which r is averaged (per K value)", units="1")
    dt: float = param(0.125, "integrator step (initial step for adaptive methods)", units="1")
    sample_dt: float = param(0.5, "interval at which r(t) is recorded (a multiple of dt)", units="1")
    chunks: int = param(4, "time chunks of an independent sweep: the file is appended and checkpointed after each "
                           "(adiabatic sweeps checkpoint after every K value)")
    method: str = param("lawson_rk4", "integrator (integrators.METHODS); the default rotates exactly, see the "
                                      "module doc")
    dtype: Literal["float64", "float32"] = param("float64", "floating-point precision")
    device: str = param("cpu", "torch device")

    def validate(self) -> None:
        self._positive("N", "k_num", "width", "seeds", "t_average", "dt", "sample_dt", "chunks", "degree")
        self._positive("k_min", "t_transient", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected a sphere dimension >= 2, got {self.n}")
        if len(set(self.N)) != len(self.N):
            raise ConfigError("N", f"expected distinct values, got {self.N}")
        if self.k_num > 1 and not self.k_max > self.k_min:
            raise ConfigError("k_max", f"must be greater than k_min={self.k_min:g}, got {self.k_max:g} (the K range "
                                       f"is reversed or empty; for a decreasing sweep use --sweep backward)")
        if self.k_num == 1 and self.k_max < self.k_min:
            raise ConfigError("k_max", f"must be >= k_min={self.k_min:g}, got {self.k_max:g}")
        if self.seed < 0:
            raise ConfigError("seed", f"expected a non-negative integer, got {self.seed}")
        for name in ("sample_dt", "t_transient", "t_average"):
            value, unit = getattr(self, name), ("dt" if name == "sample_dt" else "sample_dt")
            ratio = value / getattr(self, unit)
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                raise ConfigError(name, f"must be a multiple of {unit}={getattr(self, unit):g}, got {value:g}")
        if self.chunks > self.samples_per_segment and self.sweep == "independent":
            raise ConfigError("chunks", f"at most {self.samples_per_segment} chunks (one per recorded sample), "
                                        f"got {self.chunks}")
        if self.graph == "lattice":
            for N in self.N:
                if math.isqrt(N) ** 2 != N or N < 9:
                    raise ConfigError("N", f"the 2-D lattice needs square numbers >= 9 of oscillators, got {N}")
        if self.graph in ("ring", "erdos_renyi"):
            if self.graph == "ring" and self.degree % 2:
                raise ConfigError("degree", f"a ring needs an even degree (k neighbours on each side), got "
                                            f"{self.degree}")
            if self.degree >= min(self.N):
                raise ConfigError("degree", f"must be smaller than the smallest N={min(self.N)}, got {self.degree}")
        try:
            import torch

            torch.device(self.device)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError("device", f"not a torch device: {self.device!r} ({exc})") from None
        _check_method(self.method)

    # -- derived quantities ----------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """The coupling strengths, ``[k_num]``."""
        return np.linspace(self.k_min, self.k_max, self.k_num)

    @property
    def samples_per_segment(self) -> int:
        """Recorded samples per K value (transient and averaging window)."""
        return int(round((self.t_transient + self.t_average) / self.sample_dt))

    @property
    def steps_per_sample(self) -> int:
        return int(round(self.sample_dt / self.dt))

    @property
    def adiabatic(self) -> bool:
        return self.sweep != "independent"

    @property
    def directions(self) -> tuple[str, ...]:
        return {"forward": ("forward",), "backward": ("backward",), "both": ("forward", "backward")}.get(self.sweep, ())

    @property
    def shared_frequencies(self) -> bool:
        """Whether every seed sees the same frequencies and graph (then seeds are batched)."""
        return self.quantile

    @property
    def has_theory(self) -> bool:
        return self.n == 2 and self.graph == "complete"


def _check_method(method: str) -> None:
    try:
        from integrators import METHODS
    except ImportError as exc:
        raise ConfigError("method", f"the integrators package cannot be imported ({exc})") from None
    if method not in METHODS:
        raise ConfigError("method", f"unknown method {method!r}; valid: {', '.join(sorted(METHODS))}")


# -- building the model -----------------------------------------------------------------------

def _seed(*parts: int | str) -> int:
    """A reproducible 63-bit seed from a tuple of ints and labels."""
    words = [p if isinstance(p, int) else int.from_bytes(p.encode()[:8].ljust(8, b"\0"), "little") for p in parts]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> np.uint64(1))


def _torch_dtype(name: str):
    import torch

    return {"float64": torch.float64, "float32": torch.float32}[name]


def build_frequencies(config: Config, N: int, seed: int):
    """The natural-frequency module for N oscillators (``seed`` is ignored with quantile sampling).

    n = 2: ``Frequencies(ω)``, ``ω [N]`` from g. Even n > 2: one ω per component pair, each pair's
    frequencies a random permutation of a draw from g. Odd n: a rotation about a uniformly
    random axis at angular velocity ω_i (per-oscillator skew matrices).

    Returns:
        ``(module, omega)`` with ``omega`` the sampled angular velocities (``[N]`` or ``[N, n/2]``).
    """
    import torch

    import kuramoto as ku

    if not isinstance(N, int) or N < 1:
        raise ValueError(f"N: expected a positive integer, got {N!r}")
    dtype = _torch_dtype(config.dtype)
    g = torch.Generator().manual_seed(_seed(config.seed if config.quantile else seed, N, "omega"))
    sampler = {"lorentzian": ku.lorentzian, "gaussian": ku.gaussian, "uniform": ku.uniform}[config.distribution]
    pairs = config.n // 2
    draws = [sampler(N, config.width, quantile=config.quantile, generator=g, dtype=torch.float64)
             for _ in range(1 if config.n == 2 else max(pairs, 1))]
    if config.n == 2:
        omega = draws[0]
        return ku.Frequencies(omega.to(dtype=dtype, device=config.device)), omega
    if config.n % 2 == 0:
        omega = torch.stack([d[torch.randperm(N, generator=g)] for d in draws], dim=-1)
        return ku.Frequencies(omega.to(dtype=dtype, device=config.device)), omega
    axis = torch.randn(N, 3 if config.n == 3 else config.n, generator=g, dtype=torch.float64)
    omega = draws[0]
    if config.n != 3:
        raise ConfigError("n", f"odd sphere dimensions other than 3 are not supported, got {config.n}")
    a = axis / axis.norm(dim=-1, keepdim=True)
    zero = torch.zeros_like(a[:, 0])
    cross = torch.stack([torch.stack([zero, -a[:, 2], a[:, 1]], -1), torch.stack([a[:, 2], zero, -a[:, 0]], -1),
                         torch.stack([-a[:, 1], a[:, 0], zero], -1)], dim=-2)  # [N, 3, 3], [a]_x
    W = omega[:, None, None] * cross
    module = ku.Skew(3, groups=N, spatial_dims=0, learnable=False)
    with torch.no_grad():
        module.P.copy_(0.5 * W)  # Skew's matrix is P − Pᵀ = W for skew W
    return module.to(dtype=dtype, device=config.device), omega


def _graph_edges(config: Config, N: int, seed: int) -> tuple[np.ndarray, float]:
    """Undirected edge list ``[2, E]`` (both directions) and the mean degree."""
    if config.graph == "ring":
        k = config.degree // 2
        i = np.repeat(np.arange(N), k)
        j = (i + np.tile(np.arange(1, k + 1), N)) % N
    elif config.graph == "lattice":
        L = math.isqrt(N)
        idx = np.arange(N).reshape(L, L)
        right, down = np.roll(idx, -1, axis=1), np.roll(idx, -1, axis=0)
        i = np.concatenate([idx.ravel(), idx.ravel()])
        j = np.concatenate([right.ravel(), down.ravel()])
    else:  # Erdős–Rényi G(N, M) with M = N·degree/2 edges drawn uniformly without repetition
        rng = np.random.default_rng(_seed(config.seed if config.quantile else seed, N, "graph"))
        M = N * config.degree // 2
        total = N * (N - 1) // 2
        codes = np.unique(rng.integers(0, total, size=int(M * 1.3) + 16))
        codes = rng.permutation(codes)[:M]
        while codes.size < M:  # rare: too many collisions; top up (a handful of rounds at most)
            extra = rng.integers(0, total, size=M)
            codes = np.unique(np.concatenate([codes, extra]))
            codes = rng.permutation(codes)[:M]
        # decode pair index -> (i < j) in the upper triangle
        i = (N - 2 - np.floor(np.sqrt(-8.0 * codes + 4.0 * N * (N - 1) - 7) / 2.0 - 0.5)).astype(np.int64)
        j = (codes + i + 1 - N * (N - 1) // 2 + (N - i) * ((N - i) - 1) // 2).astype(np.int64)
    edges = np.stack([np.concatenate([i, j]), np.concatenate([j, i])])
    return edges, edges.shape[1] / N


def build_coupling(config: Config, K: float, N: int, seed: int):
    """The coupling for strength K: ``MeanField(K)`` or a sparse graph with weights K/(mean degree)."""
    import torch

    import kuramoto as ku

    if config.graph == "complete":
        return ku.MeanField(float(K))
    edges, mean_degree = _graph_edges(config, N, seed)
    weight = torch.full((edges.shape[1],), float(K) / mean_degree, dtype=_torch_dtype(config.dtype),
                        device=config.device)
    return ku.Sparse(torch.as_tensor(edges, device=config.device), weight, num_nodes=N)


def _initial_states(config: Config, N: int, seeds: list[int], label: str):
    import torch

    import kuramoto as ku

    states = [ku.random_states(N, n=config.n, generator=torch.Generator().manual_seed(_seed(s, N, label)),
                               dtype=torch.float64) for s in seeds]
    return torch.stack(states).to(dtype=_torch_dtype(config.dtype), device=config.device)


def _check_step(config: Config, omega_max: float) -> None:
    from integrators import METHODS

    if config.method in ROTATION_EXACT or getattr(METHODS[config.method], "adaptive", False):
        return
    turn = config.dt * omega_max
    if turn > MAX_ROTATION_PER_STEP:
        raise ConfigError("dt", f"with method {config.method!r} the fastest oscillator (|ω| = {omega_max:.4g}) turns "
                                f"h·|ω| = {turn:.3g} rad per step, beyond what an explicit step resolves (RK4 is "
                                f"unstable above ≈2.8 and garbage oscillators falsely lock the population); use "
                                f"--method lawson_rk4, which rotates exactly, or --dt "
                                f"{MAX_ROTATION_PER_STEP / omega_max:.3g} or smaller")


# -- one sweep task -----------------------------------------------------------------------------

def _mean_field(x: Any) -> Any:
    import kuramoto as ku

    return ku.mean_field(x, dim=-2)


def _advance(task: dict[str, Any]) -> dict[str, Any]:
    """Advance one group of runs (same K, N, frequencies; a batch of seeds) over one chunk.

    Module-level so that Dask can ship it to workers; ``task`` holds the config JSON, K, N,
    the seeds, the start time, the sample times and the current states (or ``None``).
    """
    import torch

    import kuramoto as ku
    from integrators import solve

    config = Config.from_json(task["config"])
    N, seeds = task["N"], task["seeds"]
    dtype = _torch_dtype(config.dtype)
    freq, _ = build_frequencies(config, N, seeds[0])
    field = ku.KuramotoField(build_coupling(config, task["K"], N, seeds[0]), omega=freq)
    if task["state"] is None:
        x0 = _initial_states(config, N, seeds, task["init_label"])
    else:
        x0 = torch.as_tensor(task["state"], dtype=dtype, device=config.device)
    t = torch.as_tensor(np.concatenate([[task["t0"]], task["times"]]), dtype=torch.float64)
    from integrators import METHODS

    adaptive = getattr(METHODS[config.method], "adaptive", False)
    sol = solve(field, x0, t, method=config.method, dt=None if adaptive else config.dt, save_states=False,
                observe={"m": _mean_field})
    m = sol.observed["m"][1:]  # [time, seeds, n]
    r = torch.linalg.vector_norm(m, dim=-1)
    out = {
        "r": r.to(torch.float64).cpu().numpy(),
        "state": sol.x_final.detach().cpu().numpy(),
        "nfe": int(sol.stats.get("nfe", 0)),
        "steps": int(sol.stats.get("steps", 0)),
        "rejected": int(sol.stats.get("rejected", 0)),
        "status": str(getattr(sol, "status", "ok")),
    }
    if config.n == 2:
        out["Z"] = (m[..., 0] + 1j * m[..., 1]).to(torch.complex128).cpu().numpy()
    return out


# -- the plan: tasks and chunks ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Group:
    """One batch of runs that share frequencies and graph: a K (or a sweep direction), an N, seeds."""

    index: tuple[int, ...]  # position along the non-seed result dims
    N: int
    seeds: tuple[int, ...]
    direction: str | None = None
    k_index: int | None = None


def _seed_groups(config: Config) -> list[tuple[int, ...]]:
    seeds = tuple(config.seed + i for i in range(config.seeds))
    return [seeds] if config.shared_frequencies else [(s,) for s in seeds]


def _groups(config: Config) -> list[_Group]:
    out = []
    for a, N in enumerate(config.N):
        for seeds in _seed_groups(config):
            if config.adiabatic:
                for d, direction in enumerate(config.directions):
                    out.append(_Group((d, a), N, seeds, direction=direction))
            else:
                for k in range(config.k_num):
                    out.append(_Group((k, a), N, seeds, k_index=k))
    return out


def _chunk_bounds(config: Config) -> list[tuple[int, int]]:
    """Sample-index ranges ``[start, stop)`` of every chunk (1-based samples at ``i·sample_dt``)."""
    S = config.samples_per_segment
    if config.adiabatic:
        return [(j * S, (j + 1) * S) for j in range(config.k_num)]
    edges = np.linspace(0, S, config.chunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _k_of_chunk(config: Config, group: _Group, chunk: int) -> float:
    K = config.K
    if not config.adiabatic:
        return float(K[group.k_index])
    return float(K[chunk] if group.direction == "forward" else K[config.k_num - 1 - chunk])


def _traj_dims(config: Config) -> tuple[str, ...]:
    return ("time", "direction", "N", "seed") if config.adiabatic else ("time", "K", "N", "seed")


def _coords(config: Config) -> dict[str, Any]:
    coords: dict[str, Any] = {
        "K": ("K", config.K, {"units": "1", "long_name": "coupling strength K"}),
        "N": ("N", np.asarray(config.N, dtype=np.int64), {"units": "1", "long_name": "number of oscillators"}),
        "seed": ("seed", np.arange(config.seed, config.seed + config.seeds, dtype=np.int64),
                 {"units": "1", "long_name": "random seed of the initial state"}),
    }
    if config.adiabatic:
        coords["direction"] = ("direction", np.asarray(config.directions, dtype=object),
                               {"long_name": "direction of the adiabatic K sweep"})
    return coords


def _chunk_dataset(config: Config, groups: list[_Group], results: list[dict[str, Any]], chunk: int,
                   bounds: tuple[int, int]) -> xr.Dataset:
    dims = _traj_dims(config)
    m = bounds[1] - bounds[0]
    lead = (len(config.directions) if config.adiabatic else config.k_num, len(config.N))
    r = np.full((m, *lead, config.seeds), np.nan)
    Z = np.full((m, *lead, config.seeds), np.nan + 0j) if config.n == 2 else None
    for group, res in zip(groups, results):
        s0 = group.seeds[0] - config.seed
        sl = (slice(None), *group.index, slice(s0, s0 + len(group.seeds)))
        r[sl] = res["r"]
        if Z is not None:
            Z[sl] = res["Z"]
    times = config.sample_dt * np.arange(bounds[0] + 1, bounds[1] + 1)
    coords = {k: v for k, v in _coords(config).items() if k in dims}
    coords["time"] = ("time", times, {"units": "1", "long_name": "simulated time (model units)"})
    data = {"r_t": (dims, r, {"units": "1", "long_name": "order parameter r(t) = |mean_j x_j|"})}
    if Z is not None:
        data["Z_t"] = (dims, Z, {"units": "1", "long_name": "complex order parameter Z(t) = r e^{iψ}"})
    if config.adiabatic:
        K_t = np.empty((m, len(config.directions)))
        for d, direction in enumerate(config.directions):
            K_t[:, d] = _k_of_chunk(config, _Group((d, 0), 0, (), direction=direction), chunk)
        data["K_t"] = (("time", "direction"), K_t, {"units": "1", "long_name": "coupling strength K(t)"})
    return xr.Dataset(data, coords=coords)


def _checkpoint(config: Config, groups: list[_Group], states: list[Any], stats: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"solver_stats": stats}
    for N in config.N:
        sel = [np.asarray(s) for g, s in zip(groups, states) if g.N == N]
        out[f"state_N{N}"] = np.stack(sel)
    return out


def _restore_states(config: Config, groups: list[_Group], checkpoint: dict[str, np.ndarray]) -> list[np.ndarray]:
    cursor = {N: 0 for N in config.N}
    states = []
    for g in groups:
        states.append(checkpoint[f"state_N{g.N}"][cursor[g.N]])
        cursor[g.N] += 1
    return states


# -- running ------------------------------------------------------------------------------------

def _resume_point(config: Config, path: Path, overwrite: bool) -> tuple[int, dict[str, np.ndarray] | None,
                                                                       xr.Dataset | None]:
    """``(chunks_done, checkpoint, complete_dataset)`` for an existing file at ``path``."""
    from studies import storage

    storage.remove_stale_temporaries(path)
    if not path.exists():
        return 0, None, None
    try:
        ds = storage.open_dataset(path, study=Config.study)
    except storage.StorageError:
        if overwrite:
            return 0, None, None
        raise
    if ds.attrs.get("config") != config.to_json():
        if overwrite:
            return 0, None, None
        raise storage.StorageError(f"path: {str(path)!r} holds a run with a different config; pass --overwrite to "
                                   f"replace it or choose another --out (its config: {ds.attrs.get('config')})")
    if int(ds.attrs.get("complete", 0)):
        return -1, None, ds
    done = int(ds.attrs.get("chunks_done", 0))
    checkpoint = storage.read_checkpoint(path)
    if checkpoint is None:
        raise storage.StorageError(f"path: {str(path)!r} is an unfinished run without a checkpoint; delete it or pass "
                                   f"--overwrite")
    return done, checkpoint, None


def run(config: Config, *, path: str | Path | None = None, scheduler: str | None = None, workers: int | None = None,
        progress: bool = True, overwrite: bool = False) -> xr.Dataset:
    """Run the synchronisation study.

    Args:
        config: the study parameters.
        path: result file; the run streams into it chunk by chunk and resumes it if it holds
            an unfinished run of the same config (a finished one is returned as is). ``None``
            keeps everything in memory.
        scheduler: address of an existing Dask scheduler (default: a local cluster).
        workers: local Dask worker processes (default: one per core; 0: in this process).
        progress: tqdm bars over simulated time and over the tasks of each chunk.
        overwrite: replace a file at ``path`` that holds a different config or is unreadable.

    Returns:
        The Dataset (see the module doc; dims ``K``, ``N``, ``seed``, ``time`` and, for
        adiabatic sweeps, ``direction``).

    Raises:
        ConfigError: the step is too large for the method and the fastest oscillator.
        StorageError: ``path`` holds a different run or is unreadable (and ``overwrite`` is off).
    """
    from tqdm.auto import tqdm

    from studies import storage
    from studies.sweep import Sweep

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a sync Config, got {type(config).__name__}")
    path = Path(path) if path is not None else None
    for N in config.N:
        for seeds in _seed_groups(config):
            _, omega = build_frequencies(config, N, seeds[0])
            _check_step(config, float(omega.abs().max()))
    groups = _groups(config)
    bounds = _chunk_bounds(config)
    start, checkpoint, finished = (0, None, None) if path is None else _resume_point(config, path, overwrite)
    if finished is not None:
        return finished
    config_json = config.to_json()
    states: list[Any] = [None] * len(groups)
    stats = np.zeros((len(groups), 3), dtype=np.int64)  # nfe, steps, rejected
    if checkpoint is not None:
        states = _restore_states(config, groups, checkpoint)
        stats = checkpoint["solver_stats"].astype(np.int64)
    chunks_in_memory: list[xr.Dataset] = []
    statuses = ["ok"] * len(groups)
    wall0 = time.perf_counter()
    total_time = bounds[-1][1] * config.sample_dt
    with Sweep(scheduler=scheduler, workers=workers, progress=progress) as sweep, \
            tqdm(total=total_time, initial=bounds[start][0] * config.sample_dt if start < len(bounds) else total_time,
                 desc="simulated time", unit="t", disable=not progress) as bar:
        for c in range(start, len(bounds)):
            a, b = bounds[c]
            tasks = [{"config": config_json, "K": _k_of_chunk(config, g, c), "N": g.N, "seeds": list(g.seeds),
                      "t0": a * config.sample_dt, "times": config.sample_dt * np.arange(a + 1, b + 1),
                      "state": states[i], "init_label": f"init-{g.direction or 'independent'}"}
                     for i, g in enumerate(groups)]
            results = sweep.map(_advance, tasks, desc=f"chunk {c + 1}/{len(bounds)}")
            states = [res["state"] for res in results]
            stats += np.asarray([[res["nfe"], res["steps"], res["rejected"]] for res in results], dtype=np.int64)
            statuses = [res["status"] for res in results]
            chunk = _chunk_dataset(config, groups, results, c, bounds[c])
            if path is None:
                chunks_in_memory.append(chunk)
            else:
                ckpt = _checkpoint(config, groups, states, stats)
                progress_attrs = {"chunks_done": c + 1, "chunks_total": len(bounds), "complete": 0}
                if c == 0:
                    chunk.attrs = storage.result_attrs(Config.study, config, config.seed, **progress_attrs)
                    storage.write_dataset(chunk, path, unlimited="time", checkpoint=ckpt)
                else:
                    storage.append(path, chunk, attrs=progress_attrs, checkpoint=ckpt)
            bar.update((b - a) * config.sample_dt)
        where = sweep.description
    if path is None:
        traj = xr.concat(chunks_in_memory, dim="time", data_vars="minimal", coords="minimal")
    else:
        traj = storage.open_dataset(path, study=Config.study, combine_complex=True)
    ds = _finalize(config, groups, traj, stats, statuses)
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, chunks_done=len(bounds),
                                    chunks_total=len(bounds), executor=where,
                                    wall_time_last_session=round(time.perf_counter() - wall0, 3))
    if path is not None:
        storage.write_dataset(ds, path, unlimited="time")
        ds = storage.open_dataset(path, study=Config.study, combine_complex=True)
    return ds


def _finalize(config: Config, groups: list[_Group], traj: xr.Dataset, stats: np.ndarray,
              statuses: list[str]) -> xr.Dataset:
    """Add the time averages, theory, and solver statistics to the trajectories."""
    import kuramoto as ku

    keep = [v for v in ("r_t", "Z_t", "K_t") if v in traj]
    ds = traj[keep].copy()
    ds.attrs = {}
    t = ds["time"].values
    S = config.samples_per_segment
    seg_time = S * config.sample_dt
    if config.adiabatic:
        local = t - np.floor((t - 1e-9) / seg_time) * seg_time
        window = local > config.t_transient + 1e-9
        segment = np.floor((t - 1e-9) / seg_time).astype(int)
        r_dir = []
        for d, direction in enumerate(config.directions):  # a loop over sweep points, not oscillators
            seg_mean = ds["r_t"].isel(direction=d).where(xr.DataArray(window, dims="time")).groupby(
                xr.DataArray(segment, dims="time", name="segment")).mean("time")
            seg_std = ds["r_t"].isel(direction=d).where(xr.DataArray(window, dims="time")).groupby(
                xr.DataArray(segment, dims="time", name="segment")).std("time")
            k_idx = np.arange(config.k_num) if direction == "forward" else np.arange(config.k_num)[::-1]
            r_dir.append((seg_mean.values[k_idx], seg_std.values[k_idx]))
        r = np.stack([a for a, _ in r_dir])  # [direction, K, N, seed]
        r_fluct = np.stack([b for _, b in r_dir])
        rdims = ("direction", "K", "N", "seed")
    else:
        window = xr.DataArray(t > config.t_transient + 1e-9, dims="time")
        r = ds["r_t"].where(window).mean("time").transpose("K", "N", "seed").values
        r_fluct = ds["r_t"].where(window).std("time").transpose("K", "N", "seed").values
        rdims = ("K", "N", "seed")
    ds = ds.assign_coords({k: v for k, v in _coords(config).items() if k not in ds.coords})
    ds["r"] = (rdims, r, {"units": "1", "long_name": "time-averaged order parameter r"})
    ds["r_fluctuation"] = (rdims, r_fluct, {"units": "1", "long_name": "standard deviation of r(t) in the averaging "
                                                                        "window"})
    if config.has_theory:
        theory = ku.theory.order_parameter(config.K, config.distribution, config.width)
        kc = ku.theory.critical_coupling(config.distribution, config.width)
    else:
        theory, kc = np.full(config.k_num, np.nan), np.nan
    ds["r_theory"] = ("K", np.asarray(theory, dtype=float),
                      {"units": "1", "long_name": "mean-field theory r(K), N → ∞ (NaN where not applicable)"})
    ds["K_c"] = ((), float(kc), {"units": "1", "long_name": "critical coupling K_c = 2/(π g(0)) (NaN where not "
                                                           "applicable)"})
    ds["r_incoherent"] = ("N", np.asarray([ku.theory.incoherent_order_parameter(N, config.n) for N in config.N]),
                          {"units": "1", "long_name": "expected r of N independent uniform oscillators"})
    omega_max = np.zeros((len(config.N), config.seeds))
    for a, N in enumerate(config.N):
        for seeds in _seed_groups(config):
            _, omega = build_frequencies(config, N, seeds[0])
            s0 = seeds[0] - config.seed
            omega_max[a, s0:s0 + len(seeds)] = float(omega.abs().max())
    ds["omega_max"] = (("N", "seed"), omega_max, {"units": "1", "long_name": "largest natural angular velocity |ω|"})
    sdims = ("direction", "N", "seed") if config.adiabatic else ("K", "N", "seed")
    shape = tuple(ds.sizes[d] for d in sdims)
    for j, name in enumerate(("nfe", "steps", "rejected")):
        arr = np.zeros(shape, dtype=np.int64)
        status = np.empty(shape, dtype=object)
        for g, row, st in zip(groups, stats, statuses):
            s0 = g.seeds[0] - config.seed
            arr[(*g.index, slice(s0, s0 + len(g.seeds)))] = row[j]
            status[(*g.index, slice(s0, s0 + len(g.seeds)))] = st
        long = {"nfe": "field evaluations", "steps": "integrator steps", "rejected": "rejected steps"}[name]
        ds[f"solver_{name}"] = (sdims, arr, {"units": "1", "long_name": f"solver {long} (per batch of seeds)"})
    ds["solver_status"] = (sdims, status.astype(str).astype(object), {"long_name": "solver status"})
    ds["time"].attrs.update(units="1", long_name="simulated time (model units)")
    return ds


# -- output -------------------------------------------------------------------------------------

def summarize(ds: xr.Dataset) -> str:
    """A short table: K, r (mean ± std over seeds) per N and direction, theory."""
    config = json.loads(ds.attrs["config"])
    lines = [f"sync: {config['distribution']} g(ω), width {config['width']:g}, n = {config['n']}, "
             f"graph {config['graph']}, method {config['method']}, K_c = {float(ds['K_c']):.4g}"]
    r = ds["r"]
    if "direction" in r.dims:
        cols = [(d, N) for d in r["direction"].values for N in r["N"].values]
    else:
        cols = [(None, N) for N in r["N"].values]
    head = "   K   " + "".join(f"{(str(d) + ' ' if d else '') + 'N=' + str(N):>18}" for d, N in cols) + "    theory"
    lines.append(head)
    for k, K in enumerate(ds["K"].values):
        row = f"{K:6.3f} "
        for d, N in cols:
            sel = r.isel(K=k).sel(N=N)
            if d is not None:
                sel = sel.sel(direction=d)
            row += f"{float(sel.mean()):>11.4f} ± {float(sel.std()):.4f}"
        row += f"{float(ds['r_theory'][k]):>10.4f}"
        lines.append(row)
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``sync.png``: r(K) (mean ± spread over seeds) with theory and K_c; r(t) for a few K.

    Args:
        ds: a Dataset returned by :func:`run` (or read from ``sync.h5``).
        path: PNG destination (written atomically).

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    import kuramoto as ku
    from studies.storage import atomic_output

    if not isinstance(ds, xr.Dataset) or "r" not in ds:
        raise ValueError("ds: expected a sync Dataset with an 'r' variable")
    cfg = json.loads(ds.attrs["config"])
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_t = fig.subplots(1, 2, width_ratios=[1.35, 1])
    K = ds["K"].values
    directions = list(ds["direction"].values) if "direction" in ds["r"].dims else [None]
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    markers = {None: "o", "forward": "^", "backward": "v"}
    for a, N in enumerate(ds["N"].values):
        for d in directions:
            r = ds["r"].sel(N=N) if d is None else ds["r"].sel(N=N, direction=d)
            mean, std = r.mean("seed").values, r.std("seed").values
            label = f"simulation, N = {N}" + (f", {d}" if d else "") + f" (mean ± sd, {ds.sizes['seed']} seeds)"
            color = colors[a % len(colors)]
            ax.fill_between(K, mean - std, mean + std, color=color, alpha=0.2, lw=0)
            ax.errorbar(K, mean, yerr=std, fmt=markers.get(d, "o"), ms=4.5, color=color, capsize=2, lw=1,
                        label=label, mfc="white" if d == "backward" else color)
        ax.axhline(float(ds["r_incoherent"].sel(N=N)), color=colors[a % len(colors)], ls=":", lw=1,
                   label=f"incoherent level ≈ 0.89/√N, N = {N}" if cfg["n"] == 2 else f"incoherent level, N = {N}")
    kc = float(ds["K_c"])
    if np.isfinite(kc):
        fine = np.linspace(0.0, max(K.max(), 1e-9), 600)
        ax.plot(fine, ku.theory.order_parameter(fine, cfg["distribution"], cfg["width"]), color="black", lw=1.6,
                label=f"theory (N → ∞, {cfg['distribution']})")
        ax.axvline(kc, color="crimson", ls="--", lw=1.2, label=f"K_c = 2/(π g(0)) = {kc:.3g}")
    ax.set_xlabel("coupling strength K (model units)")
    ax.set_ylabel("time-averaged order parameter r")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(K.min() - 0.02 * (np.ptp(K) or 1), K.max() + 0.02 * (np.ptp(K) or 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    ax.set_title(f"Kuramoto transition: n = {cfg['n']}, {cfg['graph']} graph, {cfg['distribution']} g(ω), "
                 f"width {cfg['width']:g}", fontsize=10)
    # r(t) for a few K: seed 0, largest N
    N = ds["N"].values[-1]
    t = ds["time"].values
    if "direction" in ds["r_t"].dims:
        rt = ds["r_t"].sel(N=N).isel(seed=0, direction=0)
        ax_t.plot(t, rt.values, lw=0.8, color="tab:blue", label=f"{directions[0]} sweep")
        ax_t2 = ax_t.twinx()
        ax_t2.plot(t, ds["K_t"].isel(direction=0).values, color="gray", lw=0.8, ls="--")
        ax_t2.set_ylabel("coupling strength K(t)", color="gray")
    else:
        picks = sorted({int(i) for i in np.linspace(0, len(K) - 1, min(5, len(K))).round()})
        cmap = fig.colormaps["viridis"] if hasattr(fig, "colormaps") else None
        import matplotlib

        cmap = matplotlib.colormaps["viridis"]
        for j, k in enumerate(picks):
            ax_t.plot(t, ds["r_t"].sel(N=N).isel(seed=0, K=k).values, lw=0.9,
                      color=cmap(j / max(1, len(picks) - 1)), label=f"K = {K[k]:.2f}")
        ax_t.axvspan(cfg["t_transient"], t.max(), color="gray", alpha=0.12, label="averaging window")
    ax_t.set_xlabel("simulated time t (model units)")
    ax_t.set_ylabel("order parameter r(t)")
    ax_t.set_ylim(0, 1.02)
    ax_t.grid(alpha=0.3)
    ax_t.legend(fontsize=7.5, loc="upper left" if "direction" in ds["r_t"].dims else "center right")
    ax_t.set_title(f"r(t), seed {int(ds['seed'].values[0])}, N = {N}, method {cfg['method']}", fontsize=10)
    path = Path(path)
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    return path
