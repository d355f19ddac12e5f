"""One typed options layer: a method declares its options once, everything else reads the declaration.

A codec sets ``options_spec`` to a tuple of `Option` (name, type, default, help, choices, bounds). From that one
declaration come: the casting of ``--option key=value`` strings (``N=16``, ``lambdas=[0.0035,0.013]`` or
``lambdas=0.0035,0.013``, ``hflip=true``), the refusal of an unknown name ("did you mean") or of a value of the
wrong type *before any work* (the codec's constructor validates first, see ``benchmark.contract.codec.Codec``), the
``bench list methods -v`` listing, and the typed values the result file records.

Also here: the one list of budget names and the CLI's choice types (`Budget`, `Device`, `Direction`)."""
from __future__ import annotations

import difflib
import enum
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from benchmark.errors import ConfigError


class Budget(str, enum.Enum):
    """Training budgets every learned method defines (its budget table has exactly these keys)."""

    smoke = "smoke"  # a few steps: the tests and a first look
    quick = "quick"  # minutes on a laptop CPU: the main job
    paper = "paper"  # the paper's schedule (GPU days)


BUDGET_NAMES: tuple[str, ...] = tuple(b.value for b in Budget)


class Device(str, enum.Enum):
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Direction(str, enum.Enum):
    """Stereo direction: code the left view with the right as side information, the reverse, or both."""

    left = "left"
    right = "right"
    both = "both"


def check_budget(budget: str, table: Mapping[str, Any] | None = None, who: str = "") -> str:
    """`budget` if it is one of BUDGET_NAMES (and a key of `table` when given), else a ConfigError listing them."""
    budget = budget.value if isinstance(budget, Budget) else budget
    names = tuple(table) if table is not None else BUDGET_NAMES
    if budget not in names:
        raise ConfigError(f"{who + ': ' if who else ''}unknown budget {budget!r}; choose one of {', '.join(names)}")
    return budget


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (list, tuple):
        return f"list[{type_name(typing.get_args(tp)[0])}]"
    return getattr(tp, "__name__", str(tp))


MAX_INT = (1 << 31) - 1  # integer options end up in C ints (Pillow's quality, torch sizes)


