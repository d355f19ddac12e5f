"""Registries of methods, datasets and protocols.

Registration is by decorator (``@register_method`` on a Codec subclass, ``@register_dataset("name")`` on a
dataset factory) or by ``register_protocol(Protocol(...))``. Duplicate names are rejected; an unknown name
gets "did you mean". Packages plug in through the entry-point groups ``bench.methods``, ``bench.datasets`` and
``bench.protocols``: an entry point that names a module is imported (and registers on import); one that names a
package has every module in it imported (names starting with ``_`` excepted). The suite declares its own
packages the same way (``pyproject.toml``: ``baselines`` and ``methods`` as methods, ``datasets`` as datasets), so
the core names no package above it and no central list has to be edited to add a method. Methods and datasets are
discovered separately: looking up a dataset or a protocol never imports a method's code (the evaluation parent
of a sandboxed run, benchmark/evaluation/sandbox.py, must never import it)."""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from benchmark.errors import RegistryError

T = TypeVar("T")

# the entry-point groups each kind of look-up imports
_GROUPS = {"methods": ("bench.methods",), "datasets": ("bench.datasets", "bench.protocols")}


class Registry(Generic[T]):
    """A name -> object map that refuses duplicates and suggests near names."""

    def __init__(self, kind: str, discovers: str):
        self.kind = kind
        self.discovers = discovers  # which half of `discover` a look-up needs ("methods" or "datasets")
        self.sealed: str | None = None  # set inside a sandboxed role: every look-up raises with this reason
        self._items: dict[str, T] = {}
        self._aliases: dict[str, tuple[str, str]] = {}  # old name -> (current name, why it changed)

    def add(self, name: str, obj: T) -> T:
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items and self._items[name] is not obj:
            raise RegistryError(
                f"duplicate {self.kind} name {name!r}: already registered by {_where(self._items[name])}; "
                f"pick another name (a variant can use a tag, e.g. '{name}.v2')"
            )
        self._items[name] = obj
        return obj

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def alias(self, old: str, new: str, why: str) -> None:
        """Keep a renamed entry reachable under its old name; each look-up of the old name warns."""
        self._aliases[old] = (new, why)

    def _discover(self) -> None:
        if self.sealed:
            from benchmark.errors import IsolationError

            raise IsolationError(self.sealed)
        discover(self.discovers)

    def get(self, name: str) -> T:
        self._discover()
        if name in self._aliases and name not in self._items:
            new, why = self._aliases[name]
            msg = f"{self.kind} {name!r} is deprecated: use {new!r} ({why})"
            warnings.warn(msg, DeprecationWarning, stacklevel=2)
            print(f"warning: {msg}", file=sys.stderr)
            name = new
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}.{hint} Run `bench list {self.kind}s` to see all "
                f"{len(self._items)} registered {self.kind}s."
            ) from None

    def names(self, pattern: str | None = None) -> list[str]:
        self._discover()
        names = sorted(self._items)
        return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names

    def items(self) -> Iterator[tuple[str, T]]:
        self._discover()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items or name in self._aliases


def _where(obj: Any) -> str:
    mod = getattr(obj, "__module__", None) or getattr(getattr(obj, "factory", None), "__module__", "?")
    return f"{mod}.{getattr(obj, '__qualname__', getattr(obj, 'name', type(obj).__name__))}"


METHODS: Registry[type] = Registry("method", "methods")
DATASETS: Registry["DatasetInfo"] = Registry("dataset", "datasets")
PROTOCOLS: Registry[Any] = Registry("protocol", "datasets")


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset family: a factory building split readers from a local root (or embedded data)."""

    name: str
    factory: Callable[..., Any]
    description: str
    protocols: tuple[str, ...]
    embedded: bool = False  # ships with the suite's dependencies; no --root needed
    how_to_obtain: str = ""
    check: Callable[..., Any] | None = field(default=None, compare=False)
    # files of an embedded dataset (inside installed packages): hidden from every sandboxed role, so a method's
    # code cannot read the test images it codes (benchmark/evaluation/sandbox.py)
    data_files: Callable[[], list[Any]] | None = field(default=None, compare=False)
    # generated from a seed (no files): a training sandbox builds its train/val splits itself instead of being
    # handed materialised samples
    generated: bool = False

    @property
    def default_protocol(self) -> str:
        return self.protocols[0]


def register_method(cls: type) -> type:
    """Class decorator: register a Codec subclass under ``cls.meta.name``."""
    meta = getattr(cls, "meta", None)
    if meta is None:
        raise RegistryError(f"{cls.__qualname__} has no `meta: MethodMeta`; set one before registering")
    METHODS.add(meta.name, cls)
    return cls


def register_dataset(
    name: str,
    *,
    description: str,
    protocols: tuple[str, ...] | list[str],
    embedded: bool = False,
    how_to_obtain: str = "",
    check: Callable[..., Any] | None = None,
    data_files: Callable[[], list[Any]] | None = None,
    generated: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a dataset factory ``f(root, protocol, split, **options) -> torch Dataset of Samples``."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        DATASETS.add(name, DatasetInfo(name, factory, description, tuple(protocols), embedded, how_to_obtain, check,
                                       data_files, generated))
        return factory

    return deco


def register_protocol(protocol: Any) -> Any:
    PROTOCOLS.add(protocol.name, protocol)
    return protocol


_discovered: set[str] = set()
_discovering: set[str] = set()


def discover(kind: str | None = None) -> None:
    """Import the suite's own modules and installed plugins of `kind` ("methods" or "datasets"; None: both), once.
    Methods need the protocols their modules name, so discovering methods discovers datasets first."""
    kinds = ["datasets", "methods"] if kind in (None, "methods") else [kind]
    for k in kinds:
        if k in _discovered or k in _discovering:
            continue
        _discovering.add(k)
        try:
            for group in _GROUPS[k]:
                for ep in metadata.entry_points(group=group):
                    _load_entry_point(ep, group)
            _discovered.add(k)
        finally:
            _discovering.discard(k)


def _load_entry_point(ep: Any, group: str) -> None:
    """Import one entry point: a module (it registers on import), every module of a package, or a Codec class."""
    try:
        obj = ep.load()
        if hasattr(obj, "__path__"):  # a package: every module in it
            for info in pkgutil.walk_packages(obj.__path__, prefix=obj.__name__ + "."):
                leaf = info.name.rsplit(".", 1)[-1]
                if not (leaf.startswith("_") or leaf in ("tests", "conftest")):
                    importlib.import_module(info.name)
    except Exception as exc:  # a broken plugin must not pass for a missing method
        raise RegistryError(f"plugin entry point {ep.name!r} ({ep.value}) in group {group} failed to import: {exc}") from exc
    if group == "bench.methods" and isinstance(obj, type) and hasattr(obj, "meta") and obj.meta.name not in METHODS._items:
        register_method(obj)


def method_class(name: str, module: str | None = None) -> type:
    """The method class `name`; with `module` (where an earlier look-up found it), only that module is imported
    (a sandboxed role imports the one method it runs, not every method of the suite)."""
    if module and name not in METHODS._items:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    if name in METHODS._items and not METHODS.sealed:
        return METHODS._items[name]
    return METHODS.get(name)


def get_method(name: str) -> type:
    return METHODS.get(name)


def get_dataset(name: str) -> DatasetInfo:
    return DATASETS.get(name)


def get_protocol(name: str) -> Any:
    return PROTOCOLS.get(name)
