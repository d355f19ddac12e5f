"""Imports run with the grain, with no exemption.

Packages, bottom to top: the core (`benchmark`), then `baselines` and `datasets`, then `methods`, then the leaderboard;
the command line (`cli`) is the top and the only package that may import any other. Inside the core the
sub-packages are layered too: `safety` < `contract` < `results` < `training` < `evaluation` < `cluster`, with the
two root modules (`errors`, `progress`) below all of them. The leaderboard reads result files and published curves:
it imports neither the registry nor any method or dataset.

Checked by reading every import statement (top-level or inside a function, absolute or relative) and every
`importlib.import_module("...")` call with a literal name; and no two files of one package import each other, even
through others (an import circle between files)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "baselines", "datasets", "methods", "leaderboard", "cli")
# what each package may import of the suite's packages (itself always)
ALLOWED = {
    "benchmark": set(),
    "baselines": {"benchmark"},
    "datasets": {"benchmark"},
    "methods": {"benchmark", "baselines", "datasets"},
    "leaderboard": {"benchmark"},
    "cli": {"benchmark", "baselines", "datasets", "methods", "leaderboard"},
}
CORE_ORDER = ("errors", "progress", "safety", "contract", "results", "training", "evaluation", "cluster")
LEADERBOARD_NEVER = ("benchmark.contract.registry",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in the file, nested and relative ones included (resolved)."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            out.append((node.lineno, base_name))
            out += [(node.lineno, f"{base_name}.{a.name}") for a in node.names if a.name != "*"]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def _files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _core_rank(module: str) -> int:
    parts = module.split(".")
    return CORE_ORDER.index(parts[1]) if len(parts) > 1 and parts[1] in CORE_ORDER else -1


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_the_layers_below(package):
    bad = []
    for path in _files(package):
        for line, mod in imported_modules(path):
            top = mod.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
            if package == "leaderboard" and mod.startswith(LEADERBOARD_NEVER):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod} (the leaderboard reads result files only)")
    assert not bad, f"{package} imports across the grain:\n" + "\n".join(bad)


def test_core_sub_packages_are_layered():
    bad = []
    for path in _files("benchmark"):
        here = _core_rank(_module_name(path))
        for line, mod in imported_modules(path):
            if mod.startswith("benchmark.") and _core_rank(mod) > here:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod} (above {CORE_ORDER[here] if here >= 0 else 'the root'})")
    assert not bad, "a core sub-package imports one above it:\n" + "\n".join(bad)


def test_every_core_module_belongs_to_a_layer():
    stray = [p for p in _files("benchmark") if p.parent.name == "benchmark" and p.stem not in CORE_ORDER + ("__init__",)]
    stray += [p for p in _files("benchmark") if p.parent.parent.name == "benchmark" and p.parent.name not in CORE_ORDER]
    assert not stray, f"core modules outside the layers {CORE_ORDER}: {stray}"


def _graph(package: str) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in _files(package)}
    graph = {}
    for mod, path in files.items():
        deps = set()
        for _, name in imported_modules(path):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != mod and not files[name].name == "__init__.py":
                deps.add(name)
        graph[mod] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_between_files(package):
    found = circles(_graph(package))
    assert not found, f"files of {package} that import each other (through others too): {found}"


def test_checker_sees_nested_relative_and_importlib_imports(tmp_path, monkeypatch):
    pkg = ROOT / "benchmark" / "contract" / "m.py"  # only its name is used to resolve the relative import
    src = "import importlib\ndef f():\n    from methods.x import y\n    importlib.import_module('datasets.z')\nfrom ..results import schema\n"
    f = tmp_path / "m.py"
    f.write_text(src)
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: src)
    names = {m for _, m in imported_modules(pkg)}
    assert {"methods.x", "datasets.z", "benchmark.results", "benchmark.results.schema"} <= names


def test_circle_finder_finds_a_circle_through_three_files():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
