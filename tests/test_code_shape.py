"""Every function of the core, the leaderboard and the command line is short enough to read at once (at most 60
lines, decorators included), and no module of the core is longer than 400 lines."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "leaderboard", "cli")
MAX_FUNCTION_LINES = 60
MAX_CORE_MODULE_LINES = 400


def long_functions(package: str, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """{"path:qualified name": lines} of every function (methods and nested functions too) longer than `limit`."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT).as_posix()

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                        if child.end_lineno - first + 1 > limit:
                            found[f"{rel}:{name}"] = child.end_lineno - first + 1
                    visit(child, f"{name}.")

        visit(tree, "")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_longer_than_60_lines(package):
    long = long_functions(package)
    assert not long, (f"functions longer than {MAX_FUNCTION_LINES} lines (split them into parts): "
                      + ", ".join(f"{k} ({v} lines)" for k, v in sorted(long.items())))


def test_no_core_module_is_longer_than_400_lines():
    long = {p.relative_to(ROOT).as_posix(): n for p in sorted((ROOT / "benchmark").rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_CORE_MODULE_LINES}
    assert not long, f"core modules longer than {MAX_CORE_MODULE_LINES} lines (split them by what they hold): {long}"


def test_the_measure_counts_decorators_and_nested_functions(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"        x{i} = {i}" for i in range(59))
    (pkg / "m.py").write_text(f"@decorator\ndef outer():\n    def inner():\n{body}\n    return inner\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert long_functions("pkg") == {"pkg/m.py:outer": 63}  # decorator, def, inner def, 59 lines, return
    assert long_functions("pkg", limit=70) == {}
