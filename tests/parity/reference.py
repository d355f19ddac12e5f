"""Find and import the authors' reference implementations, each in isolation.

The parity tests load the authors' published model code (NDIC, NDIC-CAM, Neural DSC, DRASIC) next to
ours. That code uses generic top-level names (``models``, ``utils``, ``config``, ``code``, even
``benchmark``) that would shadow our packages or the standard library, so it is imported only inside
:func:`reference_import`, which hides every clashing module for the duration of the ``with`` block and
restores ``sys.path`` and ``sys.modules`` exactly afterwards.

Where the code is
    ``$BENCH_REFERENCE_CODE`` (one folder per tree: ``ndic``, ``ndic-cam``, ``neural-dsc``, ``drasic``);
    when unset, the folder ``shared/reference-code`` beside this repository's root (computed at run time
    from this file's location). When it is absent the calling test is skipped with that reason.

API (stable; other parity tests rely on it)
    ``reference_root() -> Path | None``
        the reference-code folder, or None when absent.
    ``reference_tree(name) -> Path``
        ``<root>/<name>``; ``pytest.skip`` with the reason when it is missing.
    ``reference_import(name, *modules, path="", stubs=None)`` (context manager)
        puts ``<root>/<name>/<path>`` first on ``sys.path``, hides our modules whose top-level names the
        tree also defines (and any stubbed names), installs ``stubs`` (``{"module.name": module_or_dict}``)
        and imports ``modules`` (dotted names relative to that folder). Yields the module when one name is
        given, a tuple in the same order when several are. Build and run the reference model INSIDE the
        block: objects survive it, but code that imports lazily at call time would see our modules again.
    ``stub_module(name, **attrs) -> ModuleType``
        a module object for what the old code imports but the model does not need (a logger, a renamed
        file); the stubs live in the tests, the reference files are never edited.
    ``seeded_(module, seed, scale=...)``
        fill every floating parameter and buffer of a module with seeded random values in place (so
        zero-initialised or constant-initialised layers do not hide a wrong mapping).

Example::

    from .reference import reference_import
    with reference_import("ndic", "models.distributed_model") as ref:
        theirs = ref.DistributedAutoEncoder(num_filters=8, bound=0.11)
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

import pytest
import torch

ENV_VAR = "BENCH_REFERENCE_CODE"
_REPO = Path(__file__).resolve().parents[2]


def reference_root() -> Path | None:
    """The folder holding the authors' trees, or None when it does not exist."""
    value = os.environ.get(ENV_VAR)
    root = Path(value).expanduser() if value else _REPO.parent / "shared" / "reference-code"
    return root.resolve() if root.is_dir() else None


def reference_tree(name: str) -> Path:
    """``<root>/<name>``, or skip the calling test saying what is missing and how to provide it."""
    root = reference_root()
    if root is None:
        pytest.skip(f"reference code not found: set {ENV_VAR} to the folder holding the authors' trees "
                    f"(default: shared/reference-code beside the repository)")
    tree = root / name
    if not tree.is_dir():
        pytest.skip(f"reference tree {name!r} not found under {ENV_VAR}={root}")
    return tree


def stub_module(name: str, **attrs) -> ModuleType:
    """A stand-in module ``name`` carrying ``attrs`` (for imports the model itself never uses)."""
    module = ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _top_level_names(folder: Path) -> set[str]:
    names = set()
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
        elif entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
    return names


def _synthetic_package(name: str, folder: Path) -> ModuleType:
    """A package for a folder without ``__init__.py``, bound to that folder only (no namespace merging)."""
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(folder)]
    return module


def _owned(name: str, tops: set[str]) -> bool:
    return name.split(".", 1)[0] in tops


@contextlib.contextmanager
def reference_import(name: str, *modules: str, path: str = "",
                     stubs: Mapping[str, ModuleType | Mapping] | None = None) -> Iterator:
    """Import ``modules`` from reference tree ``name`` with our packages and the stdlib out of the way."""
    folder = reference_tree(name) / path if path else reference_tree(name)
    if not folder.is_dir():
        pytest.skip(f"reference folder {folder} not found")
    stubs = dict(stubs or {})
    hidden_tops = _top_level_names(folder)
    stub_names = set(stubs)
    saved_path = list(sys.path)
    saved = {k: v for k, v in sys.modules.items() if _owned(k, hidden_tops) or k in stub_names}
    for key in saved:
        del sys.modules[key]
    importlib.invalidate_caches()
    try:
        sys.path.insert(0, str(folder))
        for top in sorted(hidden_tops):
            sub = folder / top
            if sub.is_dir() and not (sub / "__init__.py").exists():
                sys.modules[top] = _synthetic_package(top, sub)
        for stub_name, stub in stubs.items():
            sys.modules[stub_name] = stub if isinstance(stub, ModuleType) else stub_module(stub_name, **stub)
        loaded = tuple(importlib.import_module(m) for m in modules)
        yield loaded[0] if len(loaded) == 1 else loaded
    finally:
        sys.path[:] = saved_path
        for key in [k for k in sys.modules if _owned(k, hidden_tops) or k in stub_names]:
            del sys.modules[key]
        sys.modules.update(saved)
        importlib.invalidate_caches()


def seeded_(module: torch.nn.Module, seed: int, scale: float = 0.1, positive: tuple[str, ...] = ()) -> None:
    """Overwrite every floating parameter and buffer of ``module`` with seeded values, in place.

    Values are ``scale * N(0, 1)``; tensors whose name contains one of ``positive`` get ``|.| + scale``
    instead (for reparametrised quantities that must stay positive, e.g. GDN's beta)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tensors = list(module.named_parameters()) + list(module.named_buffers())
        for key, tensor in tensors:
            if not tensor.is_floating_point():
                continue
            value = torch.randn(tensor.shape, generator=generator, dtype=torch.float64) * scale
            if any(p in key for p in positive):
                value = value.abs() + scale
            tensor.copy_(value.to(tensor.dtype))
