"""Text cells of the CSV files the suite writes, made safe to open in a spreadsheet.

Spreadsheet programs (Excel, LibreOffice, Google Sheets) evaluate a cell that begins with ``=``, ``+``, ``-``
or ``@`` as a formula, and treat a leading tab or carriage return as a prefix to such a one: a method label
``=cmd|' /C calc'!A0`` or an image named ``=HYPERLINK(...)`` in a result file would run as a formula in the
reader's spreadsheet (CSV formula injection). As OWASP recommends, such a text cell is prefixed with a single
quote, which spreadsheets show as text and never evaluate; control characters (ANSI escapes, NUL, newlines
inside a name) are written as visible escapes (``\\x1b``, ``\\n``). Numbers, and text that is exactly a number
(``-3.21``, ``1e-05``, ``-inf``: what the leaderboard writes for BD-rates), are left as they are, so the
CSV still loads as numbers.

Used by leaderboard/outputs.py (points.csv, leaderboard.csv); `safe_cell` is what the per-image CSV writer
applies to its text cells (image names, rate points, sha256s are unaffected)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _NAMED.get(ch) or f"\\x{ord(ch):02x}"


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet would show it without evaluating anything: a text cell beginning with = + - @, tab
    or CR gets a leading single quote, and control characters become visible escapes. Non-strings (numbers,
    None, booleans) and text that is exactly a number come back unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if _NUMBER.fullmatch(value):
        return value
    text = "'" + value if value.startswith(FORMULA_START) else value
    return _CONTROL.sub(_escape, text)


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A CSV row (column -> value) with every text cell passed through `safe_cell`."""
    return {k: safe_cell(v) for k, v in row.items()}
