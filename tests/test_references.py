"""Every file the repository's prose cites is in the repository (or is named as another one's).

Scanned: the Markdown files, and the comments and prose strings (docstrings, messages, help
texts: strings with spaces) of the Python files; a bare ``"name.py"`` in code names a file a
program writes, not one it cites. A reference is a path
ending in ``.py`` or ``.md`` (``docs/AKORN.md``, ``studies/sync.py``) or any path under ``docs/`` or
``scripts/``. It must exist relative to the repository root (Markdown: or to the file's own
folder, as its links are). A file of the official AKOrN repository is cited as such: directly
after "official", "the official repository's", "the official code's" or
"autonomousvision/akorn's" (``the official repository's scripts/synths.md``), or inside
docs/AKORN.md's provenance tag ``[R:path, ...]``. docs/AKORN.md is the specification of the
official repository and says so in its opening lines, so the file names in it that are not
this repository's are that repository's.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SELF = Path(__file__).resolve()
_SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "results", "node_modules", "__pycache__"}

_REF = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:py|md)|(?:docs|scripts)/[\w./*-]*[\w*-])(?![\w/-])")
_OFFICIAL = re.compile(
    r"(?:\bofficial(?: (?:repository|repo|code)(?:'s|’s))?|\bautonomousvision/akorn(?:'s|’s)?)[\s`'\":(]{0,4}$",
    re.IGNORECASE)
_TAG = re.compile(r"\[R:[^\]]*\]")
_OWN_FOLDERS = ("kuramoto/", "integrators/", "networks/", "studies/", "tests/", "docs/")
#: Documents about the official repository (repository path → what their opening lines say).
OFFICIAL_SPECS = {"docs/AKORN.md": "Official code: GitHub `autonomousvision/akorn`"}


def repository_files(root: Path = ROOT) -> list[Path]:
    """The repository's ``.py`` and ``.md`` files (git's view when available, ignored files excluded)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.splitlines()
        paths = [root / p for p in listed]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in root.rglob("*") if not (_SKIP_DIRS & set(p.relative_to(root).parts))]
    # this file's own strings are the scanner's test cases, not citations
    return sorted(p for p in paths if p.suffix in (".py", ".md") and p.is_file() and p.resolve() != _SELF)


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of what a file says to a reader: all of a Markdown file; the
    comments of a Python file and its source lines holding strings with spaces in them
    (docstrings, messages, help texts; a bare ``"name.py"`` is a file a program writes)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if path.suffix == ".md":
        return list(enumerate(lines, 1))
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"\s", node.value):
            for k in range(node.lineno, node.end_lineno + 1):
                out.setdefault(k, lines[k - 1])
    return sorted(out.items())


def bad_references(path: Path, root: Path = ROOT) -> list[str]:
    """``"file:line: reference"`` for every reference in ``path`` that does not resolve."""
    out = []
    about_official = path.relative_to(root).as_posix() in OFFICIAL_SPECS
    for lineno, line in prose_lines(path):
        tags = [m.span() for m in _TAG.finditer(line)]
        for m in _REF.finditer(line):
            ref = m.group(1)
            if any(a <= m.start() < b for a, b in tags) or _OFFICIAL.search(line[:m.start()]):
                continue
            if "*" in ref:
                if any(root.glob(ref)):
                    continue
            elif (root / ref).exists() or (path.suffix == ".md" and (path.parent / ref).exists()):
                continue
            if about_official and not ref.startswith(_OWN_FOLDERS):
                continue
            out.append(f"{path.relative_to(root)}:{lineno}: {ref}")
    return out


def test_the_scanner_finds_missing_files_and_accepts_the_official_forms(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "NOTES.md").write_text("x")
    (tmp_path / "pkg" / "mod.py").write_text(
        '"""See docs/NOTES.md §2 and NOTES.md §3; pkg/mod.py; pkg/gone.py."""\n'
        "# the official repository's scripts/synths.md, the official ``eval_obj.py``\n"
        "# autonomousvision/akorn's train.py, but not the official code (train_obj.py)\n"
        'OUT = "written.py"  # a file a program writes is not a citation\n'
        "def f():\n"
        '    """Runs like klayer.py."""\n'
        '    raise ValueError(f"see {OUT} and " "gone.md")\n')
    (tmp_path / "docs" / "SPEC.md").write_text("[R:source/klayer.py, README.md] and NOTES.md; scripts/run.sh\n")
    assert bad_references(tmp_path / "pkg" / "mod.py", tmp_path) == [
        "pkg/mod.py:1: NOTES.md", "pkg/mod.py:1: pkg/gone.py", "pkg/mod.py:3: train_obj.py", "pkg/mod.py:6: klayer.py",
        "pkg/mod.py:7: gone.md"]
    assert bad_references(tmp_path / "docs" / "SPEC.md", tmp_path) == ["docs/SPEC.md:1: scripts/run.sh"]


def test_official_specs_say_what_they_describe():
    for name, opening in OFFICIAL_SPECS.items():
        head = "\n".join((ROOT / name).read_text(encoding="utf-8").splitlines()[:5])
        assert opening in head, f"{name} no longer opens with {opening!r}; its file names need [R:...] tags"


def test_the_readme_and_docs_cite_only_files_that_exist():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert ROOT / "docs" / "AKORN.md" in files and ROOT / "docs" / "ARCHITECTURE.md" in files
    bad = [b for f in files for b in bad_references(f)]
    assert not bad, "\n".join(bad)


def test_no_reference_points_at_a_missing_file():
    bad = [b for f in repository_files() for b in bad_references(f)]
    assert not bad, f"{len(bad)} references to files that are not in the repository:\n" + "\n".join(bad)
