"""Readers of the published image sets: Fashion-MNIST (idx files, as Debian's ``dataset-fashion-mnist``
installs them) and CIFAR-10 (the python pickles or the binary version), without torchvision.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np

from studies.robustness.images import FASHION_MNIST_DEBIAN_DIR, ImageData, _check_split, pad_and_colour

__all__ = ["CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "load_cifar10", "load_fashion_mnist", "read_idx"]






FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)










_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"path: {str(path)!r} is a damaged gzip file ({exc})") from exc
    return raw


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read an idx file (the MNIST container format), plain or gzip-compressed.

    Layout: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions ``d``, then
    ``d`` big-endian uint32 sizes, then the data in C order. Image files have magic number 2051
    (type uint8, 3 dimensions), label files 2049 (uint8, 1 dimension).

    Args:
        path: the file; gzip compression is detected from its first bytes.
        expected_ndim: if given, the number of dimensions the file must declare.

    Returns:
        The array in native byte order.

    Raises:
        ValueError: the file is missing, the header is malformed, or the size does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise ValueError(f"path: {str(path)!r} is too short to be an idx file ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"path: {str(path)!r} is not an idx file (magic number "
                         f"0x{int.from_bytes(raw[:4], 'big'):08x} does not start with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"path: {str(path)!r} has unknown idx type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"path: {str(path)!r} declares zero dimensions")
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(f"path: {str(path)!r} has {ndim} dimensions (magic "
                         f"{int.from_bytes(raw[:4], 'big')}), expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"path: {str(path)!r} is truncated inside its header")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"path: {str(path)!r} holds {len(raw) - header} data bytes but its header "
                         f"{shape} declares {expected}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _fashion_mnist_dir(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("AKORN_FASHION_MNIST")
    return Path(env) if env else FASHION_MNIST_DEBIAN_DIR


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> ImageData:
    """Load Fashion-MNIST as 3-channel 32x32 float images.

    Files are looked up in ``root``, else ``$AKORN_FASHION_MNIST``, else the Debian location
    ``/usr/share/datasets/fashion-mnist``; they are the idx files ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``,
    gzip-compressed (``.gz``) or not.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: directory holding the idx files.

    Returns:
        ``ImageData`` with images float32 ``[N, 3, 32, 32]`` in [0, 1] (28x28 zero-padded by 2
        pixels on each side, grey repeated over channels) and int64 labels ``[N]``.

    Raises:
        FileNotFoundError: the files are not there (the message says how to get them).
        ValueError: a file is malformed, or images and labels do not match.
    """
    split = _check_split(split)
    directory = _fashion_mnist_dir(root)
    prefix = "train" if split == "train" else "t10k"
    img_path = _find_file(directory, f"{prefix}-images-idx3-ubyte")
    lab_path = _find_file(directory, f"{prefix}-labels-idx1-ubyte")
    if img_path is None or lab_path is None:
        missing = [n for n, p in ((f"{prefix}-images-idx3-ubyte[.gz]", img_path),
                                  (f"{prefix}-labels-idx1-ubyte[.gz]", lab_path)) if p is None]
        raise FileNotFoundError(
            f"Fashion-MNIST {split} split not found: {', '.join(missing)} missing in {str(directory)!r}. "
            f"Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files go to "
            f"{FASHION_MNIST_DEBIAN_DIR}), or pass root=... / set AKORN_FASHION_MNIST to a directory "
            f"holding the four idx files.")
    images = read_idx(img_path, expected_ndim=3)
    labels = read_idx(lab_path, expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"root: Fashion-MNIST idx files must hold uint8 data, got {images.dtype} and {labels.dtype}")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"root: {str(img_path)!r} holds images of size {images.shape[1:]}, expected (28, 28)")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"root: {images.shape[0]} images but {labels.shape[0]} labels in {str(directory)!r}")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"root: {str(lab_path)!r} has label {labels.max()} >= {len(FASHION_MNIST_CLASSES)}")
    return ImageData(pad_and_colour(images), labels.astype(np.int64), FASHION_MNIST_CLASSES,
                     f"fashion-mnist/{split}")


_PICKLE_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("copyreg", "_reconstructor"), ("builtins", "bytearray"),
    ("_codecs", "encode"),  # bytes objects in protocol-2 pickles written by Python 3
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the numpy names a CIFAR batch needs (no arbitrary code)."""

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _load_pickle(path: Path) -> object:
    try:
        with open(path, "rb") as fh:
            return _CifarUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"path: {str(path)!r} is not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from exc


