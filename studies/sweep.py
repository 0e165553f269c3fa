"""Embarrassingly parallel parameter sweeps on Dask distributed.

A sweep is a list of independent tasks (``K × seed × N`` points, paths of an adiabatic
sweep, ...) and a module-level function that computes one of them. :class:`Sweep` runs them
on Dask distributed and returns the results in task order:

- ``Sweep()`` starts a ``LocalCluster`` of worker processes, one thread each (as many as
  there are cores, at most as many as tasks);
- ``Sweep(workers=0)`` runs in this process (Dask's in-process cluster with one thread),
  which is the cheapest for tiny sweeps and for debugging;
- ``Sweep(scheduler="tcp://host:8786")`` uses an existing cluster (``akorn ... --scheduler``);
  its workers must be able to import this toolkit (the same version) and torch.

Every task runs with one torch thread, whatever the worker: two workers on two cores is
faster than one worker with two threads for the small tensors of a sweep point, and a fixed
thread count makes torch's reductions, hence the results, identical wherever a task runs.
The cluster lives as long as the ``with`` block, so a study can map several rounds (one per
time chunk) without restarting workers.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from kuramoto.checks import is_int
from studies.protocol import CommandError, check_scheduler_address

__all__ = ["CONNECT_TIMEOUT", "Sweep", "SweepError"]

#: Seconds to wait for an external scheduler to answer (Dask's default is 30).
CONNECT_TIMEOUT = 5.0


# Local clusters log nothing below CRITICAL: a failed task is reported once, by SweepError, in one
# line (Dask would print its traceback to stderr first).
#: The scheduler of a local cluster serves HTTP (health, metrics) even without a dashboard, by default
#: on port 8787; when another cluster on the machine holds that port it warns and moves, and a run
#: with warnings as errors fails. A free local port avoids both.
_NO_FIXED_PORT = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


class SweepError(CommandError):
    """A sweep task failed, or the scheduler cannot be reached; the message names the task (or the
    address) and the original error, in one line."""


def _call_single_thread(fn: Callable[[Any], Any], task: Any) -> Any:
    """Run ``fn(task)`` with one torch thread (set per call: workers of a shared cluster may differ)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return fn(task)
    previous = torch.get_num_threads()
    if previous != 1:
        torch.set_num_threads(1)
    try:
        return fn(task)
    finally:
        if previous != 1:
            torch.set_num_threads(previous)


class Sweep:
    """A Dask distributed client for running independent tasks; use it as a context manager.

    Args:
        scheduler: address of an existing Dask scheduler (``"tcp://10.0.0.5:8786"``), or
            ``None`` for a local cluster.
        workers: number of local worker processes (default: the number of cores, capped by
            the number of tasks of the first :meth:`map`); ``0`` runs in this process.
            Ignored with ``scheduler``.
        progress: show a tqdm bar per :meth:`map` (only when stderr is a terminal, so that logs
            do not fill with frames).

    Example:
        >>> with Sweep(workers=2) as sweep:                      # doctest: +SKIP
        ...     results = sweep.map(simulate_point, points, desc="K × seed")
    """

    def __init__(self, *, scheduler: str | None = None, workers: int | None = None, progress: bool = True) -> None:
        if scheduler is not None:
            if not isinstance(scheduler, str) or not scheduler:
                raise TypeError(f"scheduler: expected a scheduler address string or None, got {scheduler!r}")
            check_scheduler_address(scheduler)
        if workers is not None and (not is_int(workers) or workers < 0):
            raise ValueError(f"workers: expected a non-negative integer or None, got {workers!r}")
        self.scheduler = scheduler
        self.workers = workers
        self.progress = bool(progress)
        self._client: Any = None
        self._cluster: Any = None

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Sweep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def description(self) -> str:
        """Where the tasks run, for logs and result attributes."""
        if self.scheduler is not None:
            return f"dask scheduler {self.scheduler}"
        if self.workers == 0:
            return "dask in-process"
        return f"dask LocalCluster ({self.workers if self.workers is not None else 'auto'} workers)"

    def _start(self, num_tasks: int) -> None:
        from distributed import Client, LocalCluster

        if self._client is not None:
            return
        if self.scheduler is not None:
            try:
                self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise SweepError(f"cannot reach the Dask scheduler at {self.scheduler} within {CONNECT_TIMEOUT:g} s "
                                 f"({type(exc).__name__}); start it, or check --scheduler") from None
            return
        if self.workers == 0:
            self._cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                         silence_logs=logging.CRITICAL, scheduler_kwargs=_NO_FIXED_PORT)
        else:
            n = self.workers if self.workers is not None else max(1, min(os.cpu_count() or 1, num_tasks))
            self.workers = n
            env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                         silence_logs=logging.CRITICAL, env=env, scheduler_kwargs=_NO_FIXED_PORT)
        self._client = Client(self._cluster)

    def close(self) -> None:
        """Shut down the client and any cluster this sweep started (not an external scheduler)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    # -- running ----------------------------------------------------------------------------
    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any], *, desc: str = "sweep") -> list[Any]:
        """Compute ``fn(task)`` for every task on the cluster; results in task order.

        Args:
            fn: a module-level (picklable) function of one argument.
            tasks: picklable task descriptions (small dicts of parameters and arrays).
            desc: label of the progress bar.

        Returns:
            ``[fn(t) for t in tasks]``.

        Raises:
            SweepError: a task raised; the message names it (the original error is chained).
        """
        from distributed import as_completed

        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        tasks = list(tasks)
        if not tasks:
            return []
        self._start(len(tasks))
        tag = uuid.uuid4().hex[:8]
        futures = [self._client.submit(_call_single_thread, fn, task, key=f"{desc.replace(' ', '_')}-{tag}-{i}",
                                       pure=False) for i, task in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(tasks)
        try:
            with tqdm(total=len(tasks), desc=desc, disable=None if self.progress else True, leave=False, unit="task") as bar:
                for future in as_completed(futures):
                    i = index[future.key]
                    if future.status == "error":
                        exc = future.exception()
                        reason = " ".join(str(exc).split())  # one line, whatever the task raised
                        raise SweepError(f"sweep task {i} of {len(tasks)} ({_describe(tasks[i])}) failed: "
                                         f"{type(exc).__name__}: {reason}") from exc
                    results[i] = future.result()
                    bar.update(1)
        finally:
            for f in futures:
                f.release()
        return results


def _describe(task: Any) -> str:
    if isinstance(task, dict):
        # short values only: a task may carry the whole config as JSON
        return ", ".join(f"{k}={v!r}" for k, v in task.items()
                         if isinstance(v, (int, float)) or (isinstance(v, str) and len(v) <= 40))[:200]
    return repr(task)[:200]
