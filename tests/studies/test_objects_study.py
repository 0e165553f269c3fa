"""The object-discovery study: SimCLR augmentations, InfoNCE, training, clustering, evaluation file, CLI."""

from __future__ import annotations

import argparse
import math
import os
import socket

import numpy as np
import pytest
import torch
import xarray as xr

from networks.models import ObjectAKOrN, ObjectViT
from studies import storage
from studies.config import ConfigError
from studies.objects import make_scenes
from studies.commands import add_task_arguments, run_task, standalone
from studies.objects import config as S
from studies.objects.augment import (
    SimCLRAugment,
    adjust_hue,
    grayscale,
    hsv_to_rgb,
    random_resized_crop_boxes,
    resample_boxes,
    rgb_to_hsv,
)
from studies.objects.evaluate import evaluate, pca_colours, predict_masks
from studies.objects.metrics import fg_ari
from studies.objects.plots import mask_colours, summarize
from studies.objects.train import SimCLRObjective, _gather, build_model, info_nce
from studies.training import seed_everything

from .result_checks import assert_result_file

#: A config small enough to train and evaluate in seconds.
TINY = dict(num_train=64, width=16, heads=4, steps=2, epochs=2, batch_size=32, monitor_every=1, monitor_images=8,
            num_test=12, num_examples=3, ema_after=0, ema_every=1, eval_batch=8)


@pytest.fixture(autouse=True)
def _scene_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKORN_CACHE", str(tmp_path / "cache"))


def _images(b: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- augmentations ------------------------------------------------------------------------------

def test_views_keep_shape_and_range_and_are_deterministic_per_seed():
    x = _images(8, 20)
    aug = SimCLRAugment()
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    v1, v2 = aug.views(x, torch.Generator().manual_seed(3))
    assert v1.shape == v2.shape == x.shape and not torch.equal(v1, v2)   # two independent views
    resized = SimCLRAugment(size=(12, 10))(x, torch.Generator().manual_seed(0))
    assert resized.shape == (8, 3, 12, 10)


def test_identity_settings_return_the_images_unchanged():
    x = _images()
    aug = SimCLRAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), p_jitter=0.0, p_gray=0.0)
    torch.testing.assert_close(aug(x, torch.Generator().manual_seed(0)), x, rtol=0, atol=1e-6)
    flipped = SimCLRAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), p_jitter=0.0, p_gray=0.0, hflip=True)
    out = flipped(x, torch.Generator().manual_seed(0))
    mirrored = (out - x.flip(-1)).flatten(1).abs().amax(1) < 1e-6
    kept = (out - x).flatten(1).abs().amax(1) < 1e-6
    assert torch.all(mirrored | kept) and mirrored.any() and kept.any()


def test_crop_boxes_lie_inside_and_follow_the_scale_range():
    boxes = random_resized_crop_boxes(4000, 32, 24, scale=(0.2, 0.6), generator=torch.Generator().manual_seed(0))
    top, left, h, w = boxes.unbind(1)
    assert torch.all((top >= 0) & (left >= 0) & (top + h <= 32) & (left + w <= 24) & (h >= 1) & (w >= 1))
    frac = (h * w).double() / (32 * 24)
    assert frac.min() > 0.15 and frac.max() < 0.68          # rounding of sides widens the range a little
    ratio = w.double() / h
    assert ratio.min() > 0.6 and ratio.max() < 1.6


def test_resample_of_a_box_at_its_own_size_is_the_slice():
    x = _images(3, 12)
    boxes = torch.tensor([[1, 2, 5, 7], [0, 0, 12, 12], [6, 3, 6, 4]])
    for i, (t, l, h, w) in enumerate(boxes.tolist()):
        out = resample_boxes(x[i:i + 1], boxes[i:i + 1], (h, w))
        torch.testing.assert_close(out, x[i:i + 1, :, t:t + h, l:l + w], rtol=0, atol=1e-6)


