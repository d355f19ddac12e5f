"""LDMIC's networks: one encoder per view (run independently), one joint decoder with joint context transfer.

Zhang, Shao, Zhang, "LDMIC: Learning-based Distributed Multi-view Image Coding", ICLR 2023 (arXiv:2301.09799).

Per view (the encoder side, never sees another view):
    y = g_a(x)                     4 stride-2 5x5 convolutions with GDN (3 -> N -> N -> N -> M), /16
    z = h_a(y)                     3x3 conv, two stride-2 5x5 convs with leaky ReLU (M -> N), /4
    params = h_s(ẑ)                two stride-2 5x5 deconvs, 3x3 conv (N -> 3M/2 -> 2M)
    Gaussian (μ, σ) of ŷ from params and a spatial context of ŷ: the serial 5x5 masked convolution of Minnen et al.
    (``context="autoregressive"``) or the two-pass checkerboard context of He et al. (``"checkerboard"``)
The decoder (sees every view's ŷ):
    JCT(ŷ_1..ŷ_V) -> g_s1 (two deconvs + IGDN, M -> N) -> JCT -> g_s2 (two deconvs, N -> 3)
where the joint context transfer (JCT) module refines each view's features with a linear-complexity cross-attention
over the mean of the other views' features (for two views: the other view's).

The forward pass follows the authors' training/evaluation graph (quantisation noise in training, ŷ rounded around
μ with a straight-through gradient for the decoder, ẑ rounded around the bottleneck medians); ``encode_view`` and
``decode_views`` produce and read real rANS strings through CompressAI's coders."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN, MaskedConv2d, ResidualBlock
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv
from compressai.ops import quantize_ste
from torch import nn

CONTEXTS = ("autoregressive", "checkerboard")
STRIDE = 64  # g_a (16) x h_a (4): every view is padded to a multiple of this
KERNEL = 5  # context kernel


class CrossAttention(nn.Module):
    """Efficient (linear) attention: keys softmaxed over positions, queries over channels, per head."""

    def __init__(self, channels: int, key_channels: int, heads: int, value_channels: int):
        super().__init__()
        self.key_channels, self.value_channels, self.heads = key_channels, value_channels, heads
        self.keys = nn.Conv2d(channels, key_channels, 1)
        self.queries = nn.Conv2d(channels, key_channels, 1)
        self.values = nn.Conv2d(channels, value_channels, 1)
        self.reprojection = nn.Conv2d(value_channels, channels, 1)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        n, _, h, w = source.shape
        k = self.keys(source).reshape(n, self.key_channels, h * w)
        q = self.queries(target).reshape(n, self.key_channels, h * w)
        v = self.values(source).reshape(n, self.value_channels, h * w)
        dk, dv = self.key_channels // self.heads, self.value_channels // self.heads
        heads = []
        for i in range(self.heads):
            key = F.softmax(k[:, i * dk:(i + 1) * dk], dim=2)
            query = F.softmax(q[:, i * dk:(i + 1) * dk], dim=1)
            context = key @ v[:, i * dv:(i + 1) * dv].transpose(1, 2)  # dk x dv summary of the source
            heads.append((context.transpose(1, 2) @ query).reshape(n, dv, h, w))
        return self.reprojection(torch.cat(heads, dim=1))


class JointContextTransfer(nn.Module):
    """Each view's features plus a refinement of [attention to the other views, its own features]."""

    def __init__(self, channels: int):
        super().__init__()
        self.rb = nn.Sequential(ResidualBlock(channels, channels), ResidualBlock(channels, channels))
        self.attn = CrossAttention(channels, channels // 8, 2, channels // 4)
        self.refine = nn.Sequential(ResidualBlock(channels * 2, channels), ResidualBlock(channels, channels))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) < 2:
            raise ValueError(f"joint context transfer needs at least two views, got {len(feats)}")
        r = [self.rb(f) for f in feats]
        out = []
        for v, f in enumerate(feats):
            others = torch.stack([r[u] for u in range(len(r)) if u != v], dim=2)  # B x C x (V-1) x H x W
            pooled = F.adaptive_avg_pool3d(others, (1, None, None)).squeeze(2)  # mean over the other views
            out.append(f + self.refine(torch.cat([self.attn(r[v], pooled), r[v]], dim=1)))
        return out


