"""``akorn integrators``: the comparison's schema, observed orders, sphere drift, failures recorded."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("integrators")

from integrators import METHODS  # noqa: E402
from studies import methods  # noqa: E402
from studies.config import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    config = methods.Config.preset("quick", methods=("euler_normalized", "rk4_normalized", "lawson_rk4", "cf4",
                                                     "rk4", "dopri5"),
                                   N=12, batch=2, t_end=2.0, levels=4, h_max=0.25, repeats=1)
    path = tmp_path_factory.mktemp("methods") / "integrators.h5"
    return config, methods.run(config, path=path, progress=False), path


def test_schema_units_and_provenance(comparison):
    config, ds, path = comparison
    assert dict(ds.sizes) == {"solver": 6, "h": 4}
    np.testing.assert_allclose(ds["h"].values, [0.25, 0.125, 0.0625, 0.03125])
    for name in ("error", "drift", "wall_time", "cpu_time", "nfe", "steps", "rejected", "status", "order",
                 "order_observed", "adaptive", "stays_on_sphere", "h_effective", "rtol"):
        assert name in ds.variables, name
    assert ds["wall_time"].attrs["units"] == "s"
    for name, var in ds.variables.items():
        assert "long_name" in var.attrs, name
        if var.dtype.kind in "fiu":
            assert "units" in var.attrs, name
    assert methods.Config.from_json(ds.attrs["config"]) == config
    assert {"akorn_version", "torch_version", "numpy_version", "git_commit", "seed"} <= set(ds.attrs)
    with xr.open_dataset(path) as plain:
        assert plain["error"].dims == ("solver", "h")
    assert methods.plot(ds, path.with_suffix(".png")).read_bytes()[:4] == b"\x89PNG"
    assert "observed" in methods.summarize(ds)


def test_observed_orders_match_nominal(comparison):
    _, ds, _ = comparison
    for m in ("rk4_normalized", "lawson_rk4", "cf4", "rk4"):
        obs = float(ds["order_observed"].sel(solver=m))
        assert abs(obs - 4) < 0.6, (m, obs)
    assert abs(float(ds["order_observed"].sel(solver="euler_normalized")) - 1) < 0.4
    assert np.isnan(float(ds["order_observed"].sel(solver="dopri5")))
    # errors shrink with h for every fixed-step method
    fixed = ds["adaptive"] == 0
    err = ds["error"].where(fixed, drop=True).values
    assert (np.diff(np.log(err), axis=1) < 0).all()


def test_sphere_drift(comparison):
    _, ds, _ = comparison
    for m in ds["solver"].values:
        drift = ds["drift"].sel(solver=m).values
        if METHODS[str(m)].stays_on_sphere:
            assert drift.max() < 1e-12, m
    # plain RK4 leaves the sphere at a coarse step
    assert float(ds["drift"].sel(solver="rk4").isel(h=0)) > 1e-8


def test_adaptive_runs_report_tolerance_and_mean_step(comparison):
    _, ds, _ = comparison
    d = ds.sel(solver="dopri5")
    np.testing.assert_allclose(d["rtol"].values, 1e-3 * 10.0 ** -np.arange(4))
    assert (d["h_effective"].values > 0).all()
    assert (np.diff(d["nfe"].values) >= 0).all()  # tighter tolerance, more work
    assert np.isnan(ds["rtol"].sel(solver="rk4").values).all()


def test_fit_order():
    h = 0.1 / 2.0 ** np.arange(5)
    assert methods.fit_order(h, 3.0 * h**4) == pytest.approx(4.0)
    assert np.isnan(methods.fit_order(h[:1], h[:1]))
    with pytest.raises(ValueError, match="error"):
        methods.fit_order(h, h[:3])


def test_config_validation():
    for kwargs, field in [({"methods": ("nope",)}, "methods"), ({"methods": ("all", "rk4")}, "methods"),
                          ({"levels": 0}, "levels"), ({"h_max": 10.0}, "h_max"), ({"n": 3}, "omega_width")]:
        with pytest.raises(ConfigError) as exc:
            methods.Config(**kwargs)
        assert exc.value.field == field
    assert "scipy_reference" not in methods.Config().method_names
    assert len(methods.Config().method_names) == len(METHODS) - 1