def test_colour_operations_match_their_definitions():
    x = _images(4, 8)
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, rtol=0, atol=1e-5)
    torch.testing.assert_close(adjust_hue(x, torch.zeros(4)), x, rtol=0, atol=1e-5)
    # a hue shift of a third of a turn maps pure red to pure green
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    torch.testing.assert_close(adjust_hue(red, torch.tensor([1 / 3])), red.roll(1, dims=1), rtol=0, atol=1e-5)
    gray = SimCLRAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), p_jitter=0.0, p_gray=1.0)(x, torch.Generator())
    torch.testing.assert_close(gray, grayscale(x).expand(-1, 3, -1, -1), rtol=0, atol=1e-6)
    jitter = SimCLRAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), p_jitter=1.0, p_gray=0.0)(x, torch.Generator())
    assert not torch.allclose(jitter, x)


@pytest.mark.parametrize("kwargs, field", [
    ({"scale": (0.5, 0.2)}, "scale"), ({"hue": 0.7}, "hue"), ({"p_gray": 1.5}, "p_gray"), ({"size": (0, 4)}, "size"),
    ({"brightness": -0.1}, "brightness"),
])
def test_augment_rejects_bad_settings_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        SimCLRAugment(**kwargs)


def test_augment_rejects_bad_images():
    with pytest.raises(ValueError, match="images"):
        SimCLRAugment()(torch.rand(2, 1, 8, 8))
    with pytest.raises(TypeError, match="generator"):
        SimCLRAugment()(torch.rand(2, 3, 8, 8), generator=3)


# -- InfoNCE ------------------------------------------------------------------------------------

def test_info_nce_equals_a_hand_computed_value():
    tau = 0.5
    z1 = torch.tensor([[3.0, 0.0], [0.0, 2.0]])          # rows a, b (normalised inside)
    z2 = torch.tensor([[0.6, 0.8], [0.0, 1.0]])          # rows c, d
    e = math.exp
    # cosines: a·b 0, a·c .6, a·d 0, b·c .8, b·d 1, c·d .8
    rows = [
        -0.6 / tau + math.log(e(0) + e(0.6 / tau) + e(0)),          # a: candidates b, c (positive), d
        -1.0 / tau + math.log(e(0) + e(0.8 / tau) + e(1.0 / tau)),  # b: a, c, d (positive)
        -0.6 / tau + math.log(e(0.6 / tau) + e(0.8 / tau) + e(0.8 / tau)),  # c: a (positive), b, d
        -1.0 / tau + math.log(e(0) + e(1.0 / tau) + e(0.8 / tau)),  # d: a, b (positive), c
    ]
    assert float(info_nce(z1, z2, tau)) == pytest.approx(sum(rows) / 4, rel=1e-6)


def test_info_nce_is_minimal_for_identical_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    same = info_nce(z, z)
    for _ in range(20):
        assert info_nce(z, z + 0.3 * torch.randn(8, 16, generator=g)) > same
    assert info_nce(z, z[torch.randperm(8, generator=g)]) > same
    # identical views on a regular simplex: the global minimum, a stationary point with a closed form
    b, tau = 4, 0.1
    simplex = torch.eye(b, dtype=torch.float64) - 1.0 / b
    z1 = simplex.clone().requires_grad_(True)
    z2 = simplex.clone().requires_grad_(True)
    loss = info_nce(z1, z2, tau)
    closed = -1 / tau + math.log(math.exp(1 / tau) + 2 * (b - 1) * math.exp(-1 / ((b - 1) * tau)))
    assert float(loss.detach()) == pytest.approx(closed, rel=1e-12)
    loss.backward()
    assert z1.grad.abs().max() < 1e-10 and z2.grad.abs().max() < 1e-10
    for _ in range(200):
        r1, r2 = torch.randn(2, b, 3, generator=g, dtype=torch.float64)
        assert info_nce(r1, r2, tau) >= loss - 1e-12


