"""Task models built from Kuramoto layers, and the baselines the paper compares them with.

- :class:`AKOrNClassifier` — image classification (CIFAR-10), docs/AKORN.md §4.1.
- :class:`SudokuAKOrN` — Sudoku solver with energy readout for voting, §4.2.
- :class:`ObjectAKOrN` — unsupervised object discovery (SimCLR), §4.3.
- Baselines (§4.4): :class:`IteratedSelfAttention`, :class:`SudokuTransformer`,
  :class:`ObjectViT` (ViT and object ItrSA), :class:`ConvNet`.
"""

from .baselines import ConvNet, IteratedSelfAttention, ObjectViT, SudokuTransformer
from .classifier import AKOrNClassifier
from .objects import ObjectAKOrN
from .sudoku import SudokuAKOrN, board_digits, check_box_shape

__all__ = [
    "AKOrNClassifier",
    "ConvNet",
    "IteratedSelfAttention",
    "ObjectAKOrN",
    "ObjectViT",
    "SudokuAKOrN",
    "SudokuTransformer",
    "board_digits",
    "check_box_shape",
]
