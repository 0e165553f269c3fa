"""The ``akorn`` command: help for every subcommand, clear errors naming the option, a tiny end-to-end run."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from studies import cli

REPO = Path(__file__).resolve().parents[2]
STUDIES = ["sync", "landscape", "integrators"]


def test_no_arguments_prints_help(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in cli.REGISTRY:
        assert name in out
    assert "usage: akorn" in out


def test_top_level_help_does_not_import_torch():
    code = ("import sys\nfrom studies.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'akorn --help imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, timeout=60)


def test_unknown_command_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["syncc"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(cli.REGISTRY))
def test_every_subcommand_has_help(name, capsys):
    target = cli.REGISTRY[name].target
    module_name, _, attr = target.partition(":")
    if name == "bench":
        module = pytest.importorskip(module_name)
        if not hasattr(module, attr):
            pytest.skip("studies.bench.main is not there yet")
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"akorn {name}" in out
    if name in STUDIES:
        assert "--preset" in out and "--out" in out
        config = importlib.import_module(module_name).Config
        for field in (f.name for f in dataclasses.fields(config)):
            assert "--" + field.replace("_", "-") in out, field


@pytest.mark.parametrize("argv, option", [
    (["sync", "--N", "-5"], "--N"),
    (["sync", "--N", "0"], "--N"),
    (["sync", "--method", "no_such_method"], "--method"),
    (["sync", "--k-min", "3", "--k-max", "1"], "--k-max"),
    (["sync", "--preset", "huge"], "--preset"),
    (["sync", "--dt", "abc"], "--dt"),
    (["sync", "--distribution", "cauchy"], "--distribution"),
    (["sync", "--sample-dt", "0.3"], "--sample-dt"),
    (["landscape", "--N", "-1"], "--N"),
    (["landscape", "--method", "bogus"], "--method"),
    (["integrators", "--methods", "rk4", "nonexistent"], "--methods"),
    (["integrators", "--levels", "-2"], "--levels"),
])
def test_wrong_values_exit_nonzero_naming_the_option(argv, option, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err, err
    assert not list(tmp_path.iterdir()), "nothing is written for a rejected command"


def test_run_time_check_names_the_option(capsys, tmp_path):
    # RK4 with a step that the Lorentzian tails (|ω| ≈ 318 at N = 2000) turn into garbage.
    with pytest.raises(SystemExit) as exc:
        cli.main(["sync", "--method", "rk4", "--dt", "0.125", "--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --dt" in err and "lawson_rk4" in err


def test_sync_end_to_end_then_show(tmp_path, capsys):
    argv = ["sync", "--N", "100", "--k-num", "3", "--seeds", "2", "--t-transient", "2", "--t-average", "2",
            "--chunks", "2", "--workers", "0", "--no-progress", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    h5, png = tmp_path / "sync.h5", tmp_path / "sync.png"
    assert h5.is_file() and png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert "theory" in out
    # rerunning the same command returns the finished file (no recomputation, same content)
    before = h5.read_bytes()
    assert cli.main(argv) == 0
    assert h5.read_bytes() == before
    # show: dims, variables, config, provenance; the plot exists and is up to date
    assert cli.main(["show", str(h5)]) == 0
    out = capsys.readouterr().out
    for text in ("dimensions:", "time=", "K=3", "r_t", "units" if False else "[1]", "config:", "provenance:",
                 "torch_version", "git_commit", "up to date"):
        assert text in out, text
    # a different config into the same file is refused, the file untouched
    assert cli.main([*argv[:-2], "--k-num", "4", "--out", str(tmp_path)]) == 1
    assert "different config" in capsys.readouterr().err
    assert h5.read_bytes() == before


def test_show_rejects_truncated_and_foreign_files(tmp_path, capsys):
    import numpy as np
    import xarray as xr

    from studies import storage

    ds = xr.Dataset({"r": ("K", np.arange(3.0), {"units": "1", "long_name": "r"})},
                    coords={"K": ("K", np.arange(3.0), {"units": "1", "long_name": "K"})},
                    attrs=storage.result_attrs("sync", "{}", 0))
    path = storage.write_dataset(ds, tmp_path / "sync.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    assert cli.main(["show", str(path)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err
    assert path.read_bytes() == data[: len(data) // 3]
    assert not (tmp_path / "sync.png").exists()
    foreign = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", np.arange(2.0))}).to_netcdf(foreign, engine="h5netcdf")
    assert cli.main(["show", str(foreign)]) == 1
    assert "not an akorn result" in capsys.readouterr().err
    assert cli.main(["show", str(tmp_path / "missing.h5")]) == 1


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "studies.cli", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "commands:" in proc.stdout


def _raiser(exc: BaseException):
    def action() -> int:
        raise exc
    return action


def test_run_command_maps_failures_to_exit_statuses(capsys):
    import argparse

    from studies.config import ConfigError

    parser = argparse.ArgumentParser(prog="akorn demo")
    assert cli.run_command("akorn demo", parser, lambda: 0) == 0
    with pytest.raises(SystemExit) as info:  # a bad config value is a usage error naming its option
        cli.run_command("akorn demo", parser, _raiser(ConfigError("k_max", "expected a positive number, got -1")))
    assert info.value.code == 2 and "argument --k-max: expected a positive number" in capsys.readouterr().err
    assert cli.run_command("akorn demo", parser, _raiser(FileNotFoundError("no run in 'x'"))) == 1
    assert capsys.readouterr().err == "akorn demo: error: no run in 'x'\n"
    assert cli.run_command("akorn demo", parser, _raiser(KeyboardInterrupt()), resume="rerun to go on") == 130
    assert capsys.readouterr().err == "\nakorn demo: interrupted; rerun to go on\n"
    oom = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 800000000000 bytes. Error code 12 (Cannot allocate memory)")
    assert cli.run_command("akorn demo", parser, _raiser(oom)) == 1
    assert capsys.readouterr().err == "akorn demo: error: out of memory (800 GB requested); use smaller sizes\n"
    assert cli.run_command("akorn demo", parser, _raiser(MemoryError())) == 1
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(RuntimeError):  # not a user's error: a bug keeps its traceback
        cli.run_command("akorn demo", parser, _raiser(RuntimeError("bug")))
    with pytest.raises(ValueError):  # errors= narrows what counts as the user's
        cli.run_command("akorn demo", parser, _raiser(ValueError("bug")), errors=(FileNotFoundError,))
