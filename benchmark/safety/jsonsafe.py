"""The one JSON sanitiser: turn anything a run records into values `json.dumps(allow_nan=False)` accepts.

- non-finite floats (nan, ±inf) become null (JSON has no such numbers; result validation rejects them);
- tuples become lists, mapping keys strings, `Path`s strings;
- one-element tensors and numpy scalars become Python numbers;
- anything else is recorded by its `repr` (never silently dropped, never an exception at write time).
"""
from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any, Mapping


def jsonable(obj: Any) -> Any:
    """A JSON-safe copy of `obj` (see the module docstring)."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    if _is_scalar_array(obj):
        return jsonable(obj.item())
    return repr(obj)


def _is_scalar_array(obj: Any) -> bool:
    """A torch tensor with one element, or a numpy scalar / 0-d array."""
    numel = getattr(obj, "numel", None)
    if callable(numel):
        return numel() == 1
    return getattr(obj, "ndim", None) == 0 and callable(getattr(obj, "item", None))
