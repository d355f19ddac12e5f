"""The conditional VQ-VAE of Neural DSC (Whang, Nagle, Acharya, Kim, Dimakis): torch modules only.

Shapes: images enter in [0, 1] and are shifted to [-0.5, 0.5]; the decoder ends in ``sigmoid - 0.5`` and
the model returns ``x_hat`` shifted back to [0, 1]. ``down`` (2, 4, 8 or 16) stride-2 convolutions bring
the image to the latent grid; every grid position carries one codebook index (one latent channel) whose
code vector has ``emb_dim`` (64 in the paper) entries.

Three modes share the same widths (the paper's joint / distributed / separate comparison):

=============  ======================  ======================
mode           encoder bottleneck gets  decoder bottleneck gets
=============  ======================  ======================
joint          cond(side)               cond(side)
distributed    zeros                    cond(side)
separate       zeros                    zeros
=============  ======================  ======================

``cond`` is the SI net (Conv3x3 + residual block at full resolution) followed by a conditioning tower that
mirrors the encoder down to the latent grid; its features are concatenated to the latent at the bottleneck.
In ``separate`` mode the SI net is not built (its features would always be replaced by zeros).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.training import distributed

MODES = ("distributed", "joint", "separate")


class ResBlock(nn.Module):
    """``h + Conv1x1(GELU(Conv3x3(GELU(h))))`` (the 3x3 conv maps to ``mid`` channels, default ``ch``)."""

    def __init__(self, ch: int, mid: int | None = None):
        super().__init__()
        mid = mid or ch
        self.conv3 = nn.Conv2d(ch, mid, 3, padding=1)
        self.conv1 = nn.Conv2d(mid, ch, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.conv1(F.gelu(self.conv3(F.gelu(h))))


def _n_down(down: int) -> int:
    n = int(round(math.log2(down))) if down > 0 else -1
    if n < 1 or 2**n != down:
        raise ValueError(f"down must be a power of two >= 2 (2, 4, 8, 16), got {down}")
    return n


def _down_tower(in_ch: int, ch: int, down: int, n_res: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_ch
    for _ in range(_n_down(down)):
        layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), nn.GELU()]
        c = ch
    layers.append(nn.Conv2d(ch, ch, 3, padding=1))
    layers += [ResBlock(ch) for _ in range(n_res)]
    layers.append(nn.GELU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x (3 ch, [-0.5, 0.5]) -> features on the latent grid (ch channels)."""

    def __init__(self, ch: int, down: int, n_res: int, in_ch: int = 3):
        super().__init__()
        self.net = _down_tower(in_ch, ch, down, n_res)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CondNet(nn.Module):
    """SI net (Conv3x3 + residual block, full resolution) + conditioning tower down to the latent grid."""

    def __init__(self, ch: int, down: int, n_res: int, in_ch: int = 3):
        super().__init__()
        self.si = nn.Sequential(nn.Conv2d(in_ch, ch, 3, padding=1), ResBlock(ch))
        self.tower = _down_tower(ch, ch, down, n_res)

    def forward(self, side: torch.Tensor) -> torch.Tensor:
        return self.tower(self.si(side))


class Decoder(nn.Module):
    """[quantised latent, conditioning features] on the grid -> image in [-0.5, 0.5] (sigmoid - 0.5)."""

    def __init__(self, in_ch: int, ch: int, down: int, n_res: int, out_ch: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ch, 3, padding=1)]
        layers += [ResBlock(ch) for _ in range(n_res)]
        layers.append(nn.GELU())
        n = _n_down(down)
        for i in range(n):
            last = i == n - 1
            layers.append(nn.ConvTranspose2d(ch, out_ch if last else ch, 4, stride=2, padding=1))
            if not last:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(h)) - 0.5


