"""``akorn show``: quiet when its reader stops early, and files of an earlier layout read in the current one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("integrators")

from studies import cli, methods, storage  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def old_integrators_file(tmp_path_factory):
    """An integrators result as files were written before the ``method`` dimension became ``solver``."""
    config = methods.Config.preset("quick", methods=("euler_normalized", "rk4_normalized"), N=6, batch=1, levels=2,
                                   repeats=1)
    ds = methods.run(config, progress=False).rename({"solver": "method"})
    return storage.write_dataset(ds, tmp_path_factory.mktemp("show") / "integrators.h5")


def test_show_into_a_closed_pipe_exits_quietly_and_still_plots(old_integrators_file):
    # The reader is gone before the first line (what `akorn show FILE | head -0` does): every write fails.
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    png = old_integrators_file.with_name("piped.png")
    try:
        done = subprocess.run([sys.executable, "-c", "import sys; from studies.cli import main; sys.exit(main())",
                               "show", str(old_integrators_file), "--plot", str(png)],
                              stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_show_reads_an_earlier_layout_and_says_so(old_integrators_file, capsys):
    assert cli.main(["show", str(old_integrators_file), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "read dimension 'method' as 'solver'" in out
    assert "dimensions: solver=2" in out and "euler_normalized" in out
    assert "units: 'model_time_unit' is the unit of time the equations are written in" in out
    # the file is read, never rewritten
    assert "method" in storage.open_dataset(old_integrators_file).dims
