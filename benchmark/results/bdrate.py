"""Bjøntegaard delta rate and delta PSNR.

BD-rate: average rate difference (%) at equal quality, integrating log10(rate) over the overlapping
quality interval; negative = the test curve saves bits. BD-PSNR: average quality difference (dB) at equal
rate. Interpolation: "pchip" (piecewise cubic Hermite, monotone, the default of modern tools) or "cubic"
(the original VCEG-M33 third-order polynomial fit). Curves that do not overlap raise NoOverlapError."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from benchmark.errors import BenchError


class NoOverlapError(BenchError):
    """The two curves share no interval of the integration variable; a BD number would be meaningless."""


def _prepare(base: Sequence[float], metric: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(base, dtype=float)
    m = np.asarray(metric, dtype=float)
    if b.shape != m.shape or b.ndim != 1:
        raise ValueError("rate and quality lists must be 1-D and of equal length")
    ok = np.isfinite(b) & np.isfinite(m)
    b, m = b[ok], m[ok]
    if len(b) < 2:
        raise ValueError("a curve needs at least 2 finite points for BD metrics (4 for the cubic fit)")
    order = np.argsort(b)
    b, m = b[order], m[order]
    # strictly increasing abscissa for interpolation: average duplicates
    ub, inv = np.unique(b, return_inverse=True)
    um = np.bincount(inv, weights=m) / np.bincount(inv)
    return ub, um


def _integral(base: np.ndarray, metric: np.ndarray, lo: float, hi: float, method: str) -> float:
    if method == "pchip":
        return float(PchipInterpolator(base, metric).integrate(lo, hi))
    if method == "cubic":
        if len(base) < 4:
            raise ValueError("the cubic BD fit needs at least 4 points per curve; use method='pchip'")
        poly = np.polyint(np.polyfit(base, metric, 3))
        return float(np.polyval(poly, hi) - np.polyval(poly, lo))
    raise ValueError(f"unknown BD interpolation {method!r}; use 'pchip' or 'cubic'")


def _delta(base_a, metric_a, base_t, metric_t, method: str, what: str) -> float:
    ba, ma = _prepare(base_a, metric_a)
    bt, mt = _prepare(base_t, metric_t)
    lo, hi = max(ba.min(), bt.min()), min(ba.max(), bt.max())
    if not hi > lo:
        raise NoOverlapError(
            f"no overlap: the curves share no {what} interval (anchor {ba.min():.4g}..{ba.max():.4g}, "
            f"test {bt.min():.4g}..{bt.max():.4g}); add rate points so the ranges meet"
        )
    return (_integral(bt, mt, lo, hi, method) - _integral(ba, ma, lo, hi, method)) / (hi - lo)


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test, method: str = "pchip") -> float:
    """Average bitrate difference in percent at equal quality (negative: test saves bits)."""
    if min(np.min(rate_anchor), np.min(rate_test)) <= 0:
        raise ValueError("BD-rate needs positive rates (log scale)")
    avg = _delta(psnr_anchor, np.log10(rate_anchor), psnr_test, np.log10(rate_test), method, "quality")
    return float((10.0**avg - 1.0) * 100.0)


def bd_psnr(rate_anchor, psnr_anchor, rate_test, psnr_test, method: str = "pchip") -> float:
    """Average quality difference in dB at equal rate (positive: test is better)."""
    if min(np.min(rate_anchor), np.min(rate_test)) <= 0:
        raise ValueError("BD-PSNR needs positive rates (log scale)")
    return float(_delta(np.log10(rate_anchor), psnr_anchor, np.log10(rate_test), psnr_test, method, "log-rate"))


def quality_at_rate(rates: Sequence[float], quality: Sequence[float], target: float) -> float | None:
    """Quality at a given rate by PCHIP interpolation in log-rate; None outside the measured range."""
    b, m = _prepare(np.log10(np.asarray(rates, dtype=float)), quality)
    t = np.log10(target)
    if t < b.min() or t > b.max():
        return None
    if len(b) == 1:
        return float(m[0])
    return float(PchipInterpolator(b, m)(t))
