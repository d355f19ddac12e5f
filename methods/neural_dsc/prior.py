"""The latent prior of Neural DSC and the arithmetic (range) coding of the latent indices with it.

Prior: a causal Transformer over the raster-ordered codebook indices of one image (pre-LayerNorm blocks,
multi-head self-attention, GELU MLP, dropout). The input at position t is the embedding of index t-1 (a
begin token at t = 0) plus a fixed 2-D sinusoidal encoding of position t's (row, column), so a prior
trained on one grid size still knows where "the index above" is on another. It is not conditioned on the
side view: the encoder, which never sees it (distributed / separate modes), must compute the same
probabilities as the decoder.

Coding (``encode_indices`` / ``decode_indices``): constriction's ``stream.queue.RangeEncoder`` /
``RangeDecoder`` with one ``model.Categorical(p_t, perfect=False)`` per symbol. Determinism: encoder and
decoder run the *same* incremental float64 pass (``Stepper``: one position at a time with a key/value
cache, single-threaded), fed the same previous symbols, so p_t is bit-identical on both sides; constriction
then quantises each p_t to its fixed-point table with exact integer arithmetic. The batched pass
(``CausalTransformerPrior.forward``) is used for training and for the ideal code length only.

``style="authors"``: the prior of the authors' code (``code/arch/latent_transformer.py``) instead: post-norm
blocks (LayerNorm after each residual sum), no final LayerNorm, and a 1-D sinusoidal encoding of the raster
position t (sin on even, cos on odd channels); convert.py maps its weights onto this class.

Tail trimming: constriction emits 32-bit words, so its last word carries up to ~30 unneeded bits. The
words are serialised big-endian and the encoder replaces the last word by the shortest prefix (1-3 bytes,
rounded down or up) that still decodes to exactly the same symbols (checked by decoding); the decoder pads
the stream with zero bytes. This brings the payload to within a few bits of ceil(sum -log2 p) + 1.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoid_1d(length: int, dim: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(length, dim) encoding of the raster position t as in "Attention is all you need": channel 2i holds
    sin(t / 10000^(2i/dim)), channel 2i+1 the cosine (the authors' prior)."""
    t = torch.arange(length, dtype=dtype, device=device)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=dtype, device=device) * -(math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, dtype=dtype, device=device)
    pe[:, 0::2] = torch.sin(t * div)
    pe[:, 1::2] = torch.cos(t * div)[:, : dim // 2]
    return pe


def positions(style: str, h: int, w: int, dim: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The position encoding of a style; the authors' is computed in float32 as their buffer is (the float32
    sines of large positions differ from exact ones by up to ~3e-5), then cast."""
    if style == "authors":
        return sinusoid_1d(h * w, dim, torch.float32, device).to(dtype)
    return sinusoid_2d(h, w, dim, dtype, device)


STYLES = ("bench", "authors")


def sinusoid_2d(h: int, w: int, dim: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(h*w, dim) fixed encoding: first half sin/cos of the row, second half of the column (raster order)."""
    half = dim // 2
    quarter = half // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter, dtype=dtype, device=device) / max(1, quarter))

    def enc(pos: torch.Tensor) -> torch.Tensor:
        a = pos[:, None] * freqs[None]
        out = torch.cat([a.sin(), a.cos()], 1)
        return F.pad(out, (0, half - out.shape[1]))

    t = torch.arange(h * w, device=device)
    rows = torch.div(t, w, rounding_mode="floor").to(dtype)
    cols = (t % w).to(dtype)
    pe = torch.cat([enc(rows), enc(cols)], 1)
    return F.pad(pe, (0, dim - pe.shape[1]))


class Block(nn.Module):
    """Pre-norm (ours) or post-norm (``post_norm``, the authors') self-attention + GELU MLP block."""

    def __init__(self, dim: int, heads: int, dropout: float, mlp_ratio: int = 4, post_norm: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"prior dim {dim} is not divisible by {heads} heads")
        self.heads, self.dropout, self.post_norm = heads, dropout, post_norm
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, L, d = x.shape
        q, k, v = self.qkv(x if self.post_norm else self.ln1(x)).view(n, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        a = self.drop(self.proj(a.transpose(1, 2).reshape(n, L, d)))
        if self.post_norm:
            x = self.ln1(x + a)
            return self.ln2(x + self.drop(self.mlp(x)))
        x = x + a
        return x + self.drop(self.mlp(self.ln2(x)))

    def step(self, x: torch.Tensor, t: int, kbuf: torch.Tensor, vbuf: torch.Tensor) -> torch.Tensor:
        """One position (x: (1, dim)) with the cache buffers (heads, L, dh) filled up to t-1."""
        d = x.shape[-1]
        dh = d // self.heads
        q, k, v = self.qkv(x if self.post_norm else self.ln1(x)).view(3, self.heads, dh).unbind(0)
        kbuf[:, t] = k
        vbuf[:, t] = v
        att = torch.softmax((kbuf[:, : t + 1] @ q[:, :, None])[:, :, 0] / math.sqrt(dh), dim=-1)  # (heads, t+1)
        a = self.proj((att[:, None, :] @ vbuf[:, : t + 1])[:, 0, :].reshape(1, d))
        if self.post_norm:
            x = self.ln1(x + a)
            return self.ln2(x + self.mlp(x))
        x = x + a
        return x + self.mlp(self.ln2(x))


class CausalTransformerPrior(nn.Module):
    """p(i_t | i_<t) over K codebook indices in raster order."""

    def __init__(self, K: int, dim: int = 128, layers: int = 2, heads: int = 4, dropout: float = 0.1, style: str = "bench"):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"prior style must be one of {STYLES}, got {style!r}")
        self.K, self.dim, self.style = K, dim, style
        self.tok = nn.Embedding(K + 1, dim)  # index K = begin token
        self.blocks = nn.ModuleList(Block(dim, heads, dropout, post_norm=style == "authors") for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim) if style == "bench" else nn.Identity()
        self.head = nn.Linear(dim, K)
        self.drop = nn.Dropout(dropout)

    def forward(self, idx: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """idx (N, h*w) long -> logits (N, h*w, K) of every position given the ones before it."""
        n, L = idx.shape
        bos = torch.full((n, 1), self.K, dtype=idx.dtype, device=idx.device)
        inp = torch.cat([bos, idx[:, :-1]], 1)
        pe = positions(self.style, h, w, self.dim, self.tok.weight.dtype, idx.device)
        x = self.drop(self.tok(inp) + pe[None])
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))

    def nll_bits(self, idx: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """-log2 p of each index (N, h*w)."""
        logp = torch.log_softmax(self.forward(idx, h, w), -1)
        return -logp.gather(-1, idx[..., None])[..., 0] / math.log(2.0)


class Stepper:
    """The incremental pass: ``probs(prev)`` returns p(i_t | i_<t) as float64 numpy for t = 0, 1, ...

    ``prev`` is the symbol of position t-1 (ignored at t = 0). Encoder and decoder both use this class, so
    they compute identical probabilities from identical symbols."""

    def __init__(self, prior64: CausalTransformerPrior, h: int, w: int):
        self.p, self.h, self.w, self.t = prior64, h, w, 0
        L = h * w
        self.pe = positions(prior64.style, h, w, prior64.dim, torch.float64)
        self.kv = [tuple(torch.zeros(b.heads, L, prior64.dim // b.heads, dtype=torch.float64) for _ in range(2))
                   for b in prior64.blocks]

    @torch.no_grad()
    def probs(self, prev: int) -> np.ndarray:
        t = self.t
        if t >= self.h * self.w:
            raise IndexError("all positions have been stepped")
        tok = self.p.K if t == 0 else int(prev)
        x = self.p.tok.weight[tok][None] + self.pe[t][None]
        for b, (kb, vb) in zip(self.p.blocks, self.kv):
            x = b.step(x, t, kb, vb)
        logits = self.p.head(self.p.ln_f(x))[0]
        self.t += 1
        return torch.softmax(logits, -1).numpy().astype(np.float64, copy=True)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the probability pass on one thread (reductions then do not depend on the thread count)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def to_float64(prior: CausalTransformerPrior) -> CausalTransformerPrior:
    import copy

    p = copy.deepcopy(prior).to("cpu").double().eval()
    for q in p.parameters():
        q.requires_grad_(False)
    return p


# ---------------------------------------------------------------- range coding
def _constriction():
    import constriction  # submodules are attributes of the compiled extension, not importable paths

    return constriction


def _categorical(p: np.ndarray | None = None):
    Categorical = _constriction().stream.model.Categorical
    return Categorical(perfect=False) if p is None else Categorical(p, perfect=False)


def _words(data: bytes) -> np.ndarray:
    data = bytes(data) + b"\x00" * ((-len(data)) % 4)
    words = np.frombuffer(data, dtype=">u4").astype(np.uint32)
    return np.concatenate([words, np.zeros(2, dtype=np.uint32)])  # implicit zero tail (never transmitted)


def range_decode_all(data: bytes, probs: np.ndarray) -> np.ndarray:
    """Decode len(probs) symbols whose distributions are known in advance (encoder-side check)."""
    return _constriction().stream.queue.RangeDecoder(_words(data)).decode(_categorical(), np.ascontiguousarray(probs, dtype=np.float64))


def range_encode(symbols: np.ndarray, probs: np.ndarray, trim: bool = True) -> bytes:
    """Range-code symbols[t] ~ Categorical(probs[t]); bytes = big-endian words with a trimmed last word."""
    RangeEncoder = _constriction().stream.queue.RangeEncoder
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    enc = RangeEncoder()
    if len(symbols):
        enc.encode(symbols, _categorical(), probs)
    full = enc.get_compressed().astype(">u4").tobytes()
    if not trim or len(full) < 4:
        return full
    head, last = full[:-4], int.from_bytes(full[-4:], "big")
    for keep in range(4):
        unit = 1 << (8 * (4 - keep))
        low = last - last % unit
        for cand in (low, low + unit):
            if cand >= 1 << 32:
                continue
            data = head + cand.to_bytes(4, "big")[:keep]
            if _decodes_to(data, probs, symbols):
                return data
    return full


def _decodes_to(data: bytes, probs: np.ndarray, symbols: np.ndarray) -> bool:
    """Whether `data` decodes to `symbols` (a trimmed candidate may also be rejected by the decoder itself)."""
    try:
        return bool(np.array_equal(range_decode_all(data, probs), symbols))
    except (AssertionError, ValueError, RuntimeError):
        return False


def encode_indices(prior64: CausalTransformerPrior, symbols: np.ndarray, h: int, w: int) -> tuple[bytes, np.ndarray]:
    """Code the raster-ordered indices (h*w,) with the prior; returns (bytes, the probabilities used)."""
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if symbols.size != h * w:
        raise ValueError(f"expected {h * w} indices, got {symbols.size}")
    with single_thread():
        st = Stepper(prior64, h, w)
        probs = np.empty((h * w, prior64.K), dtype=np.float64)
        prev = 0
        for t in range(h * w):
            probs[t] = st.probs(prev)
            prev = int(symbols[t])
    return range_encode(symbols, probs), probs


def decode_indices(prior64: CausalTransformerPrior, data: bytes, h: int, w: int) -> np.ndarray:
    """Inverse of encode_indices: decode h*w indices autoregressively."""
    dec = _constriction().stream.queue.RangeDecoder(_words(data))
    out = np.empty(h * w, dtype=np.int64)
    with single_thread():
        st = Stepper(prior64, h, w)
        prev = 0
        for t in range(h * w):
            prev = int(dec.decode(_categorical(st.probs(prev))))
            out[t] = prev
    return out


def ideal_bits(prior64: CausalTransformerPrior, symbols: np.ndarray | torch.Tensor, h: int, w: int) -> float:
    """The authors' code length: ceil(sum_t -log2 p(i_t | i_<t)) + 1 bits (batched float64 pass)."""
    idx = torch.as_tensor(np.asarray(symbols), dtype=torch.long).reshape(1, -1)
    with torch.no_grad():
        bits = float(prior64.nll_bits(idx, h, w).sum())
    return math.ceil(bits) + 1.0
