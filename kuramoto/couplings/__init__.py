"""Coupling operators ``x ↦ Σ_j J_ij x_j``: graph couplings on ``[..., N, n]`` and image couplings
(convolution, attention) on ``[B, C/n, H, W, n]``."""

from .base import AbstractCoupling
from .graph import Dense, MeanField, Sparse
from .image import Attention, Conv, to_features, to_oscillators

__all__ = ["AbstractCoupling", "Attention", "Conv", "Dense", "MeanField", "Sparse", "to_features", "to_oscillators"]
