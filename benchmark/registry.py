"""Registries of methods, datasets and protocols.

Registration is by decorator (``@register_method`` on a Codec subclass, ``@register_dataset("name")`` on a
dataset factory) or by ``register_protocol(Protocol(...))``. Duplicate names are rejected; an unknown name
gets "did you mean"; third-party packages plug in through the entry-point groups ``bench.methods``,
``bench.datasets`` and ``bench.protocols`` (each entry point is imported, and registers on import).
The suite's own modules are discovered by importing every module of ``baselines``, ``methods`` and
``datasets`` on first look-up, so no central list has to be edited to add a method."""
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

from .errors import RegistryError

T = TypeVar("T")

_SUITE_PACKAGES = ("baselines", "methods", "datasets")
ENTRY_POINT_GROUPS = ("bench.methods", "bench.datasets", "bench.protocols")


class Registry(Generic[T]):
    """A name -> object map that refuses duplicates and suggests near names."""

    def __init__(self, kind: str):
        self.kind = kind
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

    def get(self, name: str) -> T:
        discover()
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
        discover()
        names = sorted(self._items)
        return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names

    def items(self) -> Iterator[tuple[str, T]]:
        discover()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        discover()
        return name in self._items or name in self._aliases


def _where(obj: Any) -> str:
    mod = getattr(obj, "__module__", None) or getattr(getattr(obj, "factory", None), "__module__", "?")
    return f"{mod}.{getattr(obj, '__qualname__', getattr(obj, 'name', type(obj).__name__))}"


METHODS: Registry[type] = Registry("method")
DATASETS: Registry["DatasetInfo"] = Registry("dataset")
PROTOCOLS: Registry[Any] = Registry("protocol")


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
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a dataset factory ``f(root, protocol, split, **options) -> torch Dataset of Samples``."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        DATASETS.add(name, DatasetInfo(name, factory, description, tuple(protocols), embedded, how_to_obtain, check))
        return factory

    return deco


def register_protocol(protocol: Any) -> Any:
    PROTOCOLS.add(protocol.name, protocol)
    return protocol


_discovered = False
_discovering = False


def discover() -> None:
    """Import the suite's own method/dataset modules and every installed plugin, once."""
    global _discovered, _discovering
    if _discovered or _discovering:
        return
    _discovering = True
    try:
        for pkg_name in _SUITE_PACKAGES:
            pkg = importlib.import_module(pkg_name)
            for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
                leaf = info.name.rsplit(".", 1)[-1]
                if leaf.startswith("_") or leaf in ("tests", "conftest"):
                    continue
                importlib.import_module(info.name)
        for group in ENTRY_POINT_GROUPS:
            for ep in metadata.entry_points(group=group):
                try:
                    obj = ep.load()
                except Exception as exc:  # a broken plugin must not hide the suite's own methods
                    raise RegistryError(f"plugin entry point {ep.name!r} ({ep.value}) in group {group} failed to import: {exc}") from exc
                if group == "bench.methods" and isinstance(obj, type) and obj.__name__ and hasattr(obj, "meta"):
                    if obj.meta.name not in METHODS._items:
                        register_method(obj)
        _discovered = True
    finally:
        _discovering = False


def get_method(name: str) -> type:
    return METHODS.get(name)


def get_dataset(name: str) -> DatasetInfo:
    return DATASETS.get(name)


def get_protocol(name: str) -> Any:
    return PROTOCOLS.get(name)
