"""Coupling operators ``x ↦ Σ_j J_ij x_j``: graph couplings on ``[..., N, n]`` and image couplings
(convolution, attention) on ``[B, C/n, H, W, n]``."""

from .base import AbstractCoupling
from .graph import Dense, MeanField, Sparse

__all__ = ["AbstractCoupling", "Dense", "MeanField", "Sparse"]