def test_info_nce_rejects_bad_input():
    with pytest.raises(ValueError, match="z1, z2"):
        info_nce(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gather_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        z1, z2 = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        a = z1[4 * rank:4 * rank + 4].clone().requires_grad_(True)
        b = z2[4 * rank:4 * rank + 4].clone().requires_grad_(True)
        loss = info_nce(_gather(a), _gather(b))
        loss.backward()
        torch.save({"loss": loss.detach(), "ga": a.grad, "gb": b.grad}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters: about a minute on a loaded 2-core machine
def test_gathered_info_nce_matches_the_single_process_objective(tmp_path):
    torch.multiprocessing.spawn(_gather_worker, args=(_free_port(), str(tmp_path / "r")), nprocs=2, join=True)
    z1, z2 = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    loss = info_nce(z1, z2)
    loss.backward()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"r.{rank}", weights_only=True)
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-12, atol=0)
        # every rank holds the global loss, so its local gradient is world_size times the slice of
        # the single-process one; DDP's averaging over the two ranks then gives exactly that gradient
        rows = slice(4 * rank, 4 * rank + 4)
        torch.testing.assert_close(got["ga"], 2 * z1.grad[rows], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got["gb"], 2 * z2.grad[rows], rtol=1e-10, atol=1e-12)