class EMAVectorQuantizer(nn.Module):
    """Codebook of K vectors of size ``dim`` learned by exponential moving averages (decay 0.99), as in
    VQ-VAE (van den Oord et al., 2017, appendix) with Laplace smoothing of the counts.

    Two practical additions (not in the paper; both switchable): the codebook is initialised from the
    first training batch's encoder outputs, and codes whose EMA count falls below ``dead_threshold``
    assignments per batch are re-seeded from the current batch. Both run only in training mode and draw
    from torch's global RNG, which the shared trainer seeds per step (deterministic resume)."""

    def __init__(self, K: int, dim: int, decay: float = 0.99, eps: float = 1e-5, data_init: bool = True,
                 dead_threshold: float = 1.0, requantize: bool = True):
        super().__init__()
        self.K, self.dim, self.decay, self.eps = K, dim, decay, eps
        self.data_init, self.dead_threshold = data_init, dead_threshold
        self.requantize = requantize  # training: quantise again with the updated codebook (False: the authors')
        embed = torch.randn(K, dim) * 0.1
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.ones(K))
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.long))

    def _flat(self, z: torch.Tensor) -> torch.Tensor:
        return z.permute(0, 2, 3, 1).reshape(-1, self.dim)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code per grid position: z (N, dim, H, W) -> (N, H, W) long."""
        n, _, h, w = z.shape
        flat = self._flat(z)
        d = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ self.embed.t() + self.embed.pow(2).sum(1)[None]
        return d.argmin(1).view(n, h, w)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """(N, H, W) indices -> (N, dim, H, W) code vectors."""
        return F.embedding(idx, self.embed).permute(0, 3, 1, 2).contiguous()

    def _random_rows(self, z: torch.Tensor, flat: torch.Tensor, k: int) -> torch.Tensor:
        """k encoder outputs of the whole batch, picked at random, with a little noise. Data-parallel training:
        drawn by rank 0 from the global batch (every rank's shard, in the 1-process order) and sent to every rank,
        so the codebook gets the rows the 1-process run draws (rank 0's RNG is the 1-process run's)."""
        if distributed.group().world > 1:
            flat = torch.cat([self._flat(s[None]) for s in distributed.gather_slots(z)])
        pick = torch.randint(0, flat.shape[0], (k,), device=flat.device)
        rows = flat[pick] + 0.01 * flat.std() * torch.randn(k, self.dim, device=flat.device)
        return distributed.broadcast(rows.contiguous())

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        """The EMA update of the codebook from the encoder outputs `z` (N, dim, H, W) and their codes `idx`. The
        cluster counts and sums are those of the global batch (summed over the ranks of a data-parallel run), so
        N processes make the update one process makes and the buffers stay equal on every rank."""
        flat = self._flat(z)
        if self.data_init and int(self.initialized) == 0:
            rows = self._random_rows(z, flat, self.K)
            self.embed.copy_(rows)
            self.embed_avg.copy_(rows)
            self.cluster_size.fill_(1.0)
            self.initialized.fill_(1)
            idx = self.indices(flat.t().reshape(1, self.dim, 1, -1)).reshape(-1)
        onehot = F.one_hot(idx, self.K).type(flat.dtype)
        counts, sums = onehot.sum(0), onehot.t() @ flat
        distributed.all_reduce_sum(counts, sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.K * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        if self.dead_threshold > 0:
            dead = self.cluster_size < self.dead_threshold
            nd = int(dead.sum())
            if nd:
                rows = self._random_rows(z, flat, nd)
                self.embed[dead] = rows
                self.embed_avg[dead] = rows
                self.cluster_size[dead] = 1.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(straight-through quantised z, indices, commitment loss ||z - sg(z_q)||^2)."""
        idx = self.indices(z)
        if self.training:
            zq = self.lookup(idx)  # the codebook before the update (kept when not re-quantising)
            self._ema_update(z.detach(), idx.reshape(-1))
            if self.requantize:
                idx = self.indices(z)
                zq = self.lookup(idx)
        else:
            zq = self.lookup(idx)
        commit = F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), idx, commit


