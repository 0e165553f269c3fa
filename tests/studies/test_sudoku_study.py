"""Tests of the Sudoku study: metrics, energy-based selection, training (overfit, exact resume) and
the ``akorn sudoku train|eval`` command end to end on tiny 4x4 runs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import hypothesis
from hypothesis import strategies as st
from torch import nn

from networks.models.sudoku import SudokuAKOrN
from studies.config import ConfigError
from studies.sudoku import evaluate as evaluate_module
from studies.sudoku import train as train_module
from studies.sudoku.data import make_dataset
from studies.commands import add_task_arguments, run_task
from studies.sudoku.config import TASK, EvalSettings, TrainSettings
from studies.sudoku.evaluate import evaluate, run_dirs
from studies.sudoku.metrics import (board_accuracy, cell_accuracy, confidence_scores, energy_scores, select_by_energy,
                                    selection_auc, solved, vote)
from studies.sudoku.models import accuracy_along, build_model, predict, predict_digits
from studies.sudoku.plots import summarize
from studies.sudoku.train import train_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_arguments(parser, TASK)


def main(args: argparse.Namespace) -> int:
    return run_task(args)
from studies.training import load_model_weights

from .result_checks import assert_result_file

BOX = (2, 2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine a second thread slows these small models down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("sudoku-cache")


@pytest.fixture(scope="module")
def boards(cache):
    return make_dataset("train", BOX, 20, 0, workers=1, cache_dir=cache, progress=False)


# ------------------------------------------------------------------------------------- stub models


class Oracle(nn.Module):
    """Looks every board up in a table and answers its solution (one-hot logits)."""

    def __init__(self, data) -> None:
        super().__init__()
        self.register_buffer("puzzles", data.grids("puzzles").flatten(1))
        self.register_buffer("solutions", data.grids("solutions"))
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, board: torch.Tensor, *, steps: int | None = None) -> torch.Tensor:
        hit = (board.flatten(1)[:, None, :] == self.puzzles[None]).all(-1).float().argmax(1)
        sol = self.solutions[hit]
        return nn.functional.one_hot(sol - 1, sol.shape[-1]).float()


class Constant(nn.Module):
    """Answers digit 1 everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, board: torch.Tensor, *, steps: int | None = None) -> torch.Tensor:
        s = board.shape[-1]
        logits = torch.zeros(*board.shape, s)
        logits[..., 0] = 1.0
        return logits


