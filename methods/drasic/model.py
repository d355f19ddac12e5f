"""DRASIC's networks: a symmetric recurrent autoencoder (ConvLSTM + pixel (un)shuffle) run on residuals.

One iteration t (paper eq. 3-4, 8-9), in the [-1, 1] domain (input 2*img - 1)::

    z_t   = f_m(r_t)                 encoder of source m, tanh output, 8 channels at H/8 x W/8
    b_t   = Binarize(z_t)            training: +1 w.p. (z+1)/2 else -1, straight-through; test: sign (z >= 0 -> +1)
    d_t   = g(b_t)                   the decoder (shared by all sources in the distributed configuration)
    x^_t  = d_1 + ... + d_t          reconstruction = running sum of decoder outputs
    r_t+1 = x - x^_t                 the next iteration codes the residual (r_1 = x)

Loss (eq. 5/10): the mean over iterations (and samples) of L1(x, x^_t).

Encoder (paper widths, "tanh, no bias"): 1x1 conv -> 32 ch; three stages [pixel-unshuffle x2, ConvLSTM]
with inputs 128, 512, 512 and hidden 128; 1x1 conv -> 8 ch. Decoder mirrors it: 1x1 conv 8 -> 128; three
stages [ConvLSTM, pixel-shuffle x2] with hidden 512, 512, 128; 1x1 conv 32 -> image channels. ConvLSTM gates
are 3x3 convolutions on input and hidden state. The paper widths give 7.08 M parameters per encoder and
24.8 M for the decoder; `Widths` makes them configurable for CPU budgets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

CODE_CHANNELS = 8  # bits per 8x8 block and iteration: 8 x (H/8) x (W/8) bits = 0.125 bpp per iteration
STRIDE = 8  # three pixel-unshuffles by 2


@dataclass(frozen=True)
class Widths:
    """Channel widths. Paper: enc_stem 32, enc_hidden 128, dec_stem 128, dec_hidden (512, 512, 128)."""

    enc_stem: int = 32
    enc_hidden: int = 128
    dec_stem: int = 128
    dec_hidden: tuple[int, int, int] = (512, 512, 128)
    channels: int = 1  # image channels (1 for MNIST)
    # The authors' published code (``src/models/dist_codec.py``) instead of the paper's equations: a bias on the
    # encoder's first 1x1 conv, and its recurrence (first pass in [-1, 1], mapped to [0, 1]; residuals and the
    # running sum in [0, 1]). See `DRASIC` and convert.py.
    authors: bool = False

    def __post_init__(self):
        vals = [self.enc_stem, self.enc_hidden, self.dec_stem, *self.dec_hidden, self.channels]
        if len(self.dec_hidden) != 3 or any(int(v) < 1 for v in vals):
            raise ValueError(f"DRASIC widths must be positive (three decoder stages): {self}")
        if any(h % 4 for h in self.dec_hidden):
            raise ValueError(f"decoder hidden widths must be multiples of 4 (pixel shuffle x2): {self.dec_hidden}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["dec_hidden"] = list(self.dec_hidden)
        if not d["authors"]:  # recorded only when set (older weights and run folders unchanged)
            del d["authors"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Widths":
        return cls(**{**d, "dec_hidden": tuple(int(v) for v in d["dec_hidden"])})


PAPER_WIDTHS = Widths()


class ConvLSTM(nn.Module):
    """ConvLSTM cell: the four gates are 3x3 convolutions of the input plus 3x3 convolutions of the hidden state."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3, bias: bool = False):
        super().__init__()
        self.hidden = hidden
        self.conv_x = nn.Conv2d(cin, 4 * hidden, kernel, padding=kernel // 2, bias=bias)
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        if state is None:
            z = x.new_zeros(x.shape[0], self.hidden, x.shape[2], x.shape[3])
            state = (z, z)
        h, c = state
        gates = self.conv_x(x) + self.conv_h(h)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class Encoder(nn.Module):
    """r_t (N x C x H x W, [-1,1]-scaled residual) -> z_t (N x 8 x H/8 x W/8) in (-1, 1)."""

    def __init__(self, w: Widths):
        super().__init__()
        self.stem = nn.Conv2d(w.channels, w.enc_stem, 1, bias=w.authors)
        self.rnn = nn.ModuleList([
            ConvLSTM(4 * w.enc_stem, w.enc_hidden),
            ConvLSTM(4 * w.enc_hidden, w.enc_hidden),
            ConvLSTM(4 * w.enc_hidden, w.enc_hidden),
        ])
        self.head = nn.Conv2d(w.enc_hidden, CODE_CHANNELS, 1, bias=False)

    def forward(self, r: torch.Tensor, states: list | None):
        states = states or [None] * len(self.rnn)
        h = torch.tanh(self.stem(r))
        new = []
        for cell, st in zip(self.rnn, states):
            h, st = cell(F.pixel_unshuffle(h, 2), st)
            new.append(st)
        return torch.tanh(self.head(h)), new


class Decoder(nn.Module):
    """b_t (N x 8 x H/8 x W/8, +-1) -> d_t (N x C x H x W) in (-1, 1)."""

    def __init__(self, w: Widths):
        super().__init__()
        self.stem = nn.Conv2d(CODE_CHANNELS, w.dec_stem, 1, bias=False)
        h1, h2, h3 = w.dec_hidden
        self.rnn = nn.ModuleList([ConvLSTM(w.dec_stem, h1), ConvLSTM(h1 // 4, h2), ConvLSTM(h2 // 4, h3)])
        self.head = nn.Conv2d(h3 // 4, w.channels, 1, bias=False)

    def forward(self, b: torch.Tensor, states: list | None):
        states = states or [None] * len(self.rnn)
        h = torch.tanh(self.stem(b))
        new = []
        for cell, st in zip(self.rnn, states):
            h, st = cell(h, st)
            h = F.pixel_shuffle(h, 2)
            new.append(st)
        return torch.tanh(self.head(h)), new


def binarize(z: torch.Tensor, training: bool, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Training: +1 with probability (z+1)/2 else -1, gradient of the identity (straight-through, eq. 6).
    Test: sign, with z >= 0 -> +1 (eq. 7). ``noise``: the uniform draws to use instead of fresh ones (tests)."""
    if training:
        u = torch.rand_like(z) if noise is None else noise.to(z)
        b = torch.where(u < (z + 1) / 2, 1.0, -1.0).to(z.dtype)
        return b + (z - z.detach())  # exactly +-1 forward (z - z == 0), identity gradient
    return torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


class DRASIC(nn.Module):
    """`n_encoders` encoders and `n_decoders` decoders (1 shared, or one per encoder).

    Configurations: distributed (M encoders, 1 decoder), separate (M encoders, M decoders: pair m = (f_m, g_m)),
    joint (1 encoder, 1 decoder trained on every source's data).

    Recurrence, in the [-1, 1] domain of x: the paper's (default) is r_t = x - x^_{t-1}, x^_t = x^_{t-1} + d_t.
    With ``widths.authors`` it is the authors' code's, which runs after the first pass in the [0, 1] domain:
    r_1 = x, x^_1 = d_1, then r_t = (x - x^_{t-1}) / 2 and x^_t = x^_{t-1} + 2 d_t (the same numbers as their
    [0, 1] reconstruction (d_1 + 1) / 2 + d_2 + ... mapped to [-1, 1])."""

    def __init__(self, widths: Widths, n_encoders: int, n_decoders: int):
        super().__init__()
        if n_decoders not in (1, n_encoders):
            raise ValueError("n_decoders must be 1 (shared) or equal to n_encoders (pairs)")
        self.widths = widths
        self.authors = bool(widths.authors)
        self.encoders = nn.ModuleList([Encoder(widths) for _ in range(n_encoders)])
        self.decoders = nn.ModuleList([Decoder(widths) for _ in range(n_decoders)])

    def _residual(self, x: torch.Tensor, recon: torch.Tensor | None) -> torch.Tensor:
        if recon is None:
            return x
        return (x - recon) / 2 if self.authors else x - recon

    def _accumulate(self, recon: torch.Tensor | None, d: torch.Tensor) -> torch.Tensor:
        if recon is None:
            return d
        return recon + 2 * d if self.authors else recon + d

    def decoder_index(self, m: int) -> int:
        return 0 if len(self.decoders) == 1 else m

    def encoder_index(self, m: int) -> int:
        return 0 if len(self.encoders) == 1 else m

    # ---- training / analysis: all iterations at once, samples routed to their own source's encoder -------
    def forward(self, x: torch.Tensor, sources: torch.Tensor, iterations: int,
                noise: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """x: N x C x H x W in [-1, 1] (H, W multiples of 8); sources: N source indices.
        Returns the reconstructions x^_1 .. x^_T (running sums of the decoder outputs).
        ``noise``: per iteration, the binarizer's uniform draws for the whole batch (N x 8 x H/8 x W/8; tests)."""
        groups = self._groups(sources)
        enc_states = {m: None for m in groups}
        dec_states: dict[int, list | None] = {}
        recon = None
        outs = []
        for t in range(iterations):
            r = self._residual(x, recon)
            code = None
            for m, idx in groups.items():
                z, enc_states[m] = self.encoders[self.encoder_index(m)](r[idx], enc_states[m])
                b = binarize(z, self.training) if noise is None else binarize(z, self.training, noise[t][idx])
                if code is None:
                    code = b.new_zeros((x.shape[0],) + tuple(b.shape[1:]))
                code = code.index_copy(0, idx, b)
            d = self._decode_step(code, sources, dec_states, groups)
            recon = self._accumulate(recon, d)
            outs.append(recon)
        return outs

    def _groups(self, sources: torch.Tensor) -> dict[int, torch.Tensor]:
        src = sources.long().view(-1)
        if len(self.encoders) == 1:
            return {0: torch.arange(src.numel(), device=src.device)}
        out = {}
        for m in sorted(set(src.tolist())):
            if not 0 <= m < len(self.encoders):
                raise ValueError(f"sample source {m} outside 0..{len(self.encoders) - 1}")
            out[m] = torch.nonzero(src == m).view(-1)
        return out

    def _decode_step(self, code: torch.Tensor, sources: torch.Tensor, dec_states: dict, groups: dict) -> torch.Tensor:
        if len(self.decoders) == 1:
            d, dec_states[0] = self.decoders[0](code, dec_states.get(0))
            return d
        d_all = None
        for m, idx in groups.items():
            d, dec_states[m] = self.decoders[m](code[idx], dec_states.get(m))
            d_all = (d.new_zeros((code.shape[0],) + tuple(d.shape[1:])) if d_all is None else d_all).index_copy(0, idx, d)
        return d_all

    # ---- coding: one source, deterministic (sign) binarizer ----------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor, source: int, iterations: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x: 1 x C x H x W in [-1, 1]. Returns (codes b_1..b_T as +-1 tensors, reconstructions x^_1..x^_T).
        The encoder runs the decoder of its source to form the residuals (the recurrent loop needs it)."""
        enc = self.encoders[self.encoder_index(source)]
        dec = self.decoders[self.decoder_index(source)]
        es = ds = None
        recon = None
        codes, recons = [], []
        for _ in range(iterations):
            z, es = enc(self._residual(x, recon), es)
            b = binarize(z, False)
            d, ds = dec(b, ds)
            recon = self._accumulate(recon, d)  # exactly as `decode` sums
            codes.append(b)
            recons.append(recon)
        return codes, recons

    @torch.no_grad()
    def decode(self, codes: Sequence[torch.Tensor], source: int) -> torch.Tensor:
        """The running sum of the decoder outputs for the given codes (the decoder of `source`)."""
        dec = self.decoders[self.decoder_index(source)]
        ds = None
        recon = None
        for b in codes:
            d, ds = dec(b, ds)
            recon = self._accumulate(recon, d)
        return recon


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
