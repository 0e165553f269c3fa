"""``akorn landscape``: the energy landscape of a symmetric oscillator network.

For a symmetric coupling J and Ω = 0 the flow ``dx_i/dt = Proj_{x_i}(c_i + Σ_j J_ij x_j)`` is
the Riemannian gradient descent of the energy

    E(x) = −½ Σ_ij x_iᵀ J_ij x_j − Σ_i c_iᵀ x_i        (AKOrN Eq. 3),

so every trajectory ends at a fixed point and E never increases on the way. This study
samples the landscape: many uniformly random initial states (one batch) are run to
convergence with an integrator that stays on the spheres, recording E and the order
parameter r along the way; the final states are grouped into distinct fixed points by
geodesic distance, which gives their energies and basin sizes (the fraction of initial
states that end there).

Couplings: ``dense`` (Sherrington–Kirkpatrick-like symmetric Gaussian J/√N), ``lattice``
(2-D periodic nearest-neighbour graph with symmetric Gaussian weights, an Edwards–Anderson
glass) or ``hopfield`` (``P`` stored random patterns of unit vectors ξ^μ,
``J_ij = (1/N) Σ_μ ξ_i^μ ξ_j^μᵀ``, zero self-coupling), with an optional random stimulus of
strength ``stimulus``. Scalar couplings without stimulus are invariant under a global
rotation of all oscillators, so their fixed points come in continuous families; states are
then compared after optimal alignment (orthogonal Procrustes over O(n)). Hopfield couplings
without stimulus are only invariant under ``x → −x``, which is modded out instead.

Results (``landscape.h5``): ``energy_t`` and ``r_t`` over ``time × init``; per initial state
the final energy, residual ``max_i |f_i|``, convergence flag and the fixed point it reached;
per fixed point (dim ``minimum``, sorted by energy) its energy, basin size, r and a
representative state; the largest energy increase between samples (a check of the Lyapunov
property, meaningful for Ω = 0); and a 2-D principal-component projection of some
trajectories with the energy on that plane (``contour_energy``).
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

__all__ = ["FILENAME", "Config", "PatternCoupling", "build_field", "cluster_states", "plot", "run", "summarize"]

FILENAME = "landscape.h5"


@dataclasses.dataclass(frozen=True)
class Config(StudyConfig):
    """Parameters of the energy-landscape study (defaults: the quick preset)."""

    study: ClassVar[str] = "landscape"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"N": 256, "inits": 1024, "t_max": 200.0, "project_inits": 32, "grid": 80},
    }

    coupling: Literal["dense", "lattice", "hopfield"] = param(
        "hopfield", "symmetric coupling: dense Gaussian J/√N, 2-D lattice glass, or Hopfield stored patterns")
    N: int = param(64, "number of oscillators (a square number for the lattice)")
    n: int = param(3, "sphere dimension of an oscillator")
    patterns: int = param(4, "stored patterns of the Hopfield coupling")
    stimulus: float = param(0.0, "strength |c_i| of a fixed random stimulus (0: none)", units="1")
    omega_width: float = param(0.0, "standard deviation of Gaussian natural frequencies (0: Ω = 0, the gradient "
                                    "flow; even n only)", units="1")
    inits: int = param(128, "random initial states (one batch)")
    t_max: float = param(50.0, "integration time", units="1")
    dt: float = param(0.1, "integrator step", units="1")
    sample_dt: float = param(0.5, "interval at which energy and r are recorded (a multiple of dt)", units="1")
    method: str = param("rk4_normalized", "integrator (integrators.METHODS): rk4_normalized stays on the spheres "
                                          "by normalising; cf4 and rkmk4 exactly, at 3-5x the cost")
    tol: float = param(1e-4, "a run has converged when max_i |f_i(x)| is below this", units="1")
    cluster_distance: float = param(0.05, "final states closer than this mean geodesic distance (after alignment) "
                                          "are the same fixed point", units="rad")
    project_inits: int = param(12, "trajectories kept for the 2-D projection plot")
    grid: int = param(50, "resolution of the energy contour on the projection plane")
    seed: int = param(0, "seed of the coupling, stimulus and initial states")
    dtype: Literal["float64", "float32"] = param("float64", "floating-point precision")
    device: str = param("cpu", "torch device")

    def validate(self) -> None:
        self._positive("N", "n", "patterns", "inits", "t_max", "dt", "sample_dt", "tol", "cluster_distance",
                       "project_inits", "grid")
        self._positive("stimulus", "omega_width", "seed", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected a sphere dimension >= 2, got {self.n}")
        if self.N < 2:
            raise ConfigError("N", f"expected at least 2 oscillators, got {self.N}")
        if self.coupling == "lattice" and (math.isqrt(self.N) ** 2 != self.N or self.N < 9):
            raise ConfigError("N", f"the 2-D lattice needs a square number >= 9 of oscillators, got {self.N}")
        if self.omega_width > 0 and self.n % 2:
            raise ConfigError("omega_width", f"natural frequencies rotate component pairs and need an even n, got "
                                             f"n={self.n}")
        for name, unit in (("sample_dt", "dt"), ("t_max", "sample_dt")):
            ratio = getattr(self, name) / getattr(self, unit)
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                raise ConfigError(name, f"must be a multiple of {unit}={getattr(self, unit):g}, got "
                                        f"{getattr(self, name):g}")
        if self.grid < 2:
            raise ConfigError("grid", f"expected at least 2 points, got {self.grid}")
        try:
            import torch

            torch.device(self.device)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError("device", f"not a torch device: {self.device!r} ({exc})") from None
        try:
            from integrators import METHODS
        except ImportError as exc:
            raise ConfigError("method", f"the integrators package cannot be imported ({exc})") from None
        if self.method not in METHODS:
            raise ConfigError("method", f"unknown method {self.method!r}; valid: {', '.join(sorted(METHODS))}")

    @property
    def symmetry(self) -> str:
        """The global symmetry modded out when comparing states: ``"O(n)"``, ``"sign"`` or ``"none"``."""
        if self.stimulus > 0 or self.omega_width > 0:
            return "none"
        return "sign" if self.coupling == "hopfield" else "O(n)"

    @property
    def num_samples(self) -> int:
        return int(round(self.t_max / self.sample_dt))


def _pattern_coupling_cls():
    """Defined lazily so that importing this module (``akorn landscape --help``) stays light."""
    global PatternCoupling
    if isinstance(PatternCoupling, type):
        return PatternCoupling
    import torch

    from kuramoto.couplings import AbstractCoupling

    class _PatternCoupling(AbstractCoupling):
        """Hopfield coupling ``J_ij = (1/N) Σ_μ ξ_i^μ ξ_j^μᵀ`` (``J_ii = 0``) in O(P·N·n), never N×N.

        ``(Jx)_i = (1/N) Σ_μ ξ_i^μ (m^μ − ξ_i^μᵀ x_i)`` with the overlaps ``m^μ = Σ_j ξ_j^μᵀ x_j``;
        the subtracted term removes the self-coupling. Symmetric (``J_ij = J_jiᵀ``).

        Args:
            patterns: ``[P, N, n]`` stored patterns (unit vectors).
        """

        def __init__(self, patterns: torch.Tensor) -> None:
            super().__init__()
            if not isinstance(patterns, torch.Tensor) or patterns.dim() != 3 or not patterns.is_floating_point():
                raise ValueError("patterns: expected a floating-point tensor [P, N, n]")
            self.register_buffer("patterns", patterns.detach().clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.check_input(x)
            xi = self.patterns
            if x.shape[-2:] != xi.shape[1:]:
                raise ValueError(f"x: expected [..., {xi.shape[1]}, {xi.shape[2]}], got {tuple(x.shape)}")
            own = torch.einsum("pin,...in->...pi", xi, x)  # ξ_i^μᵀ x_i
            overlap = own.sum(-1, keepdim=True)  # m^μ
            return torch.einsum("pin,...pi->...in", xi, overlap - own) / xi.shape[1]

        def is_symmetric(self, atol: float = 0.0) -> bool:
            return True

        def extra_repr(self) -> str:
            return f"patterns={self.patterns.shape[0]}, N={self.patterns.shape[1]}, n={self.patterns.shape[2]}"

    _PatternCoupling.__name__ = _PatternCoupling.__qualname__ = "PatternCoupling"
    PatternCoupling = _PatternCoupling
    return PatternCoupling


PatternCoupling: Any = None
"""The Hopfield coupling class (a :class:`kuramoto.couplings.AbstractCoupling`); created on first use."""


def _torch_dtype(name: str):
    import torch

    return {"float64": torch.float64, "float32": torch.float32}[name]


def build_field(config: Config):
    """The Kuramoto field of the study (coupling, frequencies and stimulus from ``config.seed``)."""
    import torch

    import kuramoto as ku

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a landscape Config, got {type(config).__name__}")
    g = torch.Generator().manual_seed(config.seed)
    dtype, dev = _torch_dtype(config.dtype), config.device
    N, n = config.N, config.n
    if config.coupling == "dense":
        A = torch.randn(N, N, generator=g, dtype=torch.float64)
        J = (A + A.T) / math.sqrt(2.0 * N)
        J.fill_diagonal_(0.0)
        coupling = ku.Dense(J.to(dtype=dtype, device=dev))
    elif config.coupling == "lattice":
        L = math.isqrt(N)
        idx = torch.arange(N).reshape(L, L)
        i = torch.cat([idx.flatten(), idx.flatten()])
        j = torch.cat([idx.roll(-1, 1).flatten(), idx.roll(-1, 0).flatten()])
        w = torch.randn(i.numel(), generator=g, dtype=torch.float64)
        edges = torch.stack([torch.cat([i, j]), torch.cat([j, i])])
        coupling = ku.Sparse(edges.to(dev), torch.cat([w, w]).to(dtype=dtype, device=dev), num_nodes=N)
    else:
        xi = ku.random_states(config.patterns, N, n=n, generator=g, dtype=torch.float64)  # [P, N, n]
        coupling = _pattern_coupling_cls()(xi.to(dtype=dtype, device=dev))
    stimulus = None
    if config.stimulus > 0:
        stimulus = config.stimulus * ku.random_states(N, n=n, generator=g, dtype=torch.float64).to(dtype=dtype,
                                                                                                    device=dev)
    omega = None
    if config.omega_width > 0:
        omega = ku.Frequencies(ku.gaussian(N, config.omega_width, generator=g, dtype=dtype).to(dev))
    return ku.KuramotoField(coupling, omega=omega, stimulus=stimulus)


def _pairwise_distance(x: Any, symmetry: str) -> Any:
    """Mean geodesic distance between every pair of states ``x [M, N, n]`` modulo ``symmetry``.

    For O(n) the second state is aligned to the first by the orthogonal Procrustes rotation
    ``R = U Vᵀ`` of ``Σ_i x_i yᵢᵀ = U S Vᵀ`` (batched over all pairs).
    """
    import torch

    import kuramoto as ku

    if symmetry == "O(n)":
        H = torch.einsum("ain,bim->abnm", x, x)  # Σ_i x_a,i x_b,iᵀ   [M, M, n, n]
        U, _, Vh = torch.linalg.svd(H)
        R = U @ Vh  # rotates states of b onto a
        aligned = torch.einsum("abnm,bim->abin", R, x)  # [M, M, N, n]
        return ku.geodesic_distance(x.unsqueeze(1), aligned).mean(-1)
    d = ku.geodesic_distance(x.unsqueeze(1), x.unsqueeze(0)).mean(-1)
    if symmetry == "sign":
        d = torch.minimum(d, ku.geodesic_distance(x.unsqueeze(1), -x.unsqueeze(0)).mean(-1))
    return d


def cluster_states(x: Any, threshold: float, symmetry: str = "none") -> np.ndarray:
    """Group states into fixed points: single linkage on the mean geodesic distance.

    Args:
        x: final states ``[M, N, n]``.
        threshold: linking distance (mean over oscillators, radians).
        symmetry: ``"O(n)"`` (align by a global rotation/reflection), ``"sign"`` (identify
            ``x`` with ``−x``) or ``"none"``.

    Returns:
        ``[M]`` integer labels ``0 .. C−1`` in order of first appearance.
    """
    import torch
    from scipy.sparse.csgraph import connected_components

    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError("x: expected a tensor of states [M, N, n]")
    if symmetry not in ("O(n)", "sign", "none"):
        raise ValueError(f"symmetry: expected 'O(n)', 'sign' or 'none', got {symmetry!r}")
    if not threshold > 0:
        raise ValueError(f"threshold: expected a positive distance, got {threshold}")
    d = _pairwise_distance(x, symmetry).cpu().numpy()
    _, labels = connected_components(d < threshold, directed=False)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))  # relabel by first appearance
    return order[labels].astype(np.int64)


def run(config: Config, *, path: str | Path | None = None, progress: bool = True,
        overwrite: bool = False) -> xr.Dataset:
    """Run the landscape study.

    Args:
        config: the study parameters.
        path: result file (written atomically when the run is complete); a complete file of
            the same config is returned without recomputing.
        progress: tqdm bar over simulated time.
        overwrite: replace a file at ``path`` that holds a different config.

    Returns:
        The Dataset described in the module doc.
    """
    import torch
    from tqdm.auto import tqdm

    import kuramoto as ku
    from integrators import solve
    from studies import storage

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a landscape Config, got {type(config).__name__}")
    path = Path(path) if path is not None else None
    if path is not None and path.exists():
        existing = storage.open_dataset(path, study=Config.study) if not overwrite else None
        if existing is not None:
            if existing.attrs.get("config") == config.to_json():
                return existing
            raise storage.StorageError(f"path: {str(path)!r} holds a run with a different config; pass --overwrite "
                                       f"or choose another --out")
    wall0 = time.perf_counter()
    field = build_field(config)
    dtype = _torch_dtype(config.dtype)
    g = torch.Generator().manual_seed(config.seed + 1)
    x = ku.random_states(config.inits, config.N, n=config.n, generator=g, dtype=torch.float64).to(dtype=dtype,
                                                                                                  device=config.device)
    S = config.num_samples
    times = config.sample_dt * np.arange(S + 1)
    energy = np.empty((S + 1, config.inits))
    r = np.empty((S + 1, config.inits))
    P = min(config.project_inits, config.inits)
    kept = np.empty((S + 1, P, config.N, config.n))
    # Integrate in segments so that only the projected trajectories' states are kept.
    per_segment = max(1, min(S, int(2e7 // max(1, config.inits * config.N * config.n))))
    stats = {"nfe": 0, "steps": 0, "rejected": 0}
    with torch.no_grad(), tqdm(total=config.t_max, desc="simulated time", unit="t", disable=not progress) as bar:
        energy[0] = field.energy(x).double().cpu().numpy()
        r[0] = ku.order_parameter(x).double().cpu().numpy()
        kept[0] = x[:P].double().cpu().numpy()
        for a in range(0, S, per_segment):
            b = min(S, a + per_segment)
            t = torch.as_tensor(times[a:b + 1], dtype=torch.float64)
            sol = solve(field, x, t, method=config.method, dt=config.dt, save_states=True,
                        observe={"energy": field.energy, "r": ku.order_parameter})
            energy[a + 1:b + 1] = sol.observed["energy"][1:].double().cpu().numpy()
            r[a + 1:b + 1] = sol.observed["r"][1:].double().cpu().numpy()
            kept[a + 1:b + 1] = sol.xs[1:, :P].double().cpu().numpy()
            x = sol.xs[-1]
            for key in stats:
                stats[key] += int(sol.stats.get(key, 0))
            bar.update(float(times[b] - times[a]))
        residual = torch.linalg.vector_norm(field(0.0, x), dim=-1).amax(-1).double().cpu().numpy()
    labels = cluster_states(x.double(), config.cluster_distance, config.symmetry)
    ds = _assemble(config, field, x, times, energy, r, kept, residual, labels, stats)
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, symmetry=config.symmetry,
                                    wall_time=round(time.perf_counter() - wall0, 3))
    if path is not None:
        storage.write_dataset(ds, path)
        ds = storage.open_dataset(path, study=Config.study)
    return ds


def _assemble(config: Config, field: Any, x: Any, times: np.ndarray, energy: np.ndarray, r: np.ndarray,
              kept: np.ndarray, residual: np.ndarray, labels: np.ndarray, stats: dict[str, int]) -> xr.Dataset:
    import torch

    import kuramoto as ku

    C = int(labels.max()) + 1
    final_energy = energy[-1]
    # Fixed points sorted by energy (lowest first); each represented by its lowest-energy member.
    mean_energy = np.array([final_energy[labels == c].mean() for c in range(C)])  # loop over fixed points
    order = np.argsort(mean_energy, kind="stable")
    rank = np.empty(C, dtype=np.int64)
    rank[order] = np.arange(C)
    labels = rank[labels]
    counts = np.bincount(labels, minlength=C)
    reps = np.array([np.flatnonzero(labels == c)[np.argmin(final_energy[labels == c])] for c in range(C)])
    x_np = x.double().cpu().numpy()
    converged = (residual < config.tol).astype(np.int8)
    dE = np.diff(energy, axis=0)
    scale = max(1.0, float(np.abs(energy).max()))
    max_increase = float(dE.max()) if dE.size else 0.0
    monotone = int(max_increase <= 1e-9 * scale)
    # 2-D projection: principal components of the kept trajectories (flattened states).
    T, P = kept.shape[:2]
    flat = kept.reshape(T * P, -1)
    mean = flat.mean(0)
    _, sv, Vt = np.linalg.svd(flat - mean, full_matrices=False)
    comps = Vt[:2] if Vt.shape[0] >= 2 else np.vstack([Vt, np.zeros_like(Vt)])[:2]
    proj = ((flat - mean) @ comps.T).reshape(T, P, 2)
    explained = (sv[:2] ** 2) / max((sv ** 2).sum(), 1e-300)
    lo, hi = proj.reshape(-1, 2).min(0), proj.reshape(-1, 2).max(0)
    pad = 0.15 * np.maximum(hi - lo, 1e-6)
    ga = np.linspace(lo[0] - pad[0], hi[0] + pad[0], config.grid)
    gb = np.linspace(lo[1] - pad[1], hi[1] + pad[1], config.grid)
    A, B = np.meshgrid(ga, gb)  # [grid_b, grid_a]
    plane = mean + A.reshape(-1, 1) * comps[0] + B.reshape(-1, 1) * comps[1]
    plane_t = torch.as_tensor(plane.reshape(-1, config.N, config.n), dtype=_torch_dtype(config.dtype),
                              device=config.device)
    with torch.no_grad():
        contour = field.energy(ku.normalize(plane_t)).double().cpu().numpy().reshape(A.shape)
    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "energy_t": (("time", "init"), energy, {**one, "long_name": "energy E(x(t))"}),
            "r_t": (("time", "init"), r, {**one, "long_name": "order parameter r(t)"}),
            "energy_final": (("init",), final_energy, {**one, "long_name": "energy at the end of the run"}),
            "residual": (("init",), residual, {**one, "long_name": "max_i |f_i(x)| at the end of the run"}),
            "converged": (("init",), converged, {**one, "long_name": "1 if the run reached a fixed point (residual "
                                                                      "below tol)"}),
            "minimum_index": (("init",), labels, {**one, "long_name": "index of the fixed point the run reached"}),
            "minimum_energy": (("minimum",), final_energy[reps], {**one, "long_name": "energy of the fixed point"}),
            "basin_size": (("minimum",), counts / config.inits, {**one, "long_name": "fraction of initial states "
                                                                                       "ending at the fixed point"}),
            "basin_count": (("minimum",), counts, {**one, "long_name": "initial states ending at the fixed point"}),
            "minimum_r": (("minimum",), r[-1][reps], {**one, "long_name": "order parameter at the fixed point"}),
            "minimum_residual": (("minimum",), residual[reps], {**one, "long_name": "max_i |f_i| at the "
                                                                                    "representative state"}),
            "minimum_state": (("minimum", "node", "component"), x_np[reps],
                              {**one, "long_name": "representative state of the fixed point"}),
            "max_energy_increase": ((), max_increase, {**one, "long_name": "largest increase of E between samples "
                                                                           "(<= 0 for a gradient flow)"}),
            "energy_monotone": ((), np.int8(monotone), {**one, "long_name": "1 if E never increased (up to "
                                                                             "round-off 1e-9·max|E|)"}),
            "projection_t": (("time", "traj", "pc"), proj, {**one, "long_name": "trajectory projected on the two "
                                                                                 "leading principal components"}),
            "explained_variance": (("pc",), explained, {**one, "long_name": "fraction of trajectory variance "
                                                                            "on the component"}),
            "contour_energy": (("pc_b", "pc_a"), contour, {**one, "long_name": "energy of the normalised state on "
                                                                                "the projection plane"}),
            "solver_nfe": ((), stats["nfe"], {**one, "long_name": "solver field evaluations"}),
            "solver_steps": ((), stats["steps"], {**one, "long_name": "solver steps"}),
        },
        coords={
            "time": ("time", times, {**one, "long_name": "simulated time (model units)"}),
            "init": ("init", np.arange(config.inits), {**one, "long_name": "initial state"}),
            "minimum": ("minimum", np.arange(len(reps)), {**one, "long_name": "fixed point, by increasing energy"}),
            "traj": ("traj", np.arange(P), {**one, "long_name": "initial state of a projected trajectory"}),
            "pc": ("pc", np.array([1, 2]), {**one, "long_name": "principal component"}),
            "pc_a": ("pc_a", ga, {**one, "long_name": "coordinate along principal component 1"}),
            "pc_b": ("pc_b", gb, {**one, "long_name": "coordinate along principal component 2"}),
        },
    )
    return ds


def summarize(ds: xr.Dataset) -> str:
    """Fixed points found, their energies and basins, and the Lyapunov check."""
    cfg = json.loads(ds.attrs["config"])
    lines = [f"landscape: {cfg['coupling']} coupling, N = {cfg['N']}, n = {cfg['n']}, {ds.sizes['init']} initial "
             f"states, method {cfg['method']}, symmetry modded out: {ds.attrs.get('symmetry')}",
             f"converged: {int(ds['converged'].sum())}/{ds.sizes['init']}; distinct fixed points: "
             f"{ds.sizes['minimum']}; energy never increased: {'yes' if int(ds['energy_monotone']) else 'NO'} "
             f"(largest increase {float(ds['max_energy_increase']):.2e})",
             "  #     energy    basin      r"]
    for m in range(min(ds.sizes["minimum"], 12)):
        lines.append(f"{m:3d} {float(ds['minimum_energy'][m]):10.4f} {100 * float(ds['basin_size'][m]):7.1f}% "
                     f"{float(ds['minimum_r'][m]):6.3f}")
    if ds.sizes["minimum"] > 12:
        lines.append(f"  ... {ds.sizes['minimum'] - 12} more")
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``landscape.png``: energy vs time, energy histogram of the minima, 2-D projection.

    Args:
        ds: a landscape Dataset.
        path: PNG destination (written atomically).

    Returns:
        ``path``.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from studies.storage import atomic_output

    if not isinstance(ds, xr.Dataset) or "energy_t" not in ds:
        raise ValueError("ds: expected a landscape Dataset with an 'energy_t' variable")
    cfg = json.loads(ds.attrs["config"])
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_e, ax_h, ax_p = fig.subplots(1, 3)
    C = ds.sizes["minimum"]
    cmap = matplotlib.colormaps["tab10" if C <= 10 else "viridis"]

    def color(c: int):
        return cmap(c % 10) if C <= 10 else cmap(c / max(1, C - 1))

    t = ds["time"].values
    labels = ds["minimum_index"].values
    shown = min(ds.sizes["init"], 40)
    for i in range(shown):
        ax_e.plot(t, ds["energy_t"].values[:, i], lw=0.8, alpha=0.7, color=color(int(labels[i])))
    ax_e.set_xlabel("simulated time t (model units)")
    ax_e.set_ylabel("energy E(x)")
    ax_e.set_title(f"energy along {shown} of {ds.sizes['init']} runs (colour: fixed point reached)", fontsize=9.5)
    ax_e.grid(alpha=0.3)
    mono = "never increases" if int(ds["energy_monotone"]) else "INCREASES"
    ax_e.text(0.98, 0.97, f"E {mono} (max ΔE = {float(ds['max_energy_increase']):.1e})", transform=ax_e.transAxes,
              ha="right", va="top", fontsize=8, bbox={"fc": "white", "alpha": 0.8, "lw": 0})

    ef = ds["energy_final"].values
    bins = np.linspace(ef.min() - 1e-9, ef.max() + 1e-9, 31) if np.ptp(ef) > 0 else 10
    ax_h.hist(ef, bins=bins, color="lightgray", edgecolor="gray", label="final energy of every run")
    ax_h2 = ax_h.twinx()
    me, bs = ds["minimum_energy"].values, ds["basin_size"].values
    for c in range(C):
        ax_h2.vlines(me[c], 0, 100 * bs[c], color=color(c), lw=2.5)
    ax_h2.set_ylabel("basin size of the fixed point (%)")
    ax_h2.set_ylim(0, 105 * max(bs.max(), 1e-3))
    ax_h.set_xlabel("energy E at the fixed point")
    ax_h.set_ylabel("number of runs")
    ax_h.set_title(f"{C} distinct fixed points (bars: basin sizes)", fontsize=9.5)
    ax_h.legend(fontsize=8, loc="upper right")

    ga, gb = ds["pc_a"].values, ds["pc_b"].values
    cs = ax_p.contourf(ga, gb, ds["contour_energy"].values, levels=25, cmap="Greys_r", alpha=0.85)
    fig.colorbar(cs, ax=ax_p, label="energy on the projection plane")
    proj = ds["projection_t"].values
    for k in range(ds.sizes["traj"]):
        c = color(int(labels[int(ds["traj"].values[k])]))
        ax_p.plot(proj[:, k, 0], proj[:, k, 1], lw=1.0, color=c)
        ax_p.plot(proj[0, k, 0], proj[0, k, 1], "o", ms=4, mfc="white", mec=c)
        ax_p.plot(proj[-1, k, 0], proj[-1, k, 1], "o", ms=5, color=c)
    ev = ds["explained_variance"].values
    ax_p.set_xlabel(f"principal component 1 ({100 * ev[0]:.0f}% of variance)")
    ax_p.set_ylabel(f"principal component 2 ({100 * ev[1]:.0f}% of variance)")
    ax_p.set_title("trajectories (○ start, ● end) over the energy of the plane", fontsize=9.5)
    fig.suptitle(f"Energy landscape: {cfg['coupling']} coupling, N = {cfg['N']}, n = {cfg['n']}, stimulus "
                 f"{cfg['stimulus']:g}, Ω width {cfg['omega_width']:g}, method {cfg['method']}", fontsize=11)
    path = Path(path)
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
