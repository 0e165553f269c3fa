"""``akorn landscape``: schema, the Lyapunov property, fixed points and basins, clustering modulo symmetry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

pytest.importorskip("integrators")

import kuramoto as ku  # noqa: E402
from studies import landscape  # noqa: E402
from studies.config import ConfigError  # noqa: E402

from .result_checks import assert_documented  # noqa: E402


@pytest.fixture(scope="module")
def hopfield(tmp_path_factory):
    """The quick preset (Hopfield, 4 patterns), scaled down."""
    config = landscape.Config.preset("quick", N=32, inits=48, t_max=60.0, project_inits=6, grid=12)
    path = tmp_path_factory.mktemp("landscape") / "landscape.h5"
    return config, landscape.run(config, path=path, progress=False), path


def test_quick_preset_run_has_documented_schema(hopfield):
    config, ds, path = hopfield
    assert ds.sizes["init"] == 48 and ds.sizes["time"] == 121 and ds.sizes["node"] == 32
    assert ds.sizes["component"] == 3 and ds.sizes["pc"] == 2 and ds.sizes["pc_a"] == ds.sizes["pc_b"] == 12
    for name in ("energy_t", "r_t", "energy_final", "residual", "converged", "minimum_index", "minimum_energy",
                 "basin_size", "basin_count", "minimum_state", "max_energy_increase", "energy_monotone",
                 "projection_t", "contour_energy"):
        assert name in ds, name
    assert_documented(ds, config, numeric_kinds="fiu")
    with xr.open_dataset(path) as plain:
        assert "energy_t" in plain
    png = landscape.plot(ds, path.with_suffix(".png"))
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "distinct fixed points" in landscape.summarize(ds)
    # a second run with the same config returns the file
    again = landscape.run(config, path=path, progress=False)
    xr.testing.assert_identical(again, ds)


def test_energy_never_increases_for_a_gradient_flow(hopfield):
    _, ds, _ = hopfield
    assert int(ds["energy_monotone"]) == 1
    dE = np.diff(ds["energy_t"].values, axis=0)
    assert dE.max() <= 1e-9 * np.abs(ds["energy_t"].values).max()
    assert float(ds["max_energy_increase"]) == pytest.approx(dE.max())


def test_fixed_points_and_basins(hopfield):
    _, ds, _ = hopfield
    assert np.isclose(float(ds["basin_size"].sum()), 1.0)  # fractions of the converged runs
    assert int(ds["basin_count"].sum()) == int(ds["converged_runs"]) == int(ds["converged"].sum())
    assert (np.diff(ds["minimum_energy"].values) >= 0).all()  # sorted by energy
    index = ds["minimum_index"].values
    np.testing.assert_array_equal(np.bincount(index[index >= 0]), ds["basin_count"].values)
    # runs that reached the same fixed point end at the same energy
    for m in range(ds.sizes["minimum"]):
        e = ds["energy_final"].values[ds["minimum_index"].values == m]
        assert np.ptp(e) < 1e-3 * max(1.0, abs(e.mean()))
    # converged runs really sit at a fixed point, and the representative is one
    assert int(ds["converged"].sum()) >= ds.sizes["init"] // 2
    config = landscape.Config.from_json(ds.attrs["config"])
    field = landscape.build_field(config)
    x = torch.as_tensor(ds["minimum_state"].values)
    residual = torch.linalg.vector_norm(field(0.0, x), dim=-1).amax(-1)
    torch.testing.assert_close(residual, torch.as_tensor(ds["minimum_residual"].values))
    torch.testing.assert_close(field.energy(x), torch.as_tensor(ds["minimum_energy"].values))
    # a few patterns stored in 32 oscillators: only a handful of fixed points
    assert 1 <= ds.sizes["minimum"] <= 12


def test_pattern_coupling_equals_dense_blocks():
    g = torch.Generator().manual_seed(3)
    xi = ku.random_states(3, 10, n=3, generator=g, dtype=torch.float64)
    J = torch.einsum("pia,pjb->ijab", xi, xi) / 10
    J[torch.arange(10), torch.arange(10)] = 0.0
    dense = ku.Dense(J)
    fast = landscape.PatternCoupling(xi)
    x = ku.random_states(4, 10, n=3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fast(x), dense(x))
    assert dense.is_symmetric(atol=1e-14)


def test_clustering_mods_out_global_rotation():
    g = torch.Generator().manual_seed(0)
    a = ku.random_states(20, n=3, generator=g, dtype=torch.float64)
    b = ku.random_states(20, n=3, generator=g, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    states = torch.stack([a, a @ Q.T, b, -b, b @ Q.T])
    labels = landscape.cluster_states(states, 0.05, "O(n)")
    assert labels.tolist() == [0, 0, 1, 1, 1]
    assert landscape.cluster_states(states, 0.05, "sign").tolist() == [0, 1, 2, 2, 3]
    assert landscape.cluster_states(states, 0.05, "none").tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="symmetry"):
        landscape.cluster_states(states, 0.05, "SO(3)")


@pytest.mark.parametrize("coupling, N, n", [("dense", 16, 2), ("lattice", 16, 2)])
def test_other_couplings_with_stimulus(coupling, N, n):
    # These relax slowly: at t = 20 a few runs are within tol = 1e-2 of a fixed point, the rest are
    # still moving and in no basin.
    config = landscape.Config(coupling=coupling, N=N, n=n, inits=16, t_max=20.0, tol=1e-2, stimulus=0.5,
                              project_inits=4, grid=6)
    assert config.symmetry == "none"
    ds = landscape.run(config, progress=False)
    assert int(ds["energy_monotone"]) == 1
    assert ds.sizes["minimum"] >= 1
    assert int(ds["basin_count"].sum()) == int(ds["converged_runs"]) >= 1


def test_config_validation_names_the_field():
    for kwargs, field in [({"N": -1}, "N"), ({"coupling": "lattice", "N": 10}, "N"), ({"method": "x"}, "method"),
                          ({"omega_width": 1.0, "n": 3}, "omega_width"), ({"t_max": 10.3}, "t_max"),
                          ({"inits": 0}, "inits")]:
        with pytest.raises(ConfigError) as exc:
            landscape.Config(**kwargs)
        assert exc.value.field == field
