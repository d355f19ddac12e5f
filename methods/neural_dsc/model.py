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

MODES = ("distributed", "joint", "separate")


class ResBlock(nn.Module):
    """``h + Conv1x1(GELU(Conv3x3(GELU(h))))``."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv3 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv1 = nn.Conv2d(ch, ch, 1)

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
                 dead_threshold: float = 1.0):
        super().__init__()
        self.K, self.dim, self.decay, self.eps = K, dim, decay, eps
        self.data_init, self.dead_threshold = data_init, dead_threshold
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

    def _random_rows(self, flat: torch.Tensor, k: int) -> torch.Tensor:
        pick = torch.randint(0, flat.shape[0], (k,), device=flat.device)
        return flat[pick] + 0.01 * flat.std() * torch.randn(k, self.dim, device=flat.device)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        if self.data_init and int(self.initialized) == 0:
            rows = self._random_rows(flat, self.K)
            self.embed.copy_(rows)
            self.embed_avg.copy_(rows)
            self.cluster_size.fill_(1.0)
            self.initialized.fill_(1)
            idx = self.indices(flat.t().reshape(1, self.dim, 1, -1)).reshape(-1)
        onehot = F.one_hot(idx, self.K).type(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.K * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        if self.dead_threshold > 0:
            dead = self.cluster_size < self.dead_threshold
            nd = int(dead.sum())
            if nd:
                rows = self._random_rows(flat, nd)
                self.embed[dead] = rows
                self.embed_avg[dead] = rows
                self.cluster_size[dead] = 1.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(straight-through quantised z, indices, commitment loss ||z - sg(z_q)||^2)."""
        idx = self.indices(z)
        if self.training:
            self._ema_update(self._flat(z.detach()), idx.reshape(-1))
            idx = self.indices(z)
        zq = self.lookup(idx)
        commit = F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), idx, commit


@dataclass
class VQOutput:
    x_hat: torch.Tensor  # [0, 1] scale (not clamped; sigmoid keeps it in (0, 1))
    indices: torch.Tensor  # (N, h, w)
    commitment: torch.Tensor


class ConditionalVQVAE(nn.Module):
    """Encoder -> EMA VQ (K = 2**bits codes of size emb_dim) -> decoder conditioned on the side view."""

    def __init__(self, mode: str, bits: int, down: int = 8, ch: int = 48, n_res: int = 4, emb_dim: int = 64,
                 data_init: bool = True, dead_threshold: float = 1.0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 1 <= bits <= 16:
            raise ValueError(f"codebook bits must be in 1..16, got {bits}")
        self.mode, self.bits, self.down, self.ch = mode, bits, down, ch
        self.encoder = Encoder(ch, down, n_res)
        self.cond = CondNet(ch, down, n_res) if mode != "separate" else None
        self.pre_vq = nn.Conv2d(2 * ch, emb_dim, 1)
        self.vq = EMAVectorQuantizer(2**bits, emb_dim, data_init=data_init, dead_threshold=dead_threshold)
        self.decoder = Decoder(emb_dim + ch, ch, down, n_res)

    # which side each path sees
    @property
    def encoder_uses_side(self) -> bool:
        return self.mode == "joint"

    @property
    def decoder_uses_side(self) -> bool:
        return self.mode in ("joint", "distributed")

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

    def encode_indices(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        return self.vq.indices(self.encode(x, side))

    def decode(self, zq: torch.Tensor, side: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Image in [0, 1] from quantised latents; side is used in joint and distributed modes."""
        if cond is None or not self.decoder_uses_side:
            cond = self._cond(side, zq, self.decoder_uses_side)
        return self.decoder(torch.cat([zq, cond], 1)) + 0.5

    def decode_indices(self, idx: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.vq.lookup(idx), side)

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> VQOutput:
        # joint mode: the side features are computed once and shared by encoder and decoder
        cond = self.cond(side - 0.5) if self.encoder_uses_side and side is not None else None
        ze = self.encode(x, side, cond)
        zq, idx, commit = self.vq(ze)
        return VQOutput(self.decode(zq, side, cond), idx, commit)
