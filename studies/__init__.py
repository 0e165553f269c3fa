"""Experiments users run: each study has a config dataclass, ``run(config) -> xarray.Dataset`` and a plot."""
