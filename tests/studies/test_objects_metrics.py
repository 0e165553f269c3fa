"""FG-ARI, MBO, summaries, feature clustering and up-tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import adjusted_rand_score

from studies.objects import Summary, cluster_features, fg_ari, mbo, summarize, uptile
from studies.objects import metrics as M

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def label_pairs(draw):
    b = draw(st.integers(1, 3))
    h = draw(st.integers(1, 6))
    w = draw(st.integers(1, 6))
    true = draw(hnp.arrays(np.int64, (b, h, w), elements=st.integers(-1, 4)))
    pred = draw(hnp.arrays(np.int64, (b, h, w), elements=st.integers(0, 5)))
    return true, pred


def _sk_fg_ari(true, pred):
    out = []
    for t, p in zip(true, pred):
        fg = t > 0
        out.append(adjusted_rand_score(t[fg], p[fg]) if fg.any() else np.nan)
    return np.array(out)


def _reference_mbo(true, pred):
    """The official ``mean_best_overlap_single_sample`` written as a plain loop."""
    out = []
    for g, p in zip(true, pred):
        p = p.copy()
        ids = np.unique(g)
        ids = ids[ids > 0]
        if ids.size == 0:
            out.append(np.nan)
            continue
        p[g < 0] = -1
        labels = np.unique(p)
        labels = labels[labels != -1]
        best = [max(((g == i) & (p == q)).sum() / ((g == i) | (p == q)).sum() for q in labels) for i in ids]
        out.append(np.mean(best))
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# FG-ARI
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(label_pairs())
def test_fg_ari_equals_sklearn_on_foreground_pixels(pair):
    true, pred = pair
    np.testing.assert_array_equal(fg_ari(true, pred), _sk_fg_ari(true, pred))   # exact, NaN where no fg


@SETTINGS
@given(label_pairs(), st.randoms(use_true_random=False))
def test_fg_ari_is_invariant_to_relabelling_and_to_background_predictions(pair, rnd):
    true, pred = pair
    base = fg_ari(true, pred)
    perm = np.array(rnd.sample(range(100, 200), 6))                               # injective relabelling
    np.testing.assert_array_equal(fg_ari(true, perm[pred]), base)
    noisy = np.where(true > 0, pred, np.array([rnd.randrange(50) for _ in range(pred.size)]).reshape(pred.shape))
    np.testing.assert_array_equal(fg_ari(true, noisy), base)                      # bg / ignore pixels don't count


def test_fg_ari_perfect_and_hand_built_values():
    true = np.array([[[1, 1, 1],
                      [2, 2, 2],
                      [0, 0, -1]]])
    # perfect up to label names, whatever happens on background / ignore pixels
    assert fg_ari(true, np.array([[[7, 7, 7], [3, 3, 3], [7, 3, 9]]]))[0] == 1.0
    # Hand computation for pred (a a b / b b b) on the six foreground pixels:
    # contingency: true1 = {a: 2, b: 1}, true2 = {b: 3}
    # index = C(2,2) + C(1,2) + C(3,2) = 1 + 0 + 3 = 4
    # rows: C(3,2) + C(3,2) = 6;  cols: a 2 -> C(2,2) = 1, b 4 -> C(4,2) = 6, total 7;  C(6,2) = 15
    # expected = 6 * 7 / 15 = 2.8;  max = (6 + 7) / 2 = 6.5;  ARI = (4 - 2.8) / (6.5 - 2.8) = 12 / 37
    pred = np.array([[[4, 4, 9], [9, 9, 9], [4, 9, 0]]])
    assert fg_ari(true, pred)[0] == pytest.approx(12 / 37, abs=1e-15)


def test_fg_ari_conventions_for_degenerate_images():
    one = np.array([[[1, 1], [1, 0]]])
    assert fg_ari(one, np.array([[[5, 5], [5, 2]]]))[0] == 1.0   # single object kept whole -> 1
    assert fg_ari(one, np.array([[[5, 6], [5, 2]]]))[0] == 0.0   # single object split -> 0 (sklearn)
    assert fg_ari(np.array([[[3, 0], [0, 0]]]), np.zeros((1, 2, 2), int))[0] == 1.0   # one fg pixel
    empty = np.array([[[0, -1], [0, 0]]])
    assert np.isnan(fg_ari(empty, np.zeros((1, 2, 2), int))[0])                       # skipped
    both = np.concatenate([one, empty])
    s = summarize(fg_ari(both, np.zeros((2, 2, 2), int)))
    assert s == Summary(1.0, 0.0, 1)


def test_fg_ari_dense_and_sparse_counting_agree(monkeypatch):
    rng = np.random.default_rng(0)
    true = rng.integers(-1, 6, size=(5, 12, 12))
    pred = rng.integers(-3, 1000, size=(5, 12, 12)) * 1_000_003               # wide label range
    dense_ari, dense_mbo = fg_ari(true, pred), mbo(true, pred)
    monkeypatch.setattr(M, "_DENSE_LIMIT", 4)
    np.testing.assert_array_equal(fg_ari(true, pred), dense_ari)
    np.testing.assert_array_equal(mbo(true, pred), dense_mbo)
    np.testing.assert_array_equal(dense_ari, _sk_fg_ari(true, pred))


def test_fg_ari_accepts_torch_and_matches_sklearn_on_a_large_batch():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 11, size=(16, 64, 64))
    pred = rng.integers(0, 11, size=(16, 64, 64))
    pred[:8] = np.where(rng.random((8, 64, 64)) < 0.8, true[:8], pred[:8])      # partly right
    ours = fg_ari(torch.from_numpy(true), torch.from_numpy(pred))
    np.testing.assert_array_equal(ours, _sk_fg_ari(true, pred))
    assert ours[:8].min() > ours[8:].max()


# ---------------------------------------------------------------------------------------------
# MBO
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(label_pairs())
def test_mbo_equals_the_official_loop(pair):
    true, pred = pair
    np.testing.assert_allclose(mbo(true, pred), _reference_mbo(true, pred), rtol=0, atol=1e-15)


def test_mbo_perfect_hand_built_and_ignore_pixels():
    true = np.array([[[1, 1, 2, 2],
                      [0, 0, -1, -1]]])
    assert mbo(true, np.array([[[3, 3, 1, 1], [0, 0, 5, 6]]]))[0] == 1.0           # perfect (ignore px free)
    pred = np.array([[[0, 0, 0, 1],
                      [0, 0, 1, 1]]])
    # ignore pixels (row 1, cols 2-3) are removed, so pred 0 = {(0,0), (0,1), (0,2), (1,0), (1,1)} (5 px),
    # pred 1 = {(0,3)} (1 px). Object 1 = {(0,0), (0,1)}: IoU with pred 0 = 2/5 -> best 0.4.
    # Object 2 = {(0,2), (0,3)}: IoU with pred 0 = 1/6, with pred 1 = 1/2 -> best 0.5. MBO = 0.45.
    # (Had the ignore pixels stayed in pred 1, its IoU with object 2 would be 1/4 and MBO 0.325.)
    assert mbo(true, pred)[0] == pytest.approx(0.45, abs=1e-15)
    other = pred.copy()
    other[0, 1, 2:] = [7, 0]                                                        # change ignore pixels only
    assert mbo(true, other)[0] == pytest.approx(0.45, abs=1e-15)
    assert np.isnan(mbo(np.array([[[0, -1]]]), np.array([[[1, 1]]]))[0])          # no object -> skipped


def test_metrics_validate_their_inputs():
    a = np.zeros((2, 4, 4), int)
    for fn in (fg_ari, mbo):
        with pytest.raises(ValueError, match="pred_masks"):
            fn(a, np.zeros((2, 4, 5), int))
        with pytest.raises(ValueError, match="true_masks"):
            fn(a[0], a[0])
        with pytest.raises(TypeError, match="pred_masks"):
            fn(a, a.astype(float))


def test_summarize_ignores_nan():
    s = summarize(np.array([0.5, np.nan, 1.0, 0.0]))
    assert s.count == 3 and s.mean == pytest.approx(0.5) and s.std == pytest.approx(np.std([0.5, 1.0, 0.0]))
    empty = summarize([np.nan, np.nan])
    assert empty.count == 0 and np.isnan(empty.mean) and np.isnan(empty.std)
    assert summarize(torch.tensor([1.0, 3.0])) == Summary(2.0, 1.0, 2)


# ---------------------------------------------------------------------------------------------
# clustering feature maps
# ---------------------------------------------------------------------------------------------
def _two_blobs(c=8, h=6, w=6, seed=0):
    rng = np.random.default_rng(seed)
    feats = np.zeros((2, c, h, w))
    truth = np.zeros((2, h, w), int)
    truth[0, :, w // 2:] = 1                                  # left / right halves
    truth[1, h // 2:, :] = 1                                  # top / bottom halves
    for i in range(2):
        feats[i, 0] = np.where(truth[i] == 0, 3.0, 0.1)
        feats[i, 1] = np.where(truth[i] == 1, 2.0, 0.1)
    return feats + 0.01 * rng.standard_normal(feats.shape), truth


def _same_partition(a, b):
    return fg_ari(b[None] + 1, a[None])[0] == 1.0


def test_cluster_features_separates_two_clear_clusters():
    feats, truth = _two_blobs()
    labels = cluster_features(feats, 2)
    assert labels.shape == (2, 6, 6) and labels.dtype == np.int64
    for i in range(2):
        assert _same_partition(labels[i], truth[i])
    # torch input, PCA active (C = 200 > pca_dim = 16), nearest upsampling to 12 x 18
    big = np.concatenate([feats, 0.001 * np.random.default_rng(1).standard_normal((2, 192, 6, 6))], axis=1)
    up = cluster_features(torch.from_numpy(big).float(), 2, pca_dim=16, image_size=(12, 18))
    assert up.shape == (2, 12, 18)
    for i in range(2):
        assert _same_partition(up[i], np.repeat(np.repeat(truth[i], 2, 0), 3, 1))
        np.testing.assert_array_equal(up[i], np.repeat(np.repeat(up[i, ::2, ::3], 2, 0), 3, 1))


def test_cluster_features_gives_one_label_per_pixel_and_at_most_k():
    feats = np.random.default_rng(2).standard_normal((3, 16, 5, 7))
    for k in (1, 3, 35):
        labels = cluster_features(feats, k, image_size=10)
        assert labels.shape == (3, 10, 10)
        assert labels.min() >= 0 and labels.max() < k
        assert all(np.unique(x).size <= k for x in labels)
    # constant features with h * w == C (scipy would mistake them for a distance matrix and warn)
    assert cluster_features(torch.zeros(1, 4, 2, 2), 2).shape == (1, 2, 2)


def test_cluster_features_matches_the_official_fcluster_partition():
    from scipy.cluster.hierarchy import fcluster, linkage

    feats = np.random.default_rng(3).standard_normal((2, 6, 8, 8))
    labels = cluster_features(feats, 5)
    for i in range(2):
        x = feats[i].reshape(6, -1).T
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        ref = fcluster(linkage(x, "average"), t=5, criterion="maxclust").reshape(8, 8)
        assert _same_partition(labels[i], ref - 1)


def test_cluster_features_validates_inputs():
    feats = np.zeros((1, 4, 3, 3))
    with pytest.raises(ValueError, match="k"):
        cluster_features(feats, 0)
    with pytest.raises(ValueError, match="k"):
        cluster_features(feats, 10)
    with pytest.raises(ValueError, match="features"):
        cluster_features(feats[0], 2)
    with pytest.raises(ValueError, match="image_size"):
        cluster_features(feats, 2, image_size=(0, 3))
    with pytest.raises(ValueError, match="pca_dim"):
        cluster_features(feats, 2, pca_dim=0)
    with pytest.raises(ValueError, match="features"):
        cluster_features(np.full((1, 4, 3, 3), np.nan), 2)


# ---------------------------------------------------------------------------------------------
# up-tiling
# ---------------------------------------------------------------------------------------------
def _patchify(x: torch.Tensor) -> torch.Tensor:
    """A translation-equivariant patch model: per-patch means and squared means, patch 8."""
    return torch.cat([F.avg_pool2d(x, 8), F.avg_pool2d(x * x, 8)], dim=1)


def test_uptile_r1_is_the_plain_feature_map():
    x = torch.rand(2, 3, 32, 24)
    assert torch.equal(uptile(_patchify, x, 1, 8), _patchify(x))


@pytest.mark.parametrize("r", [2, 4])
def test_uptile_interleaves_shifted_passes(r):
    x = torch.rand(2, 3, 32, 24, dtype=torch.float64)
    calls = []

    def model(z):
        calls.append(z.shape[0])
        return _patchify(z)

    out = uptile(model, x, r, 8)
    assert out.shape == (2, 6, 4 * r, 3 * r)                                      # r times larger per side
    assert calls == [2 * r * r]                                                   # one batched call
    # for a patch model, the interleaved map is the same model applied with stride p / r
    step = 8 // r
    big = F.interpolate(x, size=(32 + 8 - step, 24 + 8 - step), mode="bicubic", align_corners=False)
    ref = torch.cat([F.avg_pool2d(big, 8, stride=step), F.avg_pool2d(big * big, 8, stride=step)], dim=1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    chunked = uptile(model, x, r, 8, max_batch=3)
    torch.testing.assert_close(chunked, out, rtol=0, atol=0)


def test_uptile_validates_inputs():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="r"):
        uptile(_patchify, x, 0, 8)
    with pytest.raises(ValueError, match="patch"):
        uptile(_patchify, x, 3, 8)
    with pytest.raises(TypeError, match="r"):
        uptile(_patchify, x, 2.0, 8)
    with pytest.raises(ValueError, match="images"):
        uptile(_patchify, x[0], 2, 8)
    with pytest.raises(TypeError, match="images"):
        uptile(_patchify, x.numpy(), 2, 8)
    with pytest.raises(TypeError, match="model_fn"):
        uptile(None, x, 2, 8)
    with pytest.raises(ValueError, match="model_fn"):
        uptile(lambda z: z.mean(dim=1), x, 2, 8)


def test_fg_ari_empty_rule_one_is_the_official_evaluation():
    rng = np.random.default_rng(3)
    true = rng.integers(0, 4, (10, 6, 6))
    true[4] = 0  # one image of ten without foreground
    true[4, 0, 0] = -1
    pred = rng.integers(0, 3, (10, 6, 6))
    # the official eval_obj.py: sklearn's adjusted_rand_score on the foreground pixels of every image
    official = np.array([adjusted_rand_score(t[t > 0], p[t > 0]) for t, p in zip(true, pred)])
    assert official[4] == 1.0
    one = fg_ari(true, pred, empty="one")
    np.testing.assert_allclose(one, official, rtol=0, atol=1e-15)
    skip = fg_ari(true, pred)
    assert np.isnan(skip[4]) and np.array_equal(np.delete(skip, 4), np.delete(one, 4))
    assert summarize(one).mean == pytest.approx(official.mean()) and summarize(one).count == 10
    assert summarize(skip).count == 9
    with pytest.raises(ValueError, match="empty: expected one of 'skip', 'one'"):
        fg_ari(true, pred, empty="zero")
