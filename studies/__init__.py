"""Experiments users run: each study has a config dataclass, ``run(config) -> xarray.Dataset`` and a plot."""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

# torch's OpenMP wait policy is read once, when torch loads, and the study modules import torch
# before anything of kuramoto; kuramoto/__init__ imports torch itself. So the policy module
# (kuramoto/_runtime.py, torch-free) is loaded here on its own, under its package name: when
# kuramoto is imported later it finds the module done and applies nothing twice, and
# ``akorn --help`` stays torch-free.
if "kuramoto._runtime" not in _sys.modules:
    _spec = _util.spec_from_file_location("kuramoto._runtime", _Path(__file__).parent.parent / "kuramoto" / "_runtime.py")
    _module = _util.module_from_spec(_spec)
    _sys.modules["kuramoto._runtime"] = _module
    _spec.loader.exec_module(_module)
