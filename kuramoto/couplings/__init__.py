"""Coupling operators ``x ↦ Σ_j J_ij x_j``: graph couplings on ``[..., N, n]`` and image couplings
(convolution, attention) on ``[B, C/n, H, W, n]``; :data:`COUPLINGS` names them all."""

from .base import AbstractCoupling
from .graph import Dense, MeanField, Sparse
from .image import AbstractImageCoupling, Attention, Conv, to_features, to_oscillators
from .registry import COUPLINGS, IMAGE_COUPLINGS, build_coupling

__all__ = ["COUPLINGS", "IMAGE_COUPLINGS", "AbstractCoupling", "AbstractImageCoupling", "Attention", "Conv", "Dense",
           "MeanField", "Sparse", "build_coupling", "to_features", "to_oscillators"]
