"""``akorn sync``: schema and provenance, physics against theory (with the full Lorentzian tails), options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

pytest.importorskip("integrators")

from studies import storage, sync  # noqa: E402
from studies.config import ConfigError  # noqa: E402
from studies.sync import model as sync_model  # noqa: E402
from studies.sync import plots as sync_plots  # noqa: E402

from .result_checks import assert_documented  # noqa: E402


def test_quick_preset_is_the_documented_default():
    c = sync.Config()
    assert c == sync.Config.preset("quick")
    assert (c.n, c.graph, c.distribution, c.width, c.quantile, c.N) == (2, "complete", "lorentzian", 0.5, True, (2000,))
    np.testing.assert_allclose(c.K, np.linspace(0, 4, 21))
    assert c.method in sync.ROTATION_EXACT
    assert sync.Config.from_json(c.to_json()) == c
    assert sync.Config.preset("paper").N == (20000,)


def test_scaled_down_quick_run_has_documented_schema(tmp_path):
    config = sync.Config.preset("quick", N=(200,), k_num=5, seeds=2, t_transient=3.0, t_average=3.0, chunks=3)
    ds = sync.run(config, path=tmp_path / "sync.h5", workers=0, progress=False)
    assert dict(ds.sizes) == {"time": 12, "K": 5, "N": 1, "seed": 2}
    assert ds["r"].dims == ("K", "N", "seed") and ds["r_t"].dims == ("time", "K", "N", "seed")
    assert np.iscomplexobj(ds["Z_t"].values)
    np.testing.assert_allclose(np.abs(ds["Z_t"].values), ds["r_t"].values, rtol=1e-12)
    for name in ("r", "r_fluctuation", "r_theory", "K_c", "r_incoherent", "omega_max", "solver_nfe", "solver_steps",
                 "solver_status"):
        assert name in ds, name
    assert_documented(ds, config, numeric_kinds="fiuc")
    assert int(ds.attrs["complete"]) == 1
    assert float(ds["K_c"]) == pytest.approx(1.0)
    np.testing.assert_allclose(ds["r_theory"].values, [0, 0, np.sqrt(1 - 1 / 2), np.sqrt(1 - 1 / 3), np.sqrt(0.75)])
    assert (ds["solver_status"].values.astype(str) == "success").all()
    assert (ds["solver_steps"].values == 48).all()  # 6 time units at dt = 0.125
    # the file holds the complex order parameter as two real variables, and opens with plain xarray
    with xr.open_dataset(tmp_path / "sync.h5") as plain:
        assert {"Z_t_real", "Z_t_imag"} <= set(plain.data_vars)
    png = sync.plot(ds, tmp_path / "sync.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "theory" in sync.summarize(ds)


@pytest.fixture(scope="module")
def large_n():
    """N = 20000, quantile Lorentzian (Δ = 0.5): its tails reach |ω| ≈ 3200."""
    common = {"N": (20000,), "seeds": 1, "t_transient": 20.0, "t_average": 20.0, "chunks": 1}
    above = sync.run(sync.Config(k_min=2.0, k_max=4.0, k_num=3, **common), workers=0, progress=False)
    below = sync.run(sync.Config(k_min=0.5, k_max=0.5, k_num=1, **common), workers=0, progress=False)
    return above, below


def test_time_averaged_r_matches_theory_at_n_20000(large_n):
    above, _ = large_n
    assert float(above["omega_max"].max()) > 3000  # the full tails are simulated, nothing dropped
    r = above["r"].mean("seed").isel(N=0)
    theory = above["r_theory"]
    for K in (2.0, 3.0, 4.0):
        assert abs(float(r.sel(K=K)) - float(theory.sel(K=K))) < 0.03, (K, float(r.sel(K=K)))


def test_below_critical_coupling_stays_incoherent_at_n_20000(large_n):
    _, below = large_n
    assert float(below["K_c"]) == pytest.approx(1.0)
    assert float(below["r"].max()) < 0.1
    assert float(below["r_t"].sel(time=slice(20.5, None)).max()) < 0.1


def test_explicit_rk4_with_a_step_the_tails_cannot_take_is_refused():
    config = sync.Config(N=(20000,), k_num=2, method="rk4", dt=0.05, sample_dt=0.5)
    with pytest.raises(ConfigError, match="lawson_rk4") as exc:
        sync.run(config, workers=0, progress=False)
    assert exc.value.field == "dt"
    # with a step that resolves the fastest rotation, RK4 is accepted (N = 50: |ω| ≈ 8)
    ok = sync.Config(N=(50,), k_num=2, method="rk4", dt=0.1, sample_dt=0.5, t_transient=1.0, t_average=1.0,
                     chunks=1, seeds=1)
    assert sync.run(ok, workers=0, progress=False)["r"].shape == (2, 1, 1)


def test_config_validation_names_the_field():
    cases = [({"N": (-5,)}, "N"), ({"k_min": 3.0, "k_max": 1.0}, "k_max"), ({"method": "nope"}, "method"),
             ({"n": 1}, "n"), ({"graph": "lattice", "N": (50,)}, "N"), ({"graph": "ring", "degree": 3}, "degree"),
             ({"sample_dt": 0.3}, "sample_dt"), ({"width": 0.0}, "width"), ({"seeds": 0}, "seeds"),
             ({"distribution": "cauchy"}, "distribution"), ({"N": (100, 100)}, "N"), ({"device": "warp"}, "device")]
    for kwargs, field in cases:
        with pytest.raises(ConfigError) as exc:
            sync.Config(**kwargs)
        assert exc.value.field == field, (kwargs, exc.value)
    with pytest.raises(ConfigError, match="unknown preset"):
        sync.Config.preset("huge")
    assert sync.Config(N=300).N == (300,)  # a single number for a tuple field


def test_hysteresis_sweep_with_uniform_frequencies():
    config = sync.Config(N=(400,), distribution="uniform", width=1.0, k_min=0.5, k_max=2.5, k_num=5, seeds=1,
                         sweep="both", t_transient=10.0, t_average=10.0)
    ds = sync.run(config, workers=0, progress=False)
    assert ds["r"].dims == ("direction", "K", "N", "seed")
    assert list(ds["direction"].values) == ["forward", "backward"]
    assert ds["K_t"].dims == ("time", "direction")
    assert ds.sizes["time"] == 5 * 40
    # K(t) steps up in the forward sweep and down in the backward one
    kt = ds["K_t"].values
    assert kt[0, 0] == 0.5 and kt[-1, 0] == 2.5 and kt[0, 1] == 2.5 and kt[-1, 1] == 0.5
    # uniform g: K_c = 4w/π; the theory jumps to π/4 there; well above it both sweeps agree with theory
    assert float(ds["K_c"]) == pytest.approx(4 / np.pi)
    r = ds["r"].isel(N=0, seed=0)
    for d in ("forward", "backward"):
        assert abs(float(r.sel(direction=d, K=2.5)) - float(ds["r_theory"].sel(K=2.5))) < 0.05
        assert float(r.sel(direction=d, K=0.5)) < 0.2


@pytest.mark.parametrize("n", [3, 4])
def test_vector_oscillators_synchronise(n):
    config = sync.Config(N=(300,), n=n, k_min=0.0, k_max=6.0, k_num=2, seeds=1, width=0.3, t_transient=10.0,
                         t_average=5.0, distribution="gaussian")
    ds = sync.run(config, workers=0, progress=False)
    r = ds["r"].isel(N=0, seed=0).values
    assert r[0] < 0.25 < 0.8 < r[1] <= 1.0
    assert np.isnan(ds["r_theory"]).all() and np.isnan(float(ds["K_c"]))
    assert "Z_t" not in ds


def test_n3_frequencies_rotate_about_random_axes():
    config = sync.Config(N=(50,), n=3, quantile=True)
    module, omega = sync.build_frequencies(config, 50, 0)
    W = module.matrix()
    assert W.shape == (50, 3, 3)
    torch.testing.assert_close(W, -W.transpose(-1, -2))
    # rotation rate of each skew matrix is |ω_i|
    rate = torch.linalg.matrix_norm(W) / np.sqrt(2)
    torch.testing.assert_close(rate, omega.abs().to(rate.dtype))


@pytest.mark.parametrize("graph, N, degree", [("ring", 100, 6), ("erdos_renyi", 200, 8), ("lattice", 100, 4)])
def test_sparse_graphs(graph, N, degree):
    config = sync.Config(N=(N,), graph=graph, degree=6 if graph != "erdos_renyi" else 8, k_num=2, k_max=8.0,
                         seeds=1, t_transient=5.0, t_average=5.0)
    edges, mean_degree = sync_model.graph_edges(config, N, 0)
    assert mean_degree == pytest.approx(degree)
    assert (edges[0] != edges[1]).all()  # no self-loops
    pairs = set(map(tuple, edges.T.tolist()))
    assert len(pairs) == edges.shape[1]  # no duplicate edges
    assert all((j, i) in pairs for i, j in pairs)  # undirected
    coupling = sync.build_coupling(config, 2.0, N, 0)
    assert coupling.is_symmetric(atol=1e-12)
    row_sums = coupling.to_dense().sum(1)  # K·deg_i/mean degree: K on average, exactly K for regular graphs
    assert float(row_sums.mean()) == pytest.approx(2.0)
    if graph != "erdos_renyi":
        torch.testing.assert_close(row_sums, torch.full((N,), 2.0, dtype=torch.float64))
    ds = sync.run(config, workers=0, progress=False)
    assert np.isnan(ds["r_theory"]).all()
    assert ((ds["r"] >= 0) & (ds["r"] <= 1)).all()


def test_finite_size_sweep_over_several_n(tmp_path):
    config = sync.Config(N=(100, 400), k_min=0.0, k_max=3.0, k_num=2, seeds=2, t_transient=10.0, t_average=10.0)
    ds = sync.run(config, workers=0, progress=False)
    assert list(ds["N"].values) == [100, 400]
    r0 = ds["r"].sel(K=0.0).mean("seed")
    # incoherent r shrinks like 1/sqrt(N)
    assert float(r0.sel(N=400)) < float(r0.sel(N=100))
    np.testing.assert_allclose(ds["r_incoherent"].values, 0.886 / np.sqrt([100, 400]), rtol=1e-2)
    sync.plot(ds, tmp_path / "fs.png")


def test_existing_file_with_other_config_is_refused(tmp_path):
    config = sync.Config(N=(50,), k_num=2, seeds=1, t_transient=1.0, t_average=1.0, chunks=1)
    path = tmp_path / "sync.h5"
    sync.run(config, path=path, workers=0, progress=False)
    with pytest.raises(storage.StorageError, match="different config"):
        sync.run(config.replace(k_num=3), path=path, workers=0, progress=False)
    ds = sync.run(config.replace(k_num=3), path=path, workers=0, progress=False, overwrite=True)
    assert ds.sizes["K"] == 3
    assert json.loads(ds.attrs["config"])["k_num"] == 3


def test_transition_plot_draws_nothing_across_k_c_between_simulated_points(monkeypatch):
    # K = 0, 2/3, 4/3, 2 around K_c = 1: a band shaded between neighbouring K drew a wedge across
    # K_c, where r(K) has a kink; the spread over seeds is known at the simulated K only.
    config = sync.Config.preset("quick", N=(100,), k_num=4, k_max=2.0, seeds=2, t_transient=2.0, t_average=2.0,
                                chunks=1)
    ds = sync.run(config, workers=0, progress=False)
    figures = []
    monkeypatch.setattr(sync_plots, "save_figure", lambda fig, path, dpi: figures.append(fig) or path)
    sync.plot(ds, "unused.png")
    ax = figures[0].axes[0]
    kc = float(ds["K_c"])
    assert ax.collections  # the error bars
    for collection in ax.collections:
        for path in collection.get_paths():
            x = path.vertices[:, 0]
            assert not x.min() < kc < x.max(), f"{type(collection).__name__} spans K = {x.min():g}..{x.max():g}"
