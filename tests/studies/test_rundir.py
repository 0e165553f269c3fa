"""The run-directory rule shared by the trainer and the three tasks: ``config.json`` (``settings.json``
read as a fallback), one ConfigError naming the first changed field, resumable fields allowed to change."""

from __future__ import annotations

import json

import pytest

from studies.config import ConfigError
from studies.rundir import CHECKPOINT_NAME, CONFIG_NAME, changed_fields, config_path, prepare_run, read_config
from studies.sudoku.config import RESUMABLE, TrainSettings


def test_a_new_run_records_its_config(tmp_path):
    prepare_run(TrainSettings(), tmp_path / "run", resumable=RESUMABLE, fix="")
    assert json.loads((tmp_path / "run" / CONFIG_NAME).read_text()) == TrainSettings().to_dict()
    assert read_config(tmp_path / "run", TrainSettings) == TrainSettings()


def test_legacy_settings_json_is_read(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps(TrainSettings(width=32).to_dict()))
    assert config_path(tmp_path).name == "settings.json"
    assert read_config(tmp_path, TrainSettings).width == 32
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"")
    with pytest.raises(ConfigError) as info:  # checked against the old file, then config.json written beside it
        prepare_run(TrainSettings(width=64), tmp_path, resumable=RESUMABLE, fix="use another --tag")
    assert info.value.field == "width" and "use another --tag" in str(info.value)
    prepare_run(TrainSettings(width=32, epochs=99), tmp_path, resumable=RESUMABLE, fix="")
    assert config_path(tmp_path).name == CONFIG_NAME and read_config(tmp_path, TrainSettings).epochs == 99


def test_a_config_without_checkpoint_is_replaced(tmp_path):
    prepare_run(TrainSettings(width=32), tmp_path, resumable=RESUMABLE, fix="")
    prepare_run(TrainSettings(width=64), tmp_path, resumable=RESUMABLE, fix="")
    assert read_config(tmp_path, TrainSettings).width == 64


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train it first"):
        read_config(tmp_path, TrainSettings)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not a valid TrainSettings"):
        read_config(tmp_path, TrainSettings)


def test_changed_fields_skips_the_resumable_ones():
    assert changed_fields({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}, resumable={"b"}) == ["c", "d"]


def test_run_directory_refuses_a_tag_that_leaves_out(tmp_path):
    from studies.rundir import run_directory

    assert run_directory(tmp_path, "quick", "akorn") == tmp_path / "quick" / "akorn"
    for tag in ("../../escape", "..", "a/b", ""):
        with pytest.raises(ConfigError) as info:
            run_directory(tmp_path, tag, "akorn")
        assert info.value.field == "tag" and repr(tag) in str(info.value)


def test_start_over_removes_only_the_runs_files(tmp_path):
    from studies.rundir import start_over

    for name in (CONFIG_NAME, "settings.json", CHECKPOINT_NAME, "train.h5", "notes.txt"):
        (tmp_path / name).write_text("x")
    removed = start_over(tmp_path, extra=("train.h5",))
    assert sorted(p.name for p in removed) == sorted([CONFIG_NAME, "settings.json", CHECKPOINT_NAME, "train.h5"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_run_directory_has_one_writer(tmp_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    from studies.files import LockedError
    from studies.rundir import claim

    run = tmp_path / "quick" / "akorn"
    code = ("import sys, time\nfrom studies.rundir import claim\nwith claim(sys.argv[1]):\n"
            "    print('locked', flush=True)\n    time.sleep(60)\n")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {proc.pid}.*--tag"):
            with claim(run):
                pass
        with claim(run, writer=False):  # DDP ranks other than 0 take no lock
            pass
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with claim(run):
        pass
