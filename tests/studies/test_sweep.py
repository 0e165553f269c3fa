"""Sweeps on Dask distributed: ordering, errors, and a 2-worker LocalCluster equal to an in-process run."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from studies.sweep import Sweep, SweepError


def _work(task: dict) -> dict:
    import torch

    g = torch.Generator().manual_seed(task["seed"])
    x = torch.randn(500, generator=g, dtype=torch.float64)
    return {"value": float((x * task["K"]).sum()), "threads": torch.get_num_threads()}


def _fail_on_three(task: dict) -> int:
    if task["K"] == 3:
        raise ValueError("K = 3 is not allowed here")
    return task["K"]


def test_in_process_map_keeps_task_order_and_uses_one_thread():
    tasks = [{"K": k, "seed": s} for k in range(4) for s in range(3)]
    with Sweep(workers=0, progress=False) as sweep:
        results = sweep.map(_work, tasks, desc="test")
        again = sweep.map(_work, tasks[::-1], desc="test")
    assert [r["value"] for r in results] == [_work(t)["value"] for t in tasks]
    assert [r["value"] for r in again] == [r["value"] for r in results][::-1]
    assert all(r["threads"] == 1 for r in results)
    assert sweep.map(_work, []) == []


def test_failing_task_is_named():
    with Sweep(workers=0, progress=False) as sweep, pytest.raises(SweepError, match=r"task 3 of 5 \(K=3\).*K = 3"):
        sweep.map(_fail_on_three, [{"K": k} for k in range(5)])


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        Sweep(workers=-1)
    with pytest.raises(TypeError, match="scheduler"):
        Sweep(scheduler=5)  # type: ignore[arg-type]
    with Sweep(workers=0, progress=False) as sweep, pytest.raises(TypeError, match="fn"):
        sweep.map("not callable", [1])  # type: ignore[arg-type]


def test_sync_sweep_on_two_worker_local_cluster_equals_in_process(tmp_path):
    pytest.importorskip("integrators")
    from studies import sync

    config = sync.Config(N=(60, 90), k_num=3, k_max=3.0, seeds=2, quantile=False, t_transient=2.0, t_average=2.0,
                         chunks=2)
    local = sync.run(config, workers=0, progress=False)
    clustered = sync.run(config, workers=2, progress=False, path=tmp_path / "sync.h5")
    assert "LocalCluster (2 workers)" in clustered.attrs["executor"]
    for name in local.data_vars:
        if local[name].dtype.kind in "OU":
            np.testing.assert_array_equal(local[name].values.astype(str), clustered[name].values.astype(str))
        else:
            xr.testing.assert_identical(local[name].drop_attrs(), clustered[name].drop_attrs())
    # with random frequencies each seed is its own task: seeds must differ
    assert not np.allclose(local["r"].isel(seed=0), local["r"].isel(seed=1))


def test_a_local_cluster_does_not_need_port_8787():
    # Another Dask cluster on the machine (another user, another run) holds the default HTTP port:
    # before, the scheduler warned and moved, which a run with warnings as errors did not survive.
    import socket

    holder = socket.socket()
    try:
        try:
            holder.bind(("0.0.0.0", 8787))
            holder.listen()
        except OSError:
            pass  # already held by someone else: the same situation
        with Sweep(workers=0, progress=False) as sweep:
            assert sweep.map(abs, [-1, -2]) == [1, 2]
    finally:
        holder.close()
