"""Every ``akorn`` subcommand by name, and how a ``"module:attribute"`` string is loaded.

Data only: :mod:`studies.cli` builds the commands from it, :mod:`studies.show` finds a result's
plot through it. A study or task is one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

__all__ = ["REGISTRY", "Entry", "load"]


class Entry(NamedTuple):
    """A subcommand: the module describing it (``"pkg.module"``) or a ``"pkg.module:function"``, and its help."""

    target: str
    help: str


#: Every ``akorn`` subcommand. A study or task module is one line here.
REGISTRY: dict[str, Entry] = {
    "sync": Entry("studies.sync.config", "synchronisation transition r(K) against mean-field theory (the main job)"),
    "landscape": Entry("studies.landscape.config", "energy landscapes: fixed points, their energies and basins"),
    "integrators": Entry("studies.methods.config", "integrator comparison: order, work-precision, sphere drift"),
    "sudoku": Entry("studies.sudoku.config", "Sudoku reasoning: train, then evaluate more steps and energy-based "
                                             "selection"),
    "objects": Entry("studies.objects.config", "unsupervised object discovery: SimCLR training, clustering, FG-ARI "
                                               "and MBO"),
    "robustness": Entry("studies.robustness.config",
                        "image classification: adversarial robustness, corruptions and calibration, AKOrN vs a "
                        "ConvNet"),
    "bench": Entry("studies.bench:main", "performance benchmarks (results in a file)"),
    "show": Entry("studies.show", "print what a result file holds and write its plot"),
}


def load(target: str) -> Any:
    """The object a ``"module:attribute"`` string names (the module itself without ``:attribute``)."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


# -- option types -------------------------------------------------------------------------------
