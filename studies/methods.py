"""``akorn integrators``: every registered integration method against a float64 reference.

One test problem with every term of the flow active — a dense random coupling, Gaussian
natural frequencies and a stimulus, ``dx_i/dt = Ω_i x_i + Proj_{x_i}(c_i + Σ_j J_ij x_j)`` —
is integrated to ``t_end`` from a batch of random states by every method in
``integrators.METHODS`` and compared with ``scipy_reference`` (SciPy DOP853 at rtol = atol =
1e-12). Fixed-step methods run at step sizes ``h = h_max / 2^k``; adaptive methods run at
tolerances ``rtol = atol = rtol_max · 10^(−k)`` for the same ``k`` and report the mean step
they took. For each run: the error at ``t_end`` (largest Euclidean distance of an oscillator
from the reference), the drift off the spheres (largest ``| |x_i| − 1 |``), the wall and CPU
time (median of ``repeats`` runs), and the solver statistics. The fitted slope of log error vs
log h gives each fixed-step method's observed order, to compare with its nominal order.

The runs are timed one after another in this process (not on Dask): parallel runs on a
shared machine would measure each other. Set ``OMP_WAIT_POLICY=PASSIVE`` (the ``akorn``
command does) so that torch's idle threads do not spin.

Results (``integrators.h5``): dims ``method × h`` (for adaptive methods the ``h`` index is
the tolerance level: see ``rtol`` and ``h_effective``); variables ``error``, ``drift``,
``wall_time``, ``cpu_time``, ``nfe``, ``steps``, ``rejected``, ``status``, per-method
``order``, ``order_observed``, ``adaptive``, ``stays_on_sphere``. Plot: error vs step size
(order slopes) and error vs wall time (work–precision), and the sphere drift.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import xarray as xr

from studies.config import ConfigError, StudyConfig, param

__all__ = ["FILENAME", "Config", "build_problem", "fit_order", "plot", "run", "summarize"]

FILENAME = "integrators.h5"
REFERENCE = "scipy_reference"


@dataclasses.dataclass(frozen=True)
class Config(StudyConfig):
    """Parameters of the integrator comparison (defaults: the quick preset)."""

    study: ClassVar[str] = "integrators"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"N": 256, "batch": 8, "t_end": 10.0, "levels": 8, "repeats": 5, "max_steps": 100000},
    }

    methods: tuple[str, ...] = param(("all",), "methods to compare (names from integrators.METHODS), or 'all'",
                                     metavar="METHOD")
    N: int = param(32, "number of oscillators")
    n: int = param(2, "sphere dimension (natural frequencies need an even n; odd n runs with Ω = 0)")
    batch: int = param(4, "random initial states integrated together")
    coupling: float = param(1.0, "scale of the dense Gaussian coupling J_ij ~ coupling·N(0, 1/N)", units="1")
    omega_width: float = param(1.0, "standard deviation of the Gaussian natural frequencies (0: Ω = 0)", units="1")
    stimulus: float = param(0.5, "strength |c_i| of a random stimulus (0: none)", units="1")
    t_end: float = param(5.0, "integration time", units="1")
    h_max: float = param(0.5, "largest step size of fixed-step methods", units="1")
    levels: int = param(5, "step sizes h_max/2^k (and tolerances rtol_max·10^-k), k = 0 .. levels-1")
    rtol_max: float = param(1e-3, "loosest tolerance (rtol = atol) of adaptive methods", units="1")
    repeats: int = param(3, "timed repetitions per run (the median is kept; a run slower than 0.5 s is timed once)")
    max_steps: int = param(2000, "step budget of an adaptive run; tighter tolerances of a method that exceeds it "
                                 "are skipped")
    seed: int = param(0, "seed of the problem and the initial states")
    dtype: Literal["float64", "float32"] = param("float64", "floating-point precision of the compared runs")

    def validate(self) -> None:
        self._positive("N", "n", "batch", "t_end", "h_max", "levels", "rtol_max", "repeats", "max_steps")
        self._positive("coupling", "omega_width", "stimulus", "seed", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected a sphere dimension >= 2, got {self.n}")
        if self.omega_width > 0 and self.n % 2:
            raise ConfigError("omega_width", f"natural frequencies need an even n; use --omega-width 0 with n={self.n}")
        if self.h_max > self.t_end:
            raise ConfigError("h_max", f"must not exceed t_end={self.t_end:g}, got {self.h_max:g}")
        if self.rtol_max >= 1:
            raise ConfigError("rtol_max", f"expected a tolerance below 1, got {self.rtol_max:g}")
        try:
            from integrators import METHODS
        except ImportError as exc:
            raise ConfigError("methods", f"the integrators package cannot be imported ({exc})") from None
        if "all" in self.methods and len(self.methods) > 1:
            raise ConfigError("methods", "give 'all' alone or a list of method names")
        unknown = [m for m in self.methods if m != "all" and m not in METHODS]
        if unknown:
            raise ConfigError("methods", f"unknown method {unknown[0]!r}; valid: all, {', '.join(sorted(METHODS))}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError("methods", f"expected distinct names, got {self.methods}")

    @property
    def method_names(self) -> list[str]:
        """The compared methods (the reference excluded), in registry order."""
        from integrators import METHODS

        names = list(METHODS) if self.methods == ("all",) else list(self.methods)
        return [m for m in names if m != REFERENCE]

    @property
    def steps(self) -> np.ndarray:
        """Nominal step sizes ``[levels]``."""
        return self.h_max / 2.0 ** np.arange(self.levels)

    @property
    def tolerances(self) -> np.ndarray:
        """Tolerances of adaptive methods ``[levels]``."""
        return self.rtol_max * 10.0 ** -np.arange(self.levels, dtype=float)


def build_problem(config: Config):
    """``(field, x0)``: the test field and a batch of initial states (float64)."""
    import torch

    import kuramoto as ku

    if not isinstance(config, Config):
        raise TypeError(f"config: expected an integrators Config, got {type(config).__name__}")
    g = torch.Generator().manual_seed(config.seed)
    N, n = config.N, config.n
    J = config.coupling * torch.randn(N, N, generator=g, dtype=torch.float64) / math.sqrt(N)
    omega = None
    if config.omega_width > 0:
        omega = ku.Frequencies(ku.gaussian(N, config.omega_width, generator=g, dtype=torch.float64))
    stimulus = None
    if config.stimulus > 0:
        stimulus = config.stimulus * ku.random_states(N, n=n, generator=g, dtype=torch.float64)
    field = ku.KuramotoField(ku.Dense(J), omega=omega, stimulus=stimulus)
    x0 = ku.random_states(config.batch, N, n=n, generator=g, dtype=torch.float64)
    return field, x0


def fit_order(h: np.ndarray, error: np.ndarray, floor: float = 1e-11, ceiling: float = 0.3) -> float:
    """Least-squares slope of ``log error`` vs ``log h`` over the points with ``floor < error < ceiling``.

    Points at round-off (below ``floor``) or outside the asymptotic range (above ``ceiling``)
    are left out; NaN if fewer than two remain.
    """
    h, error = np.asarray(h, dtype=float), np.asarray(error, dtype=float)
    if h.shape != error.shape:
        raise ValueError(f"error: expected the shape of h {h.shape}, got {error.shape}")
    ok = np.isfinite(error) & np.isfinite(h) & (error > floor) & (error < ceiling) & (h > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h[ok]), np.log(error[ok]), 1)[0])


def _timed(fn, repeats: int, slow: float = 0.5) -> tuple[Any, float, float]:
    """``fn()``'s result and its median wall and CPU time over ``repeats`` calls (one call if
    it takes longer than ``slow`` seconds)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        if walls[-1] > slow:
            break
    return out, float(np.median(walls)), float(np.median(cpus))