# -- training -------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: ObjectAKOrN.tiny(), lambda: ObjectViT.tiny()], ids=["akorn", "itrsa"])
def test_tiny_model_simclr_loss_falls(make):
    torch.manual_seed(0)
    model = make()
    images = torch.from_numpy(make_scenes("tetrominoes", 16, seed=0).images)
    objective = SimCLRObjective(SimCLRAugment(), temperature=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def step(train: bool) -> float:
        # the same views and initial oscillators every time: a fixed objective that Adam must lower
        with torch.random.fork_rng():
            torch.manual_seed(123)
            loss, metrics = objective(model, (images,))
        assert 0.0 <= float(metrics["acc"]) <= 1.0
        if train:
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(loss.detach())

    losses = [step(train=True) for _ in range(10)]
    assert losses[0] == pytest.approx(math.log(31), abs=0.3)     # near chance: 2B - 1 = 31 candidates
    assert step(train=False) < 0.6 * losses[0]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_objective_draws_its_views_from_the_global_generator():
    model = ObjectViT.tiny()
    images = torch.rand(4, 3, 32, 32)
    objective = SimCLRObjective(SimCLRAugment())
    losses = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        losses.append(float(objective(model, [images])[0].detach()))
    assert losses[0] == losses[1] != losses[2]


def test_build_model_follows_the_config():
    akorn = build_model(S.Config(**TINY))
    assert isinstance(akorn, ObjectAKOrN) and akorn.width == 16 and akorn.patch_size == 4 and akorn.steps == 2
    itrsa = build_model(S.Config(**{**TINY, "model": "itrsa"}))
    vit = build_model(S.Config(**{**TINY, "model": "vit"}))
    assert isinstance(itrsa, ObjectViT) and itrsa.steps == 2 and vit.steps == 1
    paper = S.Config.preset("paper").resolved()
    assert (paper.width, paper.patch_size, paper.epochs, paper.batch_size, paper.num_train, paper.clusters,
            paper.stimulus_norm) == (128, 4, 50, 256, 60_000, 4, "none")
    clevrtex = S.Config.preset("paper", dataset="clevrtex", data_root="/data").resolved()
    assert (clevrtex.width, clevrtex.patch_size, clevrtex.clusters, clevrtex.stimulus_norm) == (256, 8, 11, "gn")


# -- clustering and evaluation --------------------------------------------------------------------

def test_evaluate_gives_one_label_per_pixel_and_scores_in_range():
    torch.manual_seed(0)
    model = ObjectAKOrN.tiny(patch_size=4)
    scenes = make_scenes("tetrominoes", 10, seed=1)
    ds = evaluate(model, scenes, clusters=4, batch_size=4, num_examples=3, seed=0)
    assert ds["example_pred_mask"].shape == (3, 32, 32)
    pred = ds["example_pred_mask"].values
    assert pred.min() >= 0 and pred.max() <= 3
    assert all(len(np.unique(p)) <= 4 for p in pred)
    ari, overlap = ds["fg_ari"].values, ds["mbo"].values
    assert ari.shape == overlap.shape == (10,)
    assert np.all((ari >= -1) & (ari <= 1)) and np.all((overlap >= 0) & (overlap <= 1))
    assert float(ds["fg_ari_mean"]) == pytest.approx(np.mean(ari))
    assert ds.sizes["step"] == model.steps + 1
    assert ds["fg_ari_by_step"].shape == (model.steps + 1, 10)
    assert ds["state_rgb"].shape == (3, model.steps + 1, 8, 8, 3)
    again = evaluate(model, scenes, clusters=4, batch_size=5, num_examples=3, seed=0)
    np.testing.assert_array_equal(again["fg_ari"].values, ari)   # seeded: batching does not matter
    vit = evaluate(ObjectViT.tiny(patch_size=4), scenes, clusters=4, uptile_r=2, num_examples=2)
    assert "state_rgb" not in vit and vit["example_feature_rgb"].shape == (2, 16, 16, 3)
    tiled = evaluate(model, scenes.subset(slice(0, 2)), clusters=4, uptile_r=2, num_examples=2)
    assert tiled["example_feature_rgb"].shape == (2, 16, 16, 3) and tiled["state_rgb"].shape[2:4] == (8, 8)


def test_pca_colours_give_equal_vectors_equal_colours():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 6, generator=g)
    maps = torch.stack([a, b]).repeat_interleave(8, dim=0).T.reshape(1, 6, 4, 4)   # two groups of 8 positions
    rgb = pca_colours(maps)
    assert rgb.shape == (1, 4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    flat = rgb.reshape(16, 3)
    assert np.allclose(flat[:8], flat[0]) and np.allclose(flat[8:], flat[8]) and not np.allclose(flat[0], flat[8])
    steps = pca_colours(torch.stack([torch.randn(1, 6, 4, 4, generator=g), maps]))
    assert steps.shape == (1, 2, 4, 4, 3)
    np.testing.assert_allclose(steps[:, 1], rgb, atol=1e-6)


def test_mask_colours_do_not_depend_on_the_cluster_numbering():
    true = np.array([[0, 0, 1, 1], [0, 2, 2, 1], [-1, 2, 2, 0]])
    pred = np.choose(np.clip(true, 0, None), [5, 0, 3])          # a perfect segmentation, other labels
    t_rgb, p_rgb = mask_colours(true, pred)
    keep = true >= 0
    np.testing.assert_allclose(p_rgb[keep], t_rgb[keep])
    assert np.allclose(t_rgb[true < 0], 1.0)


# -- config, run directory, command line ----------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"width": 30, "heads": 4}, "width"), ({"width": 24, "heads": 5}, "heads"), ({"patch_size": 5}, "patch_size"),
    ({"dataset": "clevrtex"}, "data_root"), ({"ema_decay": 1.0}, "ema_decay"), ({"uptile": 3}, "uptile"),
    ({"clusters": 65}, "clusters"), ({"batch_size": 0}, "batch_size"), ({"model": "resnet"}, "model"),
    ({"crop_scale": 1.5}, "crop_scale"), ({"eval_step_scale": 0.0}, "eval_step_scale"),
    ({"eval_method": "dopri5"}, "eval_method"), ({"model": "itrsa", "eval_method": "heun_normalized"}, "eval_method"),
    ({"model": "vit", "eval_step_scale": 0.5}, "eval_step_scale"),
])
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as exc:
        S.Config(**overrides)
    assert exc.value.field == field


def test_run_directory_refuses_another_training_config(tmp_path):
    cfg = S.Config(**TINY)
    d = S.run_dir(cfg, tmp_path)
    d.mkdir(parents=True)
    (d / S.CONFIG_NAME).write_text(cfg.to_json())
    S.check_run_config(cfg.replace(clusters=3, epochs=5, uptile=2), d, for_eval=True)   # eval fields and epochs
    with pytest.raises(ConfigError) as exc:
        S.check_run_config(cfg.replace(lr=5e-4), d, for_eval=False)
    assert exc.value.field == "lr" and "0.001" in str(exc.value)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="akorn objects")
    add_task_arguments(parser, S.TASK)
    return parser.parse_args(argv)


