"""The image container of the robustness study (:class:`ImageData`: uint8-range float images, labels,
class names) and the Fashion-MNIST padding to 32×32 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["FASHION_MNIST_DEBIAN_DIR", "ImageData", "pad_and_colour"]


FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True, eq=False)
class ImageData:
    """A labelled image set held in memory.

    Attributes:
        images: float32 array ``[N, C, H, W]`` with values in ``[0, 1]``.
        labels: int64 array ``[N]`` with values in ``0 .. len(class_names) - 1``.
        class_names: one name per class.
        name: a short label of the set, e.g. ``"fashion-mnist/train"``.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.images, np.ndarray) or self.images.ndim != 4:
            raise ValueError(f"images: expected a numpy array [N, C, H, W], got "
                             f"{type(self.images).__name__} with shape {getattr(self.images, 'shape', None)}")
        if self.images.dtype != np.float32:
            raise TypeError(f"images: expected dtype float32, got {self.images.dtype}")
        if not isinstance(self.labels, np.ndarray) or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels: expected a numpy array of shape ({self.images.shape[0]},), got "
                             f"{getattr(self.labels, 'shape', None)}")
        if self.labels.dtype != np.int64:
            raise TypeError(f"labels: expected dtype int64, got {self.labels.dtype}")
        names = tuple(self.class_names)
        if not names or not all(isinstance(c, str) for c in names):
            raise ValueError("class_names: expected a non-empty sequence of strings")
        object.__setattr__(self, "class_names", names)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= len(names)):
            raise ValueError(f"labels: values must lie in [0, {len(names) - 1}], got "
                             f"[{self.labels.min()}, {self.labels.max()}]")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        """Number of examples per class, int64 ``[n_classes]``."""
        return np.bincount(self.labels, minlength=self.n_classes).astype(np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray | slice, name: str | None = None) -> ImageData:
        """The examples at ``indices`` (a copy), keeping the class names.

        Args:
            indices: integer indices, a boolean mask of length ``N``, or a slice.
            name: name of the result (default: this name with ``"[subset]"`` appended).
        """
        if isinstance(indices, slice):
            idx: np.ndarray | slice = indices
        else:
            idx = np.asarray(indices)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise ValueError(f"indices: boolean mask must have shape ({len(self)},), got {idx.shape}")
            elif idx.size and not np.issubdtype(idx.dtype, np.integer):
                raise TypeError(f"indices: expected integers, a boolean mask or a slice, got dtype {idx.dtype}")
            else:
                idx = idx.astype(np.int64)
        return ImageData(np.ascontiguousarray(self.images[idx]), np.ascontiguousarray(self.labels[idx]),
                         self.class_names, name or f"{self.name}[subset]")

    def take(self, n: int, seed: int | None = None) -> ImageData:
        """The first ``n`` examples, or ``n`` examples drawn without replacement when ``seed`` is given."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n <= len(self):
            raise ValueError(f"n: expected an int in [0, {len(self)}], got {n!r}")
        if seed is None:
            return self.subset(slice(0, int(n)), name=f"{self.name}[:{n}]")
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=int(n), replace=False))
        return self.subset(idx, name=f"{self.name}[{n}@{seed}]")

    def tensors(self, device: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)`` as torch tensors (float32, int64), sharing memory on CPU."""

        images = torch.from_numpy(self.images)
        labels = torch.from_numpy(self.labels)
        if device is not None:
            images, labels = images.to(device), labels.to(device)
        return images, labels

    def to_tensor_dataset(self, device: str | None = None) -> TensorDataset:
        """A ``torch.utils.data.TensorDataset`` of ``(image, label)`` pairs."""

        return TensorDataset(*self.tensors(device))

    def loader(self, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
               drop_last: bool = False) -> DataLoader:
        """A ``torch.utils.data.DataLoader`` over this set.

        Args:
            batch_size: examples per batch.
            shuffle: reshuffle every epoch, with a ``torch.Generator`` seeded by ``seed``.
            seed: seed of the shuffling generator (ignored without ``shuffle``).
            drop_last: drop the last incomplete batch.
        """

        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        generator = torch.Generator().manual_seed(int(seed)) if shuffle else None
        return DataLoader(self.to_tensor_dataset(), batch_size=batch_size, shuffle=shuffle,
                          generator=generator, drop_last=drop_last)


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    return split


def pad_and_colour(gray: np.ndarray, pad: int = 2, channels: int = 3) -> np.ndarray:
    """Turn uint8 grey images ``[N, H, W]`` into float32 ``[N, channels, H + 2 pad, W + 2 pad]`` in [0, 1].

    The border is zero (black); the grey value is repeated over the channels.
    """
    gray = np.asarray(gray)
    if gray.ndim != 3:
        raise ValueError(f"gray: expected [N, H, W], got shape {gray.shape}")
    if gray.dtype != np.uint8:
        raise TypeError(f"gray: expected dtype uint8, got {gray.dtype}")
    if not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad: expected a non-negative int, got {pad!r}")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels: expected a positive int, got {channels!r}")
    n, h, w = gray.shape
    out = np.zeros((n, channels, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    scaled = gray.astype(np.float32) / np.float32(255.0)
    out[:, :, pad:pad + h, pad:pad + w] = scaled[:, None]
    return out
