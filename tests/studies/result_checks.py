"""Checks every study's result Dataset must pass: names xarray's own keywords cannot capture,
units from the documented vocabulary, and every NaN explained."""

from __future__ import annotations

import inspect

import numpy as np
import xarray as xr

from studies import units

#: Parameters of the selection methods. A dimension or coordinate named like one cannot be
#: selected by keyword: ``ds.sel(method="rk4")`` is sel's own ``method`` (inexact matching) and
#: silently returns everything.
XARRAY_KEYWORDS = frozenset(
    name
    for cls in (xr.Dataset, xr.DataArray)
    for fn in ("sel", "isel", "interp", "reindex", "head", "tail", "thin")
    for name, p in inspect.signature(getattr(cls, fn)).parameters.items()
    if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
)

#: CF standard names a study may use, with units their canonical units accept.
CF_STANDARD_NAMES: dict[str, set[str]] = {"time": {"s"}}


def keyword_collisions(ds: xr.Dataset) -> set[str]:
    """Dimensions and coordinates of ``ds`` named like a parameter of ``sel``/``isel``/``interp``."""
    return (set(map(str, ds.dims)) | set(map(str, ds.coords))) & XARRAY_KEYWORDS


def assert_no_keyword_names(ds: xr.Dataset) -> None:
    clash = keyword_collisions(ds)
    assert not clash, f"dims/coords named like an xarray selection keyword: {sorted(clash)}"


def assert_units_and_long_names(ds: xr.Dataset, vocabulary: frozenset[str] | None = units.VOCABULARY) -> None:
    """Every variable and coordinate has a ``long_name``; numeric ones have ``units`` (from
    ``vocabulary`` if given); a ``standard_name`` only where CF defines one for those units."""
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), f"{name}: no long_name"
        if var.dtype.kind in "fiucb":
            assert "units" in var.attrs, f"{name}: numeric without units"
            if vocabulary is not None:
                assert var.attrs["units"] in vocabulary, f"{name}: units {var.attrs['units']!r} not in {vocabulary}"
        if "standard_name" in var.attrs:
            std = var.attrs["standard_name"]
            assert var.attrs.get("units") in CF_STANDARD_NAMES.get(std, set()), \
                f"{name}: standard_name {std!r} with units {var.attrs.get('units')!r}"


def assert_documented(ds: xr.Dataset, config: object, numeric_kinds: str) -> None:
    """The schema promises of a quick run: every variable has a ``long_name`` and every one of a
    dtype kind in ``numeric_kinds`` has ``units``; the stored config reads back as ``config``; the
    provenance attributes are there."""
    for name, var in ds.variables.items():
        assert "long_name" in var.attrs, name
        if var.dtype.kind in numeric_kinds:
            assert "units" in var.attrs, name
    assert type(config).from_json(ds.attrs["config"]) == config
    for key in ("seed", "akorn_version", "torch_version", "numpy_version", "git_commit"):
        assert key in ds.attrs


def nan_variables(ds: xr.Dataset) -> list[str]:
    """Names of the variables that hold a NaN."""
    return [str(n) for n, v in ds.variables.items() if v.dtype.kind in "fc" and bool(np.isnan(v.values).any())]


def assert_nans_explained(ds: xr.Dataset) -> None:
    """Every variable holding a NaN says what a NaN means, in its ``comment`` (or its ``long_name``)."""
    silent = [name for name in nan_variables(ds)
              if "NaN" not in str(ds[name].attrs.get("comment", "")) + str(ds[name].attrs.get("long_name", ""))]
    assert not silent, f"variables holding NaN without a comment saying why: {silent}"


def assert_result_file(ds: xr.Dataset, vocabulary: frozenset[str] | None = units.VOCABULARY) -> None:
    """All of the above."""
    assert_no_keyword_names(ds)
    assert_units_and_long_names(ds, vocabulary)
    assert_nans_explained(ds)
