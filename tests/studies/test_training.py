"""Tests of the shared training loop: optimisation, clipping, EMA, resume, files, DDP."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from studies.training import (
    CHECKPOINT_NAME,
    TrainConfig,
    Trainer,
    cleanup_distributed,
    is_main_process,
    load_model_weights,
    seed_everything,
    train,
    unwrap,
)

ROOT = Path(__file__).resolve().parents[2]


def regression_data(n: int = 32, d: int = 4, dtype: torch.dtype = torch.float32, seed: int = 0) -> TensorDataset:
    """y = X w + 0.5 with w = (1, ..., d): a linear model can fit it exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = x @ torch.arange(1, d + 1, dtype=dtype) + 0.5
    return TensorDataset(x, y)


def linear(d: int = 4, dtype: torch.dtype = torch.float32, seed: int = 1) -> nn.Linear:
    """A Linear(d, 1) whose initial weights do not depend on the global RNG."""
    model = nn.Linear(d, 1).to(dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=dtype) * 0.3)
        model.bias.zero_()
    return model


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x, y = batch
    err = model(x).squeeze(-1) - y
    return (err**2).mean(), {"mae": err.abs().mean()}


def params_vector(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def assert_state_dicts_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("kwargs", "exc", "field"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.0}, TypeError, "epochs"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": math.nan}, ValueError, "lr"),
        ({"weight_decay": -1e-3}, ValueError, "weight_decay"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"ema_decay": 1.0}, ValueError, "ema_decay"),
        ({"ema_every": 0}, ValueError, "ema_every"),
        ({"ema_after": -1}, ValueError, "ema_after"),
        ({"ema_warmup_power": 0.0}, ValueError, "ema_warmup_power"),
        ({"seed": -1}, ValueError, "seed"),
        ({"log_every": 0}, ValueError, "log_every"),
        ({"device": "gpu"}, ValueError, "device"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every"),
        ({"optimizer": "sgd"}, ValueError, "optimizer"),
        ({"drop_last": 1}, TypeError, "drop_last"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, exc, field):
    with pytest.raises(exc, match=rf"^{field}:"):
        TrainConfig(**kwargs)


def test_seed_everything_makes_draws_repeatable():
    draws = []
    for _ in range(2):
        seed_everything(7)
        draws.append((torch.rand(3), np.random.rand(3), random.random()))
    assert torch.equal(draws[0][0], draws[1][0]) and np.array_equal(draws[0][1], draws[1][1])
    assert draws[0][2] == draws[1][2]
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_trainer_rejects_bad_arguments(tmp_path):
    data, cfg = regression_data(), TrainConfig(batch_size=8, device="cpu")
    with pytest.raises(ValueError, match="eval_fn, eval_every"):
        Trainer(linear(), mse, data, cfg, out_dir=tmp_path, eval_fn=lambda m: {})

    class Stream(IterableDataset):
        def __iter__(self):
            yield from ()

    with pytest.raises(TypeError, match="train_data"):
        Trainer(linear(), mse, Stream(), cfg, out_dir=tmp_path)
    with pytest.raises(TypeError, match="config"):
        Trainer(linear(), mse, data, {"epochs": 1}, out_dir=tmp_path)
    with pytest.raises(ValueError, match="metrics_name"):
        Trainer(linear(), mse, data, cfg, out_dir=tmp_path, metrics_name="a/b")
    bad_loss = Trainer(linear(), lambda m, b: (m(b[0]), {}), data, cfg, out_dir=tmp_path / "a", progress=False)
    with pytest.raises(TypeError, match="loss_fn: the loss must be a scalar"):
        bad_loss.fit()
    reserved = Trainer(linear(), lambda m, b: (mse(m, b)[0], {"lr": 1.0}), data, cfg, out_dir=tmp_path / "b",
                       progress=False)
    with pytest.raises(ValueError, match="reserved"):
        reserved.fit()
    assert not any(tmp_path.rglob(CHECKPOINT_NAME))


def test_non_finite_loss_raises(tmp_path):
    cfg = TrainConfig(batch_size=8, device="cpu")
    trainer = Trainer(linear(), lambda m, b: mse(m, b)[0] * math.nan, regression_data(), cfg, out_dir=tmp_path,
                      progress=False)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        trainer.fit()


def test_loss_decreases(tmp_path, device):
    cfg = TrainConfig(epochs=25, batch_size=8, lr=0.2, device=device.type, log_every=1, checkpoint_every=25,
                      ema_decay=0.9)
    trainer = Trainer(linear(), mse, regression_data(), cfg, out_dir=tmp_path, progress=False)
    history = trainer.fit()
    assert next(trainer.model.parameters()).device.type == device.type
    loss = history["epoch_loss"].values
    assert loss[-1] < 0.01 * loss[0]
    assert history.sizes["step"] == 25 * 4 and history["step"].values[-1] == trainer.step == 100
    # the logged MAE is the batch mean of |err|, so it is bounded by sqrt(MSE) (Jensen)
    assert np.all(history["mae"].values <= np.sqrt(history["loss"].values) + 1e-6)


@pytest.mark.parametrize("clip", [0.5, None])
def test_grad_clipping_bounds_the_gradient_norm(tmp_path, clip):
    data = regression_data(n=16, dtype=torch.float64)
    ref = linear(dtype=torch.float64)
    x, y = data.tensors
    ((ref(x).squeeze(-1) - y) ** 2).mean().backward()
    grad = torch.cat([ref.weight.grad.reshape(-1), ref.bias.grad])
    norm = grad.norm().item()
    assert norm > 5.0  # far above the clip level, so clipping is active

    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, grad_clip=clip, device="cpu", log_every=1)
    trainer = Trainer(linear(dtype=torch.float64), mse, data, cfg, out_dir=tmp_path, progress=False)
    history = trainer.fit()
    after = torch.cat([trainer.model.weight.grad.reshape(-1), trainer.model.bias.grad])  # grads of the one step
    assert history["grad_norm"].values[0] == pytest.approx(norm, rel=1e-10)  # logged before clipping
    if clip is None:
        torch.testing.assert_close(after, grad, rtol=1e-10, atol=0)
    else:
        assert after.norm().item() == pytest.approx(clip, rel=1e-5)
        assert after.norm().item() <= clip
        torch.testing.assert_close(after, grad * clip / norm, rtol=1e-5, atol=0)  # direction kept


