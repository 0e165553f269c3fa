"""Every failure a user of ``akorn`` can cause is one line on stderr: exit 2 for usage, 1 for a failed
run, 130 when interrupted; never a traceback, a hang or a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studies import cli

REPO = Path(__file__).resolve().parents[2]
TINY = ["--N", "40", "--k-num", "3", "--seeds", "1", "--t-transient", "1", "--t-average", "1", "--chunks", "2",
        "--workers", "0", "--no-plot"]


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _readonly_dir(tmp_path: Path) -> Path:
    from studies.files import check_output_dir

    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    if check_output_dir(readonly) is None:  # root ignores the mode bits; /sys takes no new file even from root
        readonly = Path("/sys")
        if check_output_dir(readonly) is None:
            pytest.skip("no read-only directory available")
    return readonly


def test_out_naming_a_file_dev_null_or_a_read_only_directory(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    for out, expected in ((afile, "not a directory"), ("/dev/null", "not a directory"),
                          (_readonly_dir(tmp_path), "cannot write")):
        code, _, err = _run(["sync", *TINY, "--out", str(out)], capsys)
        line = _one_line(err)
        assert code == 2 and "argument --out" in line and expected in line and str(out) in line
    assert afile.read_text() == ""


@pytest.mark.parametrize("argv, option", [
    (["--workers", "-1"], "--workers"),
    (["--scheduler", "::::"], "--scheduler"),
    (["--scheduler", "tcp://host:99999"], "--scheduler"),
    (["--device", "meta"], "--device"),
    (["--seed", str(2**63)], "--seed"),
    (["--seed", str(2**63 - 1), "--seeds", "2"], "--seed"),
    (["--N", "1e11"], "--N"),
    (["--dt", "1e-300"], "--dt"),
    (["--k-num", "1e8"], "--k-num"),
])
def test_usage_errors_are_one_line_naming_the_option(argv, option, tmp_path, capsys):
    started = time.monotonic()
    code, _, err = _run(["sync", *TINY, *argv, "--out", str(tmp_path)], capsys)
    line = _one_line(err)
    assert code == 2 and f"argument {option}" in line, line
    assert time.monotonic() - started < 30
    assert not (tmp_path / "sync.h5").exists()


def test_cuda_without_cuda_is_a_usage_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    code, _, err = _run(["sync", *TINY, "--device", "cuda", "--out", str(tmp_path)], capsys)
    assert code == 2 and "argument --device" in _one_line(err) and "CUDA is not available" in err


def test_unreachable_scheduler_fails_in_seconds_in_one_line(tmp_path, capsys):
    started = time.monotonic()
    code, _, err = _run(["sync", *TINY, "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path)], capsys)
    line = _one_line(err)
    assert code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in line
    assert time.monotonic() - started < 20


def test_a_stiff_coupling_is_refused_before_starting(tmp_path, capsys):
    code, _, err = _run(["sync", *TINY, "--k-max", "1e300", "--out", str(tmp_path)], capsys)
    line = _one_line(err)
    assert code == 2 and "argument --k-max" in line and "stiff" in line and '"distribution"' not in line
    assert not (tmp_path / "sync.h5").exists()


_FAILING_TASK = """
import sys
from studies.sync import experiment
def advance(task):
    raise RuntimeError("the task broke")
experiment.advance = advance
from studies.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_failing_sweep_task_is_one_line_without_the_config(tmp_path):
    # in a process of its own: Dask's loggers write to the real stderr, which capsys does not see
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", _FAILING_TASK, "sync", *TINY, "--out", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    line = _one_line(proc.stderr)
    assert proc.returncode == 1 and line.startswith("akorn sync: error: sweep task") and "the task broke" in line
    assert '"distribution"' not in line


def test_tag_cannot_leave_out(tmp_path, capsys):
    for action in ("train", "eval"):
        code, _, err = _run(["sudoku", action, "--tag", "../../escape", "--out", str(tmp_path / "out")], capsys)
        assert code == 2 and "argument --tag" in _one_line(err), err
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()


def test_ctrl_c_during_start_up_is_one_line(monkeypatch, capsys):
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    code, _, err = _run(["sync"], capsys)
    assert code == 130 and _one_line(err) == "akorn sync: interrupted"


def test_progress_bars_only_on_a_terminal(tmp_path, capsys):
    code, _, err = _run(["sync", *TINY, "--out", str(tmp_path)], capsys)  # progress on, stderr not a terminal
    assert code == 0 and "simulated time" not in err and "\r" not in err


def _damaged_copies(tmp_path: Path, capsys) -> dict[str, Path]:
    import h5py

    from studies.cache import CHECKSUM_ATTR

    assert _run(["sync", *TINY, "--out", str(tmp_path)], capsys)[0] == 0
    good = (tmp_path / "sync.h5").read_bytes()
    copies = {}
    for name, edit in (("not_json", lambda fh: fh.attrs.__setitem__("config", "{not json")),
                       ("no_kc", lambda fh: fh.__delitem__("K_c"))):
        path = tmp_path / f"{name}.h5"
        path.write_bytes(good)
        with h5py.File(path, "a") as fh:
            edit(fh)
            del fh.attrs[CHECKSUM_ATTR]  # as a file from before checksums would be
        copies[name] = path
    return copies


