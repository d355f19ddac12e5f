"""The one place that decides which names may become parts of a file path or a link.

Method names, variants and protocol names come from result files and published curves, i.e. from strangers.
The suite builds file names from them (`<out>/<protocol>/<method>[.variant].json`, the leaderboard's
CompressAI export, plot names) and puts them into Markdown/HTML. A name is safe when it is a short
identifier: letters, digits and ``_ . + = -``, not starting with ``.`` or ``-``, without ``..``. A protocol
name is one to four such segments joined by ``/``. Validators reject anything else (naming the field);
writers call `safe_path` so that no name, validated or not, can place a file outside its folder."""
from __future__ import annotations

import re
from pathlib import Path

from .errors import OutputError

MAX_LEN = 128
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*")


def name_problem(value: object, *, slashes: bool = False) -> str | None:
    """Why `value` cannot be used as a name in a path (None when it can). `slashes`: a protocol-style name."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_LEN:
        return f"is {len(value)} characters long; at most {MAX_LEN}"
    parts = value.split("/") if slashes else [value]
    if len(parts) > 4:
        return f"has {len(parts)} '/'-separated parts; at most 4"
    for part in parts:
        if not _NAME.fullmatch(part) or ".." in part:
            return (f"{value!r:.80} is not a safe name: use letters, digits and _ . + = -"
                    + (" (segments joined by '/')" if slashes else "")
                    + ", not starting with '.' or '-', without '..'")
    return None


def is_safe_name(value: object, *, slashes: bool = False) -> bool:
    return name_problem(value, slashes=slashes) is None


def safe_path(base: Path, *parts: str) -> Path:
    """`base / parts...`, refusing (OutputError) any part that is not a safe name or a result outside `base`."""
    base = Path(base)
    for part in parts:
        why = name_problem(part, slashes=False)
        if why:
            raise OutputError(f"refusing to write under {str(base)!r}: file name part {why}")
    path = base.joinpath(*parts)
    root = base.resolve()
    if root != path.resolve() and root not in path.resolve().parents:
        raise OutputError(f"refusing to write {str(path)!r}: it lies outside {str(base)!r}")
    return path