@dataclass
class VQOutput:
    x_hat: torch.Tensor  # [0, 1] scale (not clamped; sigmoid keeps it in (0, 1))
    indices: torch.Tensor  # (N, h, w)
    commitment: torch.Tensor


class ModeVQVAE(nn.Module):
    """What every VQ-VAE of the three modes shares: which path sees the side view, coding by indices."""

    def __init__(self, mode: str, bits: int):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 1 <= bits <= 16:
            raise ValueError(f"codebook bits must be in 1..16, got {bits}")
        self.mode, self.bits = mode, bits

    @property
    def encoder_uses_side(self) -> bool:
        return self.mode == "joint"

    @property
    def decoder_uses_side(self) -> bool:
        return self.mode in ("joint", "distributed")

    def encode_indices(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        return self.vq.indices(self.encode(x, side))

    def decode_indices(self, idx: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.vq.lookup(idx), side)


class ConditionalVQVAE(ModeVQVAE):
    """Encoder -> EMA VQ (K = 2**bits codes of size emb_dim) -> decoder conditioned on the side view."""

    def __init__(self, mode: str, bits: int, down: int = 8, ch: int = 48, n_res: int = 4, emb_dim: int = 64,
                 data_init: bool = True, dead_threshold: float = 1.0):
        super().__init__(mode, bits)
        self.down, self.ch = down, ch
        self.encoder = Encoder(ch, down, n_res)
        self.cond = CondNet(ch, down, n_res) if mode != "separate" else None
        self.pre_vq = nn.Conv2d(2 * ch, emb_dim, 1)
        self.vq = EMAVectorQuantizer(2**bits, emb_dim, data_init=data_init, dead_threshold=dead_threshold)
        self.decoder = Decoder(emb_dim + ch, ch, down, n_res)

    def _cond(self, side: torch.Tensor | None, like: torch.Tensor, use: bool) -> torch.Tensor:
        if not use:
            return torch.zeros(like.shape[0], self.ch, like.shape[2], like.shape[3], dtype=like.dtype, device=like.device)
        if side is None:
            raise ValueError(f"mode {self.mode!r} needs the side view here; none was given")
        return self.cond(side - 0.5)

    def encode(self, x: torch.Tensor, side: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """z_e (N, emb_dim, h, w) of x in [0, 1]; side is used only in joint mode (``cond``: its features,
        when already computed)."""
        h = self.encoder(x - 0.5)
        if cond is None or not self.encoder_uses_side:
            cond = self._cond(side, h, self.encoder_uses_side)
        return self.pre_vq(torch.cat([h, cond], 1))

    def decode(self, zq: torch.Tensor, side: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Image in [0, 1] from quantised latents; side is used in joint and distributed modes."""
        if cond is None or not self.decoder_uses_side:
            cond = self._cond(side, zq, self.decoder_uses_side)
        return self.decoder(torch.cat([zq, cond], 1)) + 0.5

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> VQOutput:
        # joint mode: the side features are computed once and shared by encoder and decoder
        cond = self.cond(side - 0.5) if self.encoder_uses_side and side is not None else None
        ze = self.encode(x, side, cond)
        zq, idx, commit = self.vq(ze)
        return VQOutput(self.decode(zq, side, cond), idx, commit)


# ---------------------------------------------------------------- the authors' KITTI architectures
# Channel layouts, in multiples of ch, of the authors' files code/arch/vqvae_kitti_stereo_{2x,4x,8x,big}.py
# (big2 is big under another class name; the paper's 8x KITTI models were trained with it):
#   enc   the encoder: stem width, then the output of each stride-2 conv (the last one feeds the 1x1 projection)
#   side  the decoder's SI tower: first 3x3 conv, then the output of each stride-2 conv (the last = dec[0] / 2)
#   dec   the concatenated decoder input, then the output of each transposed conv (the last feeds the 3x3 out conv)
AUTHORS_LAYOUTS = {
    "2x": {"enc": (1, 2), "side": (1, 4), "dec": (8, 2)},
    "4x": {"enc": (1, 2, 4), "side": (1, 2, 4), "dec": (8, 4, 2)},
    "8x": {"enc": (1, 2, 4, 8), "side": (1, 2, 4, 4), "dec": (8, 4, 2, 1)},
    "big": {"enc": (1, 2, 4, 4), "side": (2, 2, 2, 2), "dec": (4, 2, 2, 2)},
}


class ResStack(nn.Module):
    """``n`` residual layers ``h + Conv1x1(GELU(Conv3x3(GELU(h))))`` (the authors' ``ResidualBlock``)."""

    def __init__(self, ch: int, n: int, mid: int):
        super().__init__()
        self.layers = nn.ModuleList(ResBlock(ch, mid) for _ in range(n))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h)
        return h


class AuthorsEncoder(nn.Module):
    """3x3 stems of x and (joint mode) of the SI features, ch/2 each, concatenated (zeros stand in for the side
    half otherwise); then per stage a residual stack and a 4x4 stride-2 conv."""

    def __init__(self, ch: int, enc: tuple[int, ...], n_res: int, uses_side: bool, in_ch: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(in_ch, ch // 2, 3, padding=1)
        self.side_stem = nn.Conv2d(ch, ch // 2, 3, padding=1) if uses_side else None
        self.res = nn.ModuleList(ResStack(a * ch, n_res, ch) for a in enc[:-1])
        self.down = nn.ModuleList(nn.Conv2d(a * ch, b * ch, 4, stride=2, padding=1) for a, b in zip(enc, enc[1:]))

    def forward(self, x: torch.Tensor, si: torch.Tensor | None) -> torch.Tensor:
        h = self.stem(x)
        c = self.side_stem(si) if self.side_stem is not None else torch.zeros_like(h)
        h = torch.cat([h, c], 1)
        for res, down in zip(self.res, self.down):
            h = down(res(h))
        return h


class AuthorsDecoder(nn.Module):
    """3x3 conv of the code vectors, concatenated with the SI tower's features (zeros in separate mode);
    transposed stride-2 convs each followed by a residual stack; 3x3 conv to the image; sigmoid - 0.5. The SI
    tower mirrors the encoder: 3x3 conv, then per stage a residual stack and a stride-2 conv."""

    def __init__(self, emb_dim: int, ch: int, side: tuple[int, ...], dec: tuple[int, ...], n_res: int, uses_side: bool,
                 out_ch: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(emb_dim, dec[0] // 2 * ch, 3, padding=1)
        if uses_side:
            tower: list[nn.Module] = [nn.Conv2d(ch, side[0] * ch, 3, padding=1)]
            for a, b in zip(side, side[1:]):
                tower += [ResStack(a * ch, n_res, ch), nn.Conv2d(a * ch, b * ch, 4, stride=2, padding=1)]
            self.side = nn.Sequential(*tower)
        else:
            self.side = None
        self.up = nn.ModuleList(nn.ConvTranspose2d(a * ch, b * ch, 4, stride=2, padding=1) for a, b in zip(dec, dec[1:]))
        self.res = nn.ModuleList(ResStack(b * ch, n_res, ch) for b in dec[1:])
        self.out = nn.Conv2d(dec[-1] * ch, out_ch, 3, padding=1)

    def forward(self, zq: torch.Tensor, si: torch.Tensor | None) -> torch.Tensor:
        h = self.stem(zq)
        c = self.side(si) if self.side is not None else torch.zeros_like(h)
        h = torch.cat([h, c], 1)
        for up, res in zip(self.up, self.res):
            h = res(up(h))
        return torch.sigmoid(self.out(h)) - 0.5


class AuthorsVQVAE(ModeVQVAE):
    """The authors' KITTI stereo VQ-VAE (``layout`` names their file, see AUTHORS_LAYOUTS; one latent channel),
    with the interface of `ConditionalVQVAE` (images in [0, 1]; x_hat in [0, 1]).

    A full-resolution SI net (3x3 conv to ch + residual stack) is computed once from the side view and feeds the
    encoder's side stem (joint) and the decoder's SI tower (joint, distributed). The latent is a 1x1 projection
    of the encoder's features to ``emb_dim``. The codebook keeps the authors' EMA update (no re-quantisation
    after it); ``data_init`` and ``dead_threshold`` are ours (off by default here)."""

    def __init__(self, mode: str, bits: int, layout: str = "big", ch: int = 48, n_res: int = 4, emb_dim: int = 64,
                 data_init: bool = False, dead_threshold: float = 0.0, decay: float = 0.99):
        super().__init__(mode, bits)
        if layout not in AUTHORS_LAYOUTS or ch % 2:
            raise ValueError(f"the authors' layouts are {', '.join(AUTHORS_LAYOUTS)} with an even width; got {layout!r}, ch={ch}")
        spec = AUTHORS_LAYOUTS[layout]
        self.layout, self.ch = layout, ch
        self.down = 2 ** (len(spec["enc"]) - 1)
        self.si = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), ResStack(ch, n_res, ch)) if mode != "separate" else None
        self.encoder = AuthorsEncoder(ch, spec["enc"], n_res, uses_side=mode == "joint")
        self.pre_vq = nn.Conv2d(spec["enc"][-1] * ch, emb_dim, 1)
        self.vq = EMAVectorQuantizer(2**bits, emb_dim, decay=decay, data_init=data_init, dead_threshold=dead_threshold,
                                     requantize=False)
        self.decoder = AuthorsDecoder(emb_dim, ch, spec["side"], spec["dec"], n_res, uses_side=mode != "separate")

    def _si(self, side: torch.Tensor | None, use: bool) -> torch.Tensor | None:
        if not use:
            return None
        if side is None:
            raise ValueError(f"mode {self.mode!r} needs the side view here; none was given")
        return self.si(side - 0.5)

    def encode(self, x: torch.Tensor, side: torch.Tensor | None = None, si: torch.Tensor | None = None) -> torch.Tensor:
        if si is None:
            si = self._si(side, self.encoder_uses_side)
        return self.pre_vq(self.encoder(x - 0.5, si if self.encoder_uses_side else None))

    def decode(self, zq: torch.Tensor, side: torch.Tensor | None = None, si: torch.Tensor | None = None) -> torch.Tensor:
        if si is None:
            si = self._si(side, self.decoder_uses_side)
        return self.decoder(zq, si if self.decoder_uses_side else None) + 0.5

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> VQOutput:
        si = self._si(side, self.decoder_uses_side)  # computed once, shared by encoder (joint) and decoder
        ze = self.encode(x, side, si)
        zq, idx, commit = self.vq(ze)
        return VQOutput(self.decode(zq, side, si), idx, commit)


def build_vqvae(family: str, mode: str, bits: int, down: int, ch: int, n_res: int, emb_dim: int,
                data_init: bool = True, dead_threshold: float = 1.0) -> nn.Module:
    """Our conditional VQ-VAE (``family="bench"``) or one of the authors' KITTI layouts (``"authors-<layout>"``)."""
    if family.startswith("authors-"):
        model = AuthorsVQVAE(mode, bits, family[len("authors-"):], ch, n_res, emb_dim, data_init=data_init,
                             dead_threshold=dead_threshold)
        if model.down != down:
            raise ValueError(f"the authors' layout {family!r} downsamples by {model.down}, not {down}")
        return model
    if family != "bench":
        raise ValueError(f"VQ-VAE family must be 'bench' or 'authors-<layout>', got {family!r}")
    return ConditionalVQVAE(mode, bits, down, ch, n_res, emb_dim, data_init=data_init, dead_threshold=dead_threshold)
