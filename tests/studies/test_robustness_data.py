"""Data loaders, the generated textured-shapes set and image corruptions of the robustness study."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from studies.robustness import data as rdata
from studies.robustness import shapes as shapes_module
from studies.robustness.corruptions import CORRUPTIONS, SEVERITY_PARAMS, corrupt
from studies.robustness.data import (
    FASHION_MNIST_DEBIAN_DIR,
    ImageData,
    load_cifar10,
    load_fashion_mnist,
    read_idx,
    render_textured_shapes,
    textured_shapes,
)

# --------------------------------------------------------------------------------------------
# idx / Fashion-MNIST
# --------------------------------------------------------------------------------------------


def _idx_bytes(arr: np.ndarray) -> bytes:
    assert arr.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def _write_fashion(root: Path, split: str, images: np.ndarray, labels: np.ndarray, compress: bool = True) -> None:
    prefix = "train" if split == "train" else "t10k"
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        raw = _idx_bytes(arr)
        if compress:
            (root / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (root / stem).write_bytes(raw)


@pytest.fixture
def tiny_fashion(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1, 5, 2], dtype=np.uint8)
    _write_fashion(tmp_path, "test", images, labels)
    return tmp_path, images, labels


def test_read_idx_roundtrip_gzip_and_plain(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    (tmp_path / "a").write_bytes(_idx_bytes(arr))
    for name in ("a.gz", "a"):
        out = read_idx(tmp_path / name, expected_ndim=3)
        np.testing.assert_array_equal(out, arr)
        assert out.dtype == np.uint8


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    arr = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "b").write_bytes(struct.pack(">BBBB", 0, 0, 0x0C, 1) + struct.pack(">I", 3) + arr.tobytes())
    out = read_idx(tmp_path / "b")
    np.testing.assert_array_equal(out, [1, -2, 70000])
    assert out.dtype.isnative


@pytest.mark.parametrize("payload, match", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "two zero bytes"),  # bad magic
    (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab", "type code"),  # unknown type
    (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"ab", "declares"),  # truncated data
    (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"ab", "declares"),  # trailing bytes
    (b"\x00\x00\x08\x03\x00\x00", "header"),  # truncated header
    (b"\x00\x00", "too short"),
])
def test_read_idx_malformed(tmp_path: Path, payload: bytes, match: str) -> None:
    (tmp_path / "bad").write_bytes(payload)
    with pytest.raises(ValueError, match=match):
        read_idx(tmp_path / "bad")


def test_read_idx_wrong_ndim_and_bad_gzip(tmp_path: Path) -> None:
    (tmp_path / "lab").write_bytes(_idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(ValueError, match="dimensions"):
        read_idx(tmp_path / "lab", expected_ndim=3)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(50, dtype=np.uint8)))[:-12])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(tmp_path / "broken.gz")
    with pytest.raises(ValueError, match="no such file"):
        read_idx(tmp_path / "missing")


def test_load_fashion_mnist_from_test_files(tiny_fashion) -> None:
    root, images, labels = tiny_fashion
    d = load_fashion_mnist("test", root=root)
    assert d.images.shape == (7, 3, 32, 32) and d.images.dtype == np.float32
    assert d.labels.dtype == np.int64
    np.testing.assert_array_equal(d.labels, labels)
    # 2-pixel zero border, the 28x28 centre is the image / 255 in every channel.
    inner = d.images[:, :, 2:30, 2:30]
    for c in range(3):
        np.testing.assert_allclose(inner[:, c], images / 255.0, rtol=0, atol=1e-7)
    border = d.images.copy()
    border[:, :, 2:30, 2:30] = 0
    assert not border.any()
    assert d.class_names[9] == "Ankle boot" and d.name == "fashion-mnist/test"


def test_load_fashion_mnist_env_and_plain_files(tmp_path: Path, monkeypatch) -> None:
    images = np.full((2, 28, 28), 255, dtype=np.uint8)
    _write_fashion(tmp_path, "train", images, np.array([4, 8], dtype=np.uint8), compress=False)
    monkeypatch.setenv("AKORN_FASHION_MNIST", str(tmp_path))
    d = load_fashion_mnist("train")
    assert len(d) == 2 and d.images.max() == 1.0 and d.images.min() == 0.0


def test_load_fashion_mnist_missing_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("valid", root=tmp_path)


def test_load_fashion_mnist_rejects_inconsistent_files(tmp_path: Path) -> None:
    _write_fashion(tmp_path, "test", np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_fashion_mnist("test", root=tmp_path)
    _write_fashion(tmp_path, "test", np.zeros((2, 20, 20), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="28, 28"):
        load_fashion_mnist("test", root=tmp_path)
    _write_fashion(tmp_path, "test", np.zeros((2, 28, 28), np.uint8), np.array([0, 10], np.uint8))
    with pytest.raises(ValueError, match="label 10"):
        load_fashion_mnist("test", root=tmp_path)


@pytest.mark.skipif(not (FASHION_MNIST_DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split() -> None:
    d = load_fashion_mnist("test", root=FASHION_MNIST_DEBIAN_DIR)
    assert d.images.shape == (10_000, 3, 32, 32) and d.labels.shape == (10_000,)
    np.testing.assert_array_equal(d.class_counts(), np.full(10, 1000))
    assert d.images.min() == 0.0 and d.images.max() == 1.0
    assert not d.images[:, :, :2].any() and np.array_equal(d.images[:, 0], d.images[:, 2])


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def _cifar_arrays(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, size=n)]


def _write_cifar_py(root: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in sizes.items():
        data, labels = _cifar_arrays(rng, n)
        with open(root / name, "wb") as fh:
            pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels, b"filenames": [b"f"] * n}, fh,
                        protocol=2)
        out[name] = (data, labels)
    return out


PY_SIZES = {**{f"data_batch_{i}": 3 for i in range(1, 6)}, "test_batch": 4}


def test_load_cifar10_python_layout(tmp_path: Path) -> None:
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    written = _write_cifar_py(sub, PY_SIZES)
    with open(sub / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh, protocol=2)
    train = load_cifar10("train", root=tmp_path)
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == np.float32
    expected = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    # Row layout: 1024 red values (rows top to bottom), then green, then blue.
    np.testing.assert_allclose(train.images[4, 1, 2, 5], expected[4, 1024 + 2 * 32 + 5] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(train.images.reshape(15, -1) * 255.0, expected, atol=1e-3)
    np.testing.assert_array_equal(train.labels, sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), []))
    assert train.class_names[3] == "c3"
    test = load_cifar10("test", root=sub)
    assert len(test) == 4 and test.labels.dtype == np.int64


def test_load_cifar10_binary_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, size=2, dtype=np.uint8)
        pixels = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
        (tmp_path / name).write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
        records[name] = (labels, pixels)
    d = load_cifar10("test", root=tmp_path)
    labels, pixels = records["test_batch.bin"]
    np.testing.assert_array_equal(d.labels, labels)
    np.testing.assert_allclose(d.images.reshape(2, -1) * 255.0, pixels, atol=1e-3)
    assert d.class_names[0] == "airplane"
    assert len(load_cifar10("train", root=tmp_path)) == 10


def test_load_cifar10_malformed(tmp_path: Path) -> None:
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3074)
    with pytest.raises(ValueError, match="3073"):
        load_cifar10("test", root=tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match=r"\[N, 3072\]"):
        load_cifar10("test", root=tmp_path)
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}, fh)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        load_cifar10("test", root=tmp_path)
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"labels": [0]}, fh)
    with pytest.raises(ValueError, match="lacks"):
        load_cifar10("test", root=tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a readable CIFAR pickle"):
        load_cifar10("test", root=tmp_path)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_load_cifar10_refuses_arbitrary_pickled_code(tmp_path: Path) -> None:
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": []}, fh)
    with pytest.raises(ValueError, match="not allowed"):
        load_cifar10("test", root=tmp_path)


def test_load_cifar10_missing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AKORN_CIFAR10", raising=False)
    with pytest.raises(FileNotFoundError, match="root"):
        load_cifar10("train")
    with pytest.raises(FileNotFoundError, match="data_batch_1..5"):
        load_cifar10("train", root=tmp_path)


# --------------------------------------------------------------------------------------------
# ImageData
# --------------------------------------------------------------------------------------------


def test_image_data_validation_and_helpers() -> None:
    imgs = np.zeros((4, 3, 8, 8), np.float32)
    with pytest.raises(TypeError, match="images"):
        ImageData(imgs.astype(np.float64), np.zeros(4, np.int64), ("a", "b"), "x")
    with pytest.raises(ValueError, match="labels"):
        ImageData(imgs, np.zeros(3, np.int64), ("a", "b"), "x")
    with pytest.raises(ValueError, match="labels"):
        ImageData(imgs, np.array([0, 1, 2, 0]), ("a", "b"), "x")
    d = ImageData(imgs + np.arange(4, dtype=np.float32)[:, None, None, None] / 4, np.array([0, 1, 1, 0]), ["a", "b"], "x")
    assert d.n_classes == 2 and d.class_names == ("a", "b")
    assert len(d.subset([1, 3])) == 2 and len(d.subset(d.labels == 1)) == 2
    assert len(d.take(3, seed=1)) == 3
    x, y = d.tensors()
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    first = [b[1].tolist() for b in d.loader(batch_size=2, shuffle=True, seed=5)]
    again = [b[1].tolist() for b in d.loader(batch_size=2, shuffle=True, seed=5)]
    assert first == again and sum(len(b) for b in first) == 4


# --------------------------------------------------------------------------------------------
# textured shapes
# --------------------------------------------------------------------------------------------


def test_textured_shapes_deterministic_balanced_in_range() -> None:
    a = textured_shapes("train", n=200, seed=3, use_cache=False)
    b = textured_shapes("train", n=200, seed=3, use_cache=False)
    c = textured_shapes("train", n=200, seed=4, use_cache=False)
    t = textured_shapes("test", n=200, seed=3, use_cache=False)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images) and not np.array_equal(a.images, t.images)
    assert a.images.shape == (200, 3, 32, 32) and a.images.dtype == np.float32 and a.labels.dtype == np.int64
    assert a.images.min() >= 0.0 and a.images.max() <= 1.0
    np.testing.assert_array_equal(a.class_counts(), np.full(10, 20))
    odd = textured_shapes("test", n=23, seed=0, use_cache=False).class_counts()
    assert odd.sum() == 23 and odd.max() - odd.min() <= 1
    # Real colour content and spatial variety (not constant images).
    assert a.images.std(axis=(2, 3)).mean() > 0.05
    assert np.abs(a.images[:, 0] - a.images[:, 1]).mean() > 0.05


def test_render_textured_shapes_direct() -> None:
    labels = np.arange(30) % 10
    one = render_textured_shapes(labels, np.random.default_rng(7))
    np.testing.assert_array_equal(one, render_textured_shapes(labels, np.random.default_rng(7)))
    assert one.dtype == np.uint8 and one.shape == (30, 3, 32, 32)
    with pytest.raises(ValueError, match="labels"):
        render_textured_shapes(np.array([10]), np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        render_textured_shapes(labels, 0)  # type: ignore[arg-type]


def test_textured_shapes_cache_reuse(tmp_path: Path, monkeypatch) -> None:
    first = textured_shapes("test", n=40, seed=1, cache_dir=tmp_path)
    files = list(tmp_path.glob("textured-shapes-*.h5"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("cache miss: rendered again")

    monkeypatch.setattr(shapes_module, "render_textured_shapes", boom)
    second = textured_shapes("test", n=40, seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    with pytest.raises(AssertionError, match="cache miss"):
        textured_shapes("test", n=40, seed=2, cache_dir=tmp_path)


def test_textured_shapes_argument_errors() -> None:
    with pytest.raises(ValueError, match="split"):
        textured_shapes("val", n=10, use_cache=False)
    with pytest.raises(ValueError, match="n:"):
        textured_shapes("train", n=0, use_cache=False)
    with pytest.raises(ValueError, match="seed"):
        textured_shapes("train", n=10, seed=-1, use_cache=False)


# --------------------------------------------------------------------------------------------
# corruptions
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_batch() -> torch.Tensor:
    return torch.from_numpy(textured_shapes("test", n=40, seed=0, use_cache=False).images)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_corruption_keeps_shape_dtype_range(shapes_batch: torch.Tensor, name: str, dtype: torch.dtype) -> None:
    x = shapes_batch.to(dtype)
    for severity in range(1, 6):
        y = corrupt(x, name, severity, generator=0)
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    single = corrupt(x[0], name, 3, generator=0)  # [C, H, W] works too
    assert single.shape == x[0].shape


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_deterministic_per_seed(shapes_batch: torch.Tensor, name: str) -> None:
    a = corrupt(shapes_batch, name, 4, generator=torch.Generator().manual_seed(11))
    b = corrupt(shapes_batch, name, 4, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    if name in ("gaussian_noise", "shot_noise"):
        c = corrupt(shapes_batch, name, 4, generator=torch.Generator().manual_seed(12))
        assert not torch.equal(a, c)
        g = torch.Generator().manual_seed(3)
        assert not torch.equal(corrupt(shapes_batch, name, 4, generator=g), corrupt(shapes_batch, name, 4, generator=g))


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_severity_increases_distance(shapes_batch: torch.Tensor, name: str) -> None:
    dist = [float((corrupt(shapes_batch, name, s, generator=5) - shapes_batch).pow(2).mean().sqrt())
            for s in range(0, 6)]
    assert dist[0] == 0.0
    assert all(b > a for a, b in zip(dist, dist[1:])), dist
    assert len(SEVERITY_PARAMS[name]) == 5


def test_corruption_argument_errors(shapes_batch: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="name: unknown corruption 'fog'.*brightness"):
        corrupt(shapes_batch, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(shapes_batch, "contrast", 6)
    with pytest.raises(TypeError, match="images"):
        corrupt((shapes_batch * 255).to(torch.uint8), "contrast", 1)
    with pytest.raises(ValueError, match=r"images: values must lie in \[0, 1\]"):
        corrupt(shapes_batch * 2, "contrast", 1)
    with pytest.raises(TypeError, match="generator"):
        corrupt(shapes_batch, "gaussian_noise", 1, generator="seed")  # type: ignore[arg-type]


def test_brightness_is_hsv_value_shift() -> None:
    x = torch.tensor([0.2, 0.4, 0.1]).view(1, 3, 1, 1)  # V = 0.4, b(sev 1) = 0.1 -> V' = 0.5
    y = corrupt(x, "brightness", 1)
    torch.testing.assert_close(y.flatten(), torch.tensor([0.25, 0.5, 0.125]))
    black = corrupt(torch.zeros(1, 3, 2, 2), "brightness", 2)
    torch.testing.assert_close(black, torch.full((1, 3, 2, 2), 0.2))
