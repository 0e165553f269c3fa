"""The coupling registry: every coupling by name, as :data:`integrators.METHODS` holds every solver.

A new coupling is one class and one line in :data:`COUPLINGS`. Image couplings (subclasses of
:class:`~kuramoto.couplings.image.AbstractImageCoupling`) are built by name with
:func:`build_coupling`, which is how the AKOrN models take ``coupling="conv"`` or ``"attn"``;
``tests/kuramoto/test_couplings.py`` runs the same properties over every entry.
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import AbstractCoupling
from .graph import Dense, MeanField, Sparse
from .image import AbstractImageCoupling, Attention, Conv

__all__ = ["COUPLINGS", "IMAGE_COUPLINGS", "build_coupling"]

#: Every coupling by name.
COUPLINGS: dict[str, type[AbstractCoupling]] = {
    "mean_field": MeanField,
    "dense": Dense,
    "sparse": Sparse,
    "conv": Conv,
    "attn": Attention,
}

#: The image couplings among them (state ``[B, C/n, H, W, n]``, built as ``cls(channels, n, **options)``).
IMAGE_COUPLINGS: dict[str, type[AbstractImageCoupling]] = {
    name: cls for name, cls in COUPLINGS.items() if issubclass(cls, AbstractImageCoupling)}


def build_coupling(name: str, channels: int, n: int, **options: Any) -> AbstractImageCoupling:
    """The image coupling ``name`` with ``channels`` channels and oscillator dimension ``n``.

    ``options`` may hold the options of every image coupling (``kernel_size``, ``heads``, ``gta``,
    ``grid``, ...): each class receives those of its constructor's keyword parameters that are
    given, so one call site serves every registered coupling.

    Raises:
        ValueError: ``name`` is not a registered image coupling.
    """
    if name not in IMAGE_COUPLINGS:
        raise ValueError(f"coupling: expected one of {', '.join(map(repr, IMAGE_COUPLINGS))}, got {name!r}")
    cls = IMAGE_COUPLINGS[name]
    accepted = inspect.signature(cls).parameters
    return cls(channels, n, **{k: v for k, v in options.items() if k in accepted})
