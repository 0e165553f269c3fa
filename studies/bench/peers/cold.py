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
import tempfile
from typing import Any

from .harness import CaseFailed, case_spec, run_case

__all__ = ["cold_compile"]


def _warm_probes(spec_json: str) -> None:
    """Subprocess entry: compile a throwaway function (what any earlier compile leaves in the cache)."""
    import torch

    torch.compile(lambda x: torch.sin(x) + 1.0)(torch.ones(8, dtype=torch.float64))
    print(json.dumps({}))


def cold_compile(workload: str, key: str, size: str, seed: int, opts: argparse.Namespace) -> dict[str, Any]:
    """``{"cold_new_s", "cold_empty_s"}`` for the toolkit row ``key`` of ``workload`` (or
    ``{"cold_failed": message}``), each timed by ``studies.bench.peers._cold_case`` in a subprocess."""
    spec = case_spec(workload, key, size, seed, opts)
    out: dict[str, Any] = {}
    try:
        for name, warm in (("cold_new_s", True), ("cold_empty_s", False)):
            with tempfile.TemporaryDirectory(prefix="akorn-inductor-") as cache_dir:
                env = {"TORCHINDUCTOR_CACHE_DIR": cache_dir}
                if warm:
                    run_case("studies.bench.peers.cold", "_warm_probes", {}, env)
                out[name] = run_case("studies.bench.peers", "_cold_case", spec, env)["compile"]
    except CaseFailed as exc:
        return {"cold_failed": str(exc)}
    return out
