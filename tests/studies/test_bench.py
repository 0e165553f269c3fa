import json

import pytest
import xarray as xr

from studies import bench


def test_flatten_and_timeit():
    assert bench.flatten({"a": {"b": 1, "c": "x"}, "d": 2.5, "e": True}) == {"a/b": 1.0, "d": 2.5}
    t = bench.timeit(lambda: sum(range(100)), repeat=3)
    assert t["runs"] >= 3 and t["wall"] >= 0 and t["cpu"] >= 0
    with pytest.raises(ValueError, match="repeat"):
        bench.timeit(lambda: None, repeat=0)


def test_core_suite_writes_results(tmp_path, capsys):
    assert bench.main(["core", "--out", str(tmp_path), "--", "--sizes", "50", "200", "--big", "2000"]) == 0
    out = capsys.readouterr().out
    assert "MeanField N=2000" in out and "Dense N=200" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["results"]["core"]["N=200"]["dense_over_meanfield"] > 0
    with xr.open_dataset(tmp_path / "bench.h5", engine="h5netcdf") as ds:
        assert "core/N=2000/ns_per_oscillator" in list(ds["metric"].values)


def test_unknown_suite_exits_with_message(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["nope"])
    assert exc.value.code != 0
    assert "unknown suite" in capsys.readouterr().err
