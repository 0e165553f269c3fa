"""The shape of the code, checked so that it cannot rot: no import cycle (static or through the
strings the command line loads), no in-function import of the project except the commented
torch-free ones, no source file over 500 lines, no function over 80 lines without a reason."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("kuramoto", "integrators", "networks", "studies")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
#: The comment that allows an in-function import of the project: the module must load without torch.
TORCH_FREE = "torch-free"
#: Temporary exemptions (``path::function``, paths): empty, and to be kept so; a file or function
#: that has to be long says why in a ``# long: <reason>`` comment instead.
KNOWN_LONG: set[str] = set()
KNOWN_LONG_FILES: set[str] = set()
KNOWN_IN_FUNCTION: set[str] = set()
#: Modules that import other project modules by name at run time (``importlib``): the command line
#: (its registry, the studies' and tasks' entry points), ``akorn show`` and the lazy package attributes.
DYNAMIC_LOADERS = {"studies.cli", "studies.commands", "studies.show", "studies.lazy"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.AST) -> list[str]:
    """Project modules an import statement loads (``from pkg import mod`` counts as ``pkg.mod``)."""
    found = []
    if isinstance(node, ast.Import):
        found = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = _resolve(module, node)
        found = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    return [t for t in found if t in MODULES and t != module]


def _loaded_by_name() -> set[str]:
    """Every project module named in a string literal (``"studies.sync.experiment"``,
    ``"studies.sudoku.train:train_command"``, or a lazy package's submodule list)."""
    names = set()
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                target = node.value.partition(":")[0]
                if target in MODULES:
                    names.add(target)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_attributes":
                listed = node.args[1] if len(node.args) > 1 else None
                if isinstance(listed, ast.Constant):
                    names.update(f"{module}.{m}" for m in listed.value.split() if f"{module}.{m}" in MODULES)
    return names


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            graph[module].update(_targets(module, node))
    dynamic = _loaded_by_name()
    for loader in DYNAMIC_LOADERS:
        graph[loader].update(dynamic - {loader})
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    colour: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(u: str) -> None:
        colour[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if colour.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif v not in colour:
                visit(v)
        stack.pop()
        colour[u] = 2

    for module in sorted(MODULES):
        if module not in colour:
            visit(module)
    return found


def test_no_import_cycle_including_the_modules_loaded_by_name():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_in_function_import_of_the_project_unless_commented_torch_free():
    offending = []
    for module, tree in TREES.items():
        lines = MODULES[module].read_text().splitlines()
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                known = MODULES[module].relative_to(REPO).as_posix() in KNOWN_IN_FUNCTION
                if _targets(module, node) and TORCH_FREE not in lines[node.lineno - 1] and not known:
                    offending.append(f"{MODULES[module].relative_to(REPO)}:{node.lineno}")
    assert not offending, f"in-function imports of the project (comment '{TORCH_FREE}' if --help needs it): " \
                          f"{offending}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_source_files_are_short(module):
    lines = len(MODULES[module].read_text().splitlines())
    if MODULES[module].relative_to(REPO).as_posix() in KNOWN_LONG_FILES:
        pytest.skip(f"{module}: {lines} lines, in another branch's files (KNOWN_LONG_FILES)")
    assert lines <= MAX_FILE_LINES, f"{MODULES[module].relative_to(REPO)}: {lines} lines (at most {MAX_FILE_LINES})"


def test_functions_are_short_or_say_why():
    offending = []
    for module, tree in TREES.items():
        rel = MODULES[module].relative_to(REPO).as_posix()
        lines = MODULES[module].read_text().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                reason = "# long:" in lines[node.lineno - 1] or "# long:" in lines[node.lineno - 2]
                if length > MAX_FUNCTION_LINES and not reason and f"{rel}::{node.name}" not in KNOWN_LONG:
                    offending.append(f"{rel}:{node.lineno} {node.name} ({length} lines)")
    assert not offending, f"functions over {MAX_FUNCTION_LINES} lines without a '# long: <reason>' comment: " \
                          f"{offending}"


def test_lower_packages_never_import_higher_ones():
    order = {package: i for i, package in enumerate(PACKAGES)}
    offending = []
    for module, targets in _graph().items():
        for target in targets:
            if order[target.split(".")[0]] > order[module.split(".")[0]]:
                offending.append(f"{module} -> {target}")
    assert not offending, offending


def test_every_study_config_module_imports_without_torch():
    import subprocess
    import sys

    from studies.registry import REGISTRY

    configs = [entry.target for entry in REGISTRY.values() if entry.target.endswith(".config")]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in configs) + \
           "assert 'torch' not in sys.modules, [m for m in sys.modules if m.startswith('torch')][:3]\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, timeout=120)