@pytest.mark.parametrize(("beta", "every", "after", "power"),
                         [(0.8, 3, 4, None), (0.5, 2, 0, None), (0.99, 3, 4, 2 / 3)])
def test_ema_matches_hand_computed_average(tmp_path, beta, every, after, power):
    seen: list[torch.Tensor] = []

    def loss_fn(model, batch):
        seen.append(params_vector(unwrap(model)))  # W_{s-1}: the weights step s starts from
        return mse(model, batch)

    cfg = TrainConfig(epochs=6, batch_size=4, lr=0.1, ema_decay=beta, ema_every=every, ema_after=after,
                      ema_warmup_power=power, device="cpu", checkpoint_every=6)
    trainer = Trainer(linear(2, dtype=torch.float64), loss_fn, regression_data(8, 2, torch.float64), cfg,
                      out_dir=tmp_path, progress=False)
    trainer.fit()
    weights = seen + [params_vector(trainer.model)]  # W_0 ... W_12
    assert len(weights) == 13 and not torch.equal(weights[0], weights[-1])

    ema = weights[0].clone()
    updates = 0
    for s in range(1, 13):
        if s <= after:
            ema = weights[s].clone()
        elif s % every == 0:
            b = beta if power is None else min(beta, 1 - (s - after) ** -power)
            ema = b * ema + (1 - b) * weights[s]
            updates += 1
    assert updates >= 2
    torch.testing.assert_close(params_vector(trainer.ema_model), ema, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(ema, weights[-1])  # the average really lags the weights


def test_ema_averages_float_buffers_and_copies_integer_buffers(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, ema_decay=0.5, device="cpu", checkpoint_every=2)
    trainer = Trainer(model, mse, regression_data(), cfg, out_dir=tmp_path, progress=False)
    trainer.fit()
    bn, ema_bn = trainer.model[1], trainer.ema_model[1]
    assert ema_bn.num_batches_tracked.item() == bn.num_batches_tracked.item() == 8
    assert not torch.allclose(ema_bn.running_mean, bn.running_mean)  # averaged, so it lags


class NoisyData(Dataset):
    """Regression data with fresh input noise from the global torch RNG at every access."""

    def __init__(self, base: TensorDataset) -> None:
        self.x, self.y = base.tensors

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + 0.05 * torch.randn(self.x.shape[1]), self.y[i]


def noisy_loss(model, batch):
    loss, metrics = mse(model, batch)
    # numpy and Python RNGs too, so that all of their states must be restored on resume
    return loss * (1 + 0.01 * float(np.random.randn())) * (1 + 0.01 * random.random()), metrics


def random_eval(model):
    probe = torch.rand(5, 4, device=next(model.parameters()).device)  # consumes RNG: must not perturb training
    return {"probe": model(probe).mean(), "np_draw": float(np.random.rand())}


def resume_run(out_dir, epochs, device, checkpoint_every=2, seed=0, with_eval=True, num_workers=0):
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Tanh(), nn.Linear(8, 1))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=0.02, grad_clip=2.0, ema_decay=0.9, ema_every=2, ema_after=3,
                      log_every=3, seed=seed, device=device, checkpoint_every=checkpoint_every, num_workers=num_workers)
    trainer = Trainer(model, noisy_loss, NoisyData(regression_data()), cfg, out_dir=out_dir,
                      eval_fn=random_eval if with_eval else None, eval_every=2 if with_eval else None, progress=False,
                      scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7))
    history = trainer.fit()
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    return trainer, history, rng