def test_show_on_damaged_files_and_bad_plot_targets(tmp_path, capsys):
    copies = _damaged_copies(tmp_path, capsys)
    code, _, err = _run(["show", str(copies["not_json"])], capsys)
    assert code == 1 and "not valid JSON" in _one_line(err) and "--overwrite" in err
    code, _, err = _run(["show", str(copies["no_kc"])], capsys)
    assert code == 1 and "lacks the variable 'K_c'" in _one_line(err)
    plot_dir = tmp_path / "plots"
    plot_dir.mkdir()
    code, _, err = _run(["show", str(tmp_path / "sync.h5"), "--plot", str(plot_dir)], capsys)
    assert code == 2 and "is a directory" in _one_line(err)
    readonly = _readonly_dir(tmp_path)
    code, _, err = _run(["show", str(tmp_path / "sync.h5"), "--replot", "--plot", str(readonly / "x.png")], capsys)
    assert code == 1 and "cannot write the plot" in _one_line(err)


def test_sync_damaged_file_is_refused_then_replaced_with_overwrite(tmp_path, capsys):
    copies = _damaged_copies(tmp_path, capsys)
    target = tmp_path / "again"
    target.mkdir()
    copies["no_kc"].rename(target / "sync.h5")
    code, _, err = _run(["sync", *TINY, "--out", str(target)], capsys)
    assert code == 1 and "lacks 'K_c'" in _one_line(err) and "--overwrite" in err
    code, out, err = _run(["sync", *TINY, "--out", str(target), "--overwrite"], capsys)
    assert code == 0, err
    assert (target / "sync.h5").read_bytes() != b"" and "K_c" in out


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_full_disk_on_the_first_write_is_one_line_not_a_crash(tmp_path):
    # A real HDF5 write against a file-size limit (what a full disk looks like to a writer):
    # before, a raw OSError traceback, then a segmentation fault.
    script = ("import resource, signal, sys\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
              "from studies.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", script, "sync", *TINY, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = _one_line(proc.stderr)
    assert "no space left" in line and "sync.h5" in line
    assert not (out / "sync.h5").exists() and not list(out.glob("*.tmp"))


def test_a_finished_file_from_another_version_is_one_line_then_replaced(tmp_path, capsys):
    import h5py

    from studies.cache import CHECKSUM_ATTR

    argv = ["landscape", "--N", "8", "--inits", "4", "--t-max", "2", "--no-plot", "--out", str(tmp_path)]
    assert _run(argv, capsys)[0] == 0
    with h5py.File(tmp_path / "landscape.h5", "a") as fh:  # an older file: no checksum, a variable missing
        del fh["residual"]
        del fh.attrs[CHECKSUM_ATTR]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "lacks the variable 'residual'" in _one_line(err) and "--overwrite" in err
    code, _, err = _run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert _run(argv, capsys)[0] == 0


def _square(x):
    return x * x


def test_library_progress_bars_stay_off_a_log(tmp_path, capsys):
    import torch
    from torch.utils.data import TensorDataset

    from studies.sweep import Sweep
    from studies.training import TrainConfig, Trainer

    with Sweep(workers=0, progress=True) as sweep:
        assert sweep.map(_square, [1, 2, 3], desc="squares") == [1, 4, 9]
    data = TensorDataset(torch.randn(8, 2), torch.randn(8))
    model = torch.nn.Linear(2, 1)
    Trainer(model, lambda m, b: ((m(b[0]).squeeze(-1) - b[1]) ** 2).mean(), data,
            TrainConfig(epochs=1, batch_size=4, device="cpu"), out_dir=tmp_path, progress=True).fit()
    err = capsys.readouterr().err
    assert "squares" not in err and "epoch 1/1" not in err and "\r" not in err


@pytest.mark.parametrize("argv, option", [
    (["sync", "--dt", "5e-324"], "--dt"),
    (["landscape", "--dt", "1e-300"], "--dt"),
    (["landscape", "--N", "1e11"], "--N"),
    (["landscape", "--inits", "1e9"], "--inits"),
    (["integrators", "--levels", "200"], "--levels"),
    (["integrators", "--N", "1e7"], "--N"),
])
def test_every_study_refuses_runs_that_cannot_finish_or_fit(argv, option, tmp_path, capsys):
    started = time.monotonic()
    code, _, err = _run([*argv, "--no-plot", "--out", str(tmp_path)], capsys)
    line = _one_line(err)
    assert code == 2 and f"argument {option}" in line, line
    assert time.monotonic() - started < 30 and not list(tmp_path.glob("*.h5"))


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """``akorn sync | head -1``: the run finishes and writes its file, and once the reader has gone
    the command says nothing more and exits 0, as Unix tools do (no 'Broken pipe' error)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    argv = [sys.executable, "-c", "import sys; from studies.cli import main; sys.exit(main())", "sync", *TINY,
            "--out", str(tmp_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env) as proc:
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader goes away after one line
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 0, err
    assert first.startswith(b"wrote") and err == "" and (tmp_path / "sync.h5").is_file()
