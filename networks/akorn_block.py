"""The Kuramoto part of an AKOrN block, built the same way by every AKOrN model.

A block of the classifier, the object model and the Sudoku model is: an image coupling chosen by
name (any of :data:`kuramoto.couplings.IMAGE_COUPLINGS`), an optional learned rotation Ω
(:class:`~kuramoto.frequencies.RotationPairs`), the :class:`~networks.layer.KuramotoLayer` that
runs them, then a readout. The readouts differ per model (and their parameters are stored under
each model's ``readouts``), so a model builds its readout itself and this module builds the rest.
A new image coupling is therefore available to every model as ``coupling="<its name>"``.
"""

from __future__ import annotations

from typing import Any

from kuramoto.couplings import IMAGE_COUPLINGS, build_coupling
from kuramoto.frequencies import RotationPairs

from .layer import KuramotoLayer

__all__ = ["check_coupling_name", "kuramoto_block"]


def check_coupling_name(coupling: object) -> str:
    """``coupling`` if it names a registered image coupling.

    Raises:
        ValueError: listing the registered names.
    """
    if coupling not in IMAGE_COUPLINGS:
        raise ValueError(f"coupling: expected one of {', '.join(map(repr, IMAGE_COUPLINGS))}, got {coupling!r}")
    return coupling  # type: ignore[return-value]


def kuramoto_block(coupling: str, channels: int, n: int, *, omega: float | None, learn_omega: bool = True,
                   global_omega: bool = True, coupling_options: dict[str, Any] | None = None,
                   **layer_options: Any) -> KuramotoLayer:
    """A Kuramoto layer with the coupling ``coupling`` and, unless ``omega`` is ``None``, a learned Ω.

    Args:
        coupling: registered image-coupling name (``"conv"``, ``"attn"``, ...).
        channels: C, a multiple of ``n``.
        n: oscillator dimension.
        omega: initial ω of the rotation pairs, or ``None`` for Ω = 0.
        learn_omega: train ω.
        global_omega: one ω for the layer, or one per channel pair.
        coupling_options: options of the couplings (``kernel_size``, ``heads``, ``gta``, ``grid``);
            each coupling takes those its constructor declares.
        **layer_options: passed to :class:`~networks.layer.KuramotoLayer` (``steps``, ``gamma``, ...).

    Returns:
        The layer (its coupling, Ω and step parameters are created in that order).
    """
    J = build_coupling(check_coupling_name(coupling), channels, n, **(coupling_options or {}))
    om = None if omega is None else RotationPairs(n, None if global_omega else channels // n, spatial_dims=2,
                                                  init_omega=float(omega), learnable=learn_omega)
    return KuramotoLayer(J, n, channels, omega=om, **layer_options)
