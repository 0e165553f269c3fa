"""Result files: round trip, chunked appends, atomicity under SIGKILL, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from studies import storage

REPO = Path(__file__).resolve().parents[2]


def _example(t0: int = 0, m: int = 4) -> xr.Dataset:
    rng = np.random.default_rng(t0)
    t = 0.5 * np.arange(t0 + 1, t0 + m + 1)
    return xr.Dataset(
        {
            "r_t": (("time", "K"), rng.random((m, 3)), {"units": "1", "long_name": "order parameter"}),
            "Z_t": (("K", "time"), np.exp(1j * rng.random((3, m))), {"units": "1", "long_name": "complex order"}),
            "count": (("time",), np.arange(t0, t0 + m, dtype=np.int64), {"units": "1", "long_name": "a counter"}),
        },
        coords={"time": ("time", t, {"units": "1", "long_name": "simulated time"}),
                "K": ("K", np.array([0.5, 1.0, 2.0]), {"units": "1", "long_name": "coupling"})},
    )


def _full_example() -> xr.Dataset:
    ds = _example(0, 5)
    ds["small"] = (("K",), np.array([1.5, -2.0, 3.25], dtype=np.float32), {"units": "1", "long_name": "float32"})
    ds["flag"] = (("K",), np.array([0, 1, 1], dtype=np.int8), {"units": "1", "long_name": "int8 flag"})
    ds["label"] = (("K",), np.array(["a", "bb", "ccc"], dtype=object), {"long_name": "a string per K"})
    ds["scalar"] = ((), 3.5, {"units": "1", "long_name": "a 0-d variable"})
    ds["method"] = ("method", np.array(["rk4", "lawson_rk4"], dtype=object), {"long_name": "method"})
    ds.attrs = storage.result_attrs("demo", json.dumps({"a": 1}), 7, extra_int=3, extra_float=0.25, flag=True,
                                    numbers=[1.0, 2.0])
    return ds


def test_round_trip_every_variable_and_attribute(tmp_path):
    ds = _full_example()
    path = storage.write_dataset(ds, tmp_path / "rt.h5")
    back = storage.open_dataset(path, combine_complex=True)
    expected = ds.copy()
    expected.attrs["flag"] = 1  # netCDF has no booleans
    for name in expected.variables:
        xr.testing.assert_identical(back[name], expected[name])
    assert back["small"].dtype == np.float32 and back["flag"].dtype == np.int8
    assert set(back.attrs) == set(expected.attrs)
    for key, value in expected.attrs.items():
        np.testing.assert_array_equal(back.attrs[key], value)
    # provenance and config are there
    for key in ("config", "seed", "akorn_version", "torch_version", "numpy_version", "git_commit", "akorn_study"):
        assert key in back.attrs
    # the complex variable is stored as two real ones, readable by plain xarray
    with xr.open_dataset(path) as plain:
        assert {"Z_t_real", "Z_t_imag"} <= set(plain.data_vars) and "Z_t" not in plain
        np.testing.assert_array_equal(plain["Z_t_imag"].values, ds["Z_t"].values.imag)


def test_write_requires_cf_attributes(tmp_path):
    ds = _example()
    ds["bad"] = (("K",), np.zeros(3), {"long_name": "no units"})
    with pytest.raises(ValueError, match="units"):
        storage.write_dataset(ds, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_append_three_chunks_equals_one_write(tmp_path):
    chunks = [_example(0, 4), _example(4, 3), _example(7, 5)]
    attrs = storage.result_attrs("demo", "{}", 0)
    first = chunks[0].copy()
    first.attrs = attrs
    path = tmp_path / "stream.h5"
    storage.write_dataset(first, path, unlimited="time", checkpoint={"state": np.zeros((2, 3))})
    storage.append(path, chunks[1], attrs={"chunks_done": 2}, checkpoint={"state": np.ones((2, 3))})
    storage.append(path, chunks[2], attrs={"chunks_done": 3}, checkpoint={"state": np.full((2, 3), 2.0)})
    whole = xr.concat(chunks, dim="time", data_vars="minimal", coords="minimal")
    whole.attrs = dict(attrs)
    one = storage.write_dataset(whole, tmp_path / "one.h5", unlimited="time")
    a = storage.open_dataset(path, combine_complex=True)
    b = storage.open_dataset(one, combine_complex=True)
    assert a.attrs.pop("chunks_done") == 3
    xr.testing.assert_identical(a, b)
    np.testing.assert_array_equal(storage.read_checkpoint(path)["state"], np.full((2, 3), 2.0))
    assert storage.read_checkpoint(one) is None


def test_append_rejects_mismatched_chunk(tmp_path):
    first = _example(0, 2)
    first.attrs = storage.result_attrs("demo", "{}", 0)
    path = storage.write_dataset(first, tmp_path / "s.h5", unlimited="time")
    before = path.read_bytes()
    bad = _example(2, 2).isel(K=slice(0, 2))
    with pytest.raises(ValueError, match="dimension 'K'"):
        storage.append(path, bad)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_truncated_corrupt_and_foreign_files_get_clear_errors(tmp_path):
    ds = _full_example()
    path = storage.write_dataset(ds, tmp_path / "r.h5")
    data = path.read_bytes()
    trunc = tmp_path / "truncated.h5"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(storage.StorageError, match="truncated or corrupt"):
        storage.open_dataset(trunc)
    assert trunc.read_bytes() == data[: len(data) // 2]
    junk = tmp_path / "junk.h5"
    junk.write_text("not a netCDF file\n")
    with pytest.raises(storage.StorageError, match="not an HDF5 file"):
        storage.open_dataset(junk)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(storage.StorageError, match="not an akorn result"):
        storage.open_dataset(foreign)
    with pytest.raises(storage.StorageError, match="no such file"):
        storage.open_dataset(tmp_path / "missing.h5")
    with pytest.raises(storage.StorageError, match="expected 'sync'"):
        storage.open_dataset(path, study="sync")


# -- checksums: a file edited or damaged after it was written is refused -----------------------------

def _result(t0: int = 0, m: int = 4) -> xr.Dataset:
    ds = _example(t0, m)
    ds.attrs = storage.result_attrs("demo", json.dumps({"a": 1}), 0, chunks_done=1)
    return ds


def test_an_edited_attribute_fails_the_checksum(tmp_path):
    import h5py

    path = storage.write_dataset(_result(), tmp_path / "r.h5", unlimited="time")
    storage.open_dataset(path)  # intact
    with h5py.File(path, "a") as fh:
        fh.attrs["chunks_done"] = 99
    before = path.read_bytes()
    with pytest.raises(storage.StorageError) as info:
        storage.open_dataset(path)
    message = str(info.value)
    assert str(path) in message and "checksum" in message and "--overwrite" in message and "\n" not in message
    assert path.read_bytes() == before  # never modified


def test_zeroed_bytes_inside_the_data_are_refused(tmp_path):
    ds = _result(0, 1000)  # enough rows that the middle of the file is data
    path = storage.write_dataset(ds, tmp_path / "r.h5", unlimited="time", checkpoint={"state": np.ones((64, 64))})
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2048] = bytes(2048)
    path.write_bytes(bytes(data))
    with pytest.raises(storage.StorageError, match="checksum|corrupt"):
        storage.open_dataset(path)
    with pytest.raises(storage.StorageError, match="checksum|corrupt"):
        storage.read_checkpoint(path)


def test_appends_keep_the_checksum_valid(tmp_path):
    path = storage.write_dataset(_result(0, 2), tmp_path / "r.h5", unlimited="time", checkpoint={"s": np.zeros(3)})
    storage.append(path, _example(2, 2), attrs={"chunks_done": 2}, checkpoint={"s": np.ones(3)})
    assert storage.open_dataset(path).attrs["chunks_done"] == 2
    np.testing.assert_array_equal(storage.read_checkpoint(path)["s"], np.ones(3))


def test_different_config_is_named_key_by_key(tmp_path):
    class Config:
        def __init__(self, **fields):
            self.fields = fields

        def to_dict(self):
            return dict(self.fields)

        def to_json(self):
            return json.dumps(self.fields, sort_keys=True)

    ds = _example()
    ds.attrs = storage.result_attrs("demo", Config(k_max=4.0, seeds=3).to_json(), 0)
    path = storage.write_dataset(ds, tmp_path / "r.h5")
    with pytest.raises(storage.StorageError) as info:
        storage.finished_result(path, Config(k_max=5.0, seeds=3), "demo", overwrite=False)
    message = str(info.value)
    assert "k_max: 4.0 in the file, 5.0 now" in message and "seeds" not in message and "{" not in message
    assert storage.finished_result(path, Config(k_max=5.0, seeds=3), "demo", overwrite=True) is None
    assert storage.config_difference("{not json", Config(a=1)) == "its stored config is not valid JSON"


# -- SIGKILL in the middle of a streamed run, then resume -----------------------------------------

_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    mode, path, config_json = sys.argv[1], sys.argv[2], sys.argv[3]
    from studies import sync, storage
    import h5netcdf

    calls = {"n": 0}
    if mode == "during-write":
        original = h5netcdf.Variable.__setitem__
        def killing_setitem(self, key, value):
            calls["n"] += 1
            if calls["n"] == 2 and "checkpoint" not in self.name:   # mid-append, temp half written
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, key, value)
        real_append = storage.append
        def append(*a, **k):
            h5netcdf.Variable.__setitem__ = killing_setitem
            return real_append(*a, **k)
        storage.append = append
    elif mode == "before-rename":
        original_replace = os.replace
        def replace(src, dst):
            calls["n"] += 1
            if calls["n"] == 3:   # third commit: the temporary is complete but not yet renamed
                os.kill(os.getpid(), signal.SIGKILL)
            return original_replace(src, dst)
        os.replace = replace
    sync.run(sync.Config.from_json(config_json), path=path, workers=0, progress=False)
""")


