"""Rate–quality curves of any origin, as one type (`RDCurve`): a suite result file (measured: rate = bytes of a
real bitstream), a published-curve file (one metric per file; the curves of one method under one protocol are
merged) or a CompressAI result JSON (what `compressai.utils.eval_model` writes, and what the leaderboard exports).
MS-SSIM is held in dB (-10 log10(1 - MS-SSIM)) so that both metrics are compared the same way."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import BenchError, ResultSchemaError
from benchmark.results.published import compressai_columns, compressai_labels, is_compressai_json, validate_published
from benchmark.results.schema import validate_result

# rate types, as curve files and the leaderboard name them
RATE_TYPES = {
    "bpp": "real bytes",
    "bpp_estimated": "likelihood estimate",
    "bpp_uniform": "fixed-length code",
    "bpp_prior": "ideal code length under a prior",
    "bits/sample": "real bytes (bits per sample)",
}


def result_key(result: dict[str, Any]) -> str:
    """method[.variant]: a result's name in file names, row ids and colours."""
    return result["method"] + (f".{result['variant']}" if result.get("variant") else "")


def result_label(result: dict[str, Any]) -> str:
    """method (variant): a result's name in tables and legends."""
    return result["method"] + (f" ({result['variant']})" if result.get("variant") else "")


def ms_ssim_db(v: float) -> float:
    return -10.0 * math.log10(max(1.0 - v, 1e-12))


Points = list[tuple[float, float]]


@dataclass
class RDCurve:
    """One codec's rate–quality points under one protocol. `psnr` in dB, `msssim_db` = -10 log10(1 - MS-SSIM)."""

    label: str
    method: str
    origin: str  # measured | published | compressai
    protocol: str | None
    rate_type: str
    scenario: str = ""
    psnr: Points = field(default_factory=list)
    msssim_db: Points = field(default_factory=list)
    provenance: str = ""
    source: str = ""  # file or reference
    sources: int | None = None  # distributed codecs: number of sources M
    result: dict[str, Any] | None = None  # the result file, for measured curves

    def metric(self, name: str) -> Points:
        return self.psnr if name == "psnr" else self.msssim_db


def _pts(pairs: Iterable[tuple[Any, Any]]) -> Points:
    out = []
    for x, y in pairs:
        if x is None or y is None:
            continue
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y):
            out.append((x, y))
    return sorted(out)


def curve_from_result(result: dict[str, Any], label: str | None = None, source: str = "") -> RDCurve:
    pts = result["points"]
    return RDCurve(label or result_label(result), result_key(result), "measured", result["protocol"],
                   result.get("rate_unit", "bpp"), scenario=result["scenario"], psnr=_pts((p["bpp"], p.get("psnr")) for p in pts),
                   msssim_db=_pts((p["bpp"], ms_ssim_db(p["ms_ssim"]) if p.get("ms_ssim") is not None else None)
                                  for p in pts),
                   provenance="measured", source=source, sources=(result.get("dataset_options") or {}).get("sources"),
                   result=result)


def curve_from_published(curve: dict[str, Any], source: str = "") -> RDCurve:
    metric = curve["metric"]
    pairs = [(p["bpp"], p["value"]) for p in curve["points"]]
    c = RDCurve(curve["label"], curve["method"], "published", curve["protocol"], curve["rate"], curve["scenario"],
                provenance=curve["provenance"], source=source or curve.get("source", ""), sources=curve.get("sources"))
    if metric == "psnr":
        c.psnr = _pts(pairs)
    elif metric == "ms_ssim":
        c.msssim_db = _pts((b, ms_ssim_db(v)) for b, v in pairs)
    else:
        c.msssim_db = _pts(pairs)
    return c


def _metric_name(c: RDCurve) -> str:
    return "PSNR" if c.psnr else "MS-SSIM"


