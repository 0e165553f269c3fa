"""README examples, each run in a fresh interpreter with and without ``OMP_WAIT_POLICY=PASSIVE``.

``akorn bench readme [-- --repeats 3 --blocks NAME ... --test-sizes --spin]`` runs every
```python block of README.md as printed (saved to a file and run with ``python``, nothing
imported before it), alternating an environment without ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT``
("plain", what a user gets, with the toolkit's import default) with one where
``OMP_WAIT_POLICY=PASSIVE`` is set before Python starts and, with ``--spin``, one with
libgomp's own spin-waiting default. It prints the median wall and CPU seconds (user + system
of the child) of each, the ratios, and the load average before and after. Goals: plain /
passive at most 1.5 for every block on a loaded machine (the import default must give a plain
run what setting the variable by hand gives), and plain / spin near 1 on an idle one (the
default must not cost a quiet machine anything). Needs a checkout (README.md beside the
packages).

The module also reads README.md's blocks for tests/test_readme.py. Conventions a README
block may use (README.md, "Examples in this README"):

- ``NAMES = VALUES  # test: NAMES = SMALLER`` on one line: the README test runs that line with
  the smaller values. Both sides must assign literals to the same names, so a marker can
  change sizes but never code.
- A trailing comment that starts with a shape, ``x0 = ...  # [B, N, 2] unit vectors``: after
  the block ran, the value assigned on that line (or, for an expression statement, the
  expression) has that shape; each dimension is a Python expression in the block's names.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

__all__ = ["README", "RUNNER", "Block", "block_env", "blocks", "python_blocks", "run", "shape_claims", "shell_commands",
           "shrink"]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its text, the 1-based README line of its first code
    line and the heading of the section it is in."""

    lang: str
    code: str
    line: int
    section: str

    @property
    def name(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-L{self.line}"


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of README.md (or of ``text``), in order."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    out: list[Block] = []
    section, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            section = line.lstrip("#").strip()
        m = _FENCE.match(line)
        if m:
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            if j == len(lines):
                raise ValueError(f"README line {i + 1}: code fence never closed")
            out.append(Block(m.group(1), "\n".join(lines[start:j]) + "\n", start + 1, section))
            i = j
        i += 1
    return out


def python_blocks(text: str | None = None) -> list[Block]:
    return [b for b in blocks(text) if b.lang == "python"]


def _comments(code: str) -> dict[int, str]:
    """Line number (1-based) → text of the comment on that line, without ``#``."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string[1:].strip()
    return out


def shrink(code: str) -> str:
    """``code`` with every ``# test:`` marker applied (see the module docstring).

    Raises:
        ValueError: a marker that is not on a one-line assignment of literals, or that assigns
            other names than its line does.
    """
    tree = ast.parse(code)
    statements = {s.lineno: s for s in ast.walk(tree) if isinstance(s, ast.stmt)}
    lines = code.splitlines()
    for lineno, comment in _comments(code).items():
        m = re.match(r"test:\s*(.+)$", comment)
        if not m:
            continue
        stmt = statements.get(lineno)
        where = f"line {lineno} ({lines[lineno - 1].strip()!r})"
        if not isinstance(stmt, ast.Assign) or stmt.end_lineno != lineno or len(stmt.targets) != 1:
            raise ValueError(f"{where}: a '# test:' marker must end a one-line assignment")
        try:
            marker = ast.parse(m.group(1)).body
        except SyntaxError as exc:
            raise ValueError(f"{where}: the marker is not Python: {exc.msg}") from None
        if len(marker) != 1 or not isinstance(marker[0], ast.Assign) or len(marker[0].targets) != 1:
            raise ValueError(f"{where}: the marker must be one assignment")
        if ast.dump(marker[0].targets[0]) != ast.dump(stmt.targets[0]):
            raise ValueError(f"{where}: the marker assigns {ast.unparse(marker[0].targets[0])}, "
                             f"the line assigns {ast.unparse(stmt.targets[0])}")
        for value, side in ((stmt.value, "line"), (marker[0].value, "marker")):
            try:
                ast.literal_eval(value)
            except ValueError:
                raise ValueError(f"{where}: the {side}'s value {ast.unparse(value)!r} is not a literal") from None
        indent = lines[lineno - 1][: len(lines[lineno - 1]) - len(lines[lineno - 1].lstrip())]
        lines[lineno - 1] = indent + m.group(1).strip()
    return "\n".join(lines) + "\n"


def shape_claims(code: str) -> list[tuple[int, str, list[str]]]:
    """``(line, expression, [dimension expressions])`` for every shape comment of ``code``.

    Raises:
        ValueError: a shape comment on a line that is not one assignment to a single name or
            an expression statement without calls.
    """
    tree = ast.parse(code)
    statements = [s for s in ast.walk(tree) if isinstance(s, ast.stmt) and not isinstance(s, ast.Module)]
    out = []
    for lineno, comment in _comments(code).items():
        if not comment.startswith("["):
            continue
        depth, end = 0, None
        for k, ch in enumerate(comment):
            depth += {"[": 1, "]": -1}.get(ch, 0)
            if depth == 0:
                end = k
                break
        if end is None:
            raise ValueError(f"line {lineno}: unbalanced '[' in the shape comment {comment!r}")
        dims = [d.strip() for d in _split_top(comment[1:end])]
        owners = [s for s in statements if s.lineno <= lineno <= s.end_lineno and not hasattr(s, "body")]
        if len(owners) != 1:
            raise ValueError(f"line {lineno}: a shape comment must be on a simple statement")
        stmt = owners[0]
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            expr = stmt.targets[0].id
        elif isinstance(stmt, ast.Expr) and not any(isinstance(n, ast.Call) for n in ast.walk(stmt.value)):
            expr = ast.unparse(stmt.value)
        else:
            raise ValueError(f"line {lineno}: a shape comment must follow an assignment to one name or an "
                             f"expression without calls, got {ast.unparse(stmt)!r}")
        out.append((lineno, expr, dims))
    return out


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


#: Run in a fresh interpreter as ``python -c RUNNER BLOCK_FILE``: runs the block as ``__main__``
#: (importing nothing before it), then checks its shape comments. Exit 0 only if all hold.
RUNNER = r"""
import runpy, sys, json
path, claims = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [path]
ns = runpy.run_path(path, run_name="__main__")
bad = []
for line, expr, dims in claims:
    value = eval(expr, ns)
    want = tuple(eval(d, ns) for d in dims)
    got = tuple(getattr(value, "shape", ()))
    if got != want:
        bad.append(f"line {line}: {expr} has shape {list(got)}, the comment says {list(want)}")
if bad:
    sys.exit("shape comments that do not hold:\n" + "\n".join(bad))
"""


def _shell_words(code: str) -> list[list[str]]:
    """Simple commands of a shell block (``;``/``&&``/``|`` split, comments dropped), with
    ``for V in A B; do CMD $V; done`` expanded into one command per word."""
    import shlex

    code = code.replace("\\\n", " ")
    out: list[list[str]] = []
    for line in code.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        lex.commenters = "#"
        tokens = list(lex)
        i = 0
        while i < len(tokens):
            if tokens[i] == "for":
                var = tokens[i + 1]
                if tokens[i + 2] != "in":
                    raise ValueError(f"cannot read the loop {line!r}")
                j = tokens.index(";", i)
                words = tokens[i + 3:j]
                k = tokens.index("done", j)
                if tokens[j + 1] != "do":
                    raise ValueError(f"cannot read the loop {line!r}")
                body = [t for t in tokens[j + 2:k] if t != ";"]
                out.extend([[t.replace(f"${var}", w) for t in body] for w in words])
                i = k + 1
                continue
            j = i
            while j < len(tokens) and tokens[j] not in (";", "&&", "||", "|", "&"):
                j += 1
            if j > i:
                out.append(tokens[i:j])
            i = j + 1
    return out


def shell_commands(text: str | None = None) -> list[tuple[Block, list[str]]]:
    """Every simple command of every ``bash``/``sh`` block, with its block."""
    return [(b, words) for b in blocks(text) if b.lang in ("bash", "sh", "shell", "console")
            for words in _shell_words(b.code)]


#: libgomp's own spin count when no wait policy is set: what a plain run got before the toolkit
#: set a default, and what a user who imports torch first still gets.
LIBGOMP_DEFAULT_SPINCOUNT = "300000"


def block_env(*, passive: bool, spin: bool = False, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a block runs in: ``base`` (default ``os.environ``) without any wait policy
    (``passive=False``), with ``OMP_WAIT_POLICY=PASSIVE``, or (``spin=True``) with libgomp's
    default spin count set explicitly, so the toolkit leaves it alone; and this checkout first
    on ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if spin:
        env["GOMP_SPINCOUNT"] = LIBGOMP_DEFAULT_SPINCOUNT
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _timed_run(path: Path, env: dict[str, str], timeout: float) -> dict[str, float]:
    """Wall and CPU seconds (user + system of the child and its threads) of ``python path``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path)], env=env, cwd=path.parent, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{path.name} exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def run(args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench readme")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each block in each environment (default: 3)")
    parser.add_argument("--blocks", nargs="+", metavar="NAME",
                        help="only the blocks whose names (as printed, e.g. integrators-L104) start with NAME")
    parser.add_argument("--test-sizes", action="store_true",
                        help="apply the blocks' '# test:' markers (the README test's sizes); default: as printed")
    parser.add_argument("--spin", action="store_true",
                        help="also run with libgomp's spin-waiting default (GOMP_SPINCOUNT=300000), what a plain "
                             "run got before the toolkit set a default; plain/spin near 1 on an idle machine means "
                             "the default costs nothing there")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per run (default: 3600)")
    opts = parser.parse_args(args or [])
    if opts.repeats < 1:
        parser.error("--repeats: expected a positive integer")
    if not README.is_file():
        raise FileNotFoundError(f"{README}: the readme suite runs README.md's examples and needs a checkout")
    todo = python_blocks()
    if opts.blocks:
        todo = [b for b in todo if any(b.name.startswith(p) for p in opts.blocks)]
        if not todo:
            parser.error(f"--blocks: no block matches {opts.blocks}; blocks: {[b.name for b in python_blocks()]}")
    envs = {"plain": block_env(passive=False), "passive": block_env(passive=True)}
    if opts.spin:
        envs["spin"] = block_env(passive=False, spin=True)
    spin_head = f"{'spin wall':>11}{'cpu':>8}{'spin/passive':>14}{'plain/spin':>12}" if opts.spin else ""
    print(f"{'block':<34}{'plain wall':>11}{'cpu':>8}{'passive wall':>14}{'cpu':>8}{'ratio wall':>12}{'cpu':>7}"
          + spin_head)
    out: dict = {"repeats": opts.repeats, "sizes": "test" if opts.test_sizes else "as printed",
                 "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        for block in todo:
            path = Path(tmp) / f"{block.name.replace('-', '_')}.py"
            path.write_text(shrink(block.code) if opts.test_sizes else block.code, encoding="utf-8")
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in envs}
            for rep in range(opts.repeats):
                order = list(envs) if rep % 2 == 0 else list(reversed(envs))
                for name in order:
                    runs[name].append(_timed_run(path, envs[name], opts.timeout))
            med = {name: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu")}
                   for name, rs in runs.items()}
            ratio = {k: med["plain"][k] / med["passive"][k] for k in ("wall", "cpu")}
            line = (f"{block.name:<34}{med['plain']['wall']:>11.2f}{med['plain']['cpu']:>8.2f}"
                    f"{med['passive']['wall']:>14.2f}{med['passive']['cpu']:>8.2f}"
                    f"{ratio['wall']:>12.2f}{ratio['cpu']:>7.2f}")
            out[block.name] = {**med, "ratio_wall": ratio["wall"], "ratio_cpu": ratio["cpu"],
                               "runs": {k: [r["wall"] for r in v] for k, v in runs.items()}}
            if opts.spin:
                spin_ratio = med["spin"]["wall"] / med["passive"]["wall"]
                plain_ratio = med["plain"]["wall"] / med["spin"]["wall"]
                line += (f"{med['spin']['wall']:>11.2f}{med['spin']['cpu']:>8.2f}{spin_ratio:>14.2f}"
                         f"{plain_ratio:>12.2f}")
                out[block.name]["spin_over_passive_wall"] = spin_ratio
                out[block.name]["plain_over_spin_wall"] = plain_ratio
            print(line)
    worst = max((v["ratio_wall"] for v in out.values() if isinstance(v, dict) and "ratio_wall" in v),
                default=float("nan"))
    out["load_after"] = os.getloadavg()[0]
    print(f"worst plain/passive wall ratio: {worst:.2f} (goal: at most 1.5 on a loaded machine); "
          f"1-minute load average {out['load_before']:.1f} before, {out['load_after']:.1f} after "
          f"on {os.cpu_count()} CPUs")
    out["worst_ratio_wall"] = worst
    return out