@pytest.mark.parametrize("workers", [0, 1])  # with a worker, the data noise comes from the loader generator
def test_resume_continues_bitwise_like_an_uninterrupted_run(tmp_path, device, workers):
    full, full_history, full_rng = resume_run(tmp_path / "full", 5, device.type, num_workers=workers)
    first, _, _ = resume_run(tmp_path / "split", 2, device.type, num_workers=workers)
    assert first.epoch == 2
    torch.manual_seed(123), np.random.seed(123), random.seed(123)  # as in a new process: the states must come from disk
    split, split_history, split_rng = resume_run(tmp_path / "split", 5, device.type, checkpoint_every=1,
                                                 num_workers=workers)
    assert split.epoch == full.epoch == 5 and split.step == full.step == 20

    assert_state_dicts_equal(split.model.state_dict(), full.model.state_dict())
    assert_state_dicts_equal(split.ema_model.state_dict(), full.ema_model.state_dict())
    s_opt, f_opt = split.optimizer.state_dict(), full.optimizer.state_dict()
    for key in f_opt["state"]:
        assert_state_dicts_equal(s_opt["state"][key], f_opt["state"][key])
    assert split.scheduler.state_dict() == full.scheduler.state_dict()
    # identical data and CF attributes; only the wall-clock variable and the config attribute
    # (checkpoint_every differs between the two runs) are expected to differ
    split_history.attrs.pop("config"), full_history.attrs.pop("config")
    xr.testing.assert_identical(split_history.drop_vars("epoch_seconds"), full_history.drop_vars("epoch_seconds"))
    assert np.isfinite(full_history["eval_ema_probe"].values[[1, 3]]).all()
    assert torch.equal(split_rng[0], full_rng[0]) and np.array_equal(split_rng[1], full_rng[1])
    assert split_rng[2] == full_rng[2]

    if workers == 0:  # the randomness matters: another seed ends elsewhere, so the equality is not vacuous
        other, _, _ = resume_run(tmp_path / "other", 5, device.type, seed=1)
        assert not torch.equal(params_vector(other.model), params_vector(full.model))

    # a finished run resumes to itself; asking for fewer epochs than it has is an error
    again, again_history, _ = resume_run(tmp_path / "full", 5, device.type, num_workers=workers)
    assert again.step == 20
    assert_state_dicts_equal(again.model.state_dict(), full.model.state_dict())
    xr.testing.assert_identical(again_history.drop_attrs(deep=False), full_history.drop_attrs(deep=False))
    with pytest.raises(ValueError, match="past epochs=3"):
        resume_run(tmp_path / "full", 3, device.type, num_workers=workers)


