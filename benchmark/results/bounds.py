"""Closed-form rate–distortion limits of the quadratic-Gaussian Wyner–Ziv source, in one leaf module.

The dataset (datasets.gaussian), the method (methods.layered_wz) and the leaderboard (leaderboard.gaussian)
all read the same formulas from here, so the leaderboard stays a function of result files and closed forms.

Y ~ N(0, 1), X = Y + N, N ~ N(0, σ²). Limits per sample (MSE, rates in bits/sample):
  Wyner–Ziv (= conditional, no rate loss for Gaussians)  R_WZ(D) = max(0, ½·log2(σ²/D))
  no side information                                    R(D)    = max(0, ½·log2((1+σ²)/D))

Practical 1-D reference (scalar_sw_*): uniform scalar quantizer + ideal Slepian–Wolf coding + MMSE decoding.
Marginal 1-D reference (scalar_marginal_*): the same quantizer entropy-coded without the side information
(rate H(Q)), still decoded with E[X|Q,Y]: the anchor of coders with a marginal prior (no binning).

Quantizer: Q(x) = round((x − offset)/Δ), bin i = [(i−½)Δ + offset, (i+½)Δ + offset). Rate = H(Q | Y) (what
an ideal Slepian–Wolf coder reaches), reconstruction x̂ = E[X | Q, Y], both exact for X | Y=y ~ N(y, σ²)
with truncated-normal formulas. Both conditional quantities are periodic in y with period Δ, so the
expectation over Y ~ N(0,1) is an integral over one period u ∈ [0, Δ) against the wrapped normal density
Σ_j φ(u + offset + jΔ): exact up to the quadrature over u (midpoint rule on a smooth periodic function).

At high rate the gap to the Wyner–Ziv bound tends to the space-filling loss 10·log10(2πe/12) ≈ 1.53 dB."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.special import ndtr


# ---- Wyner–Ziv and no-side-information bounds -------------------------------------------------------------------------------
def wz_rate(D: float, sigma2: float) -> float:
    """Wyner–Ziv rate (bits/sample) at MSE D: max(0, ½·log2(σ²/D))."""
    return max(0.0, 0.5 * math.log2(sigma2 / D))


def wz_distortion(R: float, sigma2: float) -> float:
    """Wyner–Ziv distortion (MSE) at rate R bits/sample: σ²·2^(−2R)."""
    return sigma2 * 2.0 ** (-2.0 * max(0.0, R))


def nosi_rate(D: float, sigma2: float) -> float:
    """Rate without side information (X ~ N(0, 1+σ²)): max(0, ½·log2((1+σ²)/D))."""
    return max(0.0, 0.5 * math.log2((1.0 + sigma2) / D))


def nosi_distortion(R: float, sigma2: float) -> float:
    """Distortion without side information: (1+σ²)·2^(−2R)."""
    return (1.0 + sigma2) * 2.0 ** (-2.0 * max(0.0, R))


def to_db(D: float) -> float:
    """Distortion in dB: 10·log10(D) (lower is better; −10·log10(D) is the 'PSNR' of a unit-range signal)."""
    return 10.0 * math.log10(D)


def from_db(d_db: float) -> float:
    return 10.0 ** (d_db / 10.0)


def wz_distortion_db(R: float, sigma2: float) -> float:
    return to_db(wz_distortion(R, sigma2))


def nosi_distortion_db(R: float, sigma2: float) -> float:
    return to_db(nosi_distortion(R, sigma2))


# ---- scalar quantizer + ideal Slepian–Wolf reference ------------------------------------------------------
LOG2E = 1.0 / math.log(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_TAIL = 10.0  # bins and wraps beyond ±10 standard deviations are ignored (mass < 1e-23)


def _phi(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t * t) / _SQRT2PI


def _interval_prob(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a < Z < b) for standard normal Z, accurate in both tails."""
    upper = a > 0  # both ends in the upper tail: use the survival function
    return np.where(upper, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a))