def _scalar(tp: type, value: Any) -> Any:
    """`value` as `tp` (int, float, bool or str), accepting the string forms a command line gives; ValueError if not."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            v = value
        elif isinstance(value, float) and value.is_integer():
            v = int(value)
        elif isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value.strip()) <= 24:
            v = int(value.strip())
        else:
            raise ValueError
        if abs(v) > MAX_INT:  # 1e308 is an integer to Python, but overflows every C library it reaches
            raise ValueError(f"{value!r:.40} is out of range for an integer option (at most {MAX_INT} in magnitude)")
        return v
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        v = float(value)
        if not math.isfinite(v):
            raise ValueError
        return v
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    raise TypeError(f"unsupported option type {tp!r}")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)  # JSONDecodeError is a ValueError
        else:
            return [v.strip() for v in text.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


@dataclass(frozen=True)
class Option:
    """One declared option of a method.

    type: int, float, bool, str, list[int] or list[float] (a list also takes ``a,b,c`` or ``[a,b,c]``).
    default: what the method uses when the option is not given (None: the budget or the protocol decides).
    choices: the allowed values (str options); minimum/maximum: bounds (per element for lists; the minimum is
    exclusive with ``exclusive=True``). unique_sorted: lists are sorted and must not repeat a value (rate points).
    unique: lists must not repeat a value, kept in the given order (rate points whose order the method defines)."""

    name: str
    type: Any
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    exclusive: bool = False
    maximum: float | None = None
    unique_sorted: bool = False
    unique: bool = False

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    def describe(self) -> str:
        bits = [self.type_name]
        if self.choices:
            bits.append("one of " + "|".join(str(c) for c in self.choices))
        if self.minimum is not None:
            bits.append(f"{'>' if self.exclusive else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bits.append(f"<= {self.maximum:g}")
        return ", ".join(bits)

    def parse(self, value: Any) -> Any:
        """The typed value of `value`; ValueError (with the reason) if it is not one."""
        if value is None:
            return None  # "not set": the method's default applies
        origin = typing.get_origin(self.type)
        if origin in (list, tuple):
            inner = typing.get_args(self.type)[0]
            items = [_scalar(inner, v) for v in _as_list(value)]
            if not items:
                raise ValueError("an empty list")
            for v in items:
                self._bounds(v)
            if self.unique_sorted or self.unique:
                dup = sorted({v for v in items if items.count(v) > 1})
                if dup:
                    raise ValueError(f"duplicate values {', '.join(str(v) for v in dup)}: each rate point is coded once; "
                                     "give each value once")
            if self.unique_sorted:
                items = sorted(items)
            return tuple(items)
        v = _scalar(self.type, value)
        if self.choices and v not in self.choices:
            raise ValueError(f"not one of {', '.join(str(c) for c in self.choices)}")
        self._bounds(v)
        return v

    def _bounds(self, v: Any) -> None:
        if self.minimum is not None and (v < self.minimum or (self.exclusive and v == self.minimum)):
            raise ValueError(f"must be {'>' if self.exclusive else '>='} {self.minimum:g}")
        if self.maximum is not None and v > self.maximum:
            raise ValueError(f"must be <= {self.maximum:g}")


def names_line(spec: Sequence[Option]) -> str:
    return ", ".join(f"{o.name} ({o.type_name})" for o in spec)


def check_options(method: str, spec: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """The given options, validated against `spec` and cast to their declared types (only the given keys).

    Raises one ConfigError naming the offending option, its type and the valid names."""
    by_name = {o.name: o for o in spec}
    unknown = [k for k in given if k not in by_name]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, list(by_name), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"{method}: unknown option {k!r}.{hint} Valid options: {names_line(spec) or '(none)'} "
                          f"(`bench list methods -v -p {method}` shows their defaults)")
    out: dict[str, Any] = {}
    for k, v in given.items():
        opt = by_name[k]
        try:
            out[k] = opt.parse(v)
        except (ValueError, TypeError) as exc:
            why = f" ({exc})" if str(exc) else ""
            raise ConfigError(f"{method}: option {k} expects {opt.describe()}, got {v!r}{why}. "
                              f"Valid options: {names_line(spec)}") from None
    return out


def defaults(spec: Iterable[Option]) -> dict[str, Any]:
    return {o.name: o.default for o in spec}


def describe_rows(spec: Iterable[Option]) -> list[tuple[str, str, str, str]]:
    """(name, type/choices, default, help) per option, for `bench list methods -v`."""
    return [(o.name, o.describe(), "-" if o.default is None else json.dumps(o.default, default=str), o.help) for o in spec]


def train_options(*names: str, **help_overrides: str) -> tuple[Option, ...]:
    """Declarations of the trainer's common overrides (TrainConfig fields), by name."""
    return tuple(_TRAIN[n] if n not in help_overrides else Option(**{**_TRAIN[n].__dict__, "help": help_overrides[n]})
                 for n in names)


_TRAIN: dict[str, Option] = {o.name: o for o in (
    Option("steps", int, None, "training steps per model (default: the budget's)", minimum=0),
    Option("epochs", int, None, "training epochs (default: the budget's)", minimum=1),
    Option("batch_size", int, None, "images per step (default: the budget's)", minimum=1),
    Option("crop", int, None, "training crop side in pixels (default: the budget's)", minimum=1),
    Option("lr", float, None, "learning rate (default: the budget's)", minimum=0, exclusive=True),
    Option("aux_lr", float, None, "learning rate of the entropy bottleneck's quantiles", minimum=0, exclusive=True),
    Option("schedule", str, None, "learning-rate schedule", choices=("constant", "cosine", "step", "plateau")),
    Option("val_every", int, None, "steps between validations (0: only at the end)", minimum=0),
    Option("val_samples", int, None, "validation images", minimum=0),
    Option("clip_grad", float, None, "gradient-norm clip (0: none)", minimum=0),
    Option("checkpoint_every", int, None, "steps between checkpoints", minimum=1),
    Option("hflip", bool, None, "random horizontal flips of training crops"),
    Option("num_workers", int, None, "data-loader worker processes", minimum=0),
    Option("restore", str, None, "which weights training ends with", choices=("last", "best")),
)}
