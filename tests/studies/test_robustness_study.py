"""``akorn robustness train|eval``: configs, augmentation, resumable training, the evaluation Dataset."""

from __future__ import annotations

import argparse
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from studies.config import ConfigError
from studies.robustness import evaluate as rev
from studies.commands import add_task_arguments, run_task
from studies.robustness.config import TASK
from studies.robustness.config import RobustnessEvalConfig, RobustnessTrainConfig, RunError
from studies.robustness.evaluate import evaluate
from studies.robustness.models import load_run
from studies.robustness.train import augment, train
from studies.storage import open_dataset

from .result_checks import assert_result_file

# -- a tiny, learnable Fashion-MNIST stand-in ---------------------------------------------------


def _idx(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _write_split(root: Path, prefix: str, n: int, rng: np.random.Generator) -> None:
    """Four of the ten classes, told apart by local texture (the models pool globally): faint noise only,
    horizontal stripes, vertical stripes, a checkerboard; each at a random phase."""
    labels = (np.arange(n) % 4).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28))
    r = (np.arange(28)[None, :, None] + rng.integers(0, 4, size=(n, 1, 1))) // 2 % 2
    c = (np.arange(28)[None, None, :] + rng.integers(0, 4, size=(n, 1, 1))) // 2 % 2
    pattern = np.select([labels[:, None, None] == 1, labels[:, None, None] == 2, labels[:, None, None] == 3],
                        [r + 0 * c, c + 0 * r, r ^ c], default=0)
    images = (images + 160 * pattern).astype(np.uint8)
    (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    _write_split(root, "train", 320, rng)
    _write_split(root, "t10k", 60, rng)
    return root


TINY_AKORN = dict(width=8, depth=2, steps=2, kernel_sizes=(3,), heads=2)
TINY_CONVNET = dict(convnet_width=8, convnet_depth=2, convnet_blocks=1)


def _train_config(root: Path, model: str = "akorn", **overrides) -> RobustnessTrainConfig:
    fields = dict(model=model, data_root=str(root), train_images=160, val_images=20, epochs=1, batch_size=32,
                  ema_decay=0.5, ema_after=2, device="cpu", **TINY_AKORN, **TINY_CONVNET)
    fields.update(overrides)
    return RobustnessTrainConfig.preset("quick", **fields)


TINY_EVAL = dict(test_images=24, passes=3, corruptions=("gaussian_noise", "contrast"), corruption_images=8,
                 attack_images=12, random_sign_eps=(0, 16), fgsm_eps=(0, 4), pgd_images=8, pgd_eps=(0, 8),
                 pgd_steps=2, eot=2, autoattack_images=1, autoattack_eps=(0,), autoattack_rand_eps=(0, 8),
                 batch_size=5, device="cpu")


@pytest.fixture(scope="module")
def runs(fashion_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runs")
    paths = {}
    for model, epochs in (("akorn", 2), ("convnet", 2)):
        paths[model] = out / model
        train(_train_config(fashion_root, model, epochs=epochs, lr=3e-3), paths[model], progress=False)
    return paths


@pytest.fixture(scope="module")
def evaluated(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[xr.Dataset, Path]:
    path = tmp_path_factory.mktemp("eval") / "robustness.h5"
    config = RobustnessEvalConfig.preset("quick", **TINY_EVAL)
    return evaluate([runs["akorn"], runs["convnet"]], config, path=path, progress=False), path


# -- configs and the command line ----------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("width", 5), ("n", 3), ("kernel_sizes", (5, 5)), ("kernel_sizes", (4,)), ("epochs", 0), ("lr", -1e-3),
    ("ema_decay", 1.0), ("depth", 7), ("model", "resnet"), ("augment", "mixup"), ("train_images", 0),
])
def test_train_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as exc:
        RobustnessTrainConfig.preset("quick", **{field: value})
    assert exc.value.field == field


def test_train_config_mix_heads_and_presets() -> None:
    with pytest.raises(ConfigError) as exc:
        RobustnessTrainConfig.preset("quick", model="akorn-mix", heads=3)
    assert exc.value.field == "heads"
    paper = RobustnessTrainConfig.preset("paper")
    assert (paper.width, paper.kernel_sizes, paper.lr, paper.batch_size, paper.epochs) == (64, (9, 7, 5), 1e-4, 128,
                                                                                          400)
    assert RobustnessTrainConfig.from_json(paper.to_json()) == paper
    assert RobustnessTrainConfig().stochastic and not RobustnessTrainConfig(model="convnet").stochastic


@pytest.mark.parametrize("field, value", [
    ("pgd_images", 5000), ("autoattack_images", 2001), ("fgsm_eps", (1, 1)), ("pgd_eps", (300,)),
    ("attacks", ("pgd", "cw")), ("corruptions", ("fog",)), ("passes", 0), ("n_bins", 0), ("eot", 0),
])
def test_eval_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as exc:
        RobustnessEvalConfig.preset("quick", **{field: value})
    assert exc.value.field == field


def test_eval_config_ensemble_sizes_and_images() -> None:
    config = RobustnessEvalConfig.preset("quick", passes=6)
    assert config.ensemble_sizes == (1, 2, 4, 6)
    assert config.images_of("pgd") == config.pgd_images and config.eps_of("fgsm") == config.fgsm_eps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="akorn robustness")
    add_task_arguments(parser, TASK)
    return parser