def scalar_sw_point(delta: float, sigma2: float, offset: float = 0.0, n_u: int | None = None) -> tuple[float, float]:
    """(rate H(Q|Y) in bits/sample, MSE of E[X|Q,Y]) of the step-`delta` quantizer, exactly."""
    if not math.isfinite(delta):
        return 0.0, float(sigma2)
    sigma = math.sqrt(sigma2)
    if n_u is None:
        n_u = int(min(20000, max(256, 40.0 * delta / sigma)))
    u = (np.arange(n_u) + 0.5) * (delta / n_u)  # midpoint grid over one period of (y - offset)
    # wrapped density of Y - offset at u: sum_j phi(u + offset + j*delta)
    j_lo = math.floor((-_TAIL - offset) / delta) - 1
    j_hi = math.ceil((_TAIL - offset) / delta) + 1
    js = np.arange(j_lo, j_hi + 1)
    w = np.zeros(n_u)
    for chunk in np.array_split(js, max(1, len(js) // 512)):
        w += _phi(u[:, None] + offset + chunk[None, :] * delta).sum(axis=1)
    w *= delta / n_u  # quadrature weights; sum(w) = 1 up to quadrature error
    # bins (relative to y - offset = u) covering u ± TAIL·sigma
    n_side = math.ceil(_TAIL * sigma / delta) + 1
    i = np.arange(-n_side, n_side + 2)
    lo = ((i - 0.5)[None, :] * delta - u[:, None]) / sigma  # alpha = (lower edge - y)/sigma
    hi = lo + delta / sigma
    p = _interval_prob(lo, hi)
    dphi = _phi(lo) - _phi(hi)
    ok = p > 1e-300
    ps = np.where(ok, p, 1.0)
    ent = -np.where(ok, p * np.log2(ps), 0.0).sum(axis=1)
    explained = np.where(ok, dphi * dphi / ps, 0.0).sum(axis=1)  # Var(E[X-y | Q, y]) / sigma^2
    dist = sigma2 * (1.0 - explained)
    wsum = w.sum()
    return float((w * ent).sum() / wsum), float((w * dist).sum() / wsum)


@lru_cache(maxsize=16)
def scalar_sw_sweep(sigma2: float, offset: float = 0.0, n: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, rates, distortions) for Δ from 0.02·σ to max(30·σ, 10) (geometric) plus Δ = ∞ (rate 0, D = σ²),
    sorted by rate, keeping only points no other point beats (lower D at no higher rate)."""
    sigma = math.sqrt(sigma2)
    steps = np.geomspace(0.02 * sigma, max(30.0 * sigma, 10.0), n)
    pts = [(math.inf, 0.0, float(sigma2))] + [(float(d), *scalar_sw_point(float(d), sigma2, offset)) for d in steps]
    pts.sort(key=lambda t: (t[1], t[2]))
    front = []
    for d, r, dist in pts:
        if not front or dist < front[-1][2]:
            front.append((d, r, dist))
    arr = np.array(front)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def scalar_sw_distortion(R: float, sigma2: float, offset: float = 0.0) -> float:
    """MSE of the scalar reference at rate R (bits/sample), interpolated linearly in dB over the sweep."""
    _, rates, dists = scalar_sw_sweep(float(sigma2), float(offset))
    if R >= rates[-1]:  # beyond the sweep: the high-rate law (slope −6.02 dB/bit)
        return float(dists[-1] * 2.0 ** (-2.0 * (R - rates[-1])))
    return float(10.0 ** (np.interp(R, rates, np.log10(dists))))


def scalar_sw_distortion_db(R: float, sigma2: float, offset: float = 0.0) -> float:
    return 10.0 * math.log10(scalar_sw_distortion(R, sigma2, offset))


def scalar_sw_step_for_rate(R: float, sigma2: float, offset: float = 0.0) -> float:
    """The step Δ whose ideal Slepian–Wolf rate H(Q|Y) is R (interpolated in log Δ over the sweep)."""
    steps, rates, _ = scalar_sw_sweep(float(sigma2), float(offset))
    fin = np.isfinite(steps)
    r, s = rates[fin], np.log(steps[fin])
    if R <= r[0]:
        return float(steps[fin][0])
    return float(np.exp(np.interp(R, r, s, right=s[-1] - (R - r[-1]) * math.log(2.0))))


# ---- scalar quantizer + ideal *marginal* entropy coding (no binning): the anchor of marginal-prior coders --------
def scalar_marginal_point(delta: float, sigma2: float, offset: float = 0.0) -> tuple[float, float]:
    """(rate H(Q) in bits/sample, MSE of E[X|Q,Y]) of the step-`delta` quantizer whose indices are entropy-coded
    without the side information (X ~ N(0, 1+σ²)), exactly. The decoder still reconstructs with y, so the MSE is
    the one of `scalar_sw_point`; only the rate differs (H(Q) ≥ H(Q|Y)). This is what a contiguous (non-binning)
    per-sample code with a marginal prior reaches with uniform cells."""
    if not math.isfinite(delta):
        return 0.0, float(sigma2)
    _, dist = scalar_sw_point(delta, sigma2, offset)
    s = math.sqrt(1.0 + sigma2)
    n_side = math.ceil(_TAIL * s / delta) + 1
    p = marginal_pmf(np.arange(-n_side, n_side + 1), delta, sigma2, offset)
    p = p[p > 1e-300]
    return float(-(p * np.log2(p)).sum()), dist


@lru_cache(maxsize=16)
def scalar_marginal_sweep(sigma2: float, n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """(rates, distortions) of the achievable marginal scalar reference, sorted by rate: the lower convex hull (in
    MSE) of the mid-tread (offset 0) and mid-rise (offset Δ/2: a cell edge at 0, e.g. the 1-bit sign quantizer)
    uniform quantizers, Δ from 0.02·σ to max(30·σ, 10), plus Δ = ∞. A quantizer is a point, not a curve: rates
    between two points are reached by time sharing, i.e. linearly in MSE, hence the convex hull."""
    sigma = math.sqrt(sigma2)
    pts = [(0.0, float(sigma2))]
    for d in np.geomspace(0.02 * sigma, max(30.0 * sigma, 10.0), n):
        pts += [scalar_marginal_point(float(d), sigma2, 0.0), scalar_marginal_point(float(d), sigma2, float(d) / 2)]
    pts.sort()
    hull: list[tuple[float, float]] = []
    for r, dist in pts:
        if hull and dist >= hull[-1][1]:
            continue  # no lower distortion at a higher rate: dominated
        while len(hull) >= 2:
            (r0, d0), (r1, d1) = hull[-2], hull[-1]
            if (d1 - d0) * (r - r0) >= (dist - d0) * (r1 - r0):  # hull[-1] on or above the chord: not on the hull
                hull.pop()
            else:
                break
        hull.append((r, dist))
    arr = np.array(hull)
    return arr[:, 0], arr[:, 1]


def scalar_marginal_distortion_db(R: float, sigma2: float) -> float:
    """D (dB) of the marginal scalar reference at rate R: linear in MSE between hull points (time sharing), the
    high-rate law (−6.02 dB/bit) beyond the sweep."""
    rates, dists = scalar_marginal_sweep(float(sigma2))
    if R >= rates[-1]:
        return 10.0 * math.log10(dists[-1] * 2.0 ** (-2.0 * (R - rates[-1])))
    return 10.0 * math.log10(float(np.interp(R, rates, dists)))


# ---- per-sample quantities used by the `scalar_sw` codec ---------------------------------------------------
def quantize(x: np.ndarray, delta: float, offset: float = 0.0) -> np.ndarray:
    return np.floor((np.asarray(x, dtype=np.float64) - offset) / delta + 0.5).astype(np.int64)


def bin_edges(q: np.ndarray, delta: float, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(q, dtype=np.float64)
    return (q - 0.5) * delta + offset, (q + 0.5) * delta + offset


def mmse_reconstruct(q: np.ndarray, y: np.ndarray, delta: float, sigma2: float, offset: float = 0.0) -> np.ndarray:
    """E[X | Q=q, Y=y] for X | Y=y ~ N(y, σ²): y + σ·(φ(α) − φ(β)) / (Φ(β) − Φ(α))."""
    sigma = math.sqrt(sigma2)
    y = np.asarray(y, dtype=np.float64)
    a, b = bin_edges(q, delta, offset)
    lo, hi = (a - y) / sigma, (b - y) / sigma
    p = _interval_prob(lo, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        xh = y + sigma * (_phi(lo) - _phi(hi)) / p
    # far tails (p underflows): the conditional mean sits at the bin edge nearest to y
    bad = ~np.isfinite(xh) | (p < 1e-300)
    xh = np.where(bad, np.clip(y, a, b), xh)
    return np.clip(xh, a, b)


def conditional_code_length(q: np.ndarray, y: np.ndarray, delta: float, sigma2: float, offset: float = 0.0) -> float:
    """Σ −log2 P(Q=q | Y=y): the ideal Slepian–Wolf code length of the indices, in bits."""
    sigma = math.sqrt(sigma2)
    a, b = bin_edges(q, delta, offset)
    p = _interval_prob((a - np.asarray(y)) / sigma, (b - np.asarray(y)) / sigma)
    return float(-np.log2(np.maximum(p, 1e-300)).sum())


def marginal_pmf(indices: np.ndarray, delta: float, sigma2: float, offset: float = 0.0) -> np.ndarray:
    """P(Q=i) for X ~ N(0, 1+σ²) — the prior of a real (non-Slepian–Wolf) entropy coder."""
    s = math.sqrt(1.0 + sigma2)
    a, b = bin_edges(indices, delta, offset)
    return _interval_prob(a / s, b / s)
