"""AKOrN models: Kuramoto layers (a field + an integrator) inside networks.

- :class:`KuramotoLayer` — the paper's layer (discrete: T steps of the retraction update, or
  continuous: any registered integrator over a time span), with per-step states and energies.
- Blocks: :class:`ReadOut` (the norm readout), FF / residual / norm blocks, positional codes.
- Models: :class:`AKOrNClassifier`, :class:`SudokuAKOrN`, :class:`ObjectAKOrN`, and the
  baselines :class:`IteratedSelfAttention`, :class:`SudokuTransformer`, :class:`ObjectViT`,
  :class:`ConvNet`.
"""

import kuramoto  # noqa: F401  first: applies torch's OpenMP wait default before torch loads

from .blocks import (FF, BNReLUConv2d, LayerNormForImage, PositionalEmbedding2d, ReadOut, ResBlock, RGBNormalize,
                     ScaleAndBias, sinusoidal_embedding_2d)
from .layer import KuramotoLayer, Trajectory, initial_state, learnable_initial_state, use_integrator
from .models import (AKOrNClassifier, ConvNet, IteratedSelfAttention, ObjectAKOrN, ObjectViT, SudokuAKOrN,
                     SudokuTransformer)
from .official import OfficialCheckpointError, convert_state_dict, load_official, read_official

__all__ = [
    "AKOrNClassifier", "BNReLUConv2d", "ConvNet", "FF", "IteratedSelfAttention", "KuramotoLayer",
    "LayerNormForImage", "ObjectAKOrN", "ObjectViT", "OfficialCheckpointError", "PositionalEmbedding2d",
    "RGBNormalize", "ReadOut", "ResBlock", "ScaleAndBias", "SudokuAKOrN", "SudokuTransformer", "Trajectory",
    "convert_state_dict", "initial_state", "learnable_initial_state", "load_official", "read_official",
    "sinusoidal_embedding_2d", "use_integrator",
]
