"""Image classification data for the robustness study.

Every loader returns an :class:`ImageData`: float32 images in ``[0, 1]`` shaped
``[N, 3, 32, 32]`` (channels first, like CIFAR-10) and int64 labels ``[N]``.

Three sources:

* **Fashion-MNIST** (:func:`load_fashion_mnist`) from the idx files of Debian's
  ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``). The 28x28 grey
  images are zero-padded to 32x32 and repeated over three channels so that they fit
  CIFAR-shaped networks unchanged.
* **Textured shapes** (:func:`textured_shapes`), generated here from a seed and cached on disk,
  so it needs no download: ten classes, 5 shapes x 2 fill textures, on randomly coloured,
  partly textured backgrounds (see :func:`render_textured_shapes`).
* **CIFAR-10** (:func:`load_cifar10`) in either published layout, the pickled "python version"
  or the "binary version"; the files have to be obtained separately.

Nothing here touches a global random number generator: randomness comes from
``numpy.random.Generator`` objects built from explicit seeds.

The pieces live in :mod:`~studies.robustness.images` (:class:`ImageData`), :mod:`~studies.robustness.files`
(Fashion-MNIST and CIFAR-10 readers) and :mod:`~studies.robustness.shapes` (the textured-shapes set);
this module gathers their public names.
"""

from studies.robustness.files import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, load_cifar10, load_fashion_mnist, read_idx
from studies.robustness.images import FASHION_MNIST_DEBIAN_DIR, ImageData, pad_and_colour
from studies.robustness.shapes import (
    TEXTURED_SHAPES_CLASSES,
    TEXTURED_SHAPES_SHAPES,
    TEXTURED_SHAPES_TEXTURES,
    render_textured_shapes,
    textured_shapes,
)

__all__ = ["CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "FASHION_MNIST_DEBIAN_DIR", "ImageData",
           "TEXTURED_SHAPES_CLASSES", "TEXTURED_SHAPES_SHAPES", "TEXTURED_SHAPES_TEXTURES", "load_cifar10",
           "load_fashion_mnist", "pad_and_colour", "read_idx", "render_textured_shapes", "textured_shapes"]
