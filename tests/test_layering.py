"""Imports run with the grain: core (benchmark/) at the bottom, baselines and datasets above it, methods above
them, the leaderboard on top. Checked by reading every import statement (top-level or inside a function) and
every `importlib.import_module("...")` call with a literal name.

Allowed exceptions: the command line — `benchmark/cli.py` and its helper modules `benchmark/cli_*.py`
(`cli_contrib.py`, `cli_convert.py`: subcommands split out of cli.py) — may import any layer, since the
command line is the top of the stack."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_FORBIDDEN = {"leaderboard", "methods", "baselines", "datasets"}
LEADERBOARD_FORBIDDEN = {"methods", "datasets"}


def _imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value.split(".")[0]))
    return out


def _violations(folder: str, forbidden: set[str], allowed=lambda p: False) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if allowed(path):
            continue
        bad += [f"{path.relative_to(ROOT)}:{line} imports {pkg}" for line, pkg in _imported_packages(path) if pkg in forbidden]
    return bad


def _is_command_line(path: Path) -> bool:
    return path.parent.name == "benchmark" and (path.name == "cli.py" or path.name.startswith("cli_"))


def test_core_imports_no_upper_layer():
    bad = _violations("benchmark", CORE_FORBIDDEN, _is_command_line)
    assert not bad, "the core (benchmark/) must not import baselines/datasets/methods/leaderboard:\n" + "\n".join(bad)


def test_leaderboard_imports_no_method_or_dataset():
    bad = _violations("leaderboard", LEADERBOARD_FORBIDDEN)
    assert not bad, "the leaderboard must read result files and core closed forms only:\n" + "\n".join(bad)


def test_checker_sees_nested_and_importlib_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import importlib\ndef f():\n    from methods.x import y\n    importlib.import_module('datasets.z')\n")
    assert {pkg for _, pkg in _imported_packages(f)} == {"importlib", "methods", "datasets"}
