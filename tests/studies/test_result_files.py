"""What the result files of ``akorn sync``, ``landscape`` and ``integrators`` promise: no name that
xarray's own keywords capture, units with meaning, basins over converged runs, every NaN explained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("integrators")

from studies import landscape, methods, storage, sync, units  # noqa: E402

from .result_checks import XARRAY_KEYWORDS, assert_result_file, keyword_collisions, nan_variables  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Small runs of the three plain studies, read back from their files."""
    root = tmp_path_factory.mktemp("results")
    configs = {
        "sync": sync.Config.preset("quick", N=(100,), k_num=4, k_max=2.0, seeds=2, t_transient=2.0, t_average=2.0,
                                   chunks=1),
        "sync_ring": sync.Config.preset("quick", N=(40,), graph="ring", degree=4, k_num=2, seeds=1, t_transient=1.0,
                                        t_average=1.0, chunks=1),
        "landscape": landscape.Config.preset("quick", N=32, inits=24, t_max=40.0, project_inits=4, grid=8),
        "integrators": methods.Config.preset("quick", methods=("euler_normalized", "rk4_normalized", "dopri5"), N=8,
                                             batch=2, levels=3, repeats=1),
    }
    out = {}
    for name, config in configs.items():
        path = root / f"{name}.h5"
        if name.startswith("sync"):
            sync.run(config, path=path, workers=0, progress=False)
        else:
            {"landscape": landscape, "integrators": methods}[name].run(config, path=path, progress=False)
        out[name] = storage.open_dataset(path, combine_complex=True)
    return out


def test_the_keyword_list_holds_the_names_that_bit():
    assert {"method", "tolerance", "drop", "indexers", "missing_dims"} <= XARRAY_KEYWORDS
    assert keyword_collisions(xr.Dataset(coords={"method": ["a", "b"]})) == {"method"}


@pytest.mark.parametrize("name", ["sync", "sync_ring", "landscape", "integrators"])
def test_result_file_names_units_and_nans(results, name):
    assert_result_file(results[name])
    assert results[name].attrs["units_convention"] == units.CONVENTION


def test_selecting_one_solver_selects_one(results):
    ds = results["integrators"]
    assert ds["error"].dims == ("solver", "h")
    one = ds["error"].sel(solver="euler_normalized")
    assert one.dims == ("h",)
    assert not np.array_equal(one.values, ds["error"].sel(solver="rk4_normalized").values)


def test_time_is_model_time_and_rates_are_per_model_time(results):
    for name in ("sync", "landscape"):
        time = results[name]["time"]
        assert time.attrs["units"] == units.TIME and time.attrs["axis"] == "T"
        assert "standard_name" not in time.attrs  # CF's 'time' is in seconds; model time is not
    s = results["sync"]
    assert s["K"].attrs["units"] == s["K_c"].attrs["units"] == units.RATE
    assert s["omega_max"].attrs["units"] == units.ANGULAR_VELOCITY
    assert s["r"].attrs["units"] == units.DIMENSIONLESS
    assert results["landscape"]["energy_t"].attrs["units"] == units.RATE
    m = results["integrators"]
    assert m["h"].attrs["units"] == m["h_effective"].attrs["units"] == units.TIME
    assert m["wall_time"].attrs["units"] == units.SECONDS


def test_nans_where_theory_does_not_apply_say_so(results):
    ds = results["sync_ring"]
    assert {"r_theory", "K_c"} <= set(nan_variables(ds))
    assert "complete graph" in ds["K_c"].attrs["comment"]


def test_basins_are_over_converged_runs_and_unconverged_runs_are_apart(results):
    ds = results["landscape"]
    converged = ds["converged"].values.astype(bool)
    assert 0 < converged.sum() < ds.sizes["init"]  # the case this test is about
    assert int(ds["converged_runs"]) == converged.sum()
    assert int(ds["unconverged_runs"]) == (~converged).sum()
    assert int(ds["basin_count"].sum()) == converged.sum()
    assert float(ds["basin_size"].sum()) == pytest.approx(1.0)
    index = ds["minimum_index"].values
    assert (index[~converged] == -1).all() and (index[converged] >= 0).all()
    assert (ds["minimum_residual"].values < json.loads(ds.attrs["config"])["tol"]).all()
    summary = landscape.summarize(ds)
    assert f"converged: {converged.sum()}/{ds.sizes['init']}" in summary
    assert f"{(~converged).sum()} still moving" in summary


def test_no_converged_run_gives_no_fixed_point(tmp_path):
    config = landscape.Config.preset("quick", N=9, inits=4, t_max=0.5, project_inits=2, grid=4)
    ds = landscape.run(config, path=tmp_path / "landscape.h5", progress=False)
    assert int(ds["converged_runs"]) == 0 and ds.sizes["minimum"] == 0
    assert (ds["minimum_index"].values == -1).all()
    assert "converged: 0/4" in landscape.summarize(ds)
    assert landscape.plot(ds, tmp_path / "landscape.png").read_bytes()[:4] == b"\x89PNG"


def test_a_missing_order_says_why(results):
    ds = results["integrators"]
    euler = ds.sel(solver="euler_normalized")
    # At the quick preset's coarse steps the paper's update is not yet first order: its errors
    # are of the order of the sphere's size, above the fit range.
    assert np.isnan(float(euler["order_observed"])) and (euler["error"].values >= methods.FIT_CEILING).all()
    assert "too coarse" in str(euler["order_note"].values)
    assert "adaptive" in str(ds["order_note"].sel(solver="dopri5").values)
    assert str(ds["order_note"].sel(solver="rk4_normalized").values).startswith("fitted over 3 of 3")
    summary = methods.summarize(ds)
    assert "n/a *" in summary and "* euler_normalized: not fitted (NaN)" in summary


@pytest.mark.parametrize("errors, words", [
    ([1.9, 0.9, 0.4], "too coarse"),
    ([1e-3, 1e-13, 1e-14], "round-off"),
    ([np.nan, np.nan, 1e-3], "failed or skipped"),
])
def test_order_note_names_the_reason(errors, words):
    h = np.array([0.5, 0.25, 0.125])
    assert np.isnan(methods.fit_order(h, np.array(errors), floor=1e-10))
    note = methods.order_note(h, np.array(errors), adaptive=False, floor=1e-10)
    assert note.startswith("not fitted (NaN)") and words in note


def test_an_earlier_integrators_file_is_read_in_the_current_layout(results, tmp_path):
    old = results["integrators"].rename({"solver": "method"})
    path = storage.write_dataset(old, tmp_path / "integrators.h5")
    config = methods.Config.from_json(old.attrs["config"])
    ds = methods.run(config, path=path, progress=False)  # the same config: the file, not a new run
    assert "solver" in ds.dims and "method" not in ds.dims
    assert "euler_normalized" in methods.summarize(old)
    assert methods.plot(old, tmp_path / "old.png").read_bytes()[:4] == b"\x89PNG"


def test_order_note_says_when_the_state_left_the_spheres():
    h = np.array([0.5, 0.25, 0.125])
    note = methods.order_note(h, np.array([160.0, 34.0, 6.4]), adaptive=False, floor=1e-10)
    assert "too coarse" in note and "left the spheres" in note
    assert "left the spheres" not in methods.order_note(h, np.array([1.9, 0.9, 0.4]), adaptive=False, floor=1e-10)
