"""The baselines: CompressAI's Ballé family (balle.py), its side-information variants (joint.py), classical codecs
through Pillow (classical.py) and checkpoints from outside the suite (convert.py).

Here: what several of them share.

- A family of methods is written as a table: a base class holds what the members share, a frozen dataclass row
  what tells one member apart; ``row.class_attrs()`` gives the member's class attributes (its ``meta``, stride,
  streams, model class, ...). ``register_family`` makes one subclass of the base per row and registers it, so a
  new architecture of a family is one new row.
- CompressAI's model zoo: it trains one model per quality 1..8 with the loss λ·255²·MSE + bpp;
  ``COMPRESSAI_LAMBDAS[q - 1]`` is the λ of quality q, and ``compressai.zoo.image.cfgs[arch][q]`` the widths
  (N, M) of architecture ``arch`` at quality q, which the codecs use where no width is given (the paper budget)."""
from __future__ import annotations

import math
from typing import Any, Iterable, Protocol

from benchmark.contract.codec import Codec
from benchmark.contract.registry import register_method

# ---------------------------------------------------------------------------- families as tables


class FamilyRow(Protocol):
    def class_attrs(self) -> dict[str, Any]:
        """The class attributes of the member this row describes; ``meta`` (a MethodMeta) among them."""


def class_name(method: str) -> str:
    """The class name of a method: ``mbt2018_mean`` -> ``Mbt2018Mean``."""
    return "".join(part[:1].upper() + part[1:] for part in method.split("_"))


def register_family(base: type[Codec], rows: Iterable[FamilyRow], module: str) -> dict[str, type[Codec]]:
    """One registered subclass of `base` per row, defined in `module`; returned by class name (the caller
    binds them in its module, where their qualified names point)."""
    classes: dict[str, type[Codec]] = {}
    for row in rows:
        attrs = row.class_attrs()
        name = class_name(attrs["meta"].name)
        cls = type(name, (base,), {"__module__": module, "__qualname__": name, "__doc__": attrs["meta"].description,
                                   **attrs})
        classes[name] = register_method(cls)
    return classes


# ---------------------------------------------------------------------------- CompressAI's zoo
COMPRESSAI_LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.18)
QUALITIES = range(1, len(COMPRESSAI_LAMBDAS) + 1)


def zoo_quality(lmbda: float) -> int | None:
    """The quality whose λ is `lmbda`, None when it is not one of the zoo's."""
    for q, l in zip(QUALITIES, COMPRESSAI_LAMBDAS):
        if abs(l - lmbda) < 1e-9:
            return q
    return None


def nearest_quality(lmbda: float, *, log_distance: bool = True) -> int:
    """The quality whose λ is nearest to `lmbda`: by the ratio of the two (log_distance) or by their difference."""
    if log_distance:
        exact = zoo_quality(lmbda)
        if exact is not None:
            return exact
        return min(QUALITIES, key=lambda q: abs(math.log(COMPRESSAI_LAMBDAS[q - 1] / lmbda)))
    return min(QUALITIES, key=lambda q: abs(COMPRESSAI_LAMBDAS[q - 1] - lmbda))


def zoo_widths(arch: str, lmbda: float, *, log_distance: bool = True) -> tuple[int, int]:
    """(N, M) of CompressAI's `arch` at the quality nearest to `lmbda` (see `nearest_quality`)."""
    from compressai.zoo.image import cfgs

    n, m = cfgs[arch][nearest_quality(lmbda, log_distance=log_distance)]
    return n, m