def run(config: Config, *, path: str | Path | None = None, progress: bool = True,
        overwrite: bool = False) -> xr.Dataset:
    """Run the comparison.

    Args:
        config: the study parameters.
        path: result file (written atomically when complete); a complete file of the same
            config is returned without recomputing.
        progress: a tqdm bar over the runs.
        overwrite: replace a file at ``path`` that holds a different config.

    Returns:
        The Dataset described in the module doc (dims ``method``, ``h``).
    """
    import torch
    from tqdm.auto import tqdm

    from integrators import METHODS, SolverError, solve
    from studies import storage

    if not isinstance(config, Config):
        raise TypeError(f"config: expected an integrators Config, got {type(config).__name__}")
    path = Path(path) if path is not None else None
    if path is not None and path.exists() and not overwrite:
        existing = storage.open_dataset(path, study=Config.study)
        if existing.attrs.get("config") == config.to_json():
            return existing
        raise storage.StorageError(f"path: {str(path)!r} holds a run with a different config; pass --overwrite or "
                                   f"choose another --out")
    dtype = {"float64": torch.float64, "float32": torch.float32}[config.dtype]
    field64, x64 = build_problem(config)
    t = torch.tensor([0.0, config.t_end], dtype=torch.float64)
    with torch.no_grad():
        ref, ref_wall, _ = _timed(lambda: solve(field64, x64, t, method=REFERENCE), 1)
    x_ref = ref.x_final.double()
    ref_drift = float((torch.linalg.vector_norm(x_ref, dim=-1) - 1).abs().max())
    field, x0 = field64.to(dtype), x64.to(dtype)
    names = config.method_names
    M, L = len(names), config.levels
    shape = (M, L)
    error, drift = np.full(shape, np.nan), np.full(shape, np.nan)
    wall, cpu = np.full(shape, np.nan), np.full(shape, np.nan)
    h_eff, rtol = np.full(shape, np.nan), np.full(shape, np.nan)
    nfe, steps, rejected = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    status = np.full(shape, "success", dtype=object)
    with tqdm(total=M * L, desc="integrator runs", unit="run", disable=not progress) as bar:
        for i, name in enumerate(names):  # a loop over sweep points (method × h)
            cls = METHODS[name]
            over_budget = False
            for k in range(L):
                kwargs: dict[str, Any] = {}
                if cls.adaptive:
                    rtol[i, k] = config.tolerances[k]
                    if over_budget:
                        status[i, k] = f"skipped: more than max_steps={config.max_steps} steps at a looser tolerance"
                        bar.update(1)
                        continue
                    kwargs.update(rtol=float(rtol[i, k]), atol=float(rtol[i, k]))
                    if "max_steps" in inspect.signature(cls.__init__).parameters:
                        kwargs["options"] = {"max_steps": config.max_steps}
                else:
                    kwargs["dt"] = float(config.steps[k])
                try:
                    # A method's warnings (torchdiffeq's "functional iteration did not converge")
                    # are results of the comparison: recorded in the status, not raised.
                    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        sol, wall[i, k], cpu[i, k] = _timed(
                            lambda kw=kwargs, nm=name: solve(field, x0, t, method=nm, save_states=False, **kw),
                            config.repeats)
                except (SolverError, ValueError, RuntimeError) as exc:
                    status[i, k] = f"failed: {type(exc).__name__}: {exc}"[:300]
                    over_budget = over_budget or "max_steps" in str(exc)
                    bar.update(1)
                    continue
                x = sol.x_final.double()
                error[i, k] = float(torch.linalg.vector_norm(x - x_ref, dim=-1).max())
                drift[i, k] = float((torch.linalg.vector_norm(x, dim=-1) - 1).abs().max())
                nfe[i, k] = int(sol.stats.get("nfe", 0))
                steps[i, k] = int(sol.stats.get("steps", 0))
                rejected[i, k] = int(sol.stats.get("rejected", 0))
                accepted = int(sol.stats.get("accepted", steps[i, k] - rejected[i, k])) or steps[i, k]
                h_eff[i, k] = config.t_end / accepted if accepted else np.nan
                status[i, k] = sol.status
                over_budget = cls.adaptive and steps[i, k] > config.max_steps / 3
                if caught:
                    status[i, k] = f"{sol.status}; warning: {caught[0].message}"[:300]
                if not np.isfinite(error[i, k]):
                    status[i, k] = "non-finite result"
                bar.update(1)
    floor = 1e-10 if config.dtype == "float64" else 1e-5
    observed = np.array([fit_order(h_eff[i], error[i], floor=floor) if not METHODS[m].adaptive else np.nan
                         for i, m in enumerate(names)])
    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "error": (("method", "h"), error, {**one, "long_name": "max_i |x_i(t_end) − x_ref,i(t_end)| against "
                                                                  "scipy_reference"}),
            "drift": (("method", "h"), drift, {**one, "long_name": "max_i | |x_i(t_end)| − 1 | (distance off the "
                                                                  "spheres)"}),
            "wall_time": (("method", "h"), wall, {"units": "s", "long_name": f"wall time of one solve (median of "
                                                                             f"{config.repeats})"}),
            "cpu_time": (("method", "h"), cpu, {"units": "s", "long_name": "process CPU time of one solve (median)"}),
            "nfe": (("method", "h"), nfe, {**one, "long_name": "field evaluations"}),
            "steps": (("method", "h"), steps, {**one, "long_name": "attempted steps"}),
            "rejected": (("method", "h"), rejected, {**one, "long_name": "rejected steps"}),
            "status": (("method", "h"), status.astype(str).astype(object), {"long_name": "solver status"}),
            "order": (("method",), np.array([METHODS[m].order for m in names], dtype=np.int64),
                      {**one, "long_name": "nominal order of the method"}),
            "order_observed": (("method",), observed, {**one, "long_name": "fitted slope of log error vs log h "
                                                                           "(fixed-step methods)"}),
            "adaptive": (("method",), np.array([int(METHODS[m].adaptive) for m in names], dtype=np.int8),
                         {**one, "long_name": "1 for an adaptive method (h index = tolerance level)"}),
            "stays_on_sphere": (("method",), np.array([int(METHODS[m].stays_on_sphere) for m in names],
                                                      dtype=np.int8),
                                {**one, "long_name": "1 if the method keeps |x_i| = 1 by construction"}),
            "reference_drift": ((), ref_drift, {**one, "long_name": "drift of the reference solution"}),
            "reference_wall_time": ((), ref_wall, {"units": "s", "long_name": "wall time of the reference solve"}),
        },
        coords={
            "method": ("method", np.asarray(names, dtype=object), {"long_name": "integration method"}),
            "h": ("h", config.steps, {**one, "long_name": "nominal step size of fixed-step methods"}),
            "h_effective": (("method", "h"), h_eff, {**one, "long_name": "mean accepted step t_end/accepted steps"}),
            "rtol": (("method", "h"), rtol, {**one, "long_name": "rtol = atol of adaptive methods (NaN for "
                                                                 "fixed-step ones)"}),
        },
    )
    ds.attrs = storage.result_attrs(Config.study, config, config.seed, complete=1, reference=REFERENCE,
                                    reference_rtol=1e-12, timing="sequential, in this process")
    if path is not None:
        storage.write_dataset(ds, path)
        ds = storage.open_dataset(path, study=Config.study)
    return ds


