"""Block Wyner–Ziv coding with lattice quantizers: past the scalar limit.

The encoder sees n samples at once and quantizes them with a fine lattice Λ_f = s·L, L ∈ {Z (n=1), A2 (n=2),
D4 (n=4), E8 (n=8)}, scaled so that the cell volume is Δ^n (Δ = the step of the scalar quantizer with the same
cell volume; `Z` with n=1 *is* the scalar reference of `benchmark.results.bounds`). Nearest-point decoders are those of
J. H. Conway, N. J. A. Sloane, "Fast quantizing and decoding algorithms for lattice quantizers and codes",
IEEE Trans. Inf. Theory 28(2), 1982: rounding for Z^n, "round, then re-round the worst coordinate" for D_n,
the sum-zero rounding for A_n (A2 through its embedding in R^3), E8 = D8 ∪ (D8 + ½·1) (the nearer of two D8
decodings).

Source (datasets/gaussian.py): Y ~ N(0, I_n), X = Y + σ·Z, so X | Y=y ~ N(y, σ² I_n).

**Ideal Slepian–Wolf rate and MMSE decoding, by Monte Carlo.** For a lattice point q, Q(x) = q ⟺ x − q ∈ V0
(the Voronoi cell at 0), so with t = y − q
    P(q | y) = f(t) = P(t + σZ ∈ V0),    E[X | q, y] = q + m(t),  m(t) = E[W | W ∈ V0], W ~ N(t, σ² I).
The rate of a block is −log2 f(t) bits (n samples); H(Q|Y) is its mean over test pairs (x, y) drawn from the
source. f and m are estimated per block by multiple importance sampling from the mixture
g = ½·N(t, σ²I) + ½·Uniform(V0) (`cell_posterior`): the Gaussian half carries the low-rate regime (cells ≫ σ,
f near 0 or 1), the uniform half the high-rate one (cells ≪ σ); every weight 1_{V0}(w)·φ(w−t)/g(w) ≤ 2. The
rate's Monte Carlo error has two parts, both reported: the standard error over test blocks, and the bias of
−log of a noisy f̂ (first order: relvar(f̂)/2 nats, subtracted; the subtracted amount is reported). The MMSE's
Monte Carlo error: with an estimated m̂, E|X − X̂|² over-estimates the MMSE by E|m̂ − m|² and
E|X − Y|² − E|X̂ − Y|² under-estimates it by the same amount; D is their mean, their half-difference the error.

**Real bytes: nested lattice binning** (R. Zamir, S. Shamai, U. Erez, "Nested linear/lattice codes for
structured multiterminal binning", IEEE Trans. Inf. Theory 48(6), 2002), coarse lattice k·Λ_f, k ∈ {2, 3, 4}:
the encoder sends the coset of the fine point q modulo k·Λ_f — its integer coordinates in the lattice basis
mod k, a number in [0, k^n) — so log2(k) bits per sample at a fixed rate; a stream of N blocks is that base-k^n
number of N digits, in ⌈N·n·log2(k)/8⌉ bytes (`pack_cosets`). The decoder picks the point of the coset
nearest to y, then x̂ = that point + m̂(y − point) (MMSE within the chosen cell) or the point itself. Decoding
errors (a wrong coset point) are counted and their distortion included.

`python -m methods.layered_wz.lattice` sweeps Δ, prints the table and writes docs/gaussian_wz_lattice.json/.csv."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError

METHOD_TAG = "lattice_wz"  # container tag of the nested-lattice bitstream


# ---- Conway–Sloane nearest-point decoders (unscaled lattices) --------------------------------------------------
def nearest_z(x: np.ndarray) -> np.ndarray:
    """Z^n: round every coordinate (halves upwards, as benchmark.results.bounds.quantize does)."""
    return np.floor(x + 0.5)


def nearest_d(x: np.ndarray) -> np.ndarray:
    """D_n = {z ∈ Z^n : Σz even}: round; if the sum is odd, round the worst coordinate the other way."""
    f = np.floor(x + 0.5)
    odd = np.mod(f.sum(-1), 2.0) != 0
    if np.any(odd):
        err = x - f
        i = np.argmax(np.abs(err), axis=-1)[..., None]
        e = np.take_along_axis(err, i, -1)
        step = np.where(e >= 0, 1.0, -1.0)
        np.put_along_axis(f, i, np.take_along_axis(f, i, -1) + np.where(odd[..., None], step, 0.0), -1)
    return f


def nearest_a(x: np.ndarray) -> np.ndarray:
    """A_n = {z ∈ Z^(n+1) : Σz = 0} for x in the hyperplane Σx = 0: round; the deficiency δ = Σ round(x) is
    removed by moving the |δ| coordinates whose rounding error x_i − f_i is most negative (δ > 0: down by one)
    or most positive (δ < 0: up by one)."""
    x = x - x.mean(-1, keepdims=True)
    f = np.floor(x + 0.5)
    delta = f.sum(-1).astype(np.int64)[..., None]
    rank = np.argsort(np.argsort(x - f, axis=-1, kind="stable"), axis=-1, kind="stable")
    n1 = x.shape[-1]
    f -= (delta > 0) & (rank < delta)
    f += (delta < 0) & (rank >= n1 + delta)
    return f


_A2_FRAME = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[math.sqrt(2.0)], [math.sqrt(6.0)]])


def nearest_a2(x: np.ndarray) -> np.ndarray:
    """A2 (hexagonal) in the plane: rotate into the sum-zero plane of R^3, decode A_2 there, rotate back."""
    return nearest_a(x @ _A2_FRAME) @ _A2_FRAME.T


def nearest_e8(x: np.ndarray) -> np.ndarray:
    """E8 = D8 ∪ (D8 + ½·1): decode both cosets, keep the nearer point."""
    a = nearest_d(x)
    b = nearest_d(x - 0.5) + 0.5
    pick_b = ((x - b) ** 2).sum(-1) < ((x - a) ** 2).sum(-1)
    return np.where(pick_b[..., None], b, a)


@dataclass(frozen=True)
class Lattice:
    """An unscaled lattice: generator rows `gen` (points = integer row vectors · gen) and its decoder."""
    name: str
    gen: np.ndarray
    nearest: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    second_moment: float  # known normalized second moment G (Conway & Sloane, SPLAG, Table 2.3)

    @property
    def n(self) -> int:
        return int(self.gen.shape[0])

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.gen)))

    def coords(self, points: np.ndarray) -> np.ndarray:
        """Integer coordinates a of lattice points p = a·gen."""
        return np.floor(points @ np.linalg.inv(self.gen) + 0.5).astype(np.int64)


def _d4_gen() -> np.ndarray:
    return np.array([[-1, -1, 0, 0], [1, -1, 0, 0], [0, 1, -1, 0], [0, 0, 1, -1]], dtype=np.float64)


def _e8_gen() -> np.ndarray:
    g = np.zeros((8, 8))
    g[0, 0] = 2.0
    for i in range(1, 7):
        g[i, i - 1], g[i, i] = -1.0, 1.0
    g[7, :] = 0.5
    return g


LATTICES = {
    "Z": Lattice("Z", np.eye(1), nearest_z, 1.0 / 12.0),
    "A2": Lattice("A2", np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]) @ _A2_FRAME.T, nearest_a2, 5.0 / (36.0 * math.sqrt(3.0))),
    "D4": Lattice("D4", _d4_gen(), nearest_d, 0.0766032),
    "E8": Lattice("E8", _e8_gen(), nearest_e8, 929.0 / 12960.0),
}


def get_lattice(name: str) -> Lattice:
    try:
        return LATTICES[name]
    except KeyError:
        raise ConfigError(f"lattice: unknown lattice {name!r}; use one of {sorted(LATTICES)}") from None


def uniform_cell(lat: Lattice, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Points uniform on the Voronoi cell V0: a uniform point of the basis parallelepiped minus its nearest
    lattice point (the parallelepiped tiles space, so the difference is uniform on V0)."""
    p = rng.random(shape + (lat.n,)) @ lat.gen
    return p - lat.nearest(p)


