"""How torch's OpenMP threads wait between operations: a default set when the toolkit is imported.

torch's CPU build runs an operation on more than ~32k elements in parallel on an OpenMP thread
pool (GNU libgomp on Linux). Between two such operations libgomp's idle threads spin-wait for
300,000 polls (about 3 ms) before they sleep. On a machine whose cores are busy with other
work that spinning takes the CPU from the thread that has work to do: on the project's 2-core
machine, shared with two training jobs, the README's Integrators example took 335 s instead
of 12 s. Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) cures that but costs a wake-up per
operation, which made the same example 2.4x slower than spinning when it had the CPUs to
itself. ``GOMP_SPINCOUNT=1000`` (about 10 µs of spinning) is the compromise applied here:
1.3-1.5x PASSIVE's time on the loaded machine, 1.4-1.7x the spinning default's on the idle
one (``akorn bench readme -- --spin``; the idle case with the training jobs paused and the
benchmark at real-time priority).

libgomp reads ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` once, when it is loaded, which is when
torch is first imported. So importing this module (the first thing :mod:`kuramoto` does):

- leaves everything alone when either variable is already in the environment (the user's
  choice, whatever it is);
- otherwise, when torch has not been imported yet, sets ``GOMP_SPINCOUNT=1000`` in
  ``os.environ`` (child processes inherit it) and records that in :data:`APPLIED`;
- otherwise (torch came first, so the pool already spin-waits for 3 ms) warns once with
  :class:`SpinWaitWarning` if torch runs more than one thread, naming the fixes.

OpenMP runtimes other than libgomp (LLVM's libomp on macOS) ignore ``GOMP_SPINCOUNT``.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["APPLIED", "DEFAULTS", "USER_VARIABLES", "SpinWaitWarning"]

#: Variables that state a wait policy; if the user set any of them the toolkit sets nothing.
USER_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

#: What the toolkit sets when the user set nothing and torch is not loaded yet.
DEFAULTS = {"GOMP_SPINCOUNT": "1000"}

#: The variables this import set (empty when it set none).
APPLIED: dict[str, str] = {}


class SpinWaitWarning(RuntimeWarning):
    """torch was imported before the toolkit with no wait policy set: its threads spin-wait."""


_FIX = (
    "torch was imported before kuramoto with neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT set, so "
    "torch's {threads} OpenMP threads spin-wait for milliseconds after every operation; on a machine "
    "whose cores are busy with other work that makes operations on mid-sized tensors many times "
    "slower. Fix: set GOMP_SPINCOUNT=1000 (or OMP_WAIT_POLICY=PASSIVE) before Python starts, or "
    "import kuramoto before torch, or call torch.set_num_threads(1). Setting either variable "
    "yourself (GOMP_SPINCOUNT=300000 is libgomp's default) silences this warning."
)


def _caller_stacklevel() -> int:
    """``stacklevel`` for :func:`warnings.warn` called by our caller that names the user's import.

    The first frame outside the toolkit's packages; like ``warnings.warn``, frames of the import
    machinery are not counted.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    packages = tuple(os.path.join(root, p) + os.sep for p in ("kuramoto", "integrators", "networks", "studies"))
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            frame = frame.f_back
            continue
        if not os.path.abspath(name).startswith(packages):
            return level
        frame, level = frame.f_back, level + 1
    return 1


def _apply() -> None:
    if any(v in os.environ for v in USER_VARIABLES):
        return
    if "torch" not in sys.modules:
        for name, value in DEFAULTS.items():
            os.environ[name] = value
            APPLIED[name] = value
        return
    import torch

    threads = torch.get_num_threads()
    if threads > 1:
        warnings.warn(_FIX.format(threads=threads), SpinWaitWarning, stacklevel=_caller_stacklevel())


_apply()
