"""Locks, writer-owned temporaries, full disks and paths from user input (:mod:`studies.files`)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from studies import files
from studies.cache import read_arrays, write_arrays
from studies.files import DiskFullError, LockedError, atomic_path, child_path, exclusive, remove_stale_temporaries

REPO = Path(__file__).resolve().parents[2]
_HOLD = ("import sys, time\nfrom studies.files import exclusive\nwith exclusive(sys.argv[1]):\n"
         "    print('locked', flush=True)\n    time.sleep(60)\n")


def _holder(target: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(target)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_fails_at_once_naming_path_and_holder(tmp_path):
    target = tmp_path / "sync.h5"
    proc = _holder(target)
    try:
        started = time.monotonic()
        with pytest.raises(LockedError) as info:
            with exclusive(target):
                pass
        assert time.monotonic() - started < 1.0
        message = str(info.value)
        assert "\n" not in message and str(target) in message and f"pid {proc.pid}" in message
        assert "--out" in message
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with exclusive(target):  # the kernel released the dead holder's lock: never stale
        assert files.lock_path(target).read_text().startswith("{")


def test_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    target = tmp_path / "run"
    with exclusive(target), exclusive(target):
        pass
    with exclusive(target):
        pass


def test_temporaries_carry_their_writer_and_only_dead_writers_lose_them(tmp_path):
    target = tmp_path / "r.h5"
    with atomic_path(target) as tmp:
        assert f"-{os.getpid()}." in tmp.name and tmp.name.startswith(".r.h5.")
        tmp.write_text("x")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = files._host()
    mine = tmp_path / f".r.h5.{host}-{os.getpid()}.0123abcd.h5.tmp"
    stale = tmp_path / f".r.h5.{host}-{dead.pid}.0123abcd.h5.tmp"
    elsewhere = tmp_path / f".r.h5.otherhost-{dead.pid}.0123abcd.h5.tmp"
    other_file = tmp_path / f".q.h5.{host}-{dead.pid}.0123abcd.h5.tmp"
    for p in (mine, stale, elsewhere, other_file):
        p.write_text("partial")
    assert remove_stale_temporaries(target) == [stale]
    assert mine.exists() and elsewhere.exists() and other_file.exists() and not stale.exists()


def test_full_disk_is_one_error_and_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "cache.h5"
    write_arrays(path, {"a": np.arange(3)})
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(DiskFullError) as info:
        write_arrays(path, {"a": np.arange(1000)})
    assert "no space left" in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.h5"]


def test_child_path_keeps_user_names_inside_the_root(tmp_path):
    assert child_path(tmp_path, "quick", "akorn") == tmp_path / "quick" / "akorn"
    for bad in ("../../escape", "..", ".", "", "a/b", "/abs", "x\0y"):
        with pytest.raises(ValueError, match="--tag"):
            child_path(tmp_path, bad)


def test_check_output_dir_says_why(tmp_path):
    assert files.check_output_dir(tmp_path / "new" / "dir") is None
    (tmp_path / "afile").write_text("")
    assert "not a directory" in files.check_output_dir(tmp_path / "afile")
    assert "not a directory" in files.check_output_dir(tmp_path / "afile" / "below")
    assert "not a directory" in files.check_output_dir("/dev/null")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        if os.access(readonly, os.W_OK):  # root: a chmod does not stop it; /sys refuses new files even to root
            readonly = Path("/sys")
        problem = files.check_output_dir(readonly)
        if problem is None:
            pytest.skip("no read-only directory available")
        assert "cannot write" in problem and str(readonly) in problem
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_cached_arrays_refuse_a_tampered_file(tmp_path):
    import h5py

    path = write_arrays(tmp_path / "a.h5", {"a": np.arange(100.0)}, {"key": 1})
    with h5py.File(path, "a") as fh:
        fh["a"][5] = -1.0
    with pytest.raises(ValueError, match="checksum"):
        read_arrays(path)
