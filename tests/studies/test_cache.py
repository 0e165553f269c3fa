import numpy as np
import pytest

from studies.cache import atomic_path, cache_key, cached_arrays, read_arrays, write_arrays


def test_atomic_path_keeps_previous_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_cache_key_order_independent():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    with pytest.raises(TypeError):
        cache_key([1, 2])


def test_cached_arrays_builds_once_and_rebuilds_corrupt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(10), "y": np.ones((2, 3), dtype=np.float32)}

    a = cached_arrays("demo", {"seed": 1}, build, root=tmp_path)
    b = cached_arrays("demo", {"seed": 1}, build, root=tmp_path)
    assert len(calls) == 1 and np.array_equal(a["x"], b["x"]) and b["y"].dtype == np.float32
    cached_arrays("demo", {"seed": 2}, build, root=tmp_path)
    assert len(calls) == 2
    (path,) = [p for p in tmp_path.iterdir() if cache_key({"seed": 1}) in p.name]
    path.write_bytes(path.read_bytes()[:100])  # truncate: must be rebuilt, not crash
    c = cached_arrays("demo", {"seed": 1}, build, root=tmp_path)
    assert len(calls) == 3 and np.array_equal(c["x"], a["x"])


def test_read_arrays_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_arrays(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_arrays(bad)
    write_arrays(tmp_path / "ok.h5", {"a": np.zeros(3)}, {"k": 1})
    arrays, attrs = read_arrays(tmp_path / "ok.h5")
    assert attrs == {"k": 1} and arrays["a"].shape == (3,)
    with pytest.raises(ValueError, match="name"):
        cached_arrays("bad name", {}, lambda: {"a": np.zeros(1)}, root=tmp_path)