def second_moment(lat: Lattice, n_points: int, seed: int = 0) -> tuple[float, float]:
    """(G, its standard error): G = E|U|²/(n·V^(2/n)), U uniform on V0."""
    u = uniform_cell(lat, (n_points,), np.random.Generator(np.random.PCG64(seed)))
    v = (u**2).sum(-1) / (lat.n * lat.volume ** (2.0 / lat.n))
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(n_points))


# ---- P(q | y) and E[X | q, y] by importance sampling -------------------------------------------------------------
def _in_cell(lat: Lattice, w: np.ndarray) -> np.ndarray:
    return np.all(np.abs(lat.nearest(w)) < 1e-9, axis=-1)


def _log_normal(w: np.ndarray, mean: np.ndarray, chol_inv: np.ndarray, logdet: np.ndarray) -> np.ndarray:
    """log N(w; mean, C) for (B, M, n) draws, per-block mean (B, n), C^(−1/2) as (B, n, n), log det C (B,)."""
    z = np.einsum("bij,bmj->bmi", chol_inv, w - mean[:, None, :])
    return -0.5 * (z * z).sum(-1) - 0.5 * logdet[:, None] - 0.5 * w.shape[-1] * math.log(2.0 * math.pi)


def _weighted_moments(w: np.ndarray, wt: np.ndarray):
    """f̂, m̂, relvar(f̂), Var(W | W ∈ V0) (trace, with the 1 − Σŵ² correction) and the covariance (B, n, n)."""
    f = wt.mean(1)
    den = wt.sum(1)
    wn = wt / np.maximum(den, 1e-300)[:, None]
    mean = np.einsum("bm,bmi->bi", wn, w)
    d = w - mean[:, None, :]
    cov = np.einsum("bm,bmi,bmj->bij", wn, d, d) / np.maximum(1.0 - (wn * wn).sum(1), 1e-3)[:, None, None]
    relvar = wt.var(1) / wt.shape[1] / np.maximum(f, 1e-300) ** 2
    return f, mean, relvar, np.trace(cov, axis1=1, axis2=2), cov


