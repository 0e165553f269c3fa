"""Scene generators, the scene cache, the torch Dataset wrapper and the published-format loaders."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from studies.objects import data as D
from studies.objects import generators
from studies.objects import (
    GENERATORS,
    SceneData,
    SceneDataset,
    count_objects,
    dsprites,
    load_arrays,
    load_clevr,
    load_clevrtex,
    load_multi_dsprites,
    load_tetrominoes,
    make_scenes,
    shape_templates,
    shapes,
    sprite_bank,
    tetromino_orientations,
    tetrominoes,
)

N = 300


@functools.lru_cache(maxsize=None)
def _gen(name: str, seed: int = 3, num: int = N) -> SceneData:
    return GENERATORS[name](num, seed)


def _id_counts(masks: np.ndarray) -> np.ndarray:
    """[M, K+2] pixel counts of label -1, 0, 1..K per image."""
    m = masks.shape[0]
    top = int(masks.max()) + 2
    keys = (masks.reshape(m, -1).astype(np.int64) + 1) + top * np.arange(m)[:, None]
    return np.bincount(keys.ravel(), minlength=m * top).reshape(m, top)


def _crop_to_bbox(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


# ---------------------------------------------------------------------------------------------
# properties shared by all generators
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, size", [("shapes", 40), ("tetrominoes", 32), ("dsprites", 64)])
def test_generated_scenes_are_valid_partitions(name, size):
    d = _gen(name)
    assert isinstance(d, SceneData) and d.name == name and len(d) == N
    assert d.images.shape == (N, 3, size, size) and d.images.dtype == np.float32
    assert 0.0 <= d.images.min() and d.images.max() <= 1.0
    assert d.masks.shape == (N, size, size) and d.masks.dtype == np.int8
    assert d.masks.min() >= -1                                   # labels in {-1, 0, 1..K}
    counts = _id_counts(d.masks)                                 # columns: -1, 0, 1, 2, ...
    assert (counts.sum(axis=1) == size * size).all()             # one label per pixel
    present = counts[:, 2:] > 0
    np.testing.assert_array_equal(d.num_objects, present.sum(axis=1))
    np.testing.assert_array_equal(count_objects(d.masks), d.num_objects)
    if name == "shapes":
        assert d.masks.max() <= 4                                # recipe ids, never renumbered
    else:
        assert (counts[:, 0] == 0).all()                         # no ignore label without overlaps
        # ids are exactly 1..num_objects, each non-empty
        expected = np.arange(present.shape[1])[None, :] < d.num_objects[:, None]
        np.testing.assert_array_equal(present, expected)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_deterministic_per_seed(name):
    a, b, c = GENERATORS[name](40, 11), GENERATORS[name](40, 11), GENERATORS[name](40, 12)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.masks, c.masks)
    # the global numpy RNG is neither used nor advanced
    state = np.random.get_state()[1].copy()
    GENERATORS[name](5, 0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("fn, kwargs, match", [
    (shapes, {"num": -1}, "num"),
    (shapes, {"num": 3, "seed": -2}, "seed"),
    (shapes, {"num": 3, "min_objects": 3, "max_objects": 2}, "min_objects"),
    (dsprites, {"num": 3, "min_objects": 0}, "min_objects"),
    (dsprites, {"num": 3, "size": 4}, "size"),
    (tetrominoes, {"num": 3, "num_objects": 0}, "num_objects"),
    (tetrominoes, {"num": 3, "cell": 0}, "cell"),
])
def test_generator_arguments_are_validated(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(**kwargs)


def test_tetrominoes_that_cannot_fit_raise():
    with pytest.raises(RuntimeError, match="no free spot"):
        tetrominoes(2, 0, num_objects=5, size=8, cell=2, max_tries=20)


# ---------------------------------------------------------------------------------------------
# Shapes: the official recipe
# ---------------------------------------------------------------------------------------------
def test_shape_templates_follow_the_recipe():
    t = shape_templates()
    assert t.shape == (4, 18, 18) and t.dtype == bool
    r, c = np.mgrid[0:18, 0:18]
    d2 = (r - 8) ** 2 + (c - 8) ** 2
    np.testing.assert_array_equal(t[2], (d2 <= 49) & (d2 > 25))                     # circle
    l1 = np.abs(r - 8) + np.abs(c - 8)
    np.testing.assert_array_equal(t[3], (l1 <= 6) & (l1 > 4))                       # diamond
    sq = _crop_to_bbox(t[1])                                                         # square ring
    assert sq.shape == (10, 10) and sq[:2].all() and sq[-2:].all() and not sq[2:-2, 2:-2].any()
    tri = t[0]                                                                       # triangle
    assert tri[4, 8] and tri[11, 1:16].all() and not tri[11, 0] and not tri[11, 16] and not tri[:4].any()
    assert not t[:, 8, 8].any()                                                      # all hollow
    assert t.sum(axis=(1, 2)).min() > 20


def test_shapes_images_follow_the_recipe():
    d = _gen("shapes")
    img = d.images
    np.testing.assert_array_equal(img[:, 0], img[:, 1])                              # grey -> 3 channels
    np.testing.assert_array_equal(img[:, 0], img[:, 2])
    grey = img[:, 0]
    fg = d.masks != 0
    assert (grey[fg] == 1.0).all()                                                   # shape pixels exactly 1.0
    bg = np.where(fg, np.nan, grey)
    lo, hi = np.nanmin(bg, axis=(1, 2)), np.nanmax(bg, axis=(1, 2))
    np.testing.assert_array_equal(lo, hi)                                            # constant per image
    assert lo.min() >= 0.1 and hi.max() <= 0.6
    assert lo.min() < 0.15 and hi.max() > 0.55                                       # spread over [0.1, 0.6]
    # class map: same support as the instance map, -1 on the same overlap pixels
    assert d.classes is not None and d.classes.dtype == np.int8
    np.testing.assert_array_equal(d.classes > 0, d.masks > 0)
    np.testing.assert_array_equal(d.classes == -1, d.masks == -1)
    assert d.classes.min() >= -1 and d.classes.max() <= 4
    # scenes without overlaps have 2..4 objects, each an exact translated template of its class
    clean = np.flatnonzero((d.masks >= 0).all(axis=(1, 2)))
    assert clean.size > N // 10
    assert set(d.num_objects[clean].tolist()) == {2, 3, 4}
    templates = shape_templates()
    for i in clean[:40]:
        for j in range(1, d.num_objects[i] + 1):
            obj = d.masks[i] == j
            kind = np.unique(d.classes[i][obj])
            assert kind.size == 1
            np.testing.assert_array_equal(_crop_to_bbox(obj), _crop_to_bbox(templates[kind[0] - 1]))
    assert d.num_objects.max() <= 4


# ---------------------------------------------------------------------------------------------
# Tetrominoes and dSprites look-alikes
# ---------------------------------------------------------------------------------------------
def test_tetromino_orientations_are_the_19_fixed_tetrominoes():
    t = tetromino_orientations()
    assert t.shape == (19, 4, 4)
    assert (t.sum(axis=(1, 2)) == 4).all()
    assert len({_crop_to_bbox(x).tobytes() + bytes(_crop_to_bbox(x).shape) for x in t}) == 19
    for x in t:  # top-left aligned and 4-connected
        assert x[0].any() and x[:, 0].any()
        cells = {tuple(p) for p in np.argwhere(x)}
        seen, stack = set(), [next(iter(cells))]
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            stack += [q for q in ((p[0] + 1, p[1]), (p[0] - 1, p[1]), (p[0], p[1] + 1), (p[0], p[1] - 1)) if q in cells]
        assert seen == cells


def test_tetrominoes_scenes_look_like_tetrominoes():
    d = _gen("tetrominoes")
    assert (d.num_objects == 3).all()
    rgb = np.round(d.images * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert (rgb[d.masks == 0] == 0).all()                                            # black background
    palette = {tuple(c) for c in generators.TETROMINO_PALETTE.tolist()}
    pieces = {(_crop_to_bbox(np.repeat(np.repeat(x, 4, 0), 4, 1)).tobytes(),
               _crop_to_bbox(np.repeat(np.repeat(x, 4, 0), 4, 1)).shape) for x in tetromino_orientations()}
    for i in range(30):
        for j in (1, 2, 3):
            obj = d.masks[i] == j
            colours = np.unique(rgb[i][obj], axis=0)
            assert len(colours) == 1 and tuple(colours[0]) in palette                  # one palette colour
            crop = _crop_to_bbox(obj)
            assert (crop.tobytes(), crop.shape) in pieces                             # a whole piece


def test_dsprites_scenes_look_like_multi_dsprites():
    d = _gen("dsprites")
    assert d.num_objects.max() <= 6 and d.num_objects.min() >= 1
    assert np.mean(d.num_objects >= 4) > 0.95                                        # few fully hidden sprites
    assert set(np.unique(d.num_objects[d.num_objects >= 4]).tolist()) == {4, 5, 6}
    rgb = np.round(d.images * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    for i in range(30):
        bg = rgb[i][d.masks[i] == 0]
        assert len(np.unique(bg, axis=0)) == 1 and bg[0, 0] == bg[0, 1] == bg[0, 2]   # one grey level
        for j in range(1, d.num_objects[i] + 1):
            assert len(np.unique(rgb[i][d.masks[i] == j], axis=0)) == 1                 # one colour per sprite
    bank = sprite_bank(64)
    assert bank.shape[:3] == (3, 6, 40) and bank.shape[3] == bank.shape[4] and bank.shape[3] % 2 == 1
    area = bank.sum(axis=(3, 4))
    assert (np.diff(area.mean(axis=2), axis=1) > 0).all()                             # bigger with scale
    np.testing.assert_array_equal(bank[0, :, 0], bank[0, :, 10])                      # square: 90-degree symmetric


# ---------------------------------------------------------------------------------------------
# cache, Dataset wrapper, SceneData
# ---------------------------------------------------------------------------------------------
def test_make_scenes_caches_by_parameters(tmp_path, monkeypatch):
    calls = []
    orig = GENERATORS["dsprites"]

    @functools.wraps(orig)
    def counting(*args, **kwargs):
        calls.append(kwargs)
        return orig(*args, **kwargs)

    monkeypatch.setitem(GENERATORS, "dsprites", counting)
    a = make_scenes("dsprites", 20, seed=1, cache_dir=tmp_path)
    assert len(calls) == 1 and len(list(tmp_path.glob("scenes-dsprites-*.h5"))) == 1
    b = make_scenes("dsprites", 20, seed=1, cache_dir=tmp_path, max_objects=6)    # explicit default: same key
    assert len(calls) == 1
    fresh = dsprites(20, 1)
    for x in (a, b):                                                                 # uint8 cache restores exactly
        np.testing.assert_array_equal(x.images, fresh.images)
        np.testing.assert_array_equal(x.masks, fresh.masks)
        np.testing.assert_array_equal(x.num_objects, fresh.num_objects)
    make_scenes("dsprites", 20, seed=2, cache_dir=tmp_path)
    make_scenes("dsprites", 20, seed=1, cache_dir=tmp_path, max_objects=5)
    assert len(calls) == 3 and len(list(tmp_path.glob("scenes-dsprites-*.h5"))) == 3


def test_make_scenes_keeps_shapes_classes_and_can_skip_the_cache(tmp_path):
    a = make_scenes("shapes", 10, seed=4, cache_dir=tmp_path)
    b = make_scenes("shapes", 10, seed=4, cache_dir=tmp_path)
    ref = shapes(10, 4)
    for x in (a, b):
        np.testing.assert_array_equal(x.images, ref.images)
        np.testing.assert_array_equal(x.classes, ref.classes)
    c = make_scenes("tetrominoes", 5, seed=0, cache_dir=tmp_path / "none", cache=False)
    np.testing.assert_array_equal(c.masks, tetrominoes(5, 0).masks)
    assert not (tmp_path / "none").exists()


def test_make_scenes_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="name"):
        make_scenes("clevr", 3, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="params"):
        make_scenes("shapes", 3, cache_dir=tmp_path, colour="red")
    with pytest.raises(ValueError, match="num"):
        make_scenes("shapes", -3, cache_dir=tmp_path)


def test_scene_dataset_yields_image_and_mask():
    d = _gen("tetrominoes")
    ds = SceneDataset(d.subset(slice(0, 8)))
    assert len(ds) == 8
    img, mask = ds[3]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    assert mask.shape == (32, 32) and mask.dtype == torch.int64
    np.testing.assert_array_equal(mask.numpy(), d.masks[3])
    imgs, masks = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert imgs.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32)
    flipped = SceneDataset(d, transform=lambda x: x.flip(-1))
    assert torch.equal(flipped[0][0], ds[0][0].flip(-1))
    with pytest.raises(TypeError, match="scenes"):
        SceneDataset(d.images)


def test_scene_data_validates_its_arrays():
    img = np.zeros((2, 3, 4, 4), np.float32)
    msk = np.zeros((2, 4, 4), np.int8)
    with pytest.raises(ValueError, match="images"):
        SceneData(img[:, :1], msk, np.zeros(2), "x")
    with pytest.raises(TypeError, match="images"):
        SceneData(img.astype(np.float64), msk, np.zeros(2), "x")
    with pytest.raises(ValueError, match="masks"):
        SceneData(img, msk[:, :3], np.zeros(2), "x")
    with pytest.raises(TypeError, match="masks"):
        SceneData(img, msk.astype(np.uint8), np.zeros(2), "x")
    with pytest.raises(ValueError, match="num_objects"):
        SceneData(img, msk, np.zeros(3), "x")
    assert len(SceneData(img, msk, np.zeros(2), "x").subset([1])) == 1


# ---------------------------------------------------------------------------------------------
# loaders of the published formats (on small files written here)
# ---------------------------------------------------------------------------------------------
def _one_hot_entities(labels: np.ndarray, k: int) -> np.ndarray:
    """DeepMind-style entity masks [N, K, H, W, 1] uint8 (0/255) from labels [N, H, W]."""
    return ((labels[:, None] == np.arange(k)[None, :, None, None]) * 255).astype(np.uint8)[..., None]


def test_load_tetrominoes_official_converter_npz(tmp_path):
    src = tetrominoes(6, 0)
    rgb_u8 = np.round(src.images * 255).astype(np.uint8)
    # the official converter stores images [N, 3, H, W] as float64 (= uint8 / 255) and labels uint8
    np.savez_compressed(tmp_path / "tetrominoes_test.npz", images=rgb_u8 / 255,
                        labels=src.masks.astype(np.uint8))
    d = load_tetrominoes(tmp_path, "test")
    assert d.name == "tetrominoes/test" and d.masks.dtype == np.int16
    np.testing.assert_allclose(d.images, src.images, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(d.masks, src.masks)
    np.testing.assert_array_equal(d.num_objects, [3] * 6)


def test_load_tetrominoes_raw_deepmind_arrays_are_cropped(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(3, 35, 35))
    image = rng.integers(0, 256, size=(3, 35, 35, 3), dtype=np.uint8)
    np.savez(tmp_path / "tetrominoes_val.npz", image=image, mask=_one_hot_entities(labels, 4))
    d = load_tetrominoes(tmp_path / "tetrominoes_val.npz")
    np.testing.assert_array_equal(d.masks, labels[:, 1:33, 1:33])
    np.testing.assert_array_equal(d.images, image[:, 1:33, 1:33].transpose(0, 3, 1, 2).astype(np.float32) / 255)


def test_load_multi_dsprites_from_a_directory_of_npy(tmp_path):
    src = dsprites(4, 2)
    split = tmp_path / "colored_on_grayscale_test"
    split.mkdir()
    np.save(split / "images.npy", np.round(src.images * 255).astype(np.uint8).transpose(0, 2, 3, 1))
    np.save(split / "masks.npy", src.masks.astype(np.int32))
    d = load_multi_dsprites(tmp_path)
    np.testing.assert_array_equal(d.images, src.images)
    np.testing.assert_array_equal(d.masks, src.masks)
    np.testing.assert_array_equal(d.num_objects, src.num_objects)


def test_load_clevr_raw_arrays_crop_resize_and_filter(tmp_path):
    labels = np.zeros((3, 240, 320), np.int64)
    labels[:, 29 + 48:29 + 96, 64 + 48:64 + 96] = 2          # a block at crop rows/cols [48, 96)
    labels[1, 29:29 + 10, 64:64 + 10] = 7                    # scene 1 has an entity id 7 -> not CLEVR6
    image = np.full((3, 240, 320, 3), 40, np.uint8)
    np.savez(tmp_path / "clevr_with_masks_test.npz", image=image, mask=_one_hot_entities(labels, 8))
    d = load_clevr(tmp_path)
    assert len(d) == 2 and d.image_size == (128, 128)
    expected = np.zeros((128, 128), np.int16)
    expected[32:64, 32:64] = 2                               # nearest 192 -> 128: [48, 96) -> [32, 64)
    np.testing.assert_array_equal(d.masks, np.stack([expected, expected]))
    assert np.allclose(d.images, 40 / 255)
    assert len(load_clevr(tmp_path, max_objects=None)) == 3


def _write_png(path, array, palette=False):
    from PIL import Image

    img = Image.fromarray(array)
    if palette:
        img = img.convert("P")
        img.putpalette(list(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8)))
    img.save(path)


def test_load_clevrtex_crops_resizes_and_splits(tmp_path):
    sub = tmp_path / "0"
    sub.mkdir()
    for i in range(10):
        image = np.zeros((240, 320, 3), np.uint8)
        image[...] = (10 * i, 20, 30)
        mask = np.zeros((240, 320), np.uint8)
        mask[24 + 48:24 + 96, 64 + 48:64 + 96] = 3           # crop is rows 24..215, cols 64..255
        _write_png(sub / f"CLEVRTEX_full_{i:06d}.png", image)
        _write_png(sub / f"CLEVRTEX_full_{i:06d}_flat.png", mask, palette=True)
    test = load_clevrtex(tmp_path, "test")
    assert len(test) == 1 and test.name == "clevrtex_full/test"
    assert len(load_clevrtex(tmp_path, "val")) == 1 and len(load_clevrtex(tmp_path, "train")) == 8
    everything = load_clevrtex(tmp_path, None)
    assert len(everything) == 10 and len(load_clevrtex(tmp_path, None, limit=4)) == 4
    expected = np.zeros((128, 128), np.int16)
    expected[32:64, 32:64] = 3
    np.testing.assert_array_equal(everything.masks[7], expected)
    np.testing.assert_array_equal(everything.num_objects, np.ones(10))
    np.testing.assert_allclose(everything.images[7, :, 5, 5], np.array([70, 20, 30]) / 255, atol=1e-6)
    assert load_clevrtex(tmp_path, None, imsize=64).image_size == (64, 64)


def test_loaders_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_arrays(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="tetrominoes_test"):
        load_tetrominoes(tmp_path)
    np.savez(tmp_path / "nomask.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="mask"):
        load_arrays(tmp_path / "nomask.npz")
    np.savez(tmp_path / "count.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="2 images but 3 masks"):
        load_arrays(tmp_path / "count.npz")
    np.savez(tmp_path / "size.npz", images=np.zeros((2, 5, 5, 3), np.uint8), labels=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        load_arrays(tmp_path / "size.npz")
    np.savez(tmp_path / "range.npz", images=np.full((2, 4, 4, 3), 7.0), labels=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_arrays(tmp_path / "range.npz")
    np.savez(tmp_path / "tetrominoes_test.npz", images=np.zeros((1, 30, 30, 3), np.uint8),
             labels=np.zeros((1, 30, 30), np.uint8))
    with pytest.raises(ValueError, match="32x32"):
        load_tetrominoes(tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        load_arrays(tmp_path / "junk.npz")
    ct = tmp_path / "ct"
    ct.mkdir()
    with pytest.raises(ValueError, match="no CLEVRTEX"):
        load_clevrtex(ct)
    _write_png(ct / "CLEVRTEX_camo_000000.png", np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ValueError, match="_flat"):
        load_clevrtex(ct, None)
    _write_png(ct / "CLEVRTEX_camo_000000_flat.png", np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        load_clevrtex(ct, None)
    with pytest.raises(ValueError, match="split"):
        load_clevrtex(ct, "validation")
