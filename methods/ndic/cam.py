"""NDIC-CAM: NDIC with cross-attention feature alignment in the decoder (Mital, Özyılkan, Garjani, Gündüz,
"Neural distributed image compression with cross-attention feature alignment", WACV 2023).

After each of the first three stages of x's decoder, the x features (queries) attend to the twin (side-view)
decoder's features of the same stage (keys and values); the aligned features are concatenated to the x path,
so stages 2..4 of x's decoder take 2N input channels.

Tokens are patches: a stride-p convolution embeds each p×p patch of a feature map into one token (the
patch sizes 1, 2, 4 for the three stages put every token on the same 1/8-resolution grid of the padded
image), 8-head attention runs over all tokens of the two views, and a stride-p transposed convolution maps
the result back. Positions enter as 2-D sinusoidal encodings computed for the grid at hand, so nothing
depends on the image size (the authors' module, with its fixed token count, works at one size only).
The only limit is cost: attention is quadratic in the number of tokens ((H/8)·(W/8) per stage); above
``max_tokens`` the decoder refuses with a clear error instead of exhausting memory."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .model import NDIC

DEFAULT_PATCHES = (1, 2, 4)  # stages at 1/8, 1/4, 1/2 of the (padded) image -> tokens on the 1/8 grid
DEFAULT_HEADS = 8
DEFAULT_MAX_TOKENS = 16384  # per stage and view: 1024x1024 pixels (or 4096x512) at patch-grid stride 8


class TokenLimitError(ValueError):
    """The feature map has more tokens than the attention is allowed to handle."""


def sincos_2d(dim: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(h*w, dim) fixed 2-D sinusoidal position encodings: half the channels for rows, half for columns."""
    quarter = max(1, dim // 4)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None] * freqs[None]
    xs = torch.arange(w, device=device, dtype=torch.float32)[:, None] * freqs[None]
    row = torch.cat([ys.sin(), ys.cos()], 1)[:, None, :].expand(h, w, 2 * quarter)
    col = torch.cat([xs.sin(), xs.cos()], 1)[None, :, :].expand(h, w, 2 * quarter)
    pe = torch.cat([row, col], 2).reshape(h * w, 4 * quarter)
    if pe.shape[1] < dim:
        pe = F.pad(pe, (0, dim - pe.shape[1]))
    return pe[:, :dim].to(dtype)


class CrossAttentionAlign(nn.Module):
    """x features (queries) attend to side features (keys/values) over patch tokens; output has x's shape."""

    def __init__(self, channels: int, patch: int, dim: int, heads: int = DEFAULT_HEADS, max_tokens: int = DEFAULT_MAX_TOKENS):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not a multiple of the {heads} heads")
        self.patch, self.dim, self.heads, self.max_tokens = int(patch), int(dim), int(heads), int(max_tokens)
        self.embed_q = nn.Conv2d(channels, dim, patch, stride=patch)
        self.embed_kv = nn.Conv2d(channels, dim, patch, stride=patch)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.unembed = nn.ConvTranspose2d(dim, channels, patch, stride=patch)

    def forward(self, fx: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
        b, _, H, W = fx.shape
        p = self.patch
        if H % p or W % p or fs.shape[-2:] != fx.shape[-2:]:
            raise ValueError(f"feature maps {tuple(fx.shape)} / {tuple(fs.shape)} do not tile into {p}x{p} patches")
        h, w = H // p, W // p
        if h * w > self.max_tokens:
            raise TokenLimitError(f"{h * w} tokens exceed max_tokens={self.max_tokens}")
        pe = sincos_2d(self.dim, h, w, fx.device, fx.dtype)[None]
        q = self.embed_q(fx).flatten(2).transpose(1, 2)
        kv = self.embed_kv(fs).flatten(2).transpose(1, 2)
        kv_n = self.norm_kv(kv)
        out, _ = self.attn(self.norm_q(q) + pe, kv_n + pe, kv_n, need_weights=False)
        return self.unembed(out.transpose(1, 2).reshape(b, self.dim, h, w))


class AuthorsCrossAttention(nn.Module):
    """The authors' cross-attention (ipc-lab/NDIC-CAM), for their checkpoints: one image size only.

    Each channel of a feature map is cut into a ``grid`` × ``grid`` array of patches; every (channel, patch) is a
    token whose pixels a linear layer embeds into ``dim``. One LayerNorm (shared by both views), then ``heads``
    heads of width ``dim`` each: queries from x's tokens, keys and values from the side view's tokens (separate
    bias-free projections per view), an output projection with dropout, and a linear map back to the patch's
    pixels. No position encoding. Returns the aligned features (x's shape); the caller concatenates them."""

    def __init__(self, channels: int, size: tuple[int, int], grid: int = 4, dim: int = 256, heads: int = DEFAULT_HEADS,
                 dropout: float = 0.1):
        super().__init__()
        self.size, self.grid, self.dim, self.heads = (int(size[0]), int(size[1])), int(grid), int(dim), int(heads)
        if self.size[0] % grid or self.size[1] % grid:
            raise ValueError(f"a {self.size} feature map does not cut into a {grid}x{grid} grid of patches")
        self.patch = (self.size[0] // grid, self.size[1] // grid)
        pixels = self.patch[0] * self.patch[1]
        inner = heads * dim
        self.embed_x = nn.Linear(pixels, dim)
        self.embed_y = nn.Linear(pixels, dim)
        self.norm = nn.LayerNorm(dim)
        self.to_qkv_x = nn.Linear(dim, 3 * inner, bias=False)
        self.to_qkv_y = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.unembed = nn.Linear(dim, pixels)

    def tokens(self, f: torch.Tensor) -> torch.Tensor:
        b, c = f.shape[:2]
        (ph, pw), g = self.patch, self.grid
        return f.reshape(b, c, g, ph, g, pw).permute(0, 1, 2, 4, 3, 5).reshape(b, c * g * g, ph * pw)

    def forward(self, fx: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
        b, c, H, W = fx.shape
        if (H, W) != self.size or fs.shape != fx.shape:
            raise TokenLimitError(f"the authors' cross-attention was built for {self.size[0]}x{self.size[1]} feature "
                                  f"maps; got {tuple(fx.shape)} / {tuple(fs.shape)} (variant=authors codes one image size)")
        split = lambda t: t.reshape(b, t.shape[1], self.heads, self.dim).transpose(1, 2)  # noqa: E731
        q = split(self.to_qkv_x(self.norm(self.embed_x(self.tokens(fx)))).chunk(3, -1)[0])
        _, k, v = (split(t) for t in self.to_qkv_y(self.norm(self.embed_y(self.tokens(fs)))).chunk(3, -1))
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.dim ** -0.5, dim=-1)
        out = self.to_out((attn @ v).transpose(1, 2).reshape(b, -1, self.heads * self.dim))
        (ph, pw), g = self.patch, self.grid
        pix = self.unembed(out).reshape(b, c, g, g, ph, pw).permute(0, 1, 2, 4, 3, 5)
        return pix.reshape(b, c, H, W)


class NDICCAM(NDIC):
    """NDIC (scale-hyperprior base by default) whose x decoder aligns its features with the side decoder's."""

    needs_side_features = True

    def __init__(self, N: int, M: int, hyperprior: bool = True, heads: int = DEFAULT_HEADS,
                 patches: tuple[int, int, int] = DEFAULT_PATCHES, dim: int | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, image_size: tuple[int, int] | None = None, **kwargs: Any):
        super().__init__(N, M, hyperprior=hyperprior, **kwargs)
        self.patches = tuple(int(p) for p in patches)
        self.max_tokens = int(max_tokens)
        if self.variant == "authors":  # the authors' module: one image size, 4x4 patch grid, width 256
            if image_size is None:
                raise ValueError("NDIC-CAM variant 'authors' needs image_size (the one size its attention was built for)")
            self.image_size = (int(image_size[0]), int(image_size[1]))
            self.cam = nn.ModuleList([AuthorsCrossAttention(N, (self.image_size[0] >> (3 - k), self.image_size[1] >> (3 - k)),
                                                            heads=heads, dim=int(dim) if dim else 256) for k in range(3)])
            return
        self.image_size = None
        dim = int(dim) if dim else heads * max(1, math.ceil(N / heads))
        self.cam = nn.ModuleList([CrossAttentionAlign(N, p, dim, heads, max_tokens) for p in self.patches])

    def x_decoder_widen(self, N: int) -> tuple[int, int, int]:
        return (N, N, N)  # the attention output (N channels) is concatenated after each of the first three stages

    def tokens(self, h: int, w: int) -> int:
        """Tokens per attention stage for a padded image of h x w (the stage-k map is h/2^(3-k) x w/2^(3-k))."""
        if self.image_size is not None:  # authors' variant: channels x 16 tokens, at its one image size
            return self.N * 16
        return max((h >> (3 - k)) // p * ((w >> (3 - k)) // p) for k, p in enumerate(self.patches))

    def decode_x(self, hx_hat: torch.Tensor, w: torch.Tensor, side_feats: Any = None) -> torch.Tensor:
        if side_feats is None:
            raise ValueError("NDIC-CAM decodes with the side decoder's features")
        h = torch.cat([hx_hat, w], 1)
        for k, stage in enumerate(self.g_s_x):
            h = stage(h)
            if k < 3:
                h = torch.cat([h, self.cam[k](h, side_feats[k])], 1)
        return h
