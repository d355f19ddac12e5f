"""The one place that decides which names may become parts of a file path or a link.

Method names, variants and protocol names come from result files and published curves, i.e. from strangers.
The suite builds file names from them (`<out>/<protocol>/<method>[.variant].json`, the leaderboard's
CompressAI export, plot names) and puts them into Markdown/HTML. A name is safe when it is a short
identifier: letters, digits and ``_ . + = -``, not starting with ``.`` or ``-``, without ``..``. A protocol
name is one to four such segments joined by ``/``. Validators reject anything else (naming the field);
writers call `safe_path` so that no name, validated or not, can place a file outside its folder.

Lengths: the longest file name the suite builds from these names is the leaderboard's CompressAI export,
``<protocol with / as __>__<method>.<variant>[-N].json``, written through a hidden temporary
``.<name>.XXXXXXXX.tmp``; a method or variant of at most MAX_LEN (64) characters and a protocol of at most
MAX_PROTOCOL_LEN (96) keep it within the 255 bytes a file name may have, so a name `bench validate` accepts
is one every writer can use."""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.errors import OutputError

MAX_LEN = 64  # a method or variant name
MAX_PROTOCOL_LEN = 96  # a protocol name, '/' included
MAX_KEY_LEN = 2 * MAX_LEN + 1  # a result key "<method>.<variant>" (the runner's file names under --out)
MAX_FILE_NAME_LEN = 240  # a file name part written through benchmark.safety.atomicio (its temporary name adds 14)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*")


def name_problem(value: object, *, slashes: bool = False, max_len: int | None = None) -> str | None:
    """Why `value` cannot be used as a name in a path (None when it can). `slashes`: a protocol-style name.
    `max_len`: the length limit (default MAX_LEN, MAX_PROTOCOL_LEN with `slashes`)."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    limit = max_len if max_len is not None else (MAX_PROTOCOL_LEN if slashes else MAX_LEN)
    if len(value) > limit:
        return (f"is {len(value)} characters long; at most {limit} (longer names would not fit the file names the "
                "leaderboard writes: shorten it)")
    parts = value.split("/") if slashes else [value]
    if len(parts) > 4:
        return f"has {len(parts)} '/'-separated parts; at most 4"
    for part in parts:
        if not _NAME.fullmatch(part) or ".." in part:
            return (f"{value!r:.80} is not a safe name: use letters, digits and _ . + = -"
                    + (" (segments joined by '/')" if slashes else "")
                    + ", not starting with '.' or '-', without '..'")
    return None


def key_problem(key: object) -> str | None:
    """Why `key` ("<method>" or "<method>.<variant>", a result's file name stem under --out) cannot be used."""
    return name_problem(key, max_len=MAX_KEY_LEN)


def safe_path(base: Path, *parts: str) -> Path:
    """`base / parts...`, refusing (OutputError) any part that is not a safe name or a result outside `base`."""
    base = Path(base)
    for part in parts:
        why = name_problem(part, slashes=False, max_len=MAX_FILE_NAME_LEN)
        if why:
            raise OutputError(f"refusing to write under {str(base)!r}: file name part {why}")
    path = base.joinpath(*parts)
    root = base.resolve()
    if root != path.resolve() and root not in path.resolve().parents:
        raise OutputError(f"refusing to write {str(path)!r}: it lies outside {str(base)!r}")
    return path
