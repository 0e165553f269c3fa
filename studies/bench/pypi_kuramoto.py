"""The PyPI ``kuramoto`` 0.4.0 package as a baseline: installed beside this toolkit (never into its
environment, where it would shadow ``kuramoto``) and run in a subprocess on the same problem.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from studies.cache import default_cache_dir

__all__ = ["pypi_kuramoto_dir", "run_pypi_kuramoto", "subprocess_env"]


_PYPI_SPEC = "kuramoto==0.4.0"


def subprocess_env() -> dict[str, str]:
    return dict(os.environ, OMP_WAIT_POLICY="PASSIVE")


def pypi_kuramoto_dir(cache: Path | None = None) -> Path:
    """Install the PyPI ``kuramoto`` 0.4.0 into ``<cache>/kuramoto-0.4.0`` (once) and return the folder.

    It is never installed into the environment (it would shadow this toolkit's ``kuramoto``).
    """
    target = (cache or default_cache_dir()) / "kuramoto-0.4.0"
    if not (target / "kuramoto" / "kuramoto.py").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".kuramoto-0.4.0.", dir=target.parent))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tmp), _PYPI_SPEC]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"could not install {_PYPI_SPEC} into {tmp}:\n{res.stderr[-2000:]}")
        if target.exists():  # a concurrent install finished first
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
        else:
            os.replace(tmp, target)
    return target


_PYPI_SCRIPT = r"""
import json, sys, time
target, inp, out = sys.argv[1:4]
sys.path.insert(0, target)
import numpy as np
import kuramoto
if kuramoto.__version__ != "0.4.0" or not kuramoto.__file__.startswith(target):
    raise SystemExit(f"imported the wrong kuramoto: {kuramoto.__file__} {kuramoto.__version__}")
d = np.load(inp)
N = len(d["omega"])
model = kuramoto.Kuramoto(coupling=float(d["K"]), dt=float(d["dt"]), T=float(d["T"]), natfreqs=d["omega"])
adj = np.ones((N, N)) - np.eye(N)
w0, c0 = time.perf_counter(), time.process_time()
act = model.run(adj_mat=adj, angles_vec=d["theta0"].copy())
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
np.save(out, np.abs(np.exp(1j * act).mean(axis=0)))
print(json.dumps({"wall": wall, "cpu": cpu, "outputs": int(act.shape[1])}))
"""


def run_pypi_kuramoto(target: Path, omega: np.ndarray, theta0: np.ndarray, K: float, T: float, dt: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-kuramoto-") as tmp:
        tmp_path = Path(tmp)
        script, inp, out = tmp_path / "run_pypi.py", tmp_path / "input.npz", tmp_path / "r.npy"
        script.write_text(_PYPI_SCRIPT)
        np.savez(inp, omega=omega, theta0=theta0, K=K, T=T, dt=dt)
        env = subprocess_env()
        env.pop("PYTHONPATH", None)
        res = subprocess.run([sys.executable, str(script), str(target), str(inp), str(out)], capture_output=True,
                             text=True, cwd=tmp, env=env, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"the PyPI kuramoto run failed:\n{res.stderr[-3000:]}")
        info = json.loads(res.stdout.strip().splitlines()[-1])
        info["r"] = np.load(out)
    return info