def cell_posterior(lat: Lattice, t: np.ndarray, sig: float, m: int, rng: np.random.Generator):
    """For offsets t = y − q (B, n) in unscaled lattice units and noise sd `sig` (same units): estimates of
    f(t) = P(t + sig·Z ∈ V0), m(t) = E[W | W ∈ V0] (W ~ N(t, sig²I)), the relative variance of f̂ and
    tr Var(W | W ∈ V0). Adaptive multiple importance sampling: a pilot of m/4 draws (half N(t, sig²I), half
    uniform on V0) fits a Gaussian N(m̂, Ĉ) to the truncated target; the estimate uses m fresh draws from the
    mixture 0.2·N(t, sig²I) + 0.2·Uniform(V0) + 0.6·N(m̂, 1.5·Ĉ) with weights target/mixture (≤ 5: the
    first two components bound them)."""
    B, n = t.shape
    log_v = math.log(lat.volume)

    def target_over(w, log_mix):  # 1_{V0}(w)·φ(w − t) / mixture(w)
        log_phi = -((w - t[:, None, :]) ** 2).sum(-1) / (2.0 * sig * sig) - 0.5 * n * math.log(2.0 * math.pi * sig * sig)
        return lambda inside: np.where(inside, np.exp(log_phi - log_mix(log_phi)), 0.0)

    h = max(m // 8, 2)
    w = np.concatenate([t[:, None, :] + sig * rng.standard_normal((B, h, n)), uniform_cell(lat, (B, h), rng)], axis=1)
    inside = np.concatenate([_in_cell(lat, w[:, :h]), np.ones((B, h), dtype=bool)], axis=1)
    wt = target_over(w, lambda lp: np.logaddexp(lp, -log_v) - math.log(2.0))
    _, mean, _, _, cov = _weighted_moments(w, wt(inside))
    iso = (np.trace(cov, axis1=1, axis2=2) / n)[:, None, None] * np.eye(n)
    cov = 1.5 * (0.7 * cov + 0.3 * iso) + 1e-6 * sig * sig * np.eye(n)  # shrunk towards isotropic, widened
    chol = np.linalg.cholesky(cov)
    chol_inv = np.linalg.inv(chol)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
    na, nb = max(m // 5, 1), max(m // 5, 1)
    nc = m - na - nb
    wa = t[:, None, :] + sig * rng.standard_normal((B, na, n))
    wc = mean[:, None, :] + np.einsum("bij,bmj->bmi", chol, rng.standard_normal((B, nc, n)))
    w = np.concatenate([wa, uniform_cell(lat, (B, nb), rng), wc], axis=1)
    inside = np.concatenate([_in_cell(lat, wa), np.ones((B, nb), dtype=bool), _in_cell(lat, wc)], axis=1)
    log_c = _log_normal(w, mean, chol_inv, logdet)

    def log_mix(lp):
        parts = [math.log(na / m) + lp, np.where(inside, math.log(nb / m) - log_v, -np.inf), math.log(nc / m) + log_c]
        return np.logaddexp.reduce(np.stack(parts), axis=0)

    wt = target_over(w, log_mix)
    f, mean, relvar, cvar, _ = _weighted_moments(w, wt(inside))
    return f, mean, relvar, cvar


def _draw(n_blocks: int, n: int, sigma2: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.standard_normal((n_blocks, n))
    return y + math.sqrt(sigma2) * rng.standard_normal((n_blocks, n)), y


def _scale(lat: Lattice, delta: float) -> float:
    """s with vol(s·L) = Δ^n."""
    return delta / lat.volume ** (1.0 / lat.n)


@dataclass
class _Acc:
    """Running sums of per-block quantities (for means and standard errors)."""
    sums: dict[str, list[float]] = field(default_factory=dict)

    def add(self, **arrays: np.ndarray) -> None:
        for k, a in arrays.items():
            s = self.sums.setdefault(k, [0.0, 0.0, 0.0])
            a = np.asarray(a, dtype=np.float64)
            s[0] += a.size
            s[1] += float(a.sum())
            s[2] += float((a * a).sum())

    def mean_se(self, k: str) -> tuple[float, float]:
        cnt, s1, s2 = self.sums[k]
        mu = s1 / cnt
        return mu, math.sqrt(max(s2 / cnt - mu * mu, 0.0) / max(cnt - 1, 1))


def _db(mse: float) -> float:
    return 10.0 * math.log10(mse)


def ideal_point(lattice: str, delta: float, sigma2: float, n_blocks: int = 4000, m: int = 256, seed: int = 0,
                chunk: int = 500) -> dict[str, float]:
    """Ideal Slepian–Wolf rate H(Q|Y) (bits/sample) and MMSE distortion of the step-Δ lattice quantizer, Monte
    Carlo over n_blocks test blocks with m importance draws each. The MMSE is E[Var(X | q, y)] per block
    (Rao–Blackwellized: the variance of x within its cell is integrated out); `d_db_decoder` is the distortion
    |x − x̂|² that the Monte Carlo decoder x̂ = q + m̂ actually reaches on the test pairs."""
    lat = get_lattice(lattice)
    n, s = lat.n, _scale(lat, delta)
    sig = math.sqrt(sigma2) / s
    data_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((seed, n))))  # the test pairs
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((seed, n, round(delta * 1e9), m))))
    acc = _Acc()
    for start in range(0, n_blocks, chunk):
        x, y = _draw(min(chunk, n_blocks - start), n, sigma2, data_rng)
        q = lat.nearest(x / s)
        f, mu, relvar, cvar = cell_posterior(lat, y / s - q, sig, m, rng)
        bias = relvar / (2.0 * math.log(2.0))  # E[−log2 f̂] − (−log2 f), first order
        acc.add(bits=-np.log2(np.maximum(f, 1e-300)) - bias, bias=bias, mmse=cvar * s * s,
                dec=((x - (q + mu) * s) ** 2).sum(-1), zero=(f <= 0))
    rate, rate_se = acc.mean_se("bits")
    mse, mse_se = acc.mean_se("mmse")
    return {"lattice": lattice, "n": n, "sigma2": sigma2, "delta": delta, "delta_over_sigma": delta / math.sqrt(sigma2),
            "blocks": n_blocks, "draws": m, "rate": rate / n, "rate_se": rate_se / n,
            "rate_mc_bias": acc.mean_se("bias")[0] / n, "mse": mse / n, "d_db": _db(mse / n),
            "d_db_se": 10.0 / math.log(10.0) * mse_se / mse, "d_db_decoder": _db(acc.mean_se("dec")[0] / n),
            "f_underflow": acc.mean_se("zero")[0]}


