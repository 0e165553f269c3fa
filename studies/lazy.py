"""Lazy attributes of a study package, so that importing its torch-free ``config`` loads no torch.

A study package re-exports the public names of its modules (``from studies.sync import run``),
but ``studies.sync.config`` (all that ``akorn sync --help`` needs) must import without torch, and
importing a submodule runs the package's ``__init__`` first. So the package names its modules
and a name is looked up in their ``__all__`` (importing them) on first access::

    __getattr__ = lazy_attributes(__name__, "model experiment plots")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, modules: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that finds a name in the ``__all__`` of ``modules``
    (space-separated submodule names, searched in order) and imports only what it needs."""
    def __getattr__(name: str) -> Any:
        if not name.startswith("_"):
            for module in modules.split():
                found = importlib.import_module(f"{package}.{module}")
                if name in getattr(found, "__all__", ()):
                    return getattr(found, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
