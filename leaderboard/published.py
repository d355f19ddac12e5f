"""Published curves: rate–quality points taken from papers and authors' repositories, one JSON file per curve.

A curve file says what was measured (metric, rate type), under which protocol, and where the numbers came
from (`source`, `provenance` exact|digitized, `accuracy`). The leaderboard shows these beside the suite's
own measurements but never mixes the two. `bench validate` checks a curve file through `validate_published`.

Format (schema version 1)::

    {"kind": "published_curve", "schema_version": 1,
     "method": "ndic.balle2018", "label": "NDIC (ours+Ballé2018)", "protocol": "kitti-stereo/ndic",
     "scenario": "decoder_side_info", "metric": "psnr", "rate": "bpp_estimated",
     "points": [{"bpp": 0.1, "value": 23.4}, ...],
     "source": "paper / figure / repository file", "provenance": "exact",
     "accuracy": "...", "notes": "...",            # optional strings
     "sources": 4}                                 # optional: number of distributed sources (M)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from benchmark.errors import ResultSchemaError
from benchmark.results import SCENARIOS

KIND = "published_curve"
SCHEMA_VERSION = 1
METRICS = ("psnr", "ms_ssim", "ms_ssim_db")
RATES = ("bpp", "bpp_estimated", "bpp_uniform", "bpp_prior", "bits/sample")
PROVENANCES = ("exact", "digitized")
DEFAULT_DIR = Path(__file__).resolve().parent / "published"

_REQUIRED_STR = ("method", "label", "protocol", "scenario", "metric", "rate", "source", "provenance")
_OPTIONAL_STR = ("accuracy", "notes")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_everywhere(obj: Any, where: str) -> None:
    """JSON parsers accept NaN/Infinity literals; a curve file must not hold them anywhere."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ResultSchemaError(where or "<root>", f"must be a finite number, got {obj!r}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite_everywhere(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_everywhere(v, f"{where}[{i}]")


def _one_of(obj: dict, key: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if obj[key] not in allowed:
        raise ResultSchemaError(key, f"must be one of {', '.join(allowed)}; got {obj[key]!r}")


def validate_published(obj: Any) -> dict[str, Any]:
    """Check a published-curve dict; return it. Raises ResultSchemaError(field, message) naming the field."""
    if not isinstance(obj, dict):
        raise ResultSchemaError("<root>", f"a published-curve file holds a JSON object, got {type(obj).__name__}")
    if "kind" not in obj:
        raise ResultSchemaError("kind", f"missing required field (expected {KIND!r})")
    if obj["kind"] != KIND:
        raise ResultSchemaError("kind", f"expected {KIND!r}, got {obj['kind']!r}")
    if "schema_version" not in obj:
        raise ResultSchemaError("schema_version", "missing required field")
    version = obj["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultSchemaError("schema_version", f"must be an integer, got {version!r}")
    if version != SCHEMA_VERSION:
        raise ResultSchemaError(
            "schema_version",
            f"unknown published-curve schema version {version}; this suite reads version {SCHEMA_VERSION} "
            "(upgrade dsc-bench to read newer files)",
        )
    _finite_everywhere(obj, "")
    for key in _REQUIRED_STR:
        if key not in obj:
            raise ResultSchemaError(key, "missing required field")
        if not isinstance(obj[key], str):
            raise ResultSchemaError(key, f"must be a string, got {type(obj[key]).__name__} ({obj[key]!r:.60})")
        if not obj[key].strip():
            raise ResultSchemaError(key, "must not be empty")
    for key in _OPTIONAL_STR:
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise ResultSchemaError(key, f"must be a string or null, got {type(obj[key]).__name__}")
    from benchmark.results import check_names

    check_names({k: obj[k] for k in ("method", "protocol")})
    _one_of(obj, "metric", METRICS)
    _one_of(obj, "rate", RATES)
    _one_of(obj, "provenance", PROVENANCES)
    _one_of(obj, "scenario", SCENARIOS)
    if obj.get("sources") is not None:
        s = obj["sources"]
        if not isinstance(s, int) or isinstance(s, bool) or s < 1:
            raise ResultSchemaError("sources", f"must be a positive integer (number of sources M), got {s!r}")

    if "points" not in obj:
        raise ResultSchemaError("points", "missing required field")
    points = obj["points"]
    if not isinstance(points, list):
        raise ResultSchemaError("points", f"must be a list, got {type(points).__name__}")
    if not points:
        raise ResultSchemaError("points", "must hold at least one point")
    for i, p in enumerate(points):
        where = f"points[{i}]"
        if not isinstance(p, dict):
            raise ResultSchemaError(where, f"must be an object {{'bpp': .., 'value': ..}}, got {type(p).__name__}")
        for key in ("bpp", "value"):
            if key not in p:
                raise ResultSchemaError(f"{where}.{key}", "missing required field")
            if not _is_num(p[key]):
                raise ResultSchemaError(f"{where}.{key}", f"must be a number, got {type(p[key]).__name__} ({p[key]!r:.40})")
        if "rate_point" in p and not isinstance(p["rate_point"], str):
            raise ResultSchemaError(f"{where}.rate_point", f"must be a string, got {type(p['rate_point']).__name__}")
        if p["bpp"] < 0:
            raise ResultSchemaError(f"{where}.bpp", f"must be >= 0, got {p['bpp']}")
        if obj["metric"] == "ms_ssim" and not 0.0 <= p["value"] <= 1.0:
            raise ResultSchemaError(f"{where}.value", f"linear MS-SSIM must lie in [0, 1], got {p['value']}")
    return obj


def load_published_file(path: Path) -> dict[str, Any]:
    from benchmark.results import load_untrusted

    return validate_published(load_untrusted(path))


def curve_files(dirs: Iterable[Path] | Path | None = None) -> list[Path]:
    """Every `*.json` under the given folders (recursively), sorted; the package's folder by default."""
    if dirs is None:
        dirs = [DEFAULT_DIR]
    elif isinstance(dirs, (str, Path)):
        dirs = [dirs]
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(p for p in d.rglob("*.json") if not p.name.startswith(".")))
    return files


def scan_published(dirs: Iterable[Path] | Path | None = None) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[Path, str]]]:
    """Load every curve file (published-curve or CompressAI result JSON); return ([(path, curve)], [(path, why it
    was skipped)]) without raising."""
    from benchmark.untrusted import load_json_file

    from .compare import is_compressai_json, published_from_compressai

    good, bad = [], []
    for path in curve_files(dirs):
        try:
            obj = load_json_file(path, error=lambda msg: ResultSchemaError("<file>", msg))
            if is_compressai_json(obj):  # CompressAI's result format (eval_model, the leaderboard's export)
                good.extend((path, validate_published(c)) for c in published_from_compressai(obj, str(path)))
            else:
                good.append((path, validate_published(obj)))
        except ResultSchemaError as exc:
            bad.append((path, str(exc)))
    return good, bad


def load_published(dirs: Iterable[Path] | Path | None = None) -> list[dict[str, Any]]:
    """Load and validate every curve file under `dirs` (default: the package's `leaderboard/published`).

    Raises ResultSchemaError naming the file and the offending field at the first invalid file."""
    out = []
    for path in curve_files(dirs):
        try:
            out.append(load_published_file(path))
        except ResultSchemaError as exc:
            raise ResultSchemaError(exc.field, f"in {path}: {str(exc).split(': ', 1)[-1]}") from exc
    return out