# ---- real bytes: nested lattice binning (coarse lattice k·Λ_f) ---------------------------------------------------
def _pack(digits: list[int], base: int) -> int:
    if len(digits) <= 64:
        v = 0
        for d in reversed(digits):
            v = v * base + d
        return v
    h = len(digits) // 2
    return _pack(digits[:h], base) + _pack(digits[h:], base) * base**h


def _unpack(value: int, base: int, count: int) -> list[int]:
    if count <= 64:
        out = []
        for _ in range(count):
            value, d = divmod(value, base)
            out.append(d)
        return out
    h = count // 2
    hi, lo = divmod(value, base**h)
    return _unpack(lo, base, h) + _unpack(hi, base, count - h)


def stream_bytes(n_blocks: int, n: int, k: int) -> int:
    """⌈N·n·log2(k)/8⌉: the bytes of N coset labels written as one base-k^n number."""
    return ((k ** (n * n_blocks) - 1).bit_length() + 7) // 8


def pack_cosets(labels: np.ndarray, k: int) -> bytes:
    """(N, n) coset digits in [0, k) → the base-k^n number Σ_b label_b·(k^n)^b, little endian, in stream_bytes."""
    N, n = labels.shape
    per_block = (labels.astype(object) * np.array([k**i for i in range(n)], dtype=object)).sum(1)
    return _pack([int(v) for v in per_block], k**n).to_bytes(stream_bytes(N, n, k), "little")