def _at(method: str) -> dict[str, str]:
    # .sel(method=...) would be taken as sel's own ``method`` argument (inexact matching).
    return {"method": method}


def summarize(ds: xr.Dataset) -> str:
    """One line per method: nominal and observed order, best error, its cost, drift."""
    lines = [f"{'method':<18} {'order':>5} {'observed':>8} {'best error':>11} {'wall (s)':>9} {'nfe':>7} "
             f"{'max drift':>10}"]
    for m in ds["method"].values:
        e = ds["error"].sel(_at(m)).values
        if np.all(~np.isfinite(e)):
            lines.append(f"{m:<18} {int(ds['order'].sel(_at(m))):>5}   failed: "
                         f"{str(ds['status'].sel(_at(m)).values[0])[:60]}")
            continue
        k = int(np.nanargmin(e))
        obs = float(ds["order_observed"].sel(_at(m)))
        lines.append(f"{m:<18} {int(ds['order'].sel(_at(m))):>5} {obs:>8.2f} {e[k]:>11.2e} "
                     f"{float(ds['wall_time'].sel(_at(m))[k]):>9.4f} {int(ds['nfe'].sel(_at(m))[k]):>7d} "
                     f"{np.nanmax(ds['drift'].sel(_at(m)).values):>10.1e}")
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: str | Path) -> Path:
    """Write the comparison figure: error vs h (order slopes), error vs wall time, drift vs h.

    Args:
        ds: an integrators Dataset.
        path: PNG destination (written atomically).

    Returns:
        ``path``.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from studies.storage import atomic_output

    if not isinstance(ds, xr.Dataset) or "error" not in ds:
        raise ValueError("ds: expected an integrators Dataset with an 'error' variable")
    cfg = json.loads(ds.attrs["config"])
    fig = Figure(figsize=(17, 6.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_o, ax_w, ax_d = fig.subplots(1, 3)
    names = list(ds["method"].values)
    cmap = matplotlib.colormaps["tab20"]
    tiny = 1e-17
    for i, m in enumerate(names):
        sel = ds.sel(_at(m))
        err = np.maximum(sel["error"].values, tiny)
        h = sel["h_effective"].values
        ok = np.isfinite(sel["error"].values)
        if not ok.any():
            continue
        adaptive = bool(sel["adaptive"])
        style = {"color": cmap(i % 20), "marker": "osD^v<>"[i % 7], "ms": 4, "lw": 1.2,
                 "ls": "--" if adaptive else "-"}
        obs = float(sel["order_observed"])
        if adaptive:
            label = f"{m} (p={int(sel['order'])}, adaptive)"
        else:
            label = f"{m} (p={int(sel['order'])}" + (f", fit {obs:.1f})" if np.isfinite(obs) else ")")
        ax_o.loglog(h[ok], err[ok], label=label, **style)
        ax_w.loglog(np.maximum(sel["wall_time"].values[ok], 1e-6), err[ok], label=m, **style)
        ax_d.loglog(h[ok], np.maximum(sel["drift"].values[ok], tiny), label=m, **style)
    hh = ds["h"].values
    for p, ls in ((1, ":"), (2, "-."), (4, "--")):
        anchor = 1e-2 * (hh / hh.max()) ** p
        ax_o.loglog(hh, anchor, color="black", lw=0.8, ls=ls, alpha=0.6)
        ax_o.text(hh[-1], anchor[-1], f" slope {p}", fontsize=7, va="center", alpha=0.7)
    ax_o.set_xlabel("step size h (mean accepted step for adaptive methods, model time units)")
    ax_o.set_ylabel(f"error at t = {cfg['t_end']:g}: max_i |x_i − x_ref,i|")
    ax_o.set_title("convergence (order slopes)", fontsize=10)
    ax_w.set_xlabel("wall time per solve (s)")
    ax_w.set_ylabel("error")
    ax_w.set_title("work–precision", fontsize=10)
    ax_d.set_xlabel("step size h (model time units)")
    ax_d.set_ylabel("drift off the spheres: max_i | |x_i| − 1 |")
    ax_d.set_title("sphere drift (round-off level: method stays on the sphere)", fontsize=10)
    for ax in (ax_o, ax_w, ax_d):
        ax.grid(alpha=0.3, which="both")
    handles, labels = ax_o.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7.5,
               title="method (nominal order p,\nfitted slope); dashed: adaptive")
    fig.suptitle(f"Integrators vs scipy_reference: N = {cfg['N']}, n = {cfg['n']}, batch {cfg['batch']}, dense J "
                 f"(scale {cfg['coupling']:g}), Ω width {cfg['omega_width']:g}, stimulus {cfg['stimulus']:g}, "
                 f"{cfg['dtype']}", fontsize=11)
    path = Path(path)
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=115)
    return path
