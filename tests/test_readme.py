"""README.md as a user meets it: its examples run as printed, its commands exist, its claims hold.

Every ```python block runs in a fresh interpreter (``python -c RUNNER FILE``: nothing is
imported before the block) without ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT`` in the environment,
with sizes reduced only by the block's own ``# test:`` markers; its shape comments are checked
after it ran (conventions: :mod:`studies.bench.readme`). Every ``akorn`` command of a shell
block is checked against the ``--help`` of the real command, and every ``make`` command against
the Makefile.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studies.bench.readme import (
    README,
    RUNNER,
    block_env,
    blocks,
    python_blocks,
    shape_claims,
    shell_commands,
    shrink,
)

ROOT = README.parent
PACKAGES = ("kuramoto", "integrators", "networks", "studies")

_PY = python_blocks()
_SHELL = shell_commands()


def _run_block(code: str, tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    path = tmp_path / "example.py"
    path.write_text(code, encoding="utf-8")
    return subprocess.run([sys.executable, "-c", RUNNER, str(path), json.dumps(shape_claims(code))],
                          env=block_env(passive=False), cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)


def test_readme_has_the_examples_it_describes():
    sections = {b.section for b in _PY}
    assert {"The dynamics core", "Integrators", "Networks"} <= sections
    assert any(words[0] == "akorn" for _, words in _SHELL) and any(words[0] == "make" for _, words in _SHELL)


@pytest.mark.parametrize("block", _PY, ids=[b.name for b in _PY])
def test_python_example_runs_as_printed(block, tmp_path):
    proc = _run_block(shrink(block.code), tmp_path)
    assert proc.returncode == 0, f"README line {block.line} ({block.section}) failed:\n{proc.stderr[-3000:]}"
    # The example imports the toolkit before torch, so it gets the threading default and no warning.
    assert "SpinWaitWarning" not in proc.stderr, proc.stderr


# -- the conventions themselves ------------------------------------------------------------


def test_test_marker_replaces_only_the_values():
    code = "import math\nB, N = 64, 1000  # test: B, N = 4, 10\nprint(B * N)\n"
    assert shrink(code) == "import math\nB, N = 4, 10\nprint(B * N)\n"
    assert shrink("x = 1\n") == "x = 1\n"


@pytest.mark.parametrize("line, reason", [
    ("B, N = 64, 1000  # test: B = 4", "assigns B"),
    ("B = 64  # test: B = 4; import os", "one assignment"),
    ("B = f(64)  # test: B = 4", "not a literal"),
    ("B = 64  # test: B = g(4)", "not a literal"),
    ("print(1)  # test: B = 4", "one-line assignment"),
    ("B = 64  # test: B = = 4", "not Python"),
])
def test_test_marker_cannot_change_code(line, reason):
    with pytest.raises(ValueError, match=reason):
        shrink(f"def f(x):\n    return x\n{line}\n")


def test_shape_comments_are_read_and_misplaced_ones_refused():
    code = "x = make()  # [B, N + 1] what x is\ny.attr['k']  # [2]\nz = 1  # a number\n"
    assert shape_claims(code) == [(1, "x", ["B", "N + 1"]), (2, "y.attr['k']", ["2"])]
    with pytest.raises(ValueError, match="assignment to one name"):
        shape_claims("a, b = f()  # [2]\n")
    with pytest.raises(ValueError, match="without calls"):
        shape_claims("f(x)  # [2]\n")


def test_runner_fails_a_block_whose_shape_comment_is_wrong(tmp_path):
    ok = "import numpy as np\nB = 3\nx = np.zeros((B, 2))  # [B, 2]\n"
    assert _run_block(ok, tmp_path).returncode == 0
    bad = _run_block(ok.replace("# [B, 2]", "# [B, 3]"), tmp_path)
    assert bad.returncode != 0 and "x has shape [3, 2], the comment says [3, 3]" in bad.stderr
    assert _run_block("raise SystemExit(3)\n", tmp_path).returncode == 3


def test_blocks_are_read_with_their_language_and_section():
    text = "# Title\n\n## One\n\n```python\nx = 1\n```\n\n## Two\n\n```bash\nmake run   # go\n```\n```\nplain\n```\n"
    got = blocks(text)
    assert [(b.lang, b.section, b.line, b.code) for b in got] == [
        ("python", "One", 6, "x = 1\n"), ("bash", "Two", 12, "make run   # go\n"), ("", "Two", 15, "plain\n")]
    assert [w for _, w in shell_commands(text)] == [["make", "run"]]


def test_shell_commands_expand_loops_and_chains():
    text = "```bash\nfor m in a b; do akorn x --model $m; done; akorn y && akorn z --k 1  # note\n```\n"
    assert [w for _, w in shell_commands(text)] == [
        ["akorn", "x", "--model", "a"], ["akorn", "x", "--model", "b"], ["akorn", "y"], ["akorn", "z", "--k", "1"]]


# -- akorn and make commands ------------------------------------------------------------------


def _help(argv: list[str]) -> str:
    from studies.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0, f"akorn {' '.join(argv)} --help exited with {exc.value.code}"
    return out.getvalue()


def _options(help_text: str) -> tuple[dict[str, list[str] | None], list[str]]:
    """Options of a help text (name → choices, [] for an option with a value, ``None`` for a
    flag) and the choices of a sub-command positional, if any."""
    options: dict[str, list[str] | None] = {}
    subcommands: list[str] = []
    section = ""
    for line in help_text.splitlines():
        if line and not line.startswith(" "):
            section = line
            continue
        m = re.match(r"^  (\S.*?)(?:\s{2,}|$)", line)
        if not m:
            continue
        invocation = m.group(1)
        if invocation.startswith("-"):
            for part in re.split(r", (?=-)", invocation):
                name, _, value = part.partition(" ")
                if value.startswith("{"):
                    options[name] = value[1:value.index("}")].split(",")
                else:
                    options[name] = [] if value else None
        elif section.startswith("positional") and invocation.startswith("{"):
            subcommands = invocation[1:invocation.index("}")].split(",")
    return options, subcommands


def _check_akorn(words: list[str]) -> None:
    from studies.bench import SUITES
    from studies.cli import REGISTRY

    assert len(words) > 1 and words[1] in REGISTRY, f"{words[1:2]}: not an akorn command ({', '.join(REGISTRY)})"
    path, rest = [words[1]], words[2:]
    options, subcommands = _options(_help(path))
    while subcommands and rest and not rest[0].startswith("-"):
        assert rest[0] in subcommands, f"akorn {' '.join(path)}: no sub-command {rest[0]!r} ({subcommands})"
        path.append(rest.pop(0))
        options, subcommands = _options(_help(path))
    positionals = []
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if word == "--":
            break
        if not word.startswith("-"):
            positionals.append(word)
            continue
        name, eq, value = word.partition("=")
        assert name in options, f"akorn {' '.join(path)}: no option {name} (options: {sorted(options)})"
        spec = options[name]
        if spec is None:
            assert not eq, f"akorn {' '.join(path)} {name} takes no value"
            continue
        values = [value] if eq else []
        while not eq and i < len(rest) and not rest[i].startswith("-"):
            values.append(rest[i])
            i += 1
        assert values, f"akorn {' '.join(path)} {name} needs a value"
        if spec:
            assert set(values) <= set(spec), f"akorn {' '.join(path)} {name}: {values} not among {spec}"
    if path == ["bench"]:
        assert set(positionals) <= set(SUITES) | {"all"}, f"akorn bench: unknown suites {positionals}"


def _makefile() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8")


def _check_make(words: list[str]) -> None:
    text = _makefile()
    targets = set(re.findall(r"^([\w-]+):", text, flags=re.M))
    for word in words[1:]:
        if "=" in word:
            var = word.split("=")[0]
            assert re.search(rf"^{var}\s*\??=", text, flags=re.M), f"make: the Makefile has no variable {var}"
        else:
            assert word in targets, f"make: no target {word!r} ({sorted(targets)})"


@pytest.mark.parametrize("words", [w for _, w in _SHELL], ids=[" ".join(w)[:60] for _, w in _SHELL])
def test_shell_command_exists(words):
    if words[0] == "akorn":
        _check_akorn(words)
    elif words[0] == "make":
        _check_make(words)


def test_command_checks_catch_mistakes():
    for bad in (["akorn", "synch"], ["akorn", "sync", "--no-such-option", "1"], ["akorn", "sync", "--preset", "huge"],
                ["akorn", "sudoku", "tran"], ["akorn", "bench", "nope"]):
        with pytest.raises(AssertionError):
            _check_akorn(bad)
    with pytest.raises(AssertionError):
        _check_make(["make", "tests"])
    with pytest.raises(AssertionError):
        _check_make(["make", "run", "TORCH=torch"])


# -- claims of the prose --------------------------------------------------------------------


def _recipe(target: str) -> str:
    m = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", _makefile(), flags=re.M)
    assert m, f"Makefile: no recipe for {target}"
    return m.group(1)


def test_make_targets_do_what_the_readme_says():
    # "make run": the sync study, which writes results/sync.h5 and its plot (results/sync.png:
    # tests/studies/test_cli.py runs the command and finds both files).
    assert re.search(r"akorn sync\s*$", _recipe("run"), flags=re.M)
    assert re.search(r"--out DIR\s+directory for sync\.h5 and its plot \(default: results/\)", _help(["sync"]))
    # "make test" excludes the slow and the CUDA tests; "make test-all" excludes nothing.
    assert '-m "not slow and not cuda"' in _recipe("test")
    everything = _recipe("test-all")
    assert "pytest" in everything and not re.search(r"pytest.* -m ", everything)
    # torch==2.13.0 by default, TORCH_SPEC overrides it; the venv is built on first use.
    assert re.search(r"^TORCH_SPEC \?= torch==2\.13\.0$", _makefile(), flags=re.M)
    assert "TORCH_SPEC" in _recipe(r"\$\(VENV\)/\.installed")
    assert "setup" in re.search(r"^run:(.*)$", _makefile(), flags=re.M).group(1)


def test_distribution_name_packages_and_python():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["name"] == "akorn-toolkit"
    assert meta["project"]["requires-python"] == ">=3.10"
    assert meta["project"]["scripts"]["akorn"] == "studies.cli:main"
    assert [p.rstrip("*") for p in meta["tool"]["setuptools"]["packages"]["find"]["include"]] == list(PACKAGES)


def test_tests_mirror_the_packages():
    for package in PACKAGES:
        assert (ROOT / "tests" / package).is_dir(), f"tests/{package}/ is missing"


def test_every_relative_link_of_the_readme_exists():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert "docs/AKORN.md" in local and "docs/ARCHITECTURE.md" in local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_benchmark_times_a_block_in_both_environments(tmp_path, capsys):
    from studies import bench

    name = next(b.name for b in _PY if b.section == "The dynamics core")
    assert bench.main(["readme", "--out", str(tmp_path), "--", "--repeats", "1", "--test-sizes", "--spin",
                       "--blocks", name]) == 0
    out = capsys.readouterr().out
    assert name in out and "worst plain/passive wall ratio" in out
    figures = json.loads((tmp_path / "bench.json").read_text())["results"]["readme"][name]
    assert figures["plain"]["wall"] > 0 and figures["passive"]["cpu"] > 0
    assert figures["ratio_wall"] == pytest.approx(figures["plain"]["wall"] / figures["passive"]["wall"])
    assert figures["spin_over_passive_wall"] == pytest.approx(figures["spin"]["wall"] / figures["passive"]["wall"])
    assert figures["plain_over_spin_wall"] == pytest.approx(figures["plain"]["wall"] / figures["spin"]["wall"])


def test_meanfield_and_sparse_never_build_an_n_by_n_matrix():
    # "MeanField(k) in O(N) (never an N×N matrix)", "Sparse ... messages flow source → target, O(edges)":
    # at this N an N×N float32 matrix would need 360 GB.
    import torch

    import kuramoto as ku

    N = 300_000
    x = ku.random_states(N, n=2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ku.MeanField(2.0)(x), (2.0 * x.mean(dim=0)).expand(N, 2), atol=1e-6)
    ring = torch.stack([torch.arange(N), (torch.arange(N) + 1) % N])  # j → j + 1
    assert torch.equal(ku.Sparse(ring, torch.ones(N), N)(x), x.roll(1, dims=0))


def test_the_akorn_command_and_the_makefile_set_the_wait_policy(monkeypatch):
    assert re.search(r"^export OMP_WAIT_POLICY \?= PASSIVE$", _makefile(), flags=re.M)
    from studies.cli import main

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
