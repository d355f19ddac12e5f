"""The files a results folder holds, whatever their kind: a result, a published curve, or a CompressAI result
JSON; which files under a folder are candidates; and the export to CompressAI's format."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.results.published import (
    COMPRESSAI_KIND,
    is_compressai_json,
    validate_compressai,
    validate_published,
)
from benchmark.results.schema import RESULT_KIND, load_untrusted, validate_result


def validate_any(obj: Any) -> tuple[str, dict[str, Any]]:
    """Validate a result, a published curve or a CompressAI result JSON. Returns (kind, upgraded object)."""
    if isinstance(obj, dict) and obj.get("kind") == "published_curve":
        return "published_curve", validate_published(obj)
    if is_compressai_json(obj):  # CompressAI's result format (eval_model, and the leaderboard's own export)
        validate_compressai(obj)  # its numbers, and the protocol, scenario, rate type and provenance it must state
        return COMPRESSAI_KIND, obj
    return RESULT_KIND, validate_result(obj)


def validate_file(path: Path) -> tuple[str, dict[str, Any]]:
    return validate_any(load_untrusted(path))


def to_compressai_json(result: dict[str, Any]) -> dict[str, Any]:
    """Export in CompressAI's result format so the field's plotting scripts can overlay our curves; the keys a
    CompressAI JSON needs to be read back as a curve (`published.COMPRESSAI_LABELS`) are written beside."""
    pts = result["points"]
    return {
        "name": result["method"] + (f"-{result['variant']}" if result.get("variant") else ""),
        "description": f"dsc-bench {result['protocol']} ({result['scenario']}); {result['rate_accounting']['rate_source']}",
        "protocol": result["protocol"], "scenario": result["scenario"], "rate": result.get("rate_unit", "bpp"),
        "provenance": "exact",
        "results": {
            "bpp": [p["bpp"] for p in pts],
            "psnr-rgb": [p["psnr"] for p in pts],
            "ms-ssim-rgb": [p.get("ms_ssim") for p in pts],
            "encoding_time": [p.get("encode_s") for p in pts],
            "decoding_time": [p.get("decode_s") for p in pts],
        },
    }


# Folders under a results directory that hold other JSON (weights manifests, training checkpoints, the
# leaderboard's CompressAI-format export): never read as result files.
NON_RESULT_DIRS = frozenset({"weights", "train", "compressai"})


def result_candidates(folder: Path) -> list[Path]:
    """The JSON files under `folder` that may be result or published-curve files (sorted)."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*.json")
                  if not any(part.startswith(".") or part in NON_RESULT_DIRS for part in p.relative_to(folder).parts[:-1])
                  and not p.name.startswith(".") and p.name != "manifest.json")
