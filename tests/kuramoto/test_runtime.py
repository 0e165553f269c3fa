"""The OpenMP wait-policy default applied by ``import kuramoto`` (kuramoto/_runtime.py).

Each case runs in a fresh interpreter, because the point is what happens before and after
torch is first imported. ``OMP_DISPLAY_ENV=VERBOSE`` makes GNU libgomp print the settings it
read when it was loaded: ``GOMP_SPINCOUNT = '1000'`` is the toolkit's short spin, ``'300000'``
libgomp's own default (about 3 ms of spinning after every operation). These assertions run where torch's OpenMP runtime is libgomp.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(OMP_DISPLAY_ENV="VERBOSE", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               **env_vars)
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc


def _spincount(proc: subprocess.CompletedProcess) -> int | None:
    """The spin count libgomp read at load time (``None`` where the runtime is not libgomp)."""
    m = re.search(r"GOMP_SPINCOUNT = '(\d+)'", proc.stderr)
    return None if m is None else int(m.group(1))


_REPORT = ("import os, kuramoto._runtime as rt; print('applied', rt.APPLIED); "
           "print('env', os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


def test_imported_before_torch_it_shortens_the_spin():
    child = "[sys.executable, '-c', 'import os; print(os.environ.get(\"GOMP_SPINCOUNT\"))']"
    proc = _run("import kuramoto, torch, subprocess, sys; torch.ones(1 << 16).sin().sum(); " + _REPORT + "; "
                f"print('child', subprocess.run({child}, capture_output=True, text=True).stdout.strip())")
    assert "applied {'GOMP_SPINCOUNT': '1000'}" in proc.stdout
    assert "env None 1000" in proc.stdout and "child 1000" in proc.stdout  # inherited by child processes
    assert "SpinWaitWarning" not in proc.stderr
    if _spincount(proc) is not None:
        assert _spincount(proc) == 1000


def test_imported_after_torch_it_warns_once_naming_the_fix():
    code = ("import torch\ntorch.set_num_threads(2)\nimport kuramoto\nimport kuramoto.sphere\n"
            "import integrators, networks\n" + _REPORT.replace("; ", "\n"))
    proc = _run(code)
    assert proc.stderr.count("SpinWaitWarning") == 1
    warning = next(line for line in proc.stderr.splitlines() if "SpinWaitWarning" in line)
    assert warning.startswith("<string>:3: "), warning  # names the user's import, not the toolkit's lines
    for fix in ("GOMP_SPINCOUNT=1000 (or OMP_WAIT_POLICY=PASSIVE) before Python starts",
                "import kuramoto before torch", "torch.set_num_threads(1)"):
        assert fix in warning
    assert "applied {}" in proc.stdout and "env None None" in proc.stdout  # too late: nothing is set
    if _spincount(proc) is not None:
        assert _spincount(proc) == 300000


def test_no_warning_after_torch_with_one_thread():
    proc = _run("import torch\ntorch.set_num_threads(1)\nimport kuramoto\n" + _REPORT.replace("; ", "\n"))
    assert "SpinWaitWarning" not in proc.stderr and "applied {}" in proc.stdout


@pytest.mark.parametrize("order", ["kuramoto, torch", "torch, kuramoto"])
@pytest.mark.parametrize("name, value, spins", [("OMP_WAIT_POLICY", "ACTIVE", 30_000_000_000),
                                                ("OMP_WAIT_POLICY", "PASSIVE", 0),
                                                ("GOMP_SPINCOUNT", "5000", 5000)])
def test_a_policy_the_user_set_is_left_alone(order, name, value, spins):
    proc = _run(f"import {order}\ntorch.set_num_threads(2)\n" + _REPORT.replace("; ", "\n"), **{name: value})
    assert "applied {}" in proc.stdout and "SpinWaitWarning" not in proc.stderr
    expected = (value, None) if name == "OMP_WAIT_POLICY" else (None, value)
    assert f"env {expected[0]} {expected[1]}" in proc.stdout
    if _spincount(proc) is not None:
        assert _spincount(proc) == spins


@pytest.mark.parametrize("package", ["kuramoto", "integrators", "networks", "studies.sudoku.train",
                                     "studies.bench.core"])
def test_every_package_applies_the_default_when_imported_before_torch(package):
    proc = _run(f"import {package}\nimport torch\nimport kuramoto\n" + _REPORT.replace("; ", "\n"))
    assert "applied {'GOMP_SPINCOUNT': '1000'}" in proc.stdout and "SpinWaitWarning" not in proc.stderr