class NoisyScorer(nn.Module):
    """Per sample a random answer and a random energy trajectory, both from the generator."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side
        self.dummy = nn.Parameter(torch.zeros(()))
        self.batches: list[int] = []

    def forward(self, board, *, steps=None, generator=None, return_energy=False):
        b, s = board.shape[0], self.side
        self.batches.append(b)
        logits = torch.randn(b, s, s, s, generator=generator)
        energy = torch.randn(7, b, generator=generator)
        energy[0] = 0.0
        return (logits, energy) if return_energy else logits


# ---------------------------------------------------------------------------------------- metrics


def test_board_accuracy_ignores_givens_and_needs_every_blank(boards) -> None:
    sol, given = boards.grids("solutions"), boards.is_given()
    wrong_givens = torch.where(given, sol % 4 + 1, sol)  # every given wrong, every blank right
    assert board_accuracy(wrong_givens, sol, given) == 1.0
    assert cell_accuracy(wrong_givens, sol, given) == 1.0
    one_blank_wrong = sol.clone()
    r, c = torch.nonzero(~given[0])[0]
    one_blank_wrong[0, r, c] = sol[0, r, c] % 4 + 1
    assert solved(one_blank_wrong, sol, given).tolist() == [False] + [True] * 19
    assert board_accuracy(one_blank_wrong, sol, given) == pytest.approx(19 / 20)
    assert cell_accuracy(one_blank_wrong, sol, given) == pytest.approx(1 - 1 / int((~given).sum()))


def test_solution_copying_model_scores_one_and_constant_model_zero(boards) -> None:
    puzzles, sol, given = boards.grids("puzzles"), boards.grids("solutions"), boards.is_given()
    oracle = predict_digits(Oracle(boards), puzzles)
    assert board_accuracy(oracle, sol, given) == 1.0
    constant = predict_digits(Constant(), puzzles)
    assert board_accuracy(constant, sol, given) == 0.0
    # digit 1 fills a quarter of every 4x4 solution, so of the blanks it gets some right, not all
    assert 0.0 < cell_accuracy(constant, sol, given) < 0.5


@pytest.mark.parametrize("args, exc, name", [
    ((torch.ones(2, 4, 4, dtype=torch.long), torch.ones(2, 4, 4, dtype=torch.long), torch.ones(3, 4, 4, dtype=bool)),
     ValueError, "given"),
    ((torch.ones(2, 4, 4), torch.ones(2, 4, 4, dtype=torch.long), torch.ones(2, 4, 4, dtype=bool)), TypeError, "pred"),
    ((torch.ones(2, 4, 4, dtype=torch.long), torch.ones(2, 4, 4, dtype=torch.long), torch.ones(2, 4, 4)),
     TypeError, "given"),
    ((torch.ones(4, 4, dtype=torch.long), torch.ones(4, 4, dtype=torch.long), torch.ones(4, 4, dtype=bool)),
     ValueError, "pred"),
])
def test_metrics_reject_bad_arguments_naming_them(args, exc, name) -> None:
    with pytest.raises(exc, match=name):
        board_accuracy(*args)


# ------------------------------------------------------------------------------- energy selection


def test_accuracy_along_one_run_matches_runs_of_every_length(boards) -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny(BOX).eval()
    puzzles, solutions, given = boards.grids("puzzles"), boards.grids("solutions"), boards.is_given()
    ds = accuracy_along(model, boards, steps=5, seed=3, chunk=7)  # 20 boards in 3 chunks, like predict_digits
    assert ds.sizes["t"] == 6 and list(ds.t.values) == list(range(6))
    for t in (1, 3, 5):
        pred = predict_digits(model, puzzles, steps=t, seed=3, batch_size=7)
        assert ds.board_acc.sel(t=t).item() == board_accuracy(pred, solutions, given)
        assert ds.cell_acc.sel(t=t).item() == pytest.approx(cell_accuracy(pred, solutions, given), abs=1e-12)
    assert np.isfinite(ds.energy.values).all()
    with pytest.raises(TypeError, match="model"):
        accuracy_along(nn.Linear(2, 2), boards, steps=2)
    with pytest.raises(ValueError, match="steps"):
        accuracy_along(model, boards, steps=0)


def test_select_by_energy_takes_the_lowest_score_first_on_ties() -> None:
    candidates = torch.arange(3 * 4 * 2).view(3, 4, 2)
    scores = torch.tensor([[0.5, 1.0, -1.0, 2.0], [0.1, 1.0, 3.0, 2.0], [0.2, 0.0, 0.0, 2.0]])
    selected, index = select_by_energy(candidates, scores)
    assert index.tolist() == [1, 2, 0, 0]
    assert torch.equal(selected, candidates[index, torch.arange(4)])
    with pytest.raises(ValueError, match="candidates, scores"):
        select_by_energy(candidates, scores[:, :3])


def test_energy_scores_last_and_sum() -> None:
    energy = torch.tensor([[0.0, 0.0], [3.0, -1.0], [2.0, -4.0]])
    assert energy_scores(energy, "last").tolist() == [2.0, -4.0]
    assert energy_scores(energy, "sum").tolist() == [5.0, -5.0]
    with pytest.raises(ValueError, match="score"):
        energy_scores(energy, "mean")


def test_confidence_score_is_minus_the_log_probability_of_the_answer_on_blank_cells() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    given = torch.rand(3, 4, 4) < 0.4
    expected = torch.tensor([-sum(float(torch.log_softmax(logits[i, r, c], 0).max())
                                 for r in range(4) for c in range(4) if not given[i, r, c]) for i in range(3)],
                            dtype=torch.float64)
    torch.testing.assert_close(confidence_scores(logits, given), expected)
    # the givens do not count: changing their logits leaves the score alone
    changed = torch.where(given[..., None], torch.randn_like(logits), logits)
    torch.testing.assert_close(confidence_scores(changed, given), confidence_scores(logits, given))
    # a sharper answer (same argmax everywhere) scores lower
    assert (confidence_scores(3 * logits, given) <= confidence_scores(logits, given) + 1e-6).all()
    with pytest.raises(ValueError, match="given"):
        confidence_scores(logits, given[:, :3])
    with pytest.raises(ValueError, match="logits"):
        confidence_scores(logits[0], given[0])


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(k=st.integers(2, 12), b=st.integers(1, 5), levels=st.integers(2, 6), seed=st.integers(0, 2**31 - 1))
def test_selection_auc_is_sklearns_roc_auc_of_minus_the_score(k: int, b: int, levels: int, seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (k, b), generator=g).double()  # few levels: ties
    right = torch.rand(k, b, generator=g) < 0.5
    auc = selection_auc(scores, right)
    for j in range(b):
        if right[:, j].all() or not right[:, j].any():
            assert auc[j].isnan()
        else:
            assert float(auc[j]) == pytest.approx(roc_auc_score(right[:, j].numpy(), -scores[:, j].numpy()))


def test_paper_energy_score_is_the_final_states_energy_and_the_log_is_unchanged(boards) -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny(BOX).eval()
    puzzles = boards.grids("puzzles")[:6]
    with torch.no_grad():
        logits, logged = model(puzzles, steps=5, generator=torch.Generator().manual_seed(1), return_energy=True)
        logits2, traj = model(puzzles, steps=5, generator=torch.Generator().manual_seed(1), return_trajectory=True)
    assert torch.equal(logits, logits2) and torch.equal(logged, traj.logged_energy)
    assert traj.energy.shape == (6, 6)  # x_0 ... x_5
    pred = predict(model, puzzles, steps=5, copies=2, generator=torch.Generator().manual_seed(1))
    assert set(pred.scores) == {"last", "sum", "paper", "confidence"}
    with torch.no_grad():
        _, traj2 = model(puzzles.repeat(2, 1, 1), steps=5, generator=torch.Generator().manual_seed(1),
                         return_trajectory=True)
    torch.testing.assert_close(pred.scores["paper"], traj2.energy[-1].view(2, 6).float())
    with pytest.raises(ValueError, match="return_trajectory"):
        model(puzzles, return_energy=True, return_trajectory=True)


def test_selection_by_a_score_the_model_cannot_give_is_named(boards) -> None:
    from tqdm import tqdm

    with pytest.raises(ValueError, match="paper"):
        evaluate_module._run_vote(EnergyOracle(boards), boards, 3, [1, 4], ["last", "paper"], 0, 8, 2,
                                  tqdm(disable=True))


def test_selection_with_one_copy_reproduces_the_plain_prediction(boards) -> None:
    torch.manual_seed(0)
    model = SudokuAKOrN.tiny(BOX).eval()
    puzzles = boards.grids("puzzles")
    with torch.no_grad():
        plain = model(puzzles, steps=6, generator=torch.Generator().manual_seed(7)).argmax(-1) + 1
    pred = predict(model, puzzles, steps=6, copies=1, generator=torch.Generator().manual_seed(7), energy=True)
    for score in ("last", "sum", "paper", "confidence"):
        assert torch.equal(vote(pred, 1, score), plain)
    assert torch.equal(predict_digits(model, puzzles, steps=6, seed=7, batch_size=20), plain)


@pytest.mark.parametrize("score", ["last", "sum"])
def test_selection_returns_the_copy_of_minimum_energy(score: str) -> None:
    torch.manual_seed(0)
    stub = NoisyScorer(side=4)
    boards = torch.zeros(5, 4, 4, dtype=torch.long)
    k = 6
    pred = predict(stub, boards, steps=6, copies=k, generator=torch.Generator().manual_seed(3))
    assert stub.batches == [k * 5]  # the copies are one batch axis, not a loop
    # replay the stub's draws: copy j of board b is item j * 5 + b
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(k * 5, 4, 4, 4, generator=g)
    energy = torch.randn(7, k * 5, generator=g)
    energy[0] = 0.0
    digits = (logits.argmax(-1) + 1).view(k, 5, 4, 4)
    per_copy = (energy[-1] if score == "last" else energy.sum(0)).view(k, 5)
    for kk in (1, 3, k):
        best = per_copy[:kk].argmin(0)
        expected = digits[best, torch.arange(5)]
        assert torch.equal(vote(pred, kk, score), expected)
        assert (per_copy[best, torch.arange(5)] <= per_copy[:kk]).all()


class EnergyOracle(Oracle):
    """Each copy is right with probability 0.6, and exactly the right copies get the lowest energy."""

    def forward(self, board, *, steps=None, generator=None, return_energy=False):
        right = super().forward(board)
        u = torch.rand(board.shape[0], generator=generator)
        ok = u < 0.6
        wrong = right.roll(1, dims=-1)  # every cell wrong
        logits = torch.where(ok[:, None, None, None], right, wrong)
        energy = torch.zeros(4, board.shape[0])
        energy[1:] = torch.where(ok, -1.0, u + 1.0)
        return (logits, energy) if return_energy else logits


def test_selection_in_several_passes_per_board_still_takes_the_best_of_all_copies(boards) -> None:
    from tqdm import tqdm

    # chunk=5 forward passes for 16 copies: every board's copies are split over four passes
    out = evaluate_module._run_vote(EnergyOracle(boards), boards, 3, [1, 16], ["last", "sum"], 0, 5, 2,
                                    tqdm(disable=True))
    assert (out["board_acc"][1] == 1.0).all()  # P(no right copy among 16) = 0.4**16 per board
    assert (out["board_acc"][0] < 1.0).all()
    assert float(out["oracle"]) == 1.0
    # the energies rank every right copy first; the oracle's confidence is the same for all copies
    np.testing.assert_allclose(out["auc"], [1.0, 1.0])
    assert out["samples"].shape == (2, 2, 2, 4, 4)


def test_energy_selection_needs_a_model_with_energies(boards) -> None:
    with pytest.raises(ValueError, match="energy"):
        predict(Constant(), boards.grids("puzzles"), copies=3)


# ---------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("cls, kwargs, field", [
    (TrainSettings, {"box": (2,)}, "box"),
    (TrainSettings, {"box": (3, 4)}, "box"),
    (TrainSettings, {"width": 60, "heads": 8}, "heads"),
    (TrainSettings, {"width": 30, "heads": 5, "n": 4}, "width"),
    (TrainSettings, {"stop_at": 1.5}, "stop_at"),
    (TrainSettings, {"epochs": 0}, "epochs"),
    (TrainSettings, {"model": "resnet"}, "model"),
    (EvalSettings, {"t_eval": (16, 32), "vote_t": (64,)}, "vote_t"),
    (EvalSettings, {"test_boards": 10, "vote_boards": 20}, "vote_boards"),
    (EvalSettings, {"k": (1, 1, 4)}, "k"),
    (EvalSettings, {"scores": ("min",)}, "scores"),
    (EvalSettings, {"method": "rk4"}, "method"),
    (TrainSettings, {"steps_range": (20, 12)}, "steps_range"),
    (TrainSettings, {"steps_range": (0, 4)}, "steps_range"),
    (TrainSettings, {"steps_range": (4, 8), "model": "transformer"}, "steps_range"),
    (TrainSettings, {"gamma_mode": "bounded", "gamma": 1.5, "gamma_max": 1.0}, "gamma"),
    (TrainSettings, {"gamma_max": -1.0}, "gamma_max"),
    (TrainSettings, {"method": "dopri5"}, "method"),
    (TrainSettings, {"plateau": 0}, "plateau"),
])
def test_settings_reject_bad_values_naming_the_field(cls, kwargs, field) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert info.value.field == field


def test_presets_follow_the_paper_recipe() -> None:
    paper = TrainSettings.preset("paper", model="itrsa")
    assert (paper.box, paper.width, paper.epochs, paper.batch_size, paper.grad_clip) == ((3, 3), 512, 100, 100, 1.0)
    assert (paper.ema_decay, paper.ema_every, paper.ema_after, paper.loss_cells) == (0.995, 10, 100, "all")
    assert paper.learning_rate == 5e-4 and paper.model_steps == 16 and paper.stop_at is None
    assert TrainSettings.preset("paper").learning_rate == 1e-3
    assert TrainSettings.preset("cpu").box == (3, 3) and TrainSettings.preset("quick").box == (2, 3)
    quick = TrainSettings.preset("quick", model="transformer")
    assert (quick.model_depth, quick.model_steps) == (8, 1)


def test_flow_training_options_reach_the_model() -> None:
    bounded = build_model(TrainSettings(box=BOX, width=16, heads=4, gamma_mode="bounded", gamma_max=0.8,
                                        method="heun_normalized"))
    layer = bounded.layers[0]
    assert layer.method == "heun_normalized" and layer.gamma_max == 0.8
    assert layer.step_gamma().item() == pytest.approx(0.4)  # default start: gamma_max / 2
    assert "gamma_logit" in dict(layer.named_parameters())
    fixed = build_model(TrainSettings(box=BOX, width=16, heads=4, gamma_mode="fixed", gamma=0.3)).layers[0]
    assert "gamma" in dict(fixed.named_buffers()) and fixed.step_gamma().item() == pytest.approx(0.3)
    published = build_model(TrainSettings(box=BOX, width=16, heads=4)).layers[0]
    assert isinstance(published.gamma, torch.nn.Parameter) and published.gamma.item() == 1.0


def test_random_step_counts_are_drawn_per_batch_from_the_range_and_replay_from_the_seed() -> None:
    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen: list[int | None] = []

        def forward(self, board, steps=None):
            self.seen.append(steps)
            return torch.zeros(*board.shape[:3], board.shape[1]) + self.w

    s = 4
    batch = (torch.zeros(3, s, s, s), torch.zeros(3, s, s, dtype=torch.long), torch.zeros(3, s, s, dtype=torch.bool))
    draws = []
    for _ in range(2):
        model = Recorder()
        loss_fn = train_module._loss_fn(TrainSettings(box=BOX, steps_range=(3, 6)))
        torch.manual_seed(7)
        for _ in range(200):
            loss_fn(model, batch)
        draws.append(model.seen)
    assert draws[0] == draws[1]  # the global RNG, which checkpoints hold, decides the draws
    assert set(draws[0]) == {3, 4, 5, 6}  # odd and even, both ends included
    model = Recorder()
    train_module._loss_fn(TrainSettings(box=BOX))(model, batch)
    assert model.seen == [None]  # without a range the model runs its own T


def test_plateau_stops_only_after_something_was_learnt() -> None:
    import xarray as xr

    def history(curve):
        return xr.Dataset({"eval_ema_board_acc": ("epoch", np.asarray(curve, dtype=float))},
                          coords={"epoch": np.arange(1, len(curve) + 1)})

    settings = TrainSettings(box=BOX, plateau=3)
    assert train_module.stop_reason(history([0, 0, 0, 0, 0, 0]), settings) is None  # nothing learnt yet
    assert train_module.stop_reason(history([0.1, 0.5, 0.6, 0.6, 0.55, 0.6]), settings) == "plateau"
    assert train_module.stop_reason(history([0.1, 0.5, 0.6, 0.6, 0.55, 0.61]), settings) is None
    assert train_module.stop_reason(history([0.1, 0.5, 0.6]), settings) is None  # too few validations
    assert train_module.stop_reason(history([0.1, 0.5, 0.6, 0.6, 0.6, 0.6]),
                                    settings.replace(plateau=None)) is None
    done = settings.replace(stop_at=0.6, patience=2)
    assert train_module.stop_reason(history([0.1, 0.6, 0.6]), done) == "converged"


# ---------------------------------------------------------------------------------------- training


def test_tiny_model_overfits_twenty_boards(tmp_path, cache, boards) -> None:
    # T = 8 rather than the tiny model's 4: the answers then depend much less on the noise of
    # the blank cells, so "every board right" holds for any evaluation seed
    settings = TrainSettings(box=BOX, train_boards=20, val_boards=10, width=32, heads=4, steps=8, epochs=40,
                             batch_size=5, lr=3e-3, ema_decay=None, stop_at=None, eval_every=40)
    result = train_model(settings, tmp_path / "run", workers=1, cache_dir=cache, progress=False,
                         checkpoint_every=40)
    assert result.finished and result.epochs == 40
    model = build_model(settings)
    load_model_weights(tmp_path / "run", model, ema=False)
    model.eval()
    for seed in range(3):  # whatever the noise on the blank cells
        pred = predict_digits(model, boards.grids("puzzles"), seed=seed)
        assert board_accuracy(pred, boards.grids("solutions"), boards.is_given()) == 1.0


def test_resumed_training_continues_exactly_like_an_uninterrupted_run(tmp_path, cache) -> None:
    settings = TrainSettings(box=BOX, train_boards=20, val_boards=10, width=16, heads=4, steps=3, epochs=3,
                             batch_size=10, ema_every=1, ema_after=1, stop_at=None)
    kw = dict(workers=1, cache_dir=cache, progress=False)
    whole = train_model(settings, tmp_path / "whole", **kw)
    first = train_model(settings, tmp_path / "split", max_epochs=1, **kw)
    assert (first.epochs, first.finished, first.reason) == (1, False, "max_epochs")
    rest = train_model(settings, tmp_path / "split", **kw)
    assert (rest.epochs, rest.finished) == (3, True)
    for ema in (False, True):
        a, b = build_model(settings), build_model(settings)
        load_model_weights(tmp_path / "whole", a, ema=ema)
        load_model_weights(tmp_path / "split", b, ema=ema)
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    np.testing.assert_array_equal(whole.history.epoch_loss.values, rest.history.epoch_loss.values)
    np.testing.assert_array_equal(whole.history.eval_ema_board_acc.values, rest.history.eval_ema_board_acc.values)
    # another width in the same directory is refused, naming the field
    with pytest.raises(ConfigError) as info:
        train_model(settings.replace(width=32), tmp_path / "split", **kw)
    assert info.value.field == "width"


# -------------------------------------------------------------------------------- command, end to end


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="akorn sudoku")
    add_arguments(parser)
    return main(parser.parse_args(argv))


TINY = ["--box", "2", "2", "--width", "16", "--heads", "4", "--epochs", "1", "--train-boards", "20", "--val-boards",
        "10", "--batch-size", "10", "--workers", "1", "--no-progress", "--tag", "tiny"]
EVAL = ["--t-eval", "2", "4", "--k", "1", "3", "--test-boards", "8", "--vote-boards", "4", "--samples", "2",
        "--workers", "1", "--no-progress", "--tag", "tiny"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("sudoku-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AKORN_CACHE", str(cache))
        for model, steps in (("akorn", ["--steps", "2"]), ("itrsa", ["--steps", "2"]), ("transformer", [])):
            assert _cli(["train", "--model", model, "--out", str(out)] + steps + TINY) == 0
    return out


def test_cli_trains_and_evaluates_end_to_end(trained, cache, monkeypatch, capsys) -> None:
    from studies.storage import open_dataset

    monkeypatch.setenv("AKORN_CACHE", str(cache))
    assert _cli(["eval", "--out", str(trained)] + EVAL) == 0
    path = trained / "tiny" / "sudoku.h5"
    for png in ("sudoku.png", "sudoku_boards.png"):
        assert (trained / "tiny" / png).stat().st_size > 10_000
    assert not path.with_suffix(".partial.h5").exists()
    ds = open_dataset(path, study="sudoku")
    assert_result_file(ds, vocabulary=None)
    assert list(ds.model.values) == ["akorn", "itrsa", "transformer"]
    assert list(ds.split.values) == ["id", "ood"] and list(ds.T.values) == [1, 2, 4]
    assert list(ds.K.values) == [1, 3] and list(ds.score.values) == ["last", "sum", "paper", "confidence"]
    acc = ds.board_acc
    assert np.isfinite(acc.sel(model=["akorn", "itrsa"], T=[2, 4])).all()
    assert np.isnan(acc.sel(model=["akorn", "itrsa"], T=1)).all()
    # the Transformer is not iterative: evaluated at its own T = 1 only
    assert np.isfinite(acc.sel(model="transformer", T=1)).all()
    assert np.isnan(acc.sel(model="transformer", T=[2, 4])).all()
    assert ((acc.fillna(0) >= 0) & (acc.fillna(0) <= 1)).all()
    vote_acc = ds.vote_board_acc
    assert np.isfinite(vote_acc.sel(model="akorn", T=4)).all()  # selection runs at the largest T ...
    assert np.isnan(vote_acc.sel(model="akorn", T=2)).all()
    assert np.isnan(vote_acc.sel(model=["itrsa", "transformer"])).all()  # ... of the model with energies only
    assert ds.n_vote.values.tolist() == [4, 4] and ds.n_boards.values.tolist() == [8, 8]
    # AKOrN's answer at every step t = 0..4 of one T = 4 run (its vote boards); no curve for the others
    along = ds.along_board_acc
    assert list(ds.t.values) == [0, 1, 2, 3, 4] and np.isfinite(along.sel(model="akorn")).all()
    assert np.isfinite(ds.along_energy.sel(model="akorn")).all() and np.isnan(along.sel(model="itrsa")).all()
    assert ((along.sel(model="akorn") >= 0) & (along.sel(model="akorn") <= 1)).all()
    assert ds.train_loss.sizes["epoch"] == 1 and np.isfinite(ds.train_loss).all()
    assert (ds.sample_puzzle.values > 0).any() and (ds.prediction.sel(model="akorn", T=4).values > 0).all()
    assert "AKOrN" in summarize(ds) and "81.6" in summarize(ds)
    out = capsys.readouterr().out
    assert "wrote" in out and "board accuracy" in out


def test_step_scale_scales_the_kuramoto_step_at_test_time_only(trained, cache, monkeypatch, capsys) -> None:
    from studies.storage import open_dataset

    config = EvalSettings(models=("akorn", "itrsa"), step_scale=0.5)
    assert config.filename == "sudoku-step0.5.h5" and EvalSettings().filename == "sudoku.h5"
    with pytest.raises(ConfigError) as info:
        EvalSettings(step_scale=0.0)
    assert info.value.field == "step_scale"
    runs = evaluate_module._open_runs(config, run_dirs(trained, "tiny", config.models))
    plain = [evaluate_module._load_model(r, True, torch.device("cpu")) for r in runs]
    scaled = [evaluate_module._load_model(r, True, torch.device("cpu"), 0.5) for r in runs]
    assert scaled[0].layers[0].step_size().item() == pytest.approx(0.5 * plain[0].layers[0].step_size().item(),
                                                                    rel=1e-6)
    for (name, a), b in zip(plain[0].state_dict().items(), scaled[0].state_dict().values()):  # weights untouched
        assert torch.equal(a, b), name
    for (name, a), b in zip(plain[1].state_dict().items(), scaled[1].state_dict().values()):  # ItrSA: no γ
        assert torch.equal(a, b), name
    # the command writes its own file next to the plain evaluation
    monkeypatch.setenv("AKORN_CACHE", str(cache))
    argv = ["eval", "--out", str(trained), "--models", "akorn", "--step-scale", "0.5", "--no-plot"] + EVAL[:-2]
    assert _cli(argv + ["--tag", "tiny"]) == 0
    ds = open_dataset(trained / "tiny" / "sudoku-step0.5.h5", study="sudoku")
    assert "0.5" in ds.attrs["config"] and np.isfinite(ds.board_acc.sel(model="akorn", T=[2, 4])).all()
    assert "sudoku-step0.5.h5" in capsys.readouterr().out


def test_shipped_weights_evaluate_like_their_run_and_record_how_they_were_trained(trained, cache, tmp_path,
                                                                                    monkeypatch, capsys) -> None:
    """``export`` keeps the EMA weights and provenance only; ``--pretrained`` evaluates them to the
    numbers of the run they came from; a weights-only checkpoint cannot resume training."""
    from studies.storage import open_dataset
    from studies.sudoku import pretrained

    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "weights")
    for model in ("akorn", "itrsa"):
        dest = pretrained.export(trained / "tiny" / model, "quick", trained_commit="abc123", note="tiny test run",
                                 dest_root=tmp_path / "weights")
        record = json.loads((dest / "trained.json").read_text())
        assert record["trained_commit"] == "abc123" and record["config"]["model"] == model
        assert record["epochs"] == 1 and record["seed"] == 0 and "git_commit" in record["exported_with"]
        assert (dest / "checkpoint.pt").stat().st_size < (trained / "tiny" / model / "checkpoint.pt").stat().st_size
    assert pretrained.available("quick") == ["akorn", "itrsa"]
    with pytest.raises(ValueError, match="transformer.*shipped: akorn, itrsa"):
        pretrained.pretrained_runs(("akorn", "transformer"))
    with pytest.raises(ValueError, match="weight_set"):
        pretrained.pretrained_runs(("akorn",), "../quick")
    with pytest.raises(ValueError, match="no weights are shipped for 'paper'; shipped sets: quick"):
        pretrained.pretrained_runs(("akorn",), "paper")
    monkeypatch.setenv("AKORN_CACHE", str(cache))
    args = EVAL[:-2] + ["--models", "akorn", "itrsa", "--no-plot"]
    assert _cli(["eval", "--out", str(tmp_path / "out"), "--pretrained"] + args) == 0
    assert _cli(["eval", "--out", str(trained), "--tag", "tiny"] + args) == 0
    shipped = open_dataset(tmp_path / "out" / "pretrained-quick" / "sudoku.h5", study="sudoku")
    original = open_dataset(trained / "tiny" / "sudoku.h5", study="sudoku")
    for name in ("board_acc", "vote_board_acc", "along_board_acc"):
        np.testing.assert_array_equal(shipped[name].values, original[name].sel(model=["akorn", "itrsa"]).values)
    capsys.readouterr()
    tiny = TINY[:-2] + ["--tag", "quick", "--steps", "2"]
    code = _cli(["train", "--model", "akorn", "--out", str(tmp_path / "weights")] + tiny)
    assert code != 0 and "weights only" in capsys.readouterr().err


def test_the_shipped_quick_weights_load_into_their_models_and_say_how_they_were_trained() -> None:
    from studies.sudoku import pretrained
    from studies.sudoku.models import build_model
    from studies.sudoku.train import read_settings

    assert pretrained.available("quick") == ["akorn", "itrsa", "transformer"]
    for model, run_dir in pretrained.pretrained_runs(("akorn", "itrsa", "transformer")).items():
        settings = read_settings(run_dir)
        record = json.loads((run_dir / "trained.json").read_text())
        assert settings.model == model and record["config"] == settings.to_dict()
        assert len(record["trained_commit"]) == 40 and record["epochs"] >= 1 and record["note"]
        net = build_model(settings)
        load_model_weights(run_dir, net, ema=True)  # checksum, names, shapes and dtypes checked
        assert all(torch.isfinite(p).all() for p in net.parameters())


def test_interrupted_evaluation_resumes_with_the_same_result(trained, cache, tmp_path, monkeypatch) -> None:
    config = EvalSettings(models=("akorn",), t_eval=(2, 4), k=(1, 3), test_boards=8, vote_boards=4, samples=2)
    runs = run_dirs(trained, "tiny", config.models)
    kw = dict(workers=1, cache_dir=cache, progress=False)
    fresh = evaluate(config, runs, path=tmp_path / "fresh.h5", **kw)
    real_vote = evaluate_module._run_vote

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_module, "_run_vote", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(config, runs, path=tmp_path / "resumed.h5", **kw)
    assert (tmp_path / "resumed.partial.h5").exists()
    calls = []

    def counting_plain(*args, **kwargs):
        calls.append(args[2])
        return real_plain(*args, **kwargs)

    real_plain = evaluate_module._run_plain
    monkeypatch.setattr(evaluate_module, "_run_vote", real_vote)
    monkeypatch.setattr(evaluate_module, "_run_plain", counting_plain)
    resumed = evaluate(config, runs, path=tmp_path / "resumed.h5", **kw)
    # the interruption came at the first selection run (ID split), after the two plain ID cells:
    # only the two plain OOD cells are left to compute, the rest is read back
    assert calls == [2, 4]
    for name in ("board_acc", "cell_acc", "vote_board_acc", "vote_cell_acc", "prediction", "vote_prediction"):
        np.testing.assert_array_equal(fresh[name].values, resumed[name].values)


def test_cli_reports_bad_options_by_name(capsys) -> None:
    with pytest.raises(SystemExit):
        _cli(["train", "--box", "2"])
    assert "--box" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli(["eval", "--t-eval", "16", "--vote-t", "32"])
    assert "--vote-t" in capsys.readouterr().err
    assert _cli([]) == 2


def test_a_damaged_checkpoint_is_refused_until_train_overwrite(tmp_path, cache, monkeypatch, capsys) -> None:
    monkeypatch.setenv("AKORN_CACHE", str(cache))
    argv = ["train", "--model", "transformer", "--out", str(tmp_path)] + TINY
    assert _cli(argv) == 0
    ckpt = tmp_path / "tiny" / "transformer" / "checkpoint.pt"
    data = bytearray(ckpt.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2048] = bytes(2048)
    ckpt.write_bytes(bytes(data))
    capsys.readouterr()
    assert _cli([*argv[:-2], "--epochs", "2", "--tag", "tiny"]) == 1  # resuming would trust the damaged bytes
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(ckpt) in err and "--overwrite" in err
    assert _cli([*argv, "--overwrite"]) == 0
    load_model_weights(ckpt, build_model(TrainSettings(box=(2, 2), width=16, heads=4, model="transformer")),
                       ema=True)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(ts=st.lists(st.integers(2, 4096), min_size=1, max_size=12, unique=True))
def test_tick_labels_never_crowd_and_leave_no_value_far_from_a_label(ts: list[int]) -> None:
    from studies.sudoku.plots import _tick_labels

    ts = sorted(ts)
    labels = _tick_labels(ts)
    shown = [t for t, lab in zip(ts, labels) if lab]
    assert labels[0] == str(ts[0]) and all(lab in ("", str(t)) for t, lab in zip(ts, labels))
    assert all(b >= 1.2 * a for a, b in zip(shown, shown[1:]))  # labelled ticks are apart on a log axis
    # an unlabelled tick sits within the ratio of the nearest labelled tick below it
    assert all(t < 1.2 * max(s for s in shown if s <= t) for t, lab in zip(ts, labels) if not lab)
