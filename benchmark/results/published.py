"""The published-curve schema and the CompressAI result-JSON shape, checked in the core.

`bench validate` (benchmark.results.files.validate_any) and the leaderboard (leaderboard.published,
leaderboard.compare) read these files through the same checks, so the core never imports the leaderboard.
A published curve is one metric of one method under one protocol, with where the numbers come from
(`source`, `provenance` exact|digitized, `accuracy`).

A CompressAI result JSON (what `compressai.utils.eval_model` prints) holds numbers only. Before the suite reads
one as a curve it must say what a published-curve file says: under which `protocol` it was measured, its
`scenario`, its `rate` type and its `provenance`, each as a key of the file or given on the command line
(`compressai_labels`); nothing is assumed. docs/formats.md shows the mapping."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from benchmark.errors import ResultSchemaError
from benchmark.results.schema import SCENARIOS, check_names

KIND = "published_curve"
SCHEMA_VERSION = 1
METRICS = ("psnr", "ms_ssim", "ms_ssim_db")
RATES = ("bpp", "bpp_estimated", "bpp_uniform", "bpp_prior", "bits/sample")
PROVENANCES = ("exact", "digitized")

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
    check_names({k: obj[k] for k in ("method", "protocol")})
    _one_of(obj, "metric", METRICS)
    _one_of(obj, "rate", RATES)
    _one_of(obj, "provenance", PROVENANCES)
    _one_of(obj, "scenario", SCENARIOS)
    if obj.get("sources") is not None:
        s = obj["sources"]
        if not isinstance(s, int) or isinstance(s, bool) or s < 1:
            raise ResultSchemaError("sources", f"must be a positive integer (number of sources M), got {s!r}")

    _check_points(obj)
    return obj


def _check_points(obj: dict[str, Any]) -> None:
    """The curve's points: a non-empty list of {bpp >= 0, value}, linear MS-SSIM within [0, 1]."""
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


# ---------------------------------------------------------------- CompressAI result JSON
COMPRESSAI_KIND = "compressai_result"


def is_compressai_json(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("results"), dict) and "bpp" in obj["results"] and "kind" not in obj


def compressai_columns(obj: Any) -> tuple[list, list | None, list | None]:
    """(bpp, psnr, ms-ssim) lists of a CompressAI result JSON ({"name", "description", "results": {"bpp": [...],
    "psnr-rgb": [...], ...}}); psnr or ms-ssim is None when absent. Raises ResultSchemaError naming the field."""
    if not is_compressai_json(obj):
        raise ResultSchemaError("results", "a CompressAI result file holds {'name', 'results': {'bpp': [...], "
                                "'psnr-rgb' or 'psnr': [...]}}")
    res = obj["results"]
    bpp = res["bpp"]
    if not isinstance(bpp, list) or not bpp:
        raise ResultSchemaError("results.bpp", "must be a non-empty list of numbers")

    def col(*names: str) -> list | None:
        for n in names:
            if isinstance(res.get(n), list):
                if len(res[n]) != len(bpp):
                    raise ResultSchemaError(f"results.{n}", f"has {len(res[n])} values for {len(bpp)} bpp values")
                return res[n]
        return None

    psnr = col("psnr-rgb", "psnr")
    ms = col("ms-ssim-rgb", "ms-ssim")
    if psnr is None and ms is None:
        raise ResultSchemaError("results", "needs a 'psnr-rgb' (or 'psnr') or 'ms-ssim-rgb' (or 'ms-ssim') list")
    return bpp, psnr, ms


# What a CompressAI result JSON must state before it is read as a curve: key -> (allowed values, what it says).
COMPRESSAI_LABELS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "protocol": (None, "under which protocol it was measured (`bench list protocols`)"),
    "scenario": (SCENARIOS, "its scenario"),
    "rate": (RATES, "its rate type (bpp = bytes of a real bitstream, bpp_estimated = a likelihood estimate, ...)"),
    "provenance": (PROVENANCES, "where its numbers come from"),
}
_ESTIMATED = ("entropy estimation", "entropy-estimation")


def _label(obj: dict[str, Any], key: str, option: str | None) -> str:
    """One of `COMPRESSAI_LABELS` from the file's key or the command-line option; refused when neither states it,
    when the two disagree, or when it is not an allowed value."""
    allowed, what = COMPRESSAI_LABELS[key]
    stated = obj.get(key)
    if stated is not None and not isinstance(stated, str):
        raise ResultSchemaError(key, f"must be a string, got {type(stated).__name__} ({stated!r:.60})")
    if stated and option and stated != option:
        raise ResultSchemaError(key, f"the CompressAI result file says {stated!r}, the command line {option!r}: "
                                "drop one of the two")
    value = option or stated
    if not value:
        choices = f" (one of {', '.join(allowed)})" if allowed else ""
        raise ResultSchemaError(key, f"a CompressAI result file does not say {what}: add \"{key}\": \"...\"{choices} "
                                f"to it, or pass it on the command line (`bench compare FILE ... --{key} NAME`); "
                                "nothing is assumed")
    if allowed and value not in allowed:
        raise ResultSchemaError(key, f"must be one of {', '.join(allowed)}; got {value!r}")
    if key == "protocol":
        check_names({"protocol": value})
    return value


def compressai_labels(obj: Any, **options: str | None) -> dict[str, str]:
    """protocol, scenario, rate and provenance of a CompressAI result JSON: each from its key in the file or from
    `options` (the command line's --protocol, --scenario, --rate, --provenance). Raises ResultSchemaError naming the
    key that neither states, or a rate of real bytes for a file whose description says entropy estimation."""
    unknown = set(options) - set(COMPRESSAI_LABELS)
    if unknown:
        raise TypeError(f"unknown CompressAI label(s): {sorted(unknown)}")
    if not isinstance(obj, dict):
        raise ResultSchemaError("<root>", f"a CompressAI result file holds a JSON object, got {type(obj).__name__}")
    out = {key: _label(obj, key, options.get(key)) for key in COMPRESSAI_LABELS}
    desc = str(obj.get("description") or "").lower()
    if out["rate"] != "bpp_estimated" and any(e in desc for e in _ESTIMATED):
        raise ResultSchemaError("rate", f"is {out['rate']!r} but the description says the rates are an entropy "
                                "estimate (CompressAI's `--entropy-estimation`): use \"bpp_estimated\"")
    return out


def validate_compressai(obj: Any, **options: str | None) -> dict[str, str]:
    """A CompressAI result JSON the suite can read: its columns (`compressai_columns`) and its labels
    (`compressai_labels`). Returns the labels."""
    compressai_columns(obj)
    return compressai_labels(obj, **options)
