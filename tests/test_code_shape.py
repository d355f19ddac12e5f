"""Every function in benchmark/ is short enough to read at once (issue 16: at most 80 lines)."""
from __future__ import annotations

import ast
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmark"
MAX_LINES = 80

# Functions still longer than MAX_LINES, by "module.py:qualified name". Empty: keep it so.
ALLOWED: set[str] = set()


def _long_functions() -> dict[str, int]:
    found = {}
    for path in sorted(BENCHMARK.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                        length = child.end_lineno - first + 1
                        if length > MAX_LINES:
                            found[f"{path.name}:{name}"] = length
                    visit(child, f"{name}.")

        visit(tree, "")
    return found


def test_no_function_in_benchmark_is_longer_than_80_lines():
    long = {k: v for k, v in _long_functions().items() if k not in ALLOWED}
    assert not long, (f"functions longer than {MAX_LINES} lines (split them into parts): "
                      + ", ".join(f"{k} ({v} lines)" for k, v in sorted(long.items())))


def test_the_allow_list_names_only_functions_that_are_still_long():
    stale = ALLOWED - set(_long_functions())
    assert not stale, f"no longer too long, remove from ALLOWED: {sorted(stale)}"
