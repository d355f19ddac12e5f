"""Content hashes of the code that produced a result: the method's own files and the suite's.

A result records ``code: {"method": method_code_record(file), "suite_sha256": suite_code_hash()}`` (`code_record`),
where ``file`` is the source file that defines the codec class. `bench submit` recomputes the method's hash
in the checkout it runs in and refuses a result whose method code is not the code of that commit.

What counts as code (decided here, documented in docs/security.md):

- **the suite** is ``benchmark/`` and ``datasets/``: everything between the bytes a codec returns and the numbers
  in the result (runner, container, metrics, data readers, protocols). ``leaderboard/`` is left out: it only
  renders result files and never changes a number in one. ``baselines/`` and ``methods/`` are methods.
- **a method** is
  - its package when the defining file lies in a sub-package of the repository's ``methods/``
    (``methods/ndic/``: every file of the folder);
  - the top-level package it lies in when it comes from another distribution, a plugin found on ``sys.path``
    (``site-packages/my_codec/``), or the single module file for a plugin that is one module;
  - otherwise the single module file (``baselines/balle.py``, a test fixture);
  and, for files of the repository, transitively every module of the repository it imports that is not suite
  code (``methods/ndic`` imports ``baselines/balle.py`` and ``baselines/convert.py``; ``baselines/joint.py``
  imports ``baselines/balle.py``), with the ``__init__.py`` of every package on the way. Imports are read from
  the source (`ast`), including those inside functions; no method module is imported.
- in a folder, files with the suffixes in `CODE_SUFFIXES` count (Python sources, extension modules and the
  data files a package may read: JSON, TOML, YAML, CSV, text); ``__pycache__``, hidden files and folders, and
  documentation (``*.md``) do not. A file named directly counts whatever its suffix.

`tree_hash` is the sha256 of, for every file in sorted order of its relative POSIX path: the path, its length
and its bytes (a symbolic link: its target, never followed). It depends on the files' bytes only: not on
timestamps, permissions, the checkout's location or the order the file system lists them."""
from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from benchmark.errors import BenchError

SUITE_PACKAGES = ("benchmark", "datasets")
METHODS_PACKAGE = "methods"
CODE_SUFFIXES = frozenset({".py", ".pyi", ".so", ".pyd", ".json", ".toml", ".yaml", ".yml", ".csv", ".txt"})
ROOT_REPO, ROOT_SYS_PATH = "repo", "sys.path"
MAX_PATHS = 256  # a method record names a few folders and files
MAX_TREE_BYTES = 1 << 30  # what `tree_hash` reads at most: a hostile record cannot make it hash a disk
_HEX64 = re.compile(r"[0-9a-f]{64}")


class CodeRecordError(BenchError):
    """The code of a method cannot be located or hashed (a path outside the checkout, a missing file)."""


def repo_root() -> Path:
    """The checkout (or installed tree) this suite runs from: the folder holding ``benchmark/``."""
    return Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- hashing files
def path_problem(rel: Any) -> str | None:
    """Why `rel` cannot be a path of a code record (None when it can): relative, POSIX, no ``..``."""
    if not isinstance(rel, str) or not rel or len(rel) > 1024:
        return "must be a non-empty relative path of at most 1024 characters"
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or "\0" in rel or any(p in ("", ".", "..") for p in parts):
        return f"{rel!r:.80} is not a relative POSIX path inside the checkout (no leading '/', '..', '.' or '\\\\')"
    return None


def _walk(root: Path, rel: str) -> Iterable[str]:
    """Relative POSIX paths of the code files at `rel` (a file, or a folder walked without following links)."""
    top = root / rel
    if top.is_symlink() or top.is_file():
        yield rel
        return
    if not top.is_dir():
        raise CodeRecordError(f"{rel!r} does not exist under {str(root)!r}")
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix in CODE_SUFFIXES:
                yield Path(dirpath, name).relative_to(root).as_posix()


def code_files(root: Path, rel_paths: Iterable[str]) -> list[str]:
    """Every file `tree_hash` reads for `rel_paths` under `root`, sorted, without duplicates."""
    root = Path(root)
    files: set[str] = set()
    for rel in rel_paths:
        why = path_problem(rel)
        if why:
            raise CodeRecordError(f"code path {why}")
        files.update(_walk(root, rel))
    return sorted(files)