def test_command_runs_standalone_without_the_registry_entry(capsys):
    with pytest.raises(SystemExit) as exc:
        standalone(S.TASK, ["eval", "--help"])
    assert exc.value.code == 0 and "eval-uptile4.h5" in capsys.readouterr().out


def test_cli_options_and_errors(capsys):
    args = _parse(["train", "--model", "itrsa", "--width", "32", "--preset", "paper", "--compile"])
    assert (args.action, args.model, args.width, args.preset, args.compile) == ("train", "itrsa", 32, "paper", True)
    with pytest.raises(SystemExit):
        _parse(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--model", "--dataset", "--data-root", "--epochs", "--temperature", "--uptile", "--out",
                   "--compile", "under 2 hours"):
        assert option in out
    with pytest.raises(SystemExit) as exc:
        run_task(_parse(["eval", "--width", "30", "--heads", "4"]))
    assert exc.value.code == 2 and "--width" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse([])                                     # a sub-command is required
    with pytest.raises(SystemExit) as exc:
        run_task(_parse(["train", "--workers", "-1"]))
    assert exc.value.code == 2 and "--workers" in capsys.readouterr().err


def test_train_then_eval_end_to_end_through_the_command(tmp_path, capsys):
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()] + ["--out", str(tmp_path), "--no-progress",
                                                                        "--device", "cpu"]
    assert run_task(_parse(["eval", *opts])) == 1                          # nothing trained yet
    assert "no checkpoint" in capsys.readouterr().err
    assert run_task(_parse(["train", *opts])) == 0
    run = S.run_dir(S.Config(**TINY), tmp_path)
    assert {"config.json", "checkpoint.pt", "train.h5", "train.png"} <= {p.name for p in run.iterdir()}
    with xr.open_dataset(run / "train.h5", engine="h5netcdf") as history:
        assert history.sizes["epoch"] == 2 and np.isfinite(history["eval_ema_fg_ari"].values).all()
        assert "epoch_acc" in history
    assert run_task(_parse(["eval", *opts])) == 0
    out = capsys.readouterr().out
    assert "FG-ARI" in out and "MBO" in out and "oscillators x_t" in out and "untrained" in out
    ds = storage.open_dataset(run / S.FILENAME, study="objects")
    assert_result_file(ds, vocabulary=None)
    assert set(ds.sizes) == {"image", "example", "channel", "y", "x", "fy", "fx", "step", "ty", "tx"}
    assert ds.sizes["image"] == 12 and ds.sizes["step"] == 3 and ds.sizes["example"] == 3
    for name in ("fg_ari", "mbo", "num_objects", "fg_ari_mean", "fg_ari_std", "mbo_mean", "mbo_std",
                 "example_image", "example_true_mask", "example_pred_mask", "example_feature_rgb", "fg_ari_by_step",
                 "state_rgb", "untrained_fg_ari", "untrained_mbo", "untrained_fg_ari_mean", "untrained_mbo_std"):
        assert ds[name].attrs["long_name"] and ds[name].attrs["units"] == "1", name
    assert ds["fg_ari"].dims == ("image",) and ds["example_image"].dims == ("example", "channel", "y", "x")
    assert ds["state_rgb"].dims == ("example", "step", "ty", "tx", "channel")
    # the untrained reference is the pipeline on the run's initial weights, rebuilt from its seed
    seed_everything(S.Config().seed)
    initial = build_model(S.Config(**TINY))
    test = make_scenes("tetrominoes", 12, seed=1)
    pred = predict_masks(initial, torch.from_numpy(test.images), clusters=4, batch_size=8,
                         generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(ds["untrained_fg_ari"].values, fg_ari(test.masks, pred))
    assert (ds.attrs["model"], ds.attrs["dataset"], ds.attrs["weights"], ds.attrs["trained_epochs"]) == \
        ("akorn", "tetrominoes", "ema", 2)
    assert int(ds.attrs["look_alike"]) == 1 and S.Config.from_json(ds.attrs["config"]) == S.Config(**TINY)
    assert (run / "eval.png").stat().st_size > 10_000
    assert summarize(ds).startswith("AKOrN on tetrominoes look-alike scenes, 12 test images")
    assert run_task(_parse(["eval", *opts, "--uptile", "2", "--no-plot"])) == 0       # beside, not over, eval.h5
    tiled = storage.open_dataset(run / "eval-uptile2.h5", study="objects")
    assert tiled.sizes["fy"] == 2 * ds.sizes["fy"] and int(tiled.attrs["uptile"]) == 2
    assert S.eval_path(S.Config(eval_steps=16, clusters=5), run).name == "eval-T16-K5.h5"
    # the trained layers at test time: more steps at half the step; another integrator is undefined
    # for the official identity-Ω quirk (an Euler step of effective size γ/(1+γ)) these runs keep
    assert run_task(_parse(["eval", *opts, "--eval-method", "heun_normalized", "--no-plot"])) == 1
    assert "identity-Ω quirk" in capsys.readouterr().err
    assert not (run / "eval-heun_normalized.h5").exists()
    assert run_task(_parse(["eval", *opts, "--eval-steps", "6", "--eval-method", "euler_normalized",
                            "--eval-step-scale", "0.5", "--no-plot", "--no-eval-untrained"])) == 0
    other = storage.open_dataset(run / "eval-T6-euler_normalized-step0.5.h5", study="objects")
    assert (int(other.attrs["eval_steps"]), other.attrs["eval_method"], float(other.attrs["eval_step_scale"])) == \
        (6, "euler_normalized", 0.5)
    assert other.sizes["step"] == 7 and np.isfinite(other["fg_ari"].values).all()
    assert ds.attrs["eval_method"] == "as trained" and float(ds.attrs["eval_step_scale"]) == 1.0
    # the features differ from the trained integrator's: the option reached the layers
    assert not np.allclose(other["example_feature_rgb"].values, ds["example_feature_rgb"].values)


def test_the_empty_foreground_rule_is_an_option_stated_in_the_results():
    import dataclasses

    torch.manual_seed(0)
    model = ObjectAKOrN.tiny(patch_size=4)
    scenes = make_scenes("tetrominoes", 4, seed=2)
    masks = scenes.masks.copy()
    masks[1] = 0
    counts = scenes.num_objects.copy()
    counts[1] = 0
    scenes = dataclasses.replace(scenes, masks=masks, num_objects=counts)
    skip = evaluate(model, scenes, clusters=4, batch_size=4, num_examples=1, seed=0)
    one = evaluate(model, scenes, clusters=4, batch_size=4, num_examples=1, seed=0, fg_ari_empty="one")
    assert np.isnan(skip["fg_ari"].values[1]) and one["fg_ari"].values[1] == 1.0
    assert float(one["fg_ari_mean"]) == pytest.approx(np.mean(one["fg_ari"].values))
    assert int(skip["images_scored"]) == 3 and int(one["images_scored"]) == 4
    assert skip.attrs["fg_ari_empty"] == "skip" and one.attrs["fg_ari_empty"] == "one"
    assert "official" in one.attrs["fg_ari_empty_rule"] and "official" in one["fg_ari_mean"].attrs["empty_foreground"]
    config = S.Config.preset("quick", fg_ari_empty="one")
    assert S.eval_path(config, "run").name == "eval-empty-one.h5"
    assert S.eval_path(S.Config(), "run").name == "eval.h5"
    assert "fg_ari_empty" in S.EVAL_FIELDS  # an evaluation setting: it never blocks evaluating a trained run
    with pytest.raises(ValueError, match="fg_ari_empty"):
        evaluate(model, scenes, clusters=4, fg_ari_empty="zero")