def _get(d: dict, key: str) -> object:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(key)


def _read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _load_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"path: {str(path)!r} does not hold a dict (got {type(batch).__name__})")
    try:
        data = _get(batch, "data")
        labels = _get(batch, "labels")
    except KeyError as exc:
        raise ValueError(f"path: {str(path)!r} lacks the {exc.args[0]!r} entry") from exc
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"path: {str(path)!r}: 'data' must be uint8 [N, 3072], got {data.dtype} {data.shape}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"path: {str(path)!r}: 'labels' must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}")
    return data, labels.astype(np.int64)


def _read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise ValueError(f"path: {str(path)!r} has {raw.size} bytes, not a positive multiple of the "
                         f"3073-byte CIFAR-10 record (1 label byte + 3072 pixel bytes)")
    records = raw.reshape(-1, 3073)
    return np.ascontiguousarray(records[:, 1:]), records[:, 0].astype(np.int64)


def _cifar_class_names(directory: Path) -> tuple[str, ...]:
    meta = directory / "batches.meta"
    if meta.is_file():
        try:
            names = _get(_load_pickle(meta), "label_names")  # type: ignore[arg-type]
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)  # type: ignore[union-attr]
            if len(names) == 10:
                return names
        except (ValueError, KeyError, TypeError):
            pass
    meta_txt = directory / "batches.meta.txt"
    if meta_txt.is_file():
        names = tuple(line.strip() for line in meta_txt.read_text().splitlines() if line.strip())
        if len(names) == 10:
            return names
    return CIFAR10_CLASSES


def _cifar_files(directory: Path, split: str) -> tuple[str, list[Path]] | None:
    stems = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    for sub in ("", "cifar-10-batches-py", "cifar-10-batches-bin"):
        d = directory / sub if sub else directory
        if all((d / s).is_file() for s in stems):
            return "pickle", [d / s for s in stems]
        if all((d / f"{s}.bin").is_file() for s in stems):
            return "binary", [d / f"{s}.bin" for s in stems]
    return None


def load_cifar10(split: str = "train", root: str | os.PathLike | None = None) -> ImageData:
    """Load CIFAR-10 from its published python (pickle) or binary layout.

    ``root`` (or ``$AKORN_CIFAR10``) may be the extracted ``cifar-10-batches-py`` /
    ``cifar-10-batches-bin`` directory or its parent. The python layout has ``data_batch_1`` ..
    ``data_batch_5`` and ``test_batch``, each a pickled dict with ``b"data"`` (uint8
    ``[N, 3072]``: 1024 red, 1024 green, 1024 blue values, rows top to bottom) and ``b"labels"``.
    The binary layout has ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``,
    each a run of 3073-byte records (1 label byte, 3072 pixel bytes in the same order). Class
    names come from ``batches.meta`` / ``batches.meta.txt`` when present. Pickles are read with an
    unpickler that refuses everything but the numpy reconstruction helpers.

    Args:
        split: ``"train"`` (all five data batches) or ``"test"``.
        root: directory holding the files.

    Returns:
        ``ImageData`` with images float32 ``[N, 3, 32, 32]`` in [0, 1] and int64 labels ``[N]``.

    Raises:
        FileNotFoundError: no root given or the batch files are missing.
        ValueError: a file is malformed.
    """
    split = _check_split(split)
    if root is None:
        root = os.environ.get("AKORN_CIFAR10")
    if root is None:
        raise FileNotFoundError("CIFAR-10 location unknown: pass root=... or set AKORN_CIFAR10 to the directory "
                                "holding the extracted python or binary batches (cifar-10-batches-py/-bin).")
    directory = Path(root)
    found = _cifar_files(directory, split)
    if found is None:
        expected = "data_batch_1..5" if split == "train" else "test_batch"
        raise FileNotFoundError(f"CIFAR-10 {split} split not found under {str(directory)!r}: expected "
                                f"{expected} (python pickles) or the same names with .bin (binary version), "
                                f"directly or in cifar-10-batches-py/ or cifar-10-batches-bin/.")
    kind, files = found
    reader = _read_cifar_pickle if kind == "pickle" else _read_cifar_binary
    parts = [reader(f) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"root: CIFAR-10 labels must lie in [0, 9], got [{labels.min()}, {labels.max()}] "
                         f"in {str(directory)!r}")
    images = data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0)
    return ImageData(images, labels, _cifar_class_names(files[0].parent), f"cifar10/{split}")
