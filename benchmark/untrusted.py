"""The one loader for JSON that may come from strangers (result files, published curves, weights manifests).

Python's `json` module trusts its input: a 5000-digit integer raises ValueError, a 400-digit one overflows
later in float(), 200k nested brackets raise RecursionError, and a multi-gigabyte file is read whole. This
loader bounds all of that and turns every failure into the caller's own error class (ResultSchemaError for
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
        obj = json.loads(text, parse_int=_int, parse_float=_float)
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