def test_evaluation_does_not_change_the_training_trajectory(tmp_path):
    evaluated, history, _ = resume_run(tmp_path / "a", 4, "cpu")
    plain, plain_history, _ = resume_run(tmp_path / "b", 4, "cpu", with_eval=False)
    assert np.isfinite(history["eval_probe"].values[1]) and "eval_probe" not in plain_history
    assert_state_dicts_equal(evaluated.model.state_dict(), plain.model.state_dict())
    assert_state_dicts_equal(evaluated.ema_model.state_dict(), plain.ema_model.state_dict())


def test_corrupt_checkpoint_raises_and_is_left_in_place(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", ema_decay=0.9)
    train(linear(), mse, regression_data(), cfg, out_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    good = path.read_bytes()
    for damaged in (good[: len(good) // 2], b"not a checkpoint at all"):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match="cannot be read"):
            Trainer(linear(), mse, regression_data(), TrainConfig(**{**cfg.to_dict(), "epochs": 2}),
                    out_dir=tmp_path, progress=False)
        with pytest.raises(ValueError, match="cannot be read"):
            load_model_weights(path, linear())
        assert path.read_bytes() == damaged
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not an akorn training checkpoint"):
        load_model_weights(tmp_path, linear())


def test_checkpoint_from_another_config_or_model_is_refused(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, device="cpu")
    train(linear(), mse, regression_data(), cfg, out_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(ValueError, match=r"config: .*lr: checkpoint 0.01 vs now 0.02"):
        Trainer(linear(), mse, regression_data(), TrainConfig(epochs=2, batch_size=8, lr=0.02, device="cpu"),
                out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"model: .*weight: checkpoint \(1, 4\) .* vs model \(1, 5\)"):
        Trainer(linear(5), mse, regression_data(d=5), TrainConfig(epochs=2, batch_size=8, lr=0.01, device="cpu"),
                out_dir=tmp_path)
    with pytest.raises(FileExistsError, match="resume=False"):
        Trainer(linear(), mse, regression_data(), cfg, out_dir=tmp_path, resume=False)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_metrics_file_is_readable_netcdf_with_documented_variables(tmp_path):
    cfg = TrainConfig(epochs=4, batch_size=8, lr=0.05, ema_decay=0.9, device="cpu", log_every=2, checkpoint_every=1)
    evals = {"calls": 0}

    def eval_fn(model):
        evals["calls"] += 1
        assert not model.training
        x, y = regression_data().tensors
        with torch.no_grad():
            return {"mse": ((model(x).squeeze(-1) - y) ** 2).mean()}

    trainer = Trainer(linear(), mse, regression_data(), cfg, out_dir=tmp_path, eval_fn=eval_fn, eval_every=2,
                      metrics_name="sudoku_train", progress=False, metric_units={"mae": "digits"})
    history = trainer.fit()
    assert evals["calls"] == 4  # epochs 2 and 4, raw and EMA weights
    with xr.open_dataset(tmp_path / "sudoku_train.h5", engine="h5netcdf") as ds:
        ds = ds.load()
    expected = {"loss", "lr", "grad_norm", "mae", "epoch_loss", "epoch_grad_norm", "epoch_mae", "epoch_seconds",
                "eval_mse", "eval_ema_mse"}
    assert set(ds.data_vars) == expected
    assert ds["loss"].dims == ("step",) and ds["eval_mse"].dims == ("epoch",)
    assert ds["step"].values.tolist() == list(range(2, 17, 2)) and ds["epoch"].values.tolist() == [1, 2, 3, 4]
    for name in [*ds.data_vars, "step", "epoch"]:
        assert ds[name].attrs["long_name"] and "units" in ds[name].attrs, name
    assert ds["epoch_seconds"].attrs["units"] == "s" and ds["epoch_mae"].attrs["units"] == "digits"
    assert np.isnan(ds["eval_mse"].values[[0, 2]]).all() and np.isfinite(ds["eval_ema_mse"].values[[1, 3]]).all()
    assert TrainConfig(**json.loads(ds.attrs["config"])) == cfg
    xr.testing.assert_identical(ds, history)
    assert ds["eval_mse"].values[3] < ds["eval_mse"].values[1]  # training improves the evaluated weights


def test_load_model_weights_raw_and_ema(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.05, ema_decay=0.8, device="cpu")
    trainer = Trainer(linear(), mse, regression_data(), cfg, out_dir=tmp_path, progress=False)
    trainer.fit()
    ema_copy = load_model_weights(tmp_path, linear(seed=9), ema=True)
    assert_state_dicts_equal(ema_copy.state_dict(), trainer.ema_model.state_dict())
    raw_copy = load_model_weights(tmp_path / CHECKPOINT_NAME, linear(seed=9), ema=False)
    assert_state_dicts_equal(raw_copy.state_dict(), trainer.model.state_dict())
    assert not torch.equal(ema_copy.weight, raw_copy.weight)
    with pytest.raises(ValueError, match=r"model: does not match"):
        load_model_weights(tmp_path, linear(5))
    with pytest.raises(FileNotFoundError):
        load_model_weights(tmp_path / "missing", linear())

    no_ema = TrainConfig(epochs=1, batch_size=8, device="cpu")
    train(linear(), mse, regression_data(), no_ema, out_dir=tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="ema: .*pass ema=False"):
        load_model_weights(tmp_path / "plain", linear())


def test_progress_bar_is_shown_on_the_main_process_on_a_terminal(tmp_path, capsys, monkeypatch):
    assert is_main_process()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal; a log gets no bar (test_cli_errors)
    train(linear(), mse, regression_data(), TrainConfig(epochs=2, batch_size=8, device="cpu", checkpoint_every=2),
          out_dir=tmp_path)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err


def test_riemannian_adam_keeps_manifold_parameters_on_the_sphere(tmp_path):
    geoopt = pytest.importorskip("geoopt")

    class OnSphere(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(0)
            start = nn.functional.normalize(torch.randn(3, 4, generator=g), dim=-1)
            self.u = geoopt.ManifoldParameter(start, manifold=geoopt.Sphere())
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.scale * (x @ self.u.T).sum(-1, keepdim=True)

    target = torch.tensor([1.0, 0.0, 0.0, 0.0])
    data = TensorDataset(torch.randn(32, 4), torch.zeros(32))

    def loss_fn(model, batch):
        m = unwrap(model)
        return ((m.u - target) ** 2).sum() + 0.0 * model(batch[0]).sum(), {}

    with pytest.raises(ValueError, match="riemannian_adam"):
        Trainer(OnSphere(), loss_fn, data, TrainConfig(batch_size=8, device="cpu"), out_dir=tmp_path / "a")
    cfg = TrainConfig(epochs=10, batch_size=8, lr=0.05, optimizer="riemannian_adam", device="cpu",
                      checkpoint_every=10)
    trainer = Trainer(OnSphere(), loss_fn, data, cfg, out_dir=tmp_path / "b", progress=False)
    history = trainer.fit()
    torch.testing.assert_close(trainer.model.u.detach().norm(dim=-1), torch.ones(3), rtol=0, atol=1e-5)
    assert history["epoch_loss"].values[-1] < 0.5 * history["epoch_loss"].values[0]


def ddp_problem(out_dir: str) -> Trainer:
    """The run compared between one process and two: float64 linear regression, no randomness."""
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.05, grad_clip=3.0, ema_decay=0.7, ema_every=2, ema_after=2,
                      device="cpu", log_every=1, checkpoint_every=3)
    return Trainer(linear(dtype=torch.float64), mse, regression_data(dtype=torch.float64), cfg, out_dir=out_dir,
                   progress=False)


def _ddp_worker(rank: int, out_dir: str, port: int) -> None:
    """One process of a 2-process run, given the environment torchrun would set."""
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    try:
        trainer = ddp_problem(out_dir)
        assert trainer.ctx.world_size == 2 and trainer.ctx.rank == rank and trainer.loader.batch_size == 4
        assert is_main_process() == (rank == 0)
        trainer.fit()
        assert trainer.step == 12
    finally:
        cleanup_distributed()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_matches_single_process(ddp_dir: Path, single_dir: Path) -> None:
    single = ddp_problem(str(single_dir))
    single_history = single.fit()
    for ema in (False, True):
        two = load_model_weights(ddp_dir, linear(dtype=torch.float64), ema=ema)
        one = single.ema_model if ema else single.model
        torch.testing.assert_close(params_vector(two), params_vector(one), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(params_vector(single.model), params_vector(linear(dtype=torch.float64)))
    with xr.open_dataset(ddp_dir / "train.h5", engine="h5netcdf") as ddp_history:
        assert ddp_history.attrs["world_size"] == 2
        # per-step losses are averaged over ranks: equal to the loss over the global batch
        np.testing.assert_allclose(ddp_history["loss"].values, single_history["loss"].values, rtol=1e-10)
    assert sorted(p.name for p in ddp_dir.iterdir()) == [CHECKPOINT_NAME, "train.h5"]  # rank 0 wrote, once


def test_ddp_two_processes_match_one_process(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(str(tmp_path / "ddp"), _free_port()), nprocs=2, join=True)
    check_matches_single_process(tmp_path / "ddp", tmp_path / "single")


DDP_SCRIPT = textwrap.dedent("""
    import sys
    from studies.training import cleanup_distributed, is_main_process
    from tests.studies.test_training import ddp_problem

    trainer = ddp_problem(sys.argv[1])
    trainer.fit()
    print(f"rank {trainer.ctx.rank} main {is_main_process()} steps {trainer.step} batch {trainer.loader.batch_size}")
    cleanup_distributed()
""")


@pytest.mark.slow
def test_ddp_under_torchrun_matches_one_process(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank} main {rank == 0} steps 12 batch 4" in proc.stdout
    check_matches_single_process(tmp_path / "ddp", tmp_path / "single")


# -- checksums: damaged checkpoint bytes are refused, not loaded ------------------------------------

def _zero_inside_largest_tensor(path: Path, count: int = 2048) -> None:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    assert info.file_size >= count + 256
    with open(path, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
        fh.seek(info.header_offset + 30 + name_len + extra_len + 128)
        fh.write(bytes(count))


def test_zeroed_bytes_in_a_checkpoint_are_refused(tmp_path):
    data = regression_data(n=16, d=32)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, device="cpu")

    def wide() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 1))

    def loss(model, batch):
        x, y = batch
        return ((model(x).squeeze(-1) - y) ** 2).mean()

    Trainer(wide(), loss, data, cfg, out_dir=tmp_path, progress=False).fit()
    path = tmp_path / CHECKPOINT_NAME
    load_model_weights(path, wide(), ema=False)  # intact
    _zero_inside_largest_tensor(path)
    before = path.read_bytes()
    for attempt in (lambda: Trainer(wide(), loss, data, cfg.__class__(**{**cfg.to_dict(), "epochs": 2}),
                                    out_dir=tmp_path, progress=False),
                    lambda: load_model_weights(path, wide(), ema=False)):
        with pytest.raises(ValueError) as info:
            attempt()
        message = str(info.value)
        assert str(path) in message and "--overwrite" in message and "\n" not in message
        assert "checksum" in message or "cannot be read" in message
    assert path.read_bytes() == before


def test_checkpoints_of_version_1_without_checksum_still_load(tmp_path):
    from studies.training import state

    Trainer(linear(), mse, regression_data(), TrainConfig(epochs=1, batch_size=8, device="cpu"), out_dir=tmp_path,
            progress=False).fit()
    path = tmp_path / CHECKPOINT_NAME
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["sha256"] == state.content_digest({k: v for k, v in ckpt.items() if k != "sha256"})
    del ckpt["sha256"]
    torch.save({**ckpt, "version": 1}, path)
    load_model_weights(path, linear(), ema=False)