def merge_published(curves: Sequence[RDCurve]) -> list[RDCurve]:
    """One curve per (protocol, method, label, rate type, M): PSNR and MS-SSIM files of one method together
    (a linear MS-SSIM file wins over an MS-SSIM-dB file of the same curve)."""
    merged: dict[tuple, RDCurve] = {}
    for c in curves:
        key = (c.protocol, c.method, c.label, c.rate_type, c.sources)
        if key not in merged:
            merged[key] = RDCurve(c.label, c.method, c.origin, c.protocol, c.rate_type, c.scenario, list(c.psnr), list(c.msssim_db),
                                  c.provenance, c.source, c.sources)
            continue
        m = merged[key]
        if c.source and c.source != m.source:  # each metric cites the figure it was taken from
            m.source = "; ".join(f"{_metric_name(x)}: {x.source}" for x in sorted((m, c), key=_metric_name))
        m.psnr = m.psnr or list(c.psnr)
        m.msssim_db = m.msssim_db or list(c.msssim_db)
        if c.provenance != m.provenance:
            m.provenance = "/".join(sorted({m.provenance, c.provenance}))
    return list(merged.values())


def curve_from_compressai(obj: dict[str, Any], protocol: str | None = None, source: str = "", **labels: str | None) -> RDCurve:
    """A CompressAI result JSON ({"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}}).

    Its protocol, scenario, rate type and provenance come from its keys of those names or from the arguments
    (the command line's options): `benchmark.results.published.compressai_labels`, which refuses a file that does
    not state one (ResultSchemaError naming the key); nothing is assumed."""
    bpp, psnr, ms = compressai_columns(obj)
    lab = compressai_labels(obj, protocol=protocol, **labels)
    name = str(obj.get("name") or Path(source).stem or "compressai")
    return RDCurve(name, name, "compressai", lab["protocol"], lab["rate"], lab["scenario"],
                   psnr=_pts(zip(bpp, psnr)) if psnr else [],
                   msssim_db=_pts((b, ms_ssim_db(v) if v is not None else None) for b, v in zip(bpp, ms)) if ms else [],
                   provenance=lab["provenance"], source=source)


def published_from_compressai(obj: dict[str, Any], source: str, protocol: str | None = None) -> list[dict[str, Any]]:
    """A CompressAI result JSON as published-curve dicts (one per metric it holds), so the leaderboard reads it
    beside the shipped curves. Raises ResultSchemaError naming the key (protocol, scenario, rate, provenance) it
    does not state."""
    c = curve_from_compressai(obj, protocol, source)
    base = {"kind": "published_curve", "schema_version": 1, "method": re.sub(r"[^A-Za-z0-9_.-]", "_", c.method),
            "label": c.label, "protocol": c.protocol, "scenario": c.scenario, "rate": c.rate_type,
            "source": f"CompressAI result file {Path(source).name}: {obj.get('description') or 'no description'}",
            "provenance": c.provenance, "notes": "read from a CompressAI result JSON"}
    out = []
    if c.psnr:
        out.append({**base, "metric": "psnr", "points": [{"bpp": b, "value": v} for b, v in c.psnr]})
    if c.msssim_db:
        out.append({**base, "metric": "ms_ssim", "points": [{"bpp": b, "value": 1 - 10 ** (-v / 10)} for b, v in c.msssim_db]})
    return out


def load_curve_file(path: Path, protocol: str | None = None, **labels: str | None) -> RDCurve:
    """Any supported file: suite result, published curve, CompressAI result JSON (`labels`: its scenario, rate,
    provenance when the file does not state them)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: not a readable JSON file ({exc})") from exc
    if is_compressai_json(obj):
        try:
            return curve_from_compressai(obj, protocol, str(path), **labels)
        except ResultSchemaError as exc:
            raise BenchError(f"{path}: {exc}") from exc
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == "published_curve":
        return curve_from_published(validate_published(obj), str(path))
    if kind == "result":
        return curve_from_result(validate_result(obj), source=str(path))
    raise BenchError(f"{path}: neither a result file, a published curve nor a CompressAI result JSON "
                     "(expected 'kind': 'result' | 'published_curve', or a 'results' object with 'bpp')")