def tree_hash(root: Path, rel_paths: list[str]) -> str:
    """sha256 over the sorted relative path, length and bytes of every code file under each of `rel_paths`."""
    root = Path(root)
    h = hashlib.sha256(b"dsc-bench code v1\n")
    total = 0
    for rel in code_files(root, rel_paths):
        path = root / rel
        if path.is_symlink():
            data = b"symlink:" + os.readlink(path).encode("utf-8", "surrogateescape")
        else:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CodeRecordError(f"cannot read {rel!r} under {str(root)!r}: {exc.strerror or exc}") from None
        total += len(data)
        if total > MAX_TREE_BYTES:
            raise CodeRecordError(f"the code under {rel_paths!r:.200} is larger than {MAX_TREE_BYTES} bytes")
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)
    return h.hexdigest()


def suite_code_hash(root: Path | None = None) -> str:
    """`tree_hash` of the suite's own code (`SUITE_PACKAGES`) in the checkout `root` (default: this one)."""
    return tree_hash(Path(root) if root else repo_root(), list(SUITE_PACKAGES))


# ---------------------------------------------------------------- the method's files
def _module_name(rel: PurePosixPath) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, rel: PurePosixPath) -> set[str]:
    """Absolute names of the modules a source file imports (anywhere in it), read without importing it."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return set()  # still hashed; it just leads nowhere
    package = _module_name(rel).split(".") if rel.name == "__init__.py" else _module_name(rel).split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level - 1 <= len(package) else []
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod:
                out.add(mod)
                out.update(f"{mod}.{a.name}" for a in node.names if a.name != "*")
    return out


def _module_file(root: Path, name: str) -> PurePosixPath | None:
    parts = name.split(".")
    if not parts[0] or parts[0] in SUITE_PACKAGES or not (root / parts[0]).is_dir():
        return None  # the suite's own code (hashed as the suite), the standard library or another distribution
    for cand in (PurePosixPath(*parts).with_suffix(".py"), PurePosixPath(*parts, "__init__.py")):
        if (root / cand).is_file():
            return cand
    return None


def _unit(rel: PurePosixPath) -> PurePosixPath:
    """What a repository file brings in whole: its ``methods/<pkg>/`` folder, else the file itself."""
    if len(rel.parts) >= 3 and rel.parts[0] == METHODS_PACKAGE:
        return PurePosixPath(*rel.parts[:2])
    return rel


def _package_inits(root: Path, rel: PurePosixPath) -> set[PurePosixPath]:
    out = set()
    for i in range(1, len(rel.parts)):
        init = PurePosixPath(*rel.parts[:i], "__init__.py")
        if (root / init).is_file():
            out.add(init)
    return out


def _repo_method_paths(root: Path, rel: PurePosixPath) -> list[str]:
    units: set[PurePosixPath] = set()
    todo = [_unit(rel)]
    while todo:
        unit = todo.pop()
        if unit in units:
            continue
        units.add(unit)
        sources = [unit] if unit.suffix == ".py" else [PurePosixPath(p) for p in code_files(root, [unit.as_posix()])
                                                       if p.endswith(".py")]
        for src in sources:
            for name in _imported_modules(root / src, src):
                found = _module_file(root, name)
                if found is not None:
                    todo.append(_unit(found))
    paths = set(units)
    for unit in units:
        paths |= _package_inits(root, unit if unit.suffix else unit / "x")
    inside = lambda p: any(u != p and not u.suffix and u in p.parents for u in paths)  # noqa: E731
    return sorted(p.as_posix() for p in paths if not inside(p))


def _sys_path_root(path: Path) -> Path | None:
    """The longest folder of ``sys.path`` holding `path` (where a plugin package was imported from)."""
    best = None
    for entry in sys.path:
        try:
            base = Path(entry or os.getcwd()).resolve()
        except (OSError, RuntimeError):
            continue
        if base in path.parents and (best is None or len(base.parts) > len(best.parts)):
            best = base
    return best


def method_code_record(module_file: str, root: Path | None = None) -> dict[str, Any]:
    """``{"root": "repo"|"sys.path", "paths": [...], "sha256": ...}`` for the file defining a codec class.

    `paths` are relative to the checkout `root` (default: this one) for the suite's methods, or to the
    ``sys.path`` folder a plugin was installed in. Only reads files; imports nothing."""
    root = (Path(root) if root else repo_root()).resolve()
    path = Path(module_file).resolve()
    if not path.is_file():
        raise CodeRecordError(f"cannot record the method's code: {module_file!r} is not a file")
    if root in path.parents:
        paths = _repo_method_paths(root, PurePosixPath(path.relative_to(root).as_posix()))
        return {"root": ROOT_REPO, "paths": paths, "sha256": tree_hash(root, paths)}
    base = _sys_path_root(path)
    if base is None:
        raise CodeRecordError(f"cannot record the method's code: {module_file!r} lies neither in the suite's "
                              f"checkout {str(root)!r} nor in a folder of sys.path")
    rel = path.relative_to(base)
    paths = [rel.parts[0] if len(rel.parts) > 1 else rel.as_posix()]
    return {"root": ROOT_SYS_PATH, "paths": paths, "sha256": tree_hash(base, paths)}


def code_record(module_file: str, root: Path | None = None) -> dict[str, Any]:
    """What a result stores under ``code``: the method's record and the suite's hash."""
    return {"method": method_code_record(module_file, root), "suite_sha256": suite_code_hash(root)}


# ---------------------------------------------------------------- checking a recorded hash
def record_problem(code: Any) -> tuple[str, str] | None:
    """(field, message) for a malformed ``code`` record of a result (None when well formed).

    ``method`` and ``suite_sha256`` may be missing or null where the runner could not record them; it then says
    why in ``error`` (such a result is refused by `bench submit`, not by `bench validate`)."""
    if not isinstance(code, dict):
        return "code", f"must be an object, got {type(code).__name__}"
    if code.get("error") is not None and not isinstance(code["error"], str):
        return "code.error", f"must be a string, got {type(code['error']).__name__}"
    method = code.get("method")
    if method is not None:
        if not isinstance(method, dict):
            return "code.method", "must be an object with `paths` and `sha256`"
        paths = method.get("paths")
        if not isinstance(paths, list) or not paths or len(paths) > MAX_PATHS:
            return "code.method.paths", f"must be a list of 1 to {MAX_PATHS} relative paths"
        for i, p in enumerate(paths):
            why = path_problem(p)
            if why:
                return f"code.method.paths[{i}]", why
        if method.get("root", ROOT_REPO) not in (ROOT_REPO, ROOT_SYS_PATH):
            return "code.method.root", f"must be {ROOT_REPO!r} or {ROOT_SYS_PATH!r}, got {method.get('root')!r:.40}"
    for where, value in (("code.method.sha256", (method or {}).get("sha256", "0" * 64)),
                         ("code.suite_sha256", code.get("suite_sha256") or "0" * 64)):
        if not (isinstance(value, str) and _HEX64.fullmatch(value)):
            return where, f"must be a sha256 (64 lower-case hex digits), got {value!r:.80}"
    return None


def _record_root(method: dict[str, Any], root: Path | None) -> Path | None:
    if method.get("root", ROOT_REPO) == ROOT_REPO:
        return Path(root) if root else repo_root()
    for entry in sys.path:  # a plugin: the folder of sys.path that holds its package here
        base = Path(entry or os.getcwd())
        if all((base / p).exists() for p in method["paths"]):
            return base
    return None


def method_code_problem(code: dict[str, Any], root: Path | None = None) -> str | None:
    """Why the method code a (well-formed) ``code`` record names is not the code here (None when it is)."""
    method = code.get("method")
    if method is None:
        return ("code: the result does not record its method's code (`code.method`"
                + (f"; the run said: {code['error']}" if code.get("error") else "") + "); rerun with this version of "
                "the suite, from a checkout or an installed plugin package")
    paths = method["paths"]
    base = _record_root(method, root)
    if base is None:
        return (f"method code differs from the commit: the plugin files {paths} are not installed on this "
                "machine's sys.path; install the plugin version the result was made with")
    try:
        here = tree_hash(base, paths)
    except CodeRecordError as exc:
        return f"method code differs from the commit: {exc}"
    if here != method["sha256"]:
        return (f"method code differs from the commit: {', '.join(paths)} hash to {here[:12]}… in this checkout, "
                f"the result recorded {method['sha256'][:12]}…; commit the method's code as it was when the result "
                "was made (or rerun from this commit) and submit from that commit")
    return None
