"""Nested scalar quantization with bit-plane binning (Cheng & Xiong, "Successive refinement for the Wyner–Ziv
problem and layered code design", IEEE TSP 2005) as a K-stage layered Wyner–Ziv code, measured exactly per
sample: the hand-made solution the learned coders are meant to rediscover (Fig. 3 of Joukovsky et al.).

Fine step Δ, cell q = floor((x − offset)/Δ). Stage k sends the base-M digit m_k = floor(q / M^(K−k)) mod M, so
after k stages the decoder knows c_k mod M^k with c_k = floor((x − offset)/Δ_k), Δ_k = Δ·M^(K−k): a coarse
quantizer whose cells are binned modulo M^k (bins alternate along x; their frequency rises with k). With
X | Y=y ~ N(y, σ²), the ideal Slepian–Wolf rate of stage k is −log2 P(m_k | m_<k, y) = −log2 P(c_k ≡ j_k | y)
+ log2 P(c_{k−1} ≡ j_{k−1} | y) and the decoder is x̂_k = E[X | c_k ≡ j_k, y], both sums of normal interval
probabilities / truncated means over the cells within ±8σ of y."""
from __future__ import annotations

import math

import numpy as np

from benchmark.results.bounds import _interval_prob, _phi

_T = 8.0  # cells beyond ±8σ of y are ignored (mass < 1e-15)


def nested_codes(x: np.ndarray, delta: float, K: int, M: int = 2, offset: float = 0.0) -> np.ndarray:
    """(n, K) digits m_k = floor(q / M^(K−k)) mod M of q = floor((x − offset)/Δ)."""
    q = np.floor((np.asarray(x, dtype=np.float64) - offset) / delta).astype(np.int64)
    return np.stack([np.mod(np.floor_divide(q, M ** (K - k)), M) for k in range(1, K + 1)], axis=-1)


def _stage_posterior(y: np.ndarray, j: np.ndarray, step: float, n_bins: int, sigma: float, offset: float):
    """P(c ≡ j mod n_bins | y) and E[X | c ≡ j, y] for cells of width `step`."""
    L = math.ceil(2 * _T * sigma / step) + 2
    c0 = np.floor((y - _T * sigma - offset) / step).astype(np.int64)
    c = c0[:, None] + np.arange(L)[None, :]
    a = ((c * step + offset) - y[:, None]) / sigma
    b = a + step / sigma
    p = _interval_prob(a, b)
    m = np.mod(c, n_bins) == j[:, None]
    P = (p * m).sum(1)
    mean_num = (m * (y[:, None] * p + sigma * (_phi(a) - _phi(b)))).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xh = np.where(P > 1e-300, mean_num / np.maximum(P, 1e-300), y)
    return P, xh


def nested_per_sample(x: np.ndarray, y: np.ndarray, delta: float, sigma2: float, K: int, M: int = 2,
                      offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per sample and stage: ideal Slepian–Wolf code length of m_k (bits) and x̂_k; arrays (n, K)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sigma = math.sqrt(sigma2)
    q = np.floor((x - offset) / delta).astype(np.int64)
    bits = np.zeros((x.size, K))
    xh = np.zeros((x.size, K))
    prev = np.zeros(x.size)
    for k in range(1, K + 1):
        step = delta * M ** (K - k)
        j = np.mod(np.floor_divide(q, M ** (K - k)), M**k)
        P, xh[:, k - 1] = _stage_posterior(y, j, step, M**k, sigma, offset)
        lp = -np.log2(np.maximum(P, 1e-300))
        bits[:, k - 1] = lp - prev
        prev = lp
    return bits, xh


def nested_points(delta: float, sigma2: float, K: int, M: int = 2, n: int = 200_000, seed: int = 0,
                  offset: float = 0.0, chunk: int = 50_000) -> list[dict[str, float]]:
    """Per stage: cumulative ideal Slepian–Wolf rate (bits/sample) and MSE, Monte Carlo over n pairs."""
    rng = np.random.Generator(np.random.PCG64(seed))
    s_bits = np.zeros(K)
    s_se = np.zeros(K)
    done = 0
    while done < n:
        m = min(chunk, n - done)
        y = rng.standard_normal(m)
        x = y + math.sqrt(sigma2) * rng.standard_normal(m)
        bits, xh = nested_per_sample(x, y, delta, sigma2, K, M, offset)
        s_bits += bits.sum(0)
        s_se += ((xh - x[:, None]) ** 2).sum(0)
        done += m
    rate = np.cumsum(s_bits / n)
    return [{"stage": k + 1, "rate": float(rate[k]), "stage_rate": float(s_bits[k] / n), "mse": float(s_se[k] / n)}
            for k in range(K)]


def loss_of(points: list[dict[str, float]], lam: float) -> float:
    """The paper's training objective Σ_k [R_k + λ·D_k] (R_k: rate of stage k alone) for measured points."""
    return float(sum(p["stage_rate"] + lam * p["mse"] for p in points))