@pytest.fixture(scope="module")
def small_sync():
    pytest.importorskip("integrators")
    from studies import sync

    config = sync.Config(N=(64,), k_num=3, k_max=3.0, seeds=2, t_transient=4.0, t_average=4.0, sample_dt=0.5,
                         dt=0.1, chunks=8)
    reference = sync.run(config, progress=False, workers=0)
    return config, reference


def _assert_same_result(ds: xr.Dataset, reference: xr.Dataset) -> None:
    for name in reference.variables:
        if reference[name].dtype.kind == "O" or ds[name].dtype.kind in "OU":
            np.testing.assert_array_equal(ds[name].values.astype(str), reference[name].values.astype(str))
        else:
            xr.testing.assert_identical(ds[name].drop_attrs(), reference[name].drop_attrs())


@pytest.mark.parametrize("mode", ["during-write", "before-rename", pytest.param("timer", marks=pytest.mark.slow)])
def test_sigkill_mid_run_leaves_readable_file_and_resume_is_identical(tmp_path, small_sync, mode):
    from studies import sync

    config, reference = small_sync
    path = tmp_path / "sync.h5"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, mode, str(path), config.to_json()], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if mode == "timer":
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    if mode != "timer":
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert path.exists()
    partial = storage.open_dataset(path, study="sync")  # readable, never torn
    if proc.returncode == -signal.SIGKILL:
        assert int(partial.attrs["complete"]) == 0 or mode == "timer"
    resumed = sync.run(config, path=path, workers=0, progress=False)
    _assert_same_result(resumed, reference)
    assert int(resumed.attrs["complete"]) == 1
    assert not list(tmp_path.glob(".*.tmp")), "stale temporaries should be cleaned on resume"
