"""Protocol- and method-specific leaderboard sections, reached through registration (not found by name).

A module that knows one protocol or method registers its section here; the leaderboard (`leaderboard.protocol`,
`leaderboard.build`) asks this table and never imports section modules by name. Three kinds:

- `register_protocol_section(protocol, fn)`: fn(results, out_dir) -> markdown that replaces the generic
  tables of that protocol (e.g. `gaussian/wz`: its Wyner–Ziv bounds and per-stage tables).
- `register_extra_section(fn)`: fn(results) -> markdown or None, shown under every protocol's generic tables
  (e.g. DRASIC's gap to its joint reference; it returns None where it has nothing to say).
- `register_board_section(fn)`: fn(results, out_dir, per_image) -> markdown or "", shown after all protocols
  (e.g. learning curves at equal training, which span protocols); `per_image(result)` gives that result's
  per-image rows (rate point -> image -> (bpp, psnr); {} without a CSV), for intervals over test images.

The sections shipped with the suite are registered in `_register_builtin`; a plugin calls the functions above
at import time. Registering the same protocol twice replaces the earlier section (a plugin may override)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ProtocolSection = Callable[[list[dict[str, Any]], Path], str]
ExtraSection = Callable[[list[dict[str, Any]]], "str | None"]
PerImage = Callable[[Any], dict[str, dict[str, tuple[float, float]]]]
BoardSection = Callable[[list[Any], Path, PerImage], str]

PROTOCOL_SECTIONS: dict[str, ProtocolSection] = {}
EXTRA_SECTIONS: list[ExtraSection] = []
BOARD_SECTIONS: list[BoardSection] = []
_builtin_done = False
GAUSSIAN_PROTOCOL = "gaussian/wz"


def register_protocol_section(protocol: str, fn: ProtocolSection) -> ProtocolSection:
    PROTOCOL_SECTIONS[protocol] = fn
    return fn


def register_extra_section(fn: ExtraSection) -> ExtraSection:
    if fn not in EXTRA_SECTIONS:
        EXTRA_SECTIONS.append(fn)
    return fn


def register_board_section(fn: BoardSection) -> BoardSection:
    if fn not in BOARD_SECTIONS:
        BOARD_SECTIONS.append(fn)
    return fn


def _register_builtin() -> None:
    """The suite's own sections (explicit imports; a section a plugin registered first for the same protocol
    is kept)."""
    global _builtin_done
    if _builtin_done:
        return
    _builtin_done = True
    from .drasic import joint_gap_section
    from .gaussian import gaussian_section
    from .learning_curves import learning_curve_section

    PROTOCOL_SECTIONS.setdefault(GAUSSIAN_PROTOCOL, gaussian_section)
    register_extra_section(joint_gap_section)
    register_board_section(learning_curve_section)


def protocol_section_for(protocol: str) -> ProtocolSection | None:
    _register_builtin()
    return PROTOCOL_SECTIONS.get(protocol)


def extra_sections() -> Iterable[ExtraSection]:
    _register_builtin()
    return tuple(EXTRA_SECTIONS)


def board_sections() -> Iterable[BoardSection]:
    _register_builtin()
    return tuple(BOARD_SECTIONS)
