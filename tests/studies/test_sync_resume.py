"""``akorn sync`` resume state is checked before it is trusted; ``--overwrite`` always replaces; one writer
per file; a resume is identical in every window; a run that cannot finish or fit is refused up front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("integrators")

from studies import storage, sync  # noqa: E402
from studies.cache import stamp_checksum  # noqa: E402
from studies.config import ConfigError  # noqa: E402
from studies.sync import cost  # noqa: E402
from studies.sync import experiment as sync_experiment  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = sync.Config(N=(40,), k_num=3, seeds=2, t_transient=1.0, t_average=1.0, sample_dt=0.5, dt=0.125, chunks=4)


@pytest.fixture(scope="module")
def reference():
    return sync.run(CONFIG, workers=0, progress=False)


def _same(ds: xr.Dataset, ref: xr.Dataset) -> None:
    assert set(ds.variables) == set(ref.variables)
    for name in ref.variables:
        a, b = ds[name].values, ref[name].values
        if b.dtype.kind in "OUS":
            np.testing.assert_array_equal(a.astype(str), b.astype(str), err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def _edit(path: Path, edit, restamp: bool = True) -> None:
    """Change a result file in place; ``restamp`` recomputes its checksum (a consistent but wrong file)."""
    import h5py

    with h5py.File(path, "a") as fh:
        edit(fh)
    if restamp:
        path.write_bytes(stamp_checksum(path.read_bytes()))


def _partial(tmp_path: Path, chunks: int = 2) -> Path:
    """A file holding the first ``chunks`` of the run, as a killed run leaves it."""
    path = tmp_path / "sync.h5"
    original = sync_experiment._store_chunk
    calls = []

    def store_then_die(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        if len(calls) == chunks:
            raise KeyboardInterrupt

    sync_experiment._store_chunk = store_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            sync.run(CONFIG, path=path, workers=0, progress=False)
    finally:
        sync_experiment._store_chunk = original
    return path


@pytest.mark.parametrize("value", [99, -1, 4])
def test_tampered_chunk_counter_is_refused_then_overwrite_replaces(tmp_path, reference, value):
    path = _partial(tmp_path)
    _edit(path, lambda fh: fh.attrs.__setitem__("chunks_done", value))
    with pytest.raises(storage.StorageError) as info:
        sync.run(CONFIG, path=path, workers=0, progress=False)
    message = str(info.value)
    assert str(path) in message and "chunks_done" in message and "--overwrite" in message
    _same(sync.run(CONFIG, path=path, workers=0, progress=False, overwrite=True), reference)


def test_tampered_counter_without_a_new_checksum_is_refused_by_the_checksum(tmp_path):
    path = _partial(tmp_path)
    _edit(path, lambda fh: fh.attrs.__setitem__("chunks_done", 99), restamp=False)
    with pytest.raises(storage.StorageError, match="checksum.*--overwrite"):
        sync.run(CONFIG, path=path, workers=0, progress=False)


def test_kill_after_the_last_chunk_resumes_identically(tmp_path, reference):
    # the window between the last append and the final write: the solver status must survive it
    path = _partial(tmp_path, chunks=len(sync_experiment._chunk_bounds(CONFIG)))
    assert int(storage.open_dataset(path).attrs["complete"]) == 0
    resumed = sync.run(CONFIG, path=path, workers=0, progress=False)
    assert (resumed["solver_status"].values.astype(str) == "success").all()
    _same(resumed, reference)


def test_unfinished_run_without_checkpoint_is_replaced_with_overwrite(tmp_path, reference):
    path = _partial(tmp_path)
    _edit(path, lambda fh: fh.__delitem__("checkpoint"))
    with pytest.raises(storage.StorageError, match="without a checkpoint.*--overwrite"):
        sync.run(CONFIG, path=path, workers=0, progress=False)
    _same(sync.run(CONFIG, path=path, workers=0, progress=False, overwrite=True), reference)


def test_complete_file_missing_a_variable_is_refused_then_replaced(tmp_path, reference):
    path = tmp_path / "sync.h5"
    sync.run(CONFIG, path=path, workers=0, progress=False)
    _edit(path, lambda fh: fh.__delitem__("K_c"))
    with pytest.raises(storage.StorageError, match="lacks 'K_c'.*--overwrite"):
        sync.run(CONFIG, path=path, workers=0, progress=False)
    _same(sync.run(CONFIG, path=path, workers=0, progress=False, overwrite=True), reference)


def test_different_config_names_the_field_and_both_values(tmp_path):
    path = tmp_path / "sync.h5"
    sync.run(CONFIG, path=path, workers=0, progress=False)
    with pytest.raises(storage.StorageError) as info:
        sync.run(CONFIG.replace(k_max=3.0), path=path, workers=0, progress=False)
    message = str(info.value)
    assert "k_max: 4.0 in the file, 3.0 now" in message and '"N"' not in message


@pytest.mark.parametrize("changes, field", [
    ({"dt": 1e-300}, "dt"),
    ({"k_num": 10**8}, "k_num"),
    ({"N": (10**11,)}, "N"),
    ({"N": (10**6,), "k_num": 400, "seeds": 8, "quantile": False}, "k_num"),
])
def test_runs_that_cannot_finish_or_fit_are_refused_before_starting(changes, field, tmp_path):
    config = CONFIG.replace(**changes)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        sync.run(config, path=tmp_path / "sync.h5", workers=0, progress=False)
    assert info.value.field == field and time.monotonic() - started < 5
    assert not (tmp_path / "sync.h5").exists()


def test_cost_of_the_presets_is_accepted():
    from studies import cost as rules
    from studies.landscape import config as landscape
    from studies.landscape import cost as landscape_cost
    from studies.methods import config as methods
    from studies.methods import cost as methods_cost

    for preset in ("quick", "paper"):
        for check, config in ((cost.check_cost, sync.Config), (landscape_cost.check_cost, landscape.Config),
                              (methods_cost.check_cost, methods.Config)):
            estimate = check(config.preset(preset), memory=16e9)
            assert estimate.steps_per_run < rules.MAX_STEPS_PER_RUN and estimate.memory < 16e9


_SECOND_WRITER = """
import sys, time
from pathlib import Path
from studies.sync import experiment
from studies.cli import main
ready, release = Path(sys.argv[1]), Path(sys.argv[2])
original = experiment._store_chunk
def store_and_wait(*args, **kwargs):
    original(*args, **kwargs)
    if not ready.exists():
        ready.write_text("1")
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
experiment._store_chunk = store_and_wait
sys.exit(main(sys.argv[3:]))
"""


def test_two_writers_on_one_out_one_fails_at_once_and_the_file_is_a_single_run(tmp_path, reference):
    out = tmp_path / "out"
    args = ["sync", "--N", "40", "--k-num", "3", "--seeds", "2", "--t-transient", "1", "--t-average", "1",
            "--chunks", "4", "--workers", "0", "--no-plot", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    ready, release = tmp_path / "ready", tmp_path / "release"
    first = subprocess.Popen([sys.executable, "-c", _SECOND_WRITER, str(ready), str(release), *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), first.communicate()[1][-2000:]
        second = subprocess.run([sys.executable, "-c", "import sys; from studies.cli import main; "
                                 "sys.exit(main(sys.argv[1:]))", *args], env=env, capture_output=True, text=True,
                                timeout=120)
    finally:
        release.write_text("1")
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-2000:]
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "sync.h5" in lines[0] and f"pid {first.pid}" in lines[0], second.stderr
    _same(storage.open_dataset(out / "sync.h5", combine_complex=True), reference)
    assert json.loads(storage.open_dataset(out / "sync.h5").attrs["config"]) == CONFIG.to_dict()