class CheckerboardConv2d(nn.Conv2d):
    """5x5 convolution that sees only the anchor positions ((i + j) odd) of its window."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        mask = torch.zeros_like(self.weight.data)
        mask[:, :, 0::2, 1::2] = 1
        mask[:, :, 1::2, 0::2] = 1
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


def _anchor_mask(shape: torch.Size, device: Any) -> torch.Tensor:
    """1 at the anchor positions of a latent ((row + col) odd: B and C of the checkerboard), else 0."""
    h, w = shape[-2:]
    rows = torch.arange(h, device=device)[:, None]
    cols = torch.arange(w, device=device)[None, :]
    return ((rows + cols) % 2 == 1).to(torch.float32)


# the four quarter-lattices of a latent, in the order their strings are written: non-anchors A (even, even) and
# D (odd, odd), anchors B (even, odd) and C (odd, even)
_LATTICE = {"a": (0, 0), "b": (0, 1), "c": (1, 0), "d": (1, 1)}


class LDMICModel(CompressionModel):
    """Independent per-view analysis and entropy models; joint synthesis over any number of views (>= 2)."""

    def __init__(self, N: int = 192, M: int = 192, context: str = "autoregressive", joint: bool = True):
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
        if min(N, M) < 16:
            raise ValueError(f"LDMIC needs N, M >= 16 (two attention heads over C/8 key channels); got N={N}, M={M}")
        self.N, self.M, self.context_kind, self.joint = N, M, context, joint
        self.g_a = nn.Sequential(conv(3, N, 5, 2), GDN(N), conv(N, N, 5, 2), GDN(N), conv(N, N, 5, 2), GDN(N),
                                 conv(N, M, 5, 2))
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N, 5, 2),
                                 nn.LeakyReLU(inplace=True), conv(N, N, 5, 2))
        self.h_s = nn.Sequential(deconv(N, N, 5, 2), nn.LeakyReLU(inplace=True), deconv(N, M * 3 // 2, 5, 2),
                                 nn.LeakyReLU(inplace=True), conv(M * 3 // 2, 2 * M, 3, 1))
        self.entropy_bottleneck = EntropyBottleneck(N)
        ctx_cls = MaskedConv2d if context == "autoregressive" else CheckerboardConv2d
        self.context = ctx_cls(M, 2 * M, kernel_size=KERNEL, padding=KERNEL // 2, stride=1)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(M * 12 // 3, M * 10 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 8 // 3, M * 6 // 3, 1))
        self.gaussian_conditional = GaussianConditional(None)
        # joint=False: the same per-view codec decoded view by view (no joint context transfer), the separate
        # coding baseline LDMIC's gain is measured against
        self.jct_latent = JointContextTransfer(M) if joint else None
        self.g_s1 = nn.Sequential(deconv(M, N, 5, 2), GDN(N, inverse=True), deconv(N, N, 5, 2), GDN(N, inverse=True))
        self.jct_feature = JointContextTransfer(N) if joint else None
        self.g_s2 = nn.Sequential(deconv(N, N, 5, 2), GDN(N, inverse=True), deconv(N, 3, 5, 2))

    # ---- entropy parameters ---------------------------------------------------------------------------
    def _gaussian(self, params: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) from the hyper-decoder's params and the context features. The authors' two variants
        order both differently: [params, ctx] -> (μ, σ) serially, [ctx, params] -> (σ, μ) for the checkerboard."""
        if self.context_kind == "autoregressive":
            means, scales = self.entropy_parameters(torch.cat([params, ctx], dim=1)).chunk(2, 1)
        else:
            scales, means = self.entropy_parameters(torch.cat([ctx, params], dim=1)).chunk(2, 1)
        return means, scales

    def _hyper(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        medians = self.entropy_bottleneck._get_medians()
        return self.h_s(quantize_ste(z - medians) + medians), z_likelihoods

    def view_entropy(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One view's ŷ for the decoder (rounded around μ, straight-through) and its likelihoods {y, z}."""
        params, z_likelihoods = self._hyper(y)
        y_tilde = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
        if self.context_kind == "autoregressive":
            means, scales = self._gaussian(params, self.context(y_tilde))
        else:
            anchors = y_tilde * _anchor_mask(y.shape, y.device)
            m_anchor, s_anchor = self._gaussian(params, torch.zeros_like(params))
            m_non, s_non = self._gaussian(params, self.context(anchors))
            is_anchor = _anchor_mask(y.shape, y.device).bool()
            means, scales = torch.where(is_anchor, m_anchor, m_non), torch.where(is_anchor, s_anchor, s_non)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        return quantize_ste(y - means) + means, {"y": y_likelihoods, "z": z_likelihoods}

    def synthesize(self, latents: list[torch.Tensor]) -> list[torch.Tensor]:
        """The joint decoder: every view's ŷ in, every view's x̂ out (view by view when not joint)."""
        if not self.joint:
            return [self.g_s2(self.g_s1(y)) for y in latents]
        feats = [self.g_s1(f) for f in self.jct_latent(latents)]
        return [self.g_s2(f) for f in self.jct_feature(feats)]

    def forward(self, views: list[torch.Tensor]) -> dict[str, Any]:
        ys, liks = [], []
        for x in views:  # each view through the same encoder, alone
            y_hat, lik = self.view_entropy(self.g_a(x))
            ys.append(y_hat)
            liks.append(lik)
        return {"x_hat": self.synthesize(ys), "likelihoods": liks}

    def view_likelihoods(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The likelihoods of one view's latents (the encoder's side only; no decoder is run)."""
        return self.view_entropy(self.g_a(x))[1]

    # ---- real bytes --------------------------------------------------------------------------------------
    def _tables(self) -> tuple[list, list, list]:
        gc = self.gaussian_conditional
        return gc.quantized_cdf.tolist(), gc.cdf_length.tolist(), gc.offset.tolist()

    def encode_view(self, x: torch.Tensor) -> list[bytes]:
        """One view (1x3xHxW, H and W multiples of 64) -> its strings: [y, z] (serial) or [a, b, c, d, z]."""
        y = self.g_a(x)
        z = self.h_a(y)
        z_string = self.entropy_bottleneck.compress(z)[0]
        params = self.h_s(self.entropy_bottleneck.decompress([z_string], z.shape[-2:]))
        if self.context_kind == "autoregressive":
            return [self._encode_serial(y, params), z_string]
        return [*self._encode_checkerboard(y, params), z_string]

    def _indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """CompressAI's ``build_indexes`` (the number of scale-table entries but the last below each bounded scale),
        vectorised: its Python loop over the table dominates serial coding."""
        gc = self.gaussian_conditional
        bounded = gc.lower_bound_scale(scales).reshape(-1).contiguous()
        return torch.searchsorted(gc.scale_table[:-1].contiguous(), bounded, right=False).to(torch.int32)

    def _masked_weight(self) -> torch.Tensor:
        return self.context.weight * self.context.mask

    def _serial_params(self, y_pad: torch.Tensor, params: torch.Tensor, weight: torch.Tensor, h: int, w: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(window, means, scales) at latent position (h, w), from the already coded neighbours in y_pad."""
        window = y_pad[:, :, h:h + KERNEL, w:w + KERNEL]
        ctx = F.conv2d(window, weight, bias=self.context.bias)
        means, scales = self._gaussian(params[:, :, h:h + 1, w:w + 1], ctx)
        return window, means, scales

    def _encode_serial(self, y: torch.Tensor, params: torch.Tensor) -> bytes:
        from compressai.ans import BufferedRansEncoder

        gc, pad, weight = self.gaussian_conditional, KERNEL // 2, self._masked_weight()
        y_pad = F.pad(y, (pad, pad, pad, pad))
        symbols: list[int] = []
        indexes: list[int] = []
        for h in range(y.shape[2]):
            for w in range(y.shape[3]):
                window, means, scales = self._serial_params(y_pad, params, weight, h, w)
                q = gc.quantize(window[:, :, pad, pad], "symbols", means[:, :, 0, 0])
                y_pad[:, :, h + pad, w + pad] = q + means[:, :, 0, 0]
                symbols += q.reshape(-1).tolist()
                indexes += self._indexes(scales).tolist()
        coder = BufferedRansEncoder()
        coder.encode_with_indexes(symbols, indexes, *self._tables())
        return coder.flush()

    def _decode_serial(self, string: bytes, params: torch.Tensor) -> torch.Tensor:
        from compressai.ans import RansDecoder

        gc, pad, weight = self.gaussian_conditional, KERNEL // 2, self._masked_weight()
        h_y, w_y = params.shape[2], params.shape[3]
        y_pad = torch.zeros((1, self.M, h_y + 2 * pad, w_y + 2 * pad), device=params.device)
        decoder = RansDecoder()
        decoder.set_stream(string)
        cdf, lengths, offsets = self._tables()
        for h in range(h_y):
            for w in range(w_y):
                _, means, scales = self._serial_params(y_pad, params, weight, h, w)
                # only the table rows this position uses cross into the coder (the same rows, renumbered): the
                # bindings convert every row handed to them on each call
                rows, local = torch.unique(self._indexes(scales), return_inverse=True)
                rows = rows.tolist()
                values = decoder.decode_stream(local.tolist(), [cdf[r] for r in rows], [lengths[r] for r in rows],
                                               [offsets[r] for r in rows])
                q = torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1, 1)
                y_pad[:, :, h + pad:h + pad + 1, w + pad:w + pad + 1] = gc.dequantize(q, means)
        return y_pad[:, :, pad:-pad, pad:-pad]

    def _checkerboard_params(self, params: torch.Tensor, anchors: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = torch.zeros_like(params) if anchors is None else self.context(anchors)
        return self._gaussian(params, ctx)

    def _encode_checkerboard(self, y: torch.Tensor, params: torch.Tensor) -> list[bytes]:
        gc = self.gaussian_conditional
        strings: dict[str, bytes] = {}
        anchors = torch.zeros_like(y)
        means, scales = self._checkerboard_params(params, None)
        for part in ("b", "c"):
            r, c = _LATTICE[part]
            sl = (slice(None), slice(None), slice(r, None, 2), slice(c, None, 2))
            idx = self._indexes(scales[sl]).reshape(scales[sl].shape)
            strings[part] = gc.compress(y[sl], idx, means[sl])[0]
            anchors[sl] = gc.decompress([strings[part]], idx, means=means[sl])
        means, scales = self._checkerboard_params(params, anchors)
        for part in ("a", "d"):
            r, c = _LATTICE[part]
            sl = (slice(None), slice(None), slice(r, None, 2), slice(c, None, 2))
            strings[part] = gc.compress(y[sl], self._indexes(scales[sl]).reshape(scales[sl].shape), means[sl])[0]
        return [strings[p] for p in ("a", "b", "c", "d")]

    def _decode_checkerboard(self, strings: list[bytes], params: torch.Tensor) -> torch.Tensor:
        gc = self.gaussian_conditional
        given = dict(zip(("a", "b", "c", "d"), strings))
        y_hat = torch.zeros((1, self.M, params.shape[2], params.shape[3]), device=params.device)
        for parts, anchors in ((("b", "c"), None), (("a", "d"), True)):
            means, scales = self._checkerboard_params(params, y_hat if anchors else None)
            for part in parts:
                r, c = _LATTICE[part]
                sl = (slice(None), slice(None), slice(r, None, 2), slice(c, None, 2))
                y_hat[sl] = gc.decompress([given[part]], self._indexes(scales[sl]).reshape(scales[sl].shape), means=means[sl])
        return y_hat

    def decode_latent(self, strings: list[bytes], z_shape: tuple[int, int]) -> torch.Tensor:
        """One view's ŷ from its strings ([y, z] or [a, b, c, d, z]) and the hyper-latent's spatial shape."""
        z_hat = self.entropy_bottleneck.decompress([strings[-1]], z_shape)
        params = self.h_s(z_hat)
        if self.context_kind == "autoregressive":
            return self._decode_serial(strings[0], params)
        return self._decode_checkerboard(list(strings[:4]), params)

    def decode_views(self, strings: list[list[bytes]], z_shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Every view's strings -> every view's reconstruction (unclamped), decoded jointly."""
        return self.synthesize([self.decode_latent(s, shape) for s, shape in zip(strings, z_shapes)])

    @property
    def streams_per_view(self) -> int:
        return 2 if self.context_kind == "autoregressive" else 5
