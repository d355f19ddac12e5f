"""Compare rate–quality curves of any origin: BD-rate / BD-quality with the overlap, the rate types and the
points that were dropped, the same way for `bench compare` and for the leaderboard's tables.

A curve comes from a suite result file (measured: rate = bytes of a real bitstream), a published-curve file
(one metric per file; curves of one method under one protocol are merged), or a CompressAI result JSON (what
`compressai.utils.eval_model` writes, and what the leaderboard exports). Before a BD number is computed,
each curve is cleaned in two documented steps, and both steps are reported:

1. **Degenerate points.** A point whose rate lies more than `DEGENERATE_GAP` times below the next point of
   its curve (e.g. the NDIC+Ballé2018 KITTI point at 6e-06 bpp, 16.9 dB: a model that sends almost nothing)
   is not part of the operating range; interpolating log-rate through it bends the curve over a whole
   decade. The headline BD excludes such points; the value *with* them is computed and shown beside it.
2. **Monotonicity.** Bjøntegaard integrates log-rate as a function of quality (and quality as a function of
   log-rate), so each curve must be increasing in both. Sorted by rate, a point whose quality is not above
   every cheaper point's quality is dropped (it is dominated). The same cleaned points go to
   `benchmark.results.bdrate` and, in the tests, to the `bjontegaard` package (`method="pchip"`).

Overlap is the `bjontegaard` package's measure: the length of the common interval over the length of the
union; below `MIN_OVERLAP` (0.75, the package's default) the number is flagged."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.results.bdrate import NoOverlapError, bd_psnr, bd_rate
from benchmark.errors import BenchError, ResultSchemaError
from benchmark.results.published import (  # noqa: F401
    COMPRESSAI_KIND,
    compressai_columns,
    is_compressai_json,
)

DEGENERATE_GAP = 100.0  # a lowest point more than 100x below the next rate is degenerate
MIN_OVERLAP = 0.75

# rate types, as curve files and the leaderboard name them
RATE_TYPES = {
    "bpp": "real bytes",
    "bpp_estimated": "likelihood estimate",
    "bpp_uniform": "fixed-length code",
    "bpp_prior": "ideal code length under a prior",
    "bits/sample": "real bytes (bits per sample)",
}

# Per protocol, the published curve that BD numbers of every row are also given against (method key of a
# shipped curve; "{M}" is replaced by a distributed curve's number of sources).
PUBLISHED_ANCHORS = {
    "kitti-stereo/ndic": "balle2018",
    "cityscapes/ndic": "balle2018",
    "mnist/drasic-random": "drasic.separate.m{M}",
    "mnist/drasic-class": "drasic.separate.m{M}",
}


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


# ---------------------------------------------------------------- loading
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
    label = label or result["method"] + (f" ({result['variant']})" if result.get("variant") else "")
    return RDCurve(label, result["method"] + (f".{result['variant']}" if result.get("variant") else ""), "measured",
                   result["protocol"], "bpp" if result.get("rate_unit", "bpp") == "bpp" else result["rate_unit"],
                   scenario=result["scenario"], psnr=_pts((p["bpp"], p.get("psnr")) for p in pts),
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
        m.psnr = m.psnr or list(c.psnr)
        m.msssim_db = m.msssim_db or list(c.msssim_db)
        if c.provenance != m.provenance:
            m.provenance = "/".join(sorted({m.provenance, c.provenance}))
    return list(merged.values())


_DSC_DESC = re.compile(r"^dsc-bench (?P<protocol>\S+) \((?P<scenario>[^)]+)\)")


def curve_from_compressai(obj: dict[str, Any], protocol: str | None = None, source: str = "") -> RDCurve:
    """A CompressAI result JSON ({"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}}).

    The protocol comes from the argument, an explicit "protocol" key, or the suite's own export description
    ("dsc-bench PROTOCOL (scenario); ..."). Rate type: "Inference (entropy estimation)" is a likelihood
    estimate, anything else a coded bitstream."""
    bpp, psnr, ms = compressai_columns(obj)
    desc = str(obj.get("description") or "")
    m = _DSC_DESC.match(desc)
    proto = protocol or obj.get("protocol") or (m.group("protocol") if m else None)
    est = "entropy estimation" in desc.lower() or "entropy-estimation" in desc.lower()
    name = str(obj.get("name") or Path(source).stem or "compressai")
    return RDCurve(name, name, "compressai", proto, "bpp_estimated" if est else "bpp",
                   m.group("scenario") if m else "", psnr=_pts(zip(bpp, psnr)) if psnr else [],
                   msssim_db=_pts((b, ms_ssim_db(v) if v is not None else None) for b, v in zip(bpp, ms)) if ms else [],
                   provenance="CompressAI JSON", source=source)


def published_from_compressai(obj: dict[str, Any], source: str, protocol: str | None = None) -> list[dict[str, Any]]:
    """A CompressAI result JSON as published-curve dicts (one per metric it holds), so the leaderboard reads it
    beside the shipped curves. Raises ResultSchemaError when it names no protocol."""
    c = curve_from_compressai(obj, protocol, source)
    if not c.protocol:
        raise ResultSchemaError("protocol", "a CompressAI result file does not say under which protocol it was "
                                "measured: add \"protocol\": \"NAME\" to it (`bench list protocols`), or compare it with "
                                "`bench compare FILE ... --protocol NAME`")
    base = {"kind": "published_curve", "schema_version": 1, "method": re.sub(r"[^A-Za-z0-9_.-]", "_", c.method),
            "label": c.label, "protocol": c.protocol, "scenario": c.scenario or "separate", "rate": c.rate_type,
            "source": f"CompressAI result file {Path(source).name}: {obj.get('description') or 'no description'}",
            "provenance": "exact", "notes": "read from a CompressAI result JSON"
            + ("" if c.scenario else "; scenario not stated, assumed separate")}
    out = []
    if c.psnr:
        out.append({**base, "metric": "psnr", "points": [{"bpp": b, "value": v} for b, v in c.psnr]})
    if c.msssim_db:
        out.append({**base, "metric": "ms_ssim", "points": [{"bpp": b, "value": 1 - 10 ** (-v / 10)} for b, v in c.msssim_db]})
    return out


def load_curve_file(path: Path, protocol: str | None = None) -> RDCurve:
    """Any supported file: suite result, published curve, CompressAI result JSON."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: not a readable JSON file ({exc})") from exc
    if is_compressai_json(obj):
        return curve_from_compressai(obj, protocol, str(path))
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == "published_curve":
        from .published import validate_published

        return curve_from_published(validate_published(obj), str(path))
    if kind == "result":
        from benchmark.results.schema import validate_result

        return curve_from_result(validate_result(obj), source=str(path))
    raise BenchError(f"{path}: neither a result file, a published curve nor a CompressAI result JSON "
                     "(expected 'kind': 'result' | 'published_curve', or a 'results' object with 'bpp')")


# ---------------------------------------------------------------- cleaning and BD
@dataclass
class Cleaned:
    kept: Points
    degenerate: Points
    non_monotone: Points


def clean(points: Points, drop_degenerate: bool = True) -> Cleaned:
    """Split a curve into the points BD uses, degenerate points and monotonicity-breaking points (module doc)."""
    pts = sorted(p for p in points if p[0] > 0)
    degenerate: Points = []
    while drop_degenerate and len(pts) >= 3 and pts[1][0] > DEGENERATE_GAP * pts[0][0]:
        degenerate.append(pts.pop(0))
    kept, dropped = [], []
    for b, q in pts:
        if kept and b == kept[-1][0] and q > kept[-1][1]:  # the same rate twice: keep the better point
            dropped.append(kept.pop())
        if kept and q <= kept[-1][1]:
            dropped.append((b, q))
        else:
            kept.append((b, q))
    return Cleaned(kept, degenerate, dropped)


def overlap_fraction(a: Sequence[float], b: Sequence[float]) -> float:
    """The `bjontegaard` package's overlap: common interval / union interval (0 when disjoint)."""
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    total = max(max(a), max(b)) - min(min(a), min(b))
    return max(hi - lo, 0.0) / total if total > 0 else 0.0


@dataclass
class BD:
    """BD numbers of `test` against `anchor` on one metric, with everything a reader needs to judge them."""

    metric: str  # psnr | msssim
    bd_rate: float | None = None  # %, headline (degenerate points excluded)
    bd_quality: float | None = None  # dB
    bd_rate_with_degenerate: float | None = None
    bd_quality_with_degenerate: float | None = None
    overlap_quality: float | None = None  # fraction, for BD-rate
    overlap_rate: float | None = None  # fraction (log-rate), for BD-quality
    interval_quality: tuple[float, float] | None = None
    interval_rate: tuple[float, float] | None = None
    anchor_dropped: Cleaned | None = None
    test_dropped: Cleaned | None = None
    rate_types: tuple[str, str] = ("", "")
    problem: str = ""  # why there is no number

    @property
    def rate_mismatch(self) -> bool:
        return self.rate_types[0] != self.rate_types[1]

    @property
    def poor_overlap(self) -> bool:
        return self.overlap_quality is not None and self.overlap_quality < MIN_OVERLAP

    def flags(self) -> list[str]:
        out = []
        if self.rate_mismatch:
            out.append(f"rate types differ ({self.rate_types[1]} vs anchor {self.rate_types[0]})")
        if self.poor_overlap:
            out.append(f"poor overlap ({self.overlap_quality:.0%} < {MIN_OVERLAP:.0%})")
        if self.overlap_rate is not None and self.overlap_rate < MIN_OVERLAP:
            out.append(f"poor log-rate overlap for BD-quality ({self.overlap_rate:.0%})")
        if self.anchor_dropped and self.anchor_dropped.degenerate or self.test_dropped and self.test_dropped.degenerate:
            out.append("degenerate point(s) excluded")
        return out


def _bd_pair(a: Points, t: Points) -> tuple[float, float, tuple[float, float], tuple[float, float], float, float]:
    ra, qa = zip(*a)
    rt, qt = zip(*t)
    r = bd_rate(ra, qa, rt, qt)
    q = bd_psnr(ra, qa, rt, qt)
    iq = (max(min(qa), min(qt)), min(max(qa), max(qt)))
    la, lt = np.log10(ra), np.log10(rt)
    ir = (10 ** max(la.min(), lt.min()), 10 ** min(la.max(), lt.max()))
    return r, q, iq, ir, overlap_fraction(qa, qt), overlap_fraction(la, lt)


def bd(anchor: RDCurve, test: RDCurve, metric: str = "psnr") -> BD:
    out = BD(metric, rate_types=(anchor.rate_type, test.rate_type))
    ca, ct = clean(anchor.metric(metric)), clean(test.metric(metric))
    out.anchor_dropped, out.test_dropped = ca, ct
    if len(ca.kept) < 2 or len(ct.kept) < 2:
        out.problem = "n/a (< 2 points)"
        return out
    try:
        out.bd_rate, out.bd_quality, out.interval_quality, out.interval_rate, out.overlap_quality, out.overlap_rate = \
            _bd_pair(ca.kept, ct.kept)
    except NoOverlapError:
        out.problem = "no overlap"
        return out
    if ca.degenerate or ct.degenerate:
        wa, wt = clean(anchor.metric(metric), False).kept, clean(test.metric(metric), False).kept
        try:
            out.bd_rate_with_degenerate, out.bd_quality_with_degenerate = _bd_pair(wa, wt)[:2]
        except (NoOverlapError, ValueError):
            pass
    return out


def fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{v:+.1f} %"


def fmt_db(v: float | None) -> str:
    return "—" if v is None else f"{v:+.2f} dB"


def describe_dropped(c: Cleaned | None, unit: str = "bpp") -> str:
    if c is None:
        return ""
    parts = []
    if c.degenerate:
        parts.append("degenerate " + ", ".join(f"({b:.3g} {unit}, {q:.2f} dB)" for b, q in c.degenerate))
    if c.non_monotone:
        parts.append("non-monotone " + ", ".join(f"({b:.4g} {unit}, {q:.2f} dB)" for b, q in c.non_monotone))
    return "; ".join(parts)


# ---------------------------------------------------------------- bootstrap CI over test images
def bootstrap_bd_rate(anchor_rows: dict[str, dict[str, tuple[float, float]]],
                      test_rows: dict[str, dict[str, tuple[float, float]]],
                      n: int = 200, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """CI of BD-rate (PSNR) by resampling test images with replacement (the same images for both curves).

    `*_rows` map rate point -> image -> (bpp, psnr), as in the per-image CSVs. None when fewer than 2 common
    images or a resample has no overlap too often."""
    images = sorted(set.intersection(*[set(v) for v in list(anchor_rows.values()) + list(test_rows.values())])) \
        if anchor_rows and test_rows else []
    if len(images) < 2:
        return None
    rng = np.random.default_rng(seed)

    def curve(rows, idx):
        pts = []
        for per_img in rows.values():
            b = np.mean([per_img[images[i]][0] for i in idx])
            q = np.mean([per_img[images[i]][1] for i in idx])
            pts.append((float(b), float(q)))
        return clean(pts, drop_degenerate=False).kept

    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(images), len(images))
        a, t = curve(anchor_rows, idx), curve(test_rows, idx)
        if len(a) < 2 or len(t) < 2:
            continue
        try:
            vals.append(_bd_pair(a, t)[0])
        except (NoOverlapError, ValueError):
            continue
    if len(vals) < n // 2:
        return None
    lo, hi = np.percentile(vals, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def _per_image_csv(result_path: Path, result: dict[str, Any]) -> list[dict[str, str]] | None:
    """The rows of the per-image CSV a result names (None: it names none, or the file is absent). The name must be
    a plain file of the result's own folder, not a link; the file bounded, UTF-8 CSV (benchmark.safety.untrusted).
    Failures raise ResultSchemaError naming the file."""
    from benchmark.errors import ResultSchemaError
    from benchmark.safety.untrusted import confined_file, load_csv_file

    name = result.get("per_image_csv")
    if not name:
        return None
    err = lambda msg: ResultSchemaError("per_image_csv", msg)  # noqa: E731
    path = confined_file(Path(result_path).parent, name, what="its per-image CSV", error=err)
    if not path.exists():
        return None
    return load_csv_file(path, error=err)


def per_image_problem(result_path: Path, result: dict[str, Any]) -> str | None:
    """Why the per-image CSV a result names cannot be read (None when it can, or when there is none)."""
    from benchmark.errors import ResultSchemaError

    try:
        _per_image_csv(result_path, result)
    except ResultSchemaError as exc:
        return str(exc)
    return None


def per_image_rows(result_path: Path, result: dict[str, Any]) -> dict[str, dict[str, tuple[float, float]]]:
    """rate point -> image -> (bpp, psnr) from a result's per-image CSV; {} when it is missing or unreadable
    (the leaderboard has already skipped a result whose CSV it cannot read: `per_image_problem`)."""
    from benchmark.errors import ResultSchemaError

    try:
        rows = _per_image_csv(result_path, result) or []
    except ResultSchemaError:
        return {}
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        try:
            key = r.get("image", "") + "|" + str(r.get("source", ""))
            out.setdefault(r["rate_point"], {})[key] = (float(r["bpp"]), float(r["psnr"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out
