"""The one loader for JSON (and per-image CSV) that may come from strangers (result files, published curves, weights
manifests, the per-image CSV a result names).

Python's `json` module trusts its input: a 5000-digit integer raises ValueError, a 400-digit one overflows
later in float(), 200k nested brackets raise RecursionError, a key given twice silently keeps its last value, and a
multi-gigabyte file is read whole. This loader bounds all of that, refuses duplicate keys, and turns every failure into the caller's own error class (ResultSchemaError for
result and curve files, WeightsError for manifests), with the file name in the message."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_BYTES = 16 << 20  # 16 MiB: the largest result file the suite writes is well under 1 MiB
MAX_DEPTH = 64  # the suite's files nest at most ~6 levels
MAX_NUMBER_CHARS = 64  # a float64 printed by json.dumps needs at most ~24 characters


class _Reject(Exception):
    pass


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Reject(f"a number with {len(text)} digits (at most {MAX_NUMBER_CHARS} characters per number)")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Reject(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS} per number)")
    return float(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused (Python's json keeps the last silently, other readers the first:
    two programs would read two different files)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Reject(f"the key {dup!r:.80} appears twice in one object (readers disagree on which value counts); "
                      "keep one")
    return out


def _depth_ok(obj: Any, limit: int) -> bool:
    """Nesting depth of a parsed value, without recursion."""
    stack = [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            if d > limit:
                return False
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return True


def parse_json(text: str | bytes, *, where: str, error: Callable[[str], Exception],
               max_depth: int = MAX_DEPTH) -> Any:
    """Parse `text` with the limits above; any failure raises `error(message)` (message names `where`)."""
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8")
        obj = json.loads(text, parse_int=_int, parse_float=_float, object_pairs_hook=_object)
    except _Reject as exc:
        raise error(f"cannot read {where}: refused: {exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {where}: not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"cannot read {where}: not valid JSON: {exc}") from None
    except RecursionError:
        raise error(f"cannot read {where}: refused: JSON nested deeper than the parser allows (at most {max_depth} levels)") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise error(f"cannot read {where}: not parseable as JSON ({type(exc).__name__}: {exc})") from None
    if not _depth_ok(obj, max_depth):
        raise error(f"cannot read {where}: refused: JSON nested deeper than {max_depth} levels")
    return obj


def load_json_file(path: Path, *, error: Callable[[str], Exception], max_bytes: int = MAX_BYTES,
                   max_depth: int = MAX_DEPTH) -> Any:
    """Read and parse an untrusted JSON file (size checked before reading); failures raise `error(message)`."""
    path = Path(path)
    try:
        if not path.is_file():
            raise error(f"{str(path)!r} does not exist or is not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"cannot read {str(path)!r}: refused: {size} bytes, more than the {max_bytes} a JSON file of the suite may hold")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {str(path)!r}: {exc}") from None
    if len(data) > max_bytes:  # grew while we looked
        raise error(f"cannot read {str(path)!r}: refused: more than {max_bytes} bytes")
    return parse_json(data, where=repr(str(path)), error=error, max_depth=max_depth)


# ---------------------------------------------------------------- files a result names (its per-image CSV)
MAX_CSV_BYTES = 64 << 20  # the largest per-image CSV the suite writes (790 images x 8 points) is about 2 MB
MAX_CSV_FIELD = 4096  # characters per cell: image names and sha256s are far shorter


def confined_file(folder: Path, name: object, *, what: str, error: Callable[[str], Exception]) -> Path:
    """`folder / name` for a file a result names, refused (`error`) unless `name` is a plain file name (no folder,
    no '..', no absolute path) and the file there is a regular file, not a symbolic link (which could point anywhere)
    and not a device or FIFO. A missing file is returned as is (the caller decides)."""
    import os
    import stat

    from benchmark.safety.safenames import MAX_FILE_NAME_LEN, name_problem

    why = name_problem(name, max_len=MAX_FILE_NAME_LEN)
    if why:
        raise error(f"{what} {why}: a result names its files by plain names in its own folder")
    path = Path(folder) / str(name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise error(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{what} {str(path)!r} is a symbolic link (to {os.readlink(path)!r:.120}); files a result names are "
                    "never read through links: replace it with the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {str(path)!r} is not a regular file")
    return path


def load_csv_file(path: Path, *, error: Callable[[str], Exception], max_bytes: int = MAX_CSV_BYTES,
                  max_field: int = MAX_CSV_FIELD) -> list[dict[str, str]]:
    """The rows of an untrusted CSV file with a header line, bounded: at most `max_bytes`, UTF-8 text without NUL
    bytes, at most `max_field` characters per cell, every row as long as the header. Failures raise `error`."""
    import csv
    import io

    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"cannot read {str(path)!r}: refused: more than {max_bytes} bytes for a CSV file of the suite")
    if b"\x00" in data:
        raise error(f"cannot read {str(path)!r}: a binary file (NUL bytes), not a CSV file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {str(path)!r}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    # csv's own field limit is process-wide: cells are measured here instead, after a parse with a generous limit
    old = csv.field_size_limit()
    try:
        csv.field_size_limit(max(old, len(text) + 1))
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise error(f"cannot read {str(path)!r}: not valid CSV ({exc})") from None
    finally:
        csv.field_size_limit(old)
    if not rows:
        raise error(f"cannot read {str(path)!r}: empty, no header line")
    header = rows[0]
    out = []
    for i, row in enumerate(rows, start=1):
        long = next((c for c in row if len(c) > max_field), None)
        if long is not None:
            raise error(f"cannot read {str(path)!r}: line {i} has a cell of {len(long)} characters "
                        f"(at most {max_field})")
        if i == 1:
            continue
        if len(row) != len(header):
            raise error(f"cannot read {str(path)!r}: line {i} has {len(row)} fields, the header {len(header)}")
        out.append(dict(zip(header, row)))
    return out