def test_cli_help_and_errors_name_the_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = _parser()
    for action in ("train", "eval"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([action, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "--preset" in out and "--out" in out and "--seed" in out
    args = parser.parse_args(["train", "--width", "5", "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exc:
        run_task(args)
    assert exc.value.code == 2
    assert "argument --width" in capsys.readouterr().err
    args = parser.parse_args(["eval", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    assert run_task(args) == 1
    assert "config.json" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- augmentation ---------------------------------------------------------------------------------


def test_augment_crop_shifts_within_padding_and_flip_mirrors() -> None:
    b, p = 400, 1
    x = torch.zeros(b, 1, 8, 8)
    x[:, 0, 3, 5] = 1.0  # one bright pixel per image
    gen = torch.Generator().manual_seed(0)
    out = augment(x, padding=p, generator=gen)
    assert out.shape == x.shape and out.dtype == x.dtype
    idx = out.reshape(b, -1).argmax(dim=1)
    rows, cols = idx // 8, idx % 8
    assert torch.all(out.reshape(b, -1).sum(dim=1) == 1)  # the pixel stays inside (it is away from the border)
    offsets = set(zip((rows - 3).tolist(), (cols - 5).tolist()))
    assert offsets == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    again = augment(x, padding=p, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)

    y = torch.rand(64, 3, 6, 6)
    flipped = augment(y, flip=True, generator=torch.Generator().manual_seed(1))
    same = (flipped == y).flatten(1).all(dim=1)
    mirrored = (flipped == y.flip(-1)).flatten(1).all(dim=1)
    assert torch.all(same | mirrored) and same.any() and mirrored.any()
    assert torch.equal(augment(y), y)
    with pytest.raises(ValueError, match="padding"):
        augment(y, padding=-1)


# -- training ------------------------------------------------------------------------------------


def test_train_resume_continues_bit_for_bit(fashion_root: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    straight, resumed = runs["akorn"], tmp_path / "resumed"  # the fixture trained 2 epochs in one go
    train(_train_config(fashion_root, epochs=1, lr=3e-3), resumed, progress=False)
    history = train(_train_config(fashion_root, epochs=2, lr=3e-3), resumed, progress=False)
    assert list(history["epoch"].values) == [1, 2] and np.isfinite(history["eval_ema_acc"].values).all()
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    assert json.loads((resumed / "config.json").read_text())["epochs"] == 2
    with pytest.raises(RunError, match="lr"):
        train(_train_config(fashion_root, epochs=3, lr=1e-3), resumed, progress=False)
    with pytest.raises(RunError, match="epochs"):
        train(_train_config(fashion_root, epochs=1, lr=3e-3), resumed, progress=False)
    model, config, info = load_run(resumed)
    assert config.epochs == 2 and info["epoch"] == 2 and info["weights"] == "ema" and not model.training
    assert info["parameters"] == sum(p.numel() for p in model.parameters())


# -- evaluation ----------------------------------------------------------------------------------


def test_eval_dataset_schema(evaluated: tuple[xr.Dataset, Path]) -> None:
    ds, path = evaluated
    assert list(ds["model"].values) == ["akorn", "convnet"]
    assert list(ds["attack"].values) == ["random_sign", "fgsm", "pgd", "autoattack", "autoattack_rand"]
    np.testing.assert_allclose(ds["eps_255"].values, [0, 4, 8, 16])
    np.testing.assert_allclose(ds["eps"].values, ds["eps_255"].values / 255)
    assert dict(ds.sizes) == {"model": 2, "attack": 5, "eps": 4, "attack_image": 12, "corruption": 2, "severity": 6,
                              "bin": 15, "ensemble": 3, "pass": 3, "image": 24, "class": 10}
    assert list(ds["ensemble"].values) == [1, 2, 3]
    assert list(ds["attack_images"].values) == [12, 12, 8, 1, 1]
    # evaluated exactly where configured, per-image results only for the attacked images
    done = {"random_sign": {0, 16}, "fgsm": {0, 4}, "pgd": {0, 8}, "autoattack": {0}, "autoattack_rand": {0, 8}}
    for attack, eps_set in done.items():
        for e in ds["eps_255"].values:
            acc = ds["attack_accuracy"].sel(attack=attack, eps=e / 255)
            assert bool(np.isfinite(acc).all()) == (e in eps_set), (attack, e)
        n = int(ds["attack_images"].sel(attack=attack))
        correct = ds["attack_correct"].sel(attack=attack, eps=0.0).values
        assert np.isfinite(correct[:, :n]).all() and np.isnan(correct[:, n:]).all()
    # calibration bins are consistent with the headline numbers
    count = ds["calibration_count"].values
    assert (count.sum(axis=1) == 24).all()
    acc_bins = np.nan_to_num(ds["calibration_accuracy"].values)
    conf_bins = np.nan_to_num(ds["calibration_confidence"].values)
    np.testing.assert_allclose((count * acc_bins).sum(axis=1) / 24, ds["accuracy"].values, atol=1e-12)
    np.testing.assert_allclose((count * np.abs(acc_bins - conf_bins)).sum(axis=1) / 24, ds["ece"].values, atol=1e-9)
    np.testing.assert_allclose(ds["bin_upper"].values - ds["bin_lower"].values, 1 / 15)
    np.testing.assert_allclose(ds["clean_probs"].sum("class").values, 1.0, atol=1e-5)
    assert ds.attrs["akorn_study"] == "robustness" and json.loads(ds.attrs["config"])["test_images"] == 24
    assert set(json.loads(ds.attrs["train_configs"])) == {"akorn", "convnet"}
    assert list(ds["stochastic"].values) == [1, 0] and (ds["train_epochs"].values == 2).all()
    on_disk = open_dataset(path, study="robustness")
    assert_result_file(on_disk, vocabulary=None)
    xr.testing.assert_identical(on_disk.drop_attrs(), ds.drop_attrs())
    for name, var in on_disk.variables.items():
        assert "long_name" in var.attrs, name


def test_eval_eps_zero_and_severity_zero_reproduce_clean(evaluated: tuple[xr.Dataset, Path]) -> None:
    ds, _ = evaluated
    for model in ds["model"].values:
        probs = ds["clean_probs"].sel(model=model).values
        clean = (probs[0].argmax(axis=1) == ds["label"].values).astype(float)
        assert float(ds["accuracy"].sel(model=model)) == pytest.approx(clean.mean())
        assert float(ds["ensemble_accuracy"].sel(model=model, ensemble=1)) == pytest.approx(clean.mean())
        for attack in ds["attack"].values:
            n = int(ds["attack_images"].sel(attack=attack))
            at_zero = ds["attack_correct"].sel(model=model, attack=attack, eps=0.0).values[:n]
            np.testing.assert_array_equal(at_zero, clean[:n], err_msg=f"{model} {attack}")
            assert float(ds["attack_accuracy"].sel(model=model, attack=attack, eps=0.0)) == pytest.approx(
                clean[:n].mean())
        np.testing.assert_allclose(ds["corruption_accuracy"].sel(model=model, severity=0).values, clean[:8].mean())
    akorn, convnet = ds["clean_probs"].sel(model="akorn").values, ds["clean_probs"].sel(model="convnet").values
    assert not np.allclose(akorn[0], akorn[1])  # random initial states differ between passes
    assert np.array_equal(convnet[0], convnet[1])  # a deterministic model is run once
    assert np.ptp(ds["ensemble_accuracy"].sel(model="convnet").values) == 0


def test_eval_resumes_from_cached_parts_through_the_cli(evaluated: tuple[xr.Dataset, Path], runs: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ds, path = evaluated

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached part was computed again")

    monkeypatch.setattr(rev, "_predict", forbidden)
    monkeypatch.setattr(rev, "_attack_batch", forbidden)
    argv = ["eval", str(runs["akorn"]), str(runs["convnet"]), "--out", str(path.parent), "--no-progress"]
    for key, value in TINY_EVAL.items():
        values = value if isinstance(value, tuple) else (value,)
        argv += [f"--{key.replace('_', '-')}", *map(str, values)]
    assert run_task(_parser().parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "akorn" in out and "convnet" in out and "AKOrN^mix (paper" in out
    again = open_dataset(path, study="robustness")
    for name in ("accuracy", "ece", "attack_accuracy", "corruption_accuracy", "clean_probs", "ensemble_accuracy"):
        xr.testing.assert_equal(again[name], ds[name])
    for png in ("robustness.png", "robustness-reliability-akorn.png", "robustness-reliability-convnet.png"):
        assert (path.parent / png).read_bytes()[:4] == b"\x89PNG"

    # Changing PGD's settings recomputes PGD only (the clean pass is not run again either).
    monkeypatch.undo()
    attacked: list[str] = []
    real_attack = rev._attack_batch

    def recording(model, attack, *args, **kwargs):
        attacked.append(attack)
        return real_attack(model, attack, *args, **kwargs)

    monkeypatch.setattr(rev, "_attack_batch", recording)
    config = RobustnessEvalConfig.preset("quick", **{**TINY_EVAL, "pgd_steps": 1})
    changed = evaluate([runs["akorn"], runs["convnet"]], config, path=path.parent / "pgd1.h5", progress=False)
    assert set(attacked) == {"pgd"}
    for name in ("accuracy", "clean_probs", "corruption_accuracy"):
        xr.testing.assert_equal(changed[name], ds[name])
    others = [a for a in ds["attack"].values if a != "pgd"]
    xr.testing.assert_equal(changed["attack_accuracy"].sel(attack=others), ds["attack_accuracy"].sel(attack=others))


def test_eval_refuses_ambiguous_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    config = RobustnessEvalConfig.preset("quick", **TINY_EVAL)
    with pytest.raises(RunError, match="--labels"):
        evaluate([runs["akorn"], runs["akorn"]], config, path=tmp_path / "r.h5", progress=False)
    with pytest.raises(ConfigError) as exc:
        evaluate([runs["akorn"]], config.replace(test_images=500), path=tmp_path / "r.h5", progress=False)
    assert exc.value.field == "test_images"
    assert not (tmp_path / "r.h5").exists()


def test_registered_command_help_and_show(evaluated: tuple[xr.Dataset, Path], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from studies import cli

    monkeypatch.setitem(cli.REGISTRY, "robustness", cli.Entry("studies.robustness.config", "robustness study"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["robustness", "--help"])
    assert exc.value.code == 0
    assert "akorn robustness" in capsys.readouterr().out
    _, path = evaluated
    assert cli.main(["show", str(path), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "attack_accuracy" in out and "ResNet-18 (paper" in out
