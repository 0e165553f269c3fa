"""Cold compile times of the toolkit's compiled rows (``--cold-compile``), each in fresh processes.

The compile time in the table is that of the first call in the benchmark's process, whose
inductor cache usually holds the program already (a warm disk cache: ~2 s). Two colder cases
are measured here, each in its own subprocess with its own temporary ``TORCHINDUCTOR_CACHE_DIR``:

- **new program**: the cache holds what any earlier ``torch.compile`` on the machine leaves
  (a throwaway function is compiled first, in another process), not this program;
- **empty cache**: the first ``torch.compile`` on a machine. Inductor then also builds its
  CPU-capability probes (a few small C++ programs, compiled once per cache).

Each figure is the first call's time minus the second's (the run itself).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["cold_compile"]

_REPO = Path(__file__).resolve().parents[3]


def _warm_probes() -> None:
    """Subprocess entry: compile a throwaway function (what any earlier compile leaves in the cache)."""
    import torch

    torch.compile(lambda x: torch.sin(x) + 1.0)(torch.ones(8, dtype=torch.float64))


def _python(code: str, cache_dir: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", TORCHINDUCTOR_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = str(_REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_REPO, env=env,
                          check=False)


def cold_compile(workload: str, key: str, size: str, seed: int, opts: argparse.Namespace) -> dict[str, Any]:
    """``{"cold_new_s", "cold_empty_s"}`` for the toolkit row ``key`` of ``workload`` (or
    ``{"cold_failed": message}``), each timed by ``studies.bench.peers._cold_case`` in a subprocess."""
    spec = {"workload": workload, "key": key, "size": size, "seed": seed,
            "opts": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()}}
    case = f"from studies.bench.peers import _cold_case; _cold_case({json.dumps(json.dumps(spec))})"
    out: dict[str, Any] = {}
    for name, warm in (("cold_new_s", True), ("cold_empty_s", False)):
        with tempfile.TemporaryDirectory(prefix="akorn-inductor-") as cache_dir:
            if warm:
                _python("from studies.bench.peers.cold import _warm_probes; _warm_probes()", cache_dir)
            res = _python(case, cache_dir)
        if res.returncode != 0:
            return {"cold_failed": (res.stderr.strip().splitlines() or ["?"])[-1]}
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])["compile"]
    return out