def unpack_cosets(data: bytes, n_blocks: int, n: int, k: int) -> np.ndarray:
    if len(data) != stream_bytes(n_blocks, n, k):
        raise BitstreamError(f"lattice_wz: the coset stream has {len(data)} bytes; {n_blocks} blocks of {n} samples at "
                             f"k = {k} need {stream_bytes(n_blocks, n, k)}")
    value = int.from_bytes(data, "little")
    if value >= k ** (n * n_blocks):
        raise BitstreamError("lattice_wz: the coset stream holds a number beyond k^(n·blocks); it is corrupt")
    per_block = _unpack(value, k**n, n_blocks)
    return np.array([[(v // k**i) % k for i in range(n)] for v in per_block], dtype=np.int64).reshape(n_blocks, n)


@dataclass
class NestedLatticeCode:
    """Fixed-rate Wyner–Ziv code: fine lattice s·L (cell volume Δ^n), coarse lattice k·s·L; log2(k) bit/sample.
    `decoder`: "mmse" (x̂ = q̂ + m̂(y − q̂), the cell MMSE by importance sampling with `draws` draws, seeded)
    or "point" (x̂ = q̂)."""
    lattice: str
    delta: float
    k: int
    sigma2: float
    decoder: str = "mmse"
    draws: int = 256
    seed: int = 0

    def __post_init__(self):
        self.lat = get_lattice(self.lattice)
        if self.k < 2 or self.decoder not in ("mmse", "point") or not self.delta > 0:
            raise ConfigError(f"lattice_wz: need k >= 2, delta > 0 and decoder 'mmse' or 'point'; got k={self.k}, "
                              f"delta={self.delta}, decoder={self.decoder!r}")
        self.s = _scale(self.lat, self.delta)

    def labels(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fine points q (unscaled, (N, n)) of the blocks of x and their coset digits mod k."""
        q = self.lat.nearest(np.asarray(x, dtype=np.float64).reshape(-1, self.lat.n) / self.s)
        return q, np.mod(self.lat.coords(q), self.k)

    def compress(self, x: np.ndarray) -> bytes:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size % self.lat.n:
            raise ConfigError(f"lattice_wz: {x.size} samples are not whole blocks of n = {self.lat.n}")
        _, c = self.labels(x)
        return Container(METHOD_TAG, self.k, (x.size,), [pack_cosets(c, self.k)]).to_bytes()

    def coset_point(self, c: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The point of the coset c·gen + k·L nearest to y (unscaled units)."""
        z = c @ self.lat.gen
        return z + self.k * self.lat.nearest((y / self.s - z) / self.k)

    def decompress(self, data: bytes, y: np.ndarray) -> np.ndarray:
        cont = Container.from_bytes(data, METHOD_TAG)
        if cont.point != self.k or len(cont.shape) != 1 or len(cont.streams) != 1:
            raise BitstreamError(f"lattice_wz: stream for k = {cont.point}, shape {cont.shape}, {len(cont.streams)} "
                                 f"sub-streams; this decoder is k = {self.k}, one 1-D stream")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.size != cont.shape[0] or y.size % self.lat.n:
            raise BitstreamError(f"lattice_wz: the stream codes {cont.shape[0]} samples but the side information has {y.size}")
        yb = y.reshape(-1, self.lat.n)
        c = unpack_cosets(cont.streams[0], yb.shape[0], self.lat.n, self.k)
        return self.reconstruct(self.coset_point(c, yb), yb).reshape(-1)

    def reconstruct(self, qh: np.ndarray, yb: np.ndarray) -> np.ndarray:
        if self.decoder == "point":
            return qh * self.s
        rng = np.random.Generator(np.random.PCG64(self.seed))
        out = np.empty_like(qh)
        sig = math.sqrt(self.sigma2) / self.s
        for i in range(0, qh.shape[0], 500):
            _, mu, _, _ = cell_posterior(self.lat, yb[i:i + 500] / self.s - qh[i:i + 500], sig, self.draws, rng)
            out[i:i + 500] = qh[i:i + 500] + mu
        return out * self.s


def nested_point(lattice: str, delta: float, k: int, sigma2: float, n_samples: int = 40_000, draws: int = 256,
                 seed: int = 0, stream_samples: int = 10_000) -> dict[str, float]:
    """The nested-lattice code measured from its real bytes: streams of `stream_samples` samples are compressed,
    decoded from the bytes with y (cell-MMSE decoder) and compared with x; also the point decoder's distortion
    and the rate of blocks whose decoded fine point is not the encoder's (decoding errors, included in D)."""
    code = NestedLatticeCode(lattice, delta, k, sigma2, decoder="mmse", draws=draws, seed=seed)
    n = code.lat.n
    if stream_samples % n:
        raise ConfigError(f"lattice_wz: a stream of {stream_samples} samples is not whole blocks of n = {n}")
    data_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((seed, 7, n))))
    se = se_point = errors = payload = total = 0.0
    done = 0
    while done < n_samples:
        x, y = _draw(stream_samples // n, n, sigma2, data_rng)
        data = code.compress(x)
        xh = code.decompress(data, y).reshape(x.shape)
        q, c = code.labels(x)
        qh = code.coset_point(c, y)
        se += float(((x - xh) ** 2).sum())
        se_point += float(((x - qh * code.s) ** 2).sum())
        errors += float(np.any(np.abs(qh - q) > 1e-9, axis=-1).sum())
        payload += 8.0 * len(Container.from_bytes(data, METHOD_TAG).streams[0])
        total += 8.0 * len(data)
        done += x.size
    return {"lattice": lattice, "n": n, "sigma2": sigma2, "k": k, "delta": delta,
            "delta_over_sigma": delta / math.sqrt(sigma2), "samples": done, "draws": draws,
            "rate_payload": payload / done, "rate_container": total / done, "rate_nominal": math.log2(k),
            "d_db": _db(se / done), "d_db_point": _db(se_point / done), "block_error_rate": errors / (done / n)}


# ---- the table ---------------------------------------------------------------------------------------------------
TARGET_RATES = (0.5, 0.65, 1.0, 1.5)
IDEAL_GRID = (1.4, 1.7, 2.1, 2.6, 3.2, 3.9, 4.7, 5.6)  # Δ/σ of the ideal Slepian–Wolf sweep
NESTED_GRID = {2: (2.5, 3.0, 3.5, 4.0, 4.5, 5.5), 3: (1.5, 1.8, 2.1, 2.5, 3.0, 3.5), 4: (1.0, 1.2, 1.4, 1.7, 2.0, 2.4)}


def _refs(rate: float, sigma2: float) -> tuple[float, float]:
    from benchmark.results.bounds import scalar_sw_distortion_db, wz_distortion_db
    return wz_distortion_db(rate, sigma2), scalar_sw_distortion_db(rate, sigma2)


def with_gaps(row: dict[str, float], rate_key: str = "rate") -> dict[str, float]:
    wz, sq = _refs(row[rate_key], row["sigma2"])
    return {**row, "gap_wz": row["d_db"] - wz, "gap_sq": row["d_db"] - sq}


def interpolate_gaps(rows: list[dict[str, float]], targets=TARGET_RATES) -> list[dict[str, float]]:
    """Per target rate R: the lattice's gap to the Wyner–Ziv bound interpolated linearly in rate between its two
    sweep points around R (the lattice curve read at R); gap to the scalar reference = that gap + D_WZ(R) −
    D_SQ(R) (the scalar reference is exact at any rate). Its error: the nearer sweep point's standard errors,
    sqrt(se_D² + (6.02 dB/bit · se_R)²). None outside the sweep."""
    rows = sorted(rows, key=lambda r: r["rate"])
    rates = np.array([r["rate"] for r in rows])
    gaps = np.array([r["gap_wz"] for r in rows])
    out = []
    for R in targets:
        if not rates[0] <= R <= rates[-1]:
            continue
        g = float(np.interp(R, rates, gaps))
        wz, sq = _refs(R, rows[0]["sigma2"])
        near = rows[int(np.argmin(np.abs(rates - R)))]
        err = math.hypot(near["d_db_se"], 20.0 * math.log10(2.0) * near["rate_se"])
        out.append({"lattice": rows[0]["lattice"], "sigma2": rows[0]["sigma2"], "rate": R, "gap_wz": g,
                    "gap_sq": g + wz - sq, "gap_se": err, "d_db": g + wz})
    return out


def measure(sigma2: float, samples: int, draws: int, nested_samples: int, nested_draws: int, log=print) -> dict:
    ideal, nested = [], []
    for name, lat in LATTICES.items():
        for f in IDEAL_GRID:
            r = with_gaps(ideal_point(name, f * math.sqrt(sigma2), sigma2, n_blocks=max(samples // lat.n, 1), m=draws))
            ideal.append(r)
            log(f"ideal  σ²={sigma2:g} {name:2s} Δ={f:.1f}σ  R={r['rate']:.4f}±{r['rate_se']:.4f}  D={r['d_db']:.3f}±"
                f"{r['d_db_se']:.3f} dB  gap WZ {r['gap_wz']:+.3f}  gap SQ {r['gap_sq']:+.3f}")
        for k, grid in NESTED_GRID.items():
            for f in grid:
                r = nested_point(name, f * math.sqrt(sigma2), k, sigma2, n_samples=nested_samples, draws=nested_draws)
                r = with_gaps(r, "rate_nominal")
                nested.append(r)
                log(f"nested σ²={sigma2:g} {name:2s} k={k} Δ={f:.1f}σ  payload {r['rate_payload']:.4f} bit  D={r['d_db']:.3f} dB"
                    f" (point {r['d_db_point']:.3f})  block errors {r['block_error_rate']:.4f}  gap WZ {r['gap_wz']:+.3f}")
    return {"ideal": ideal, "nested": nested}


def summarize(measured: dict) -> list[dict]:
    """Rows of the table: the ideal-rate gaps of every lattice at TARGET_RATES, the best Δ per nested code."""
    rows = []
    by = {}
    for r in measured["ideal"]:
        by.setdefault((r["lattice"], r["sigma2"]), []).append(r)
    for rs in by.values():
        rows += [{"kind": "ideal", **g} for g in interpolate_gaps(rs)]
    best = {}
    for r in measured["nested"]:
        key = (r["lattice"], r["sigma2"], r["k"])
        if key not in best or r["d_db"] < best[key]["d_db"]:
            best[key] = r
    for r in best.values():
        rows.append({"kind": "nested", "lattice": r["lattice"], "sigma2": r["sigma2"], "rate": r["rate_nominal"],
                     "k": r["k"], "delta_over_sigma": r["delta_over_sigma"], "d_db": r["d_db"], "gap_wz": r["gap_wz"],
                     "gap_sq": r["gap_sq"], "block_error_rate": r["block_error_rate"], "d_db_point": r["d_db_point"],
                     "rate_payload": r["rate_payload"]})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [("ideal Slepian–Wolf rate H(Q|Y), MMSE decoding: gap to the Wyner–Ziv bound / to the scalar reference "
              "(dB), lattice curve interpolated at the rate"),
             "| σ² | lattice | " + " | ".join(f"R = {R:g}" for R in TARGET_RATES) + " |",
             "|---|---|" + "---|" * len(TARGET_RATES)]
    ideal = {}
    for r in rows:
        if r["kind"] == "ideal":
            ideal.setdefault((r["sigma2"], r["lattice"]), {})[r["rate"]] = r
    for (s2, lat), cells in ideal.items():
        cols = [f"{cells[R]['gap_wz']:+.2f} / {cells[R]['gap_sq']:+.2f} (±{cells[R]['gap_se']:.2f})" if R in cells else "—"
                for R in TARGET_RATES]
        lines.append(f"| {s2:g} | {lat} | " + " | ".join(cols) + " |")
    lines += ["", "real bytes: nested lattice binning, coarse k·Λ_f, best Δ per k (cell-MMSE decoder; decoding errors included)",
              "| σ² | lattice | k | payload bit/sample | Δ/σ | D (dB) | gap WZ | gap SQ | block errors | D point decoder |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "nested":
            lines.append(f"| {r['sigma2']:g} | {r['lattice']} | {r['k']} | {r['rate_payload']:.4f} | {r['delta_over_sigma']:.1f} | "
                         f"{r['d_db']:.2f} | {r['gap_wz']:+.2f} | {r['gap_sq']:+.2f} | {r['block_error_rate']:.4f} | "
                         f"{r['d_db_point']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import csv
    import io
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    from benchmark.safety.atomicio import atomic_write_text

    ap = argparse.ArgumentParser(prog="python -m methods.layered_wz.lattice", description=__doc__.splitlines()[0])
    ap.add_argument("--sigma2", type=float, nargs="+", default=[0.1, 0.01])
    ap.add_argument("--samples", type=int, default=40_000, help="test samples per ideal-rate point (blocks = samples/n)")
    ap.add_argument("--draws", type=int, default=1024, help="importance draws per block (ideal rate and MMSE)")
    ap.add_argument("--nested-samples", type=int, default=40_000, help="test samples per nested-code point")
    ap.add_argument("--nested-draws", type=int, default=256, help="importance draws of the nested code's MMSE decoder")
    ap.add_argument("--out", type=Path, default=None, help="write the table as OUT.json and OUT.csv")
    a = ap.parse_args(argv)
    measured = {"ideal": [], "nested": []}
    for s2 in a.sigma2:
        part = measure(s2, a.samples, a.draws, a.nested_samples, a.nested_draws, log=lambda s: print(s, file=sys.stderr))
        measured["ideal"] += part["ideal"]
        measured["nested"] += part["nested"]
    rows = summarize(measured)
    print(format_table(rows))
    if a.out is not None:
        try:
            git = {"capture_output": True, "text": True, "timeout": 30}
            commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, **git).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--", __file__], check=False, **git).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit, dirty = "", "unknown"
        cmd = "python -m methods.layered_wz.lattice " + " ".join(argv if argv is not None else sys.argv[1:])
        doc = {"command": cmd, "commit": commit, "lattice_py_uncommitted": bool(dirty), "settings": vars(a) | {"out": str(a.out)},
               "cpu_seconds": round(time.process_time(), 1), "table": rows, **measured}
        atomic_write_text(a.out.with_suffix(".json"), json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        buf = io.StringIO()
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("kind", "sigma2", "lattice", "rate", "k"), k))
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(a.out.with_suffix(".csv"), buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
