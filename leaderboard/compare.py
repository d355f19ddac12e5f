"""BD-rate / BD-quality of one rate–quality curve against another, with the overlap, the rate types and the
points that were left out, the same way for `bench compare` and for the leaderboard's tables.

Before a BD number is computed, each curve is cleaned in two documented steps, and both steps are reported:

1. **Degenerate points.** A point whose rate lies more than `DEGENERATE_GAP` times below the next point of
   its curve (e.g. the NDIC+Ballé2018 KITTI point at 6e-06 bpp, 16.9 dB: a model that sends almost nothing)
   is not part of the operating range; interpolating log-rate through it bends the curve over a whole
   decade. The headline BD excludes such points; the value *with* them is computed and shown beside it.
2. **Monotonicity.** Bjøntegaard integrates log-rate as a function of quality (and quality as a function of
   log-rate), so each curve must be increasing in both. Sorted by rate, a point whose quality is not above
   every cheaper point's quality is dropped (it is dominated). The same cleaned points go to
   `benchmark.results.bdrate` and, in the tests, to the `bjontegaard` package (`method="pchip"`).

Overlap is the `bjontegaard` package's measure: the length of the common interval over the length of the
union; below `MIN_OVERLAP` (0.75, the package's default) the number is flagged. `bootstrap_bd_rate` gives a
confidence interval of BD-rate by resampling the test images of two results' per-image rows; `rate_interval` is
when it is given (a PSNR BD-rate of two measured results with per-image rows) and `interval_text` how it is
written. The leaderboard's tables and `bench compare` both call `bd`, `rate_interval` and `interval_text`, so they
print the same numbers, intervals and flags."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.results.bdrate import NoOverlapError, bd_psnr, bd_rate

from .curves import Points, RDCurve

DEGENERATE_GAP = 100.0  # a lowest point more than 100x below the next rate is degenerate
MIN_OVERLAP = 0.75


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
    return bootstrap_bd(anchor_rows, test_rows, n, seed, level, "rate")


def bootstrap_bd(anchor_rows: dict[str, dict[str, tuple[float, float]]],
                 test_rows: dict[str, dict[str, tuple[float, float]]],
                 n: int = 200, seed: int = 0, level: float = 0.95, which: str = "rate") -> tuple[float, float] | None:
    """`bootstrap_bd_rate` for BD-rate (`which="rate"`, %) or BD-PSNR (`which="psnr"`, dB)."""
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
            vals.append(_bd_pair(a, t)[0 if which == "rate" else 1])
        except (NoOverlapError, ValueError):
            continue
    if len(vals) < n // 2:
        return None
    lo, hi = np.percentile(vals, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """The Student-t interval of the mean of `values` (independent seeds): mean ± t_{(1+level)/2, n-1}·s/√n;
    None with fewer than 2 values (one seed says nothing about the seed spread)."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    m, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(t.ppf((1 + level) / 2, len(values) - 1)) * sd / np.sqrt(len(values))
    return m - half, m + half


BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, BOOTSTRAP_LEVEL = 200, 0, 0.95


def rate_interval(b: BD | None, anchor_rows: dict[str, dict[str, tuple[float, float]]],
                  test_rows: dict[str, dict[str, tuple[float, float]]]) -> tuple[float, float] | None:
    """The 95 % CI of a PSNR BD-rate `b` (`bootstrap_bd_rate`, 200 resamples, seed 0); None when there is no BD-rate
    (a problem, fewer than 2 points) or either result has no per-image rows."""
    if b is None or b.bd_rate is None or b.metric != "psnr" or not anchor_rows or not test_rows:
        return None
    return bootstrap_bd_rate(anchor_rows, test_rows, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, BOOTSTRAP_LEVEL)


def interval_text(ci: tuple[float, float] | None) -> str | None:
    """"[-10.3, -6.9] %" (None without an interval): the text of a BD-rate CI in the tables and in `bench compare`."""
    return None if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}] %"
