"""NDIC: neural distributed image compression using common information (Mital, Özyılkan, Garjani, Gündüz,
DCC 2022), built from CompressAI's layers and entropy models.

Names follow the authors' notation: x is the image to code, y the side view (here called ``side`` in code,
because CompressAI calls its latent ``y``).

    x    --g_a_x-->  h_x  --Q, entropy coder-->  ĥ_x        the only transmitted stream (+ its hyperprior z)
    side --g_a_s-->  h_y  (private latent of y, never transmitted; its rate is a regulariser)
    side --g_a_w-->  w    (common information, not quantised; N(0, 0.001) noise in training; rate regulariser)
    x̂ = g_s_x(concat(ĥ_x, w))          ŷ = g_s_y(concat(ĥ_y, w))     (twin decoder, training only)

    loss = λ·255²·(MSE(x, x̂) + α·MSE(y, ŷ)) + bpp_x [+ bpp_z] + α·bpp_y + β·bpp_w

``hyperprior=False`` is "ours+Ballé2017" (factorized prior on h_x and h_y); ``hyperprior=True`` is
"ours+Ballé2018" (a scale hyperprior on h_x and on h_y). Only x's streams are ever entropy coded.

The decoder x̂ = g_s_x(...) is a list of four stages (three [deconv, IGDN] layers and a final deconv) so that
the cross-attention variant (``cam.py``) can insert feature alignment after the first three."""
from __future__ import annotations

import math
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv
from torch import nn

W_NOISE_VAR = 1e-3  # variance of the Gaussian noise added to w in training (authors' setting)
VARIANTS = ("suite", "authors")  # "authors": the graph of the authors' code (ipc-lab/NDIC), for their checkpoints


class IntegerGridEntropyBottleneck(EntropyBottleneck):
    """The authors' factorized entropy model: 3 hidden filters (CompressAI's default is 4) and quantisation to
    the integer grid (round(v)), where CompressAI rounds around each channel's learned median.

    The median is pinned to 0 when the coding tables are built, so the rANS coder codes exactly round(v)."""

    def __init__(self, channels: int):
        super().__init__(channels, filters=(3, 3, 3))

    def _get_medians(self) -> torch.Tensor:
        return torch.zeros_like(self.quantiles[:, :, 1:2])

    def update(self, force: bool = False, update_quantiles: bool = False) -> bool:
        if self._offset.numel() > 0 and not force:
            return False
        with torch.no_grad():
            if update_quantiles:
                self._update_quantiles()
            self.quantiles[:, 0, 1] = 0.0
        return super().update(force=True, update_quantiles=False)


def entropy_bottleneck(channels: int, variant: str) -> EntropyBottleneck:
    return IntegerGridEntropyBottleneck(channels) if variant == "authors" else EntropyBottleneck(channels)


def analysis(N: int, M: int) -> nn.Sequential:
    """bmshj2018-factorized analysis transform: 4 stride-2 5x5 convolutions with GDN between them (x16 down)."""
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis_stages(c_in: int, N: int, widen: tuple[int, int, int] = (0, 0, 0)) -> nn.ModuleList:
    """The mirrored synthesis as four stages; ``widen[k]`` extra input channels for stage k+1 (CAM concat)."""
    return nn.ModuleList([
        nn.Sequential(deconv(c_in, N), GDN(N, inverse=True)),
        nn.Sequential(deconv(N + widen[0], N), GDN(N, inverse=True)),
        nn.Sequential(deconv(N + widen[1], N), GDN(N, inverse=True)),
        deconv(N + widen[2], 3),
    ])


def hyper_analysis(N: int, M: int, variant: str = "suite") -> nn.Sequential:
    if variant == "authors":  # no ReLU after the first layer, no bias in the last (same indices 0, 2, 4)
        return nn.Sequential(conv(M, N, stride=1, kernel_size=3), nn.Identity(), conv(N, N), nn.ReLU(inplace=True),
                             nn.Conv2d(N, N, 5, stride=2, padding=2, bias=False))
    return nn.Sequential(conv(M, N, stride=1, kernel_size=3), nn.ReLU(inplace=True), conv(N, N), nn.ReLU(inplace=True), conv(N, N))


def hyper_synthesis(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                         conv(N, M, stride=1, kernel_size=3), nn.ReLU(inplace=True))


class LatentBranch(nn.Module):
    """An analysis transform and the entropy model of its latent (Ballé 2017 factorized or 2018 hyperprior).

    ``forward`` gives the (noisy in training, rounded otherwise) latent and its likelihoods; ``compress`` /
    ``decompress`` code it with CompressAI's rANS coder (strings: [latent] or [latent, hyper-latent]).
    ``quantise=False`` (the authors' side-view branch): latents stay continuous and their likelihoods are the
    densities' mass on the unit interval around each value (a rate regulariser; never coded)."""

    def __init__(self, N: int, M: int, hyperprior: bool, variant: str = "suite", quantise: bool = True):
        super().__init__()
        self.hyperprior, self.quantise = hyperprior, quantise
        self.g_a = analysis(N, M)
        if hyperprior:
            self.h_a = hyper_analysis(N, M, variant)
            self.h_s = hyper_synthesis(N, M)
            self.entropy_bottleneck = entropy_bottleneck(N, variant)
            self.gaussian_conditional = GaussianConditional(None)
        else:
            self.entropy_bottleneck = entropy_bottleneck(M, variant)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = self.g_a(img)
        if not self.quantise:
            return h, self.continuous_likelihoods(h)
        if not self.hyperprior:
            h_hat, lik = self.entropy_bottleneck(h)
            return h_hat, {"y": lik}
        z = self.h_a(torch.abs(h))
        z_hat, z_lik = self.entropy_bottleneck(z)
        h_hat, h_lik = self.gaussian_conditional(h, self.h_s(z_hat))
        return h_hat, {"y": h_lik, "z": z_lik}

    def continuous_likelihoods(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.hyperprior:
            return {"y": continuous_likelihood(self.entropy_bottleneck, h)}
        z = self.h_a(torch.abs(h))
        gc = self.gaussian_conditional
        h_lik = gc._likelihood(h, self.h_s(z))
        if gc.use_likelihood_bound:
            h_lik = gc.likelihood_lower_bound(h_lik)
        return {"y": h_lik, "z": continuous_likelihood(self.entropy_bottleneck, z)}

    def compress(self, img: torch.Tensor) -> dict[str, Any]:
        h = self.g_a(img)
        if not self.hyperprior:
            return {"strings": [self.entropy_bottleneck.compress(h)], "shape": h.size()[-2:]}
        z = self.h_a(torch.abs(h))
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        indexes = self.gaussian_conditional.build_indexes(self.h_s(z_hat))
        return {"strings": [self.gaussian_conditional.compress(h, indexes), z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape: Any) -> torch.Tensor:
        if not self.hyperprior:
            return self.entropy_bottleneck.decompress(strings[0], shape)
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        indexes = self.gaussian_conditional.build_indexes(self.h_s(z_hat))
        return self.gaussian_conditional.decompress(strings[0], indexes, z_hat.dtype)


def continuous_likelihood(eb: EntropyBottleneck, v: torch.Tensor) -> torch.Tensor:
    """Likelihood of an unquantised tensor under an EntropyBottleneck's factorized density (unit interval
    around each value, lower-bounded as CompressAI does): the rate regulariser of the common information w.

    Uses EntropyBottleneck._likelihood (CompressAI 1.2.x) on the layout its forward() uses (C, 1, -1)."""
    c = v.size(1)
    values = v.transpose(0, 1).reshape(c, 1, -1)
    lik, _, _ = eb._likelihood(values)
    if eb.use_likelihood_bound:
        lik = eb.likelihood_lower_bound(lik)
    return lik.reshape(c, v.size(0), *v.shape[2:]).transpose(0, 1)


class NDIC(CompressionModel):
    """x's branch (transmitted), the side view's private branch and common-information encoder, two decoders."""

    def __init__(self, N: int, M: int, hyperprior: bool = True, w_noise_var: float = W_NOISE_VAR, variant: str = "suite"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"NDIC variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        self.N, self.M, self.hyperprior, self.w_noise_var = int(N), int(M), bool(hyperprior), float(w_noise_var)
        self.variant = variant
        # "authors": the side view's private latent (and hyper-latent) is not quantised, as in the authors' code
        self.x_branch = LatentBranch(N, M, hyperprior, variant)   # q(v_x | x): the only coded latent
        self.y_branch = LatentBranch(N, M, hyperprior, variant, quantise=variant != "authors")  # private info of y
        self.g_a_w = analysis(N, M)                      # q(w | y): common information, from the side view only
        self.w_bottleneck = entropy_bottleneck(M, variant)  # density of w for the rate regulariser R_w
        self.g_s_x = synthesis_stages(2 * M, N, self.x_decoder_widen(N))  # p(x | w, v_x)
        self.g_s_y = synthesis_stages(2 * M, N)                           # p(y | w, v_y): the twin decoder

    def x_decoder_widen(self, N: int) -> tuple[int, int, int]:
        """Extra input channels of x's decoder stages 2..4 (none here; the CAM variant concatenates N)."""
        return (0, 0, 0)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (4 + (2 if self.hyperprior else 0))

    # ---- pieces -------------------------------------------------------------------------------------
    def common(self, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w from the side view (noisy in training) and its likelihood for the rate regulariser."""
        w = self.g_a_w(side)
        if self.training and self.w_noise_var > 0:
            w = w + math.sqrt(self.w_noise_var) * torch.randn_like(w)
        return w, continuous_likelihood(self.w_bottleneck, w)

    def side_private(self, side: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.y_branch(side)

    @staticmethod
    def run_decoder(stages: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
        for stage in stages:
            h = stage(h)
        return h

    def decode_x(self, hx_hat: torch.Tensor, w: torch.Tensor, side_feats: Any = None) -> torch.Tensor:
        return self.run_decoder(self.g_s_x, torch.cat([hx_hat, w], 1))

    def decode_side(self, hy_hat: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """ŷ and the twin decoder's features after each of its first three stages."""
        h = torch.cat([hy_hat, w], 1)
        feats = []
        for k, stage in enumerate(self.g_s_y):
            h = stage(h)
            if k < 3:
                feats.append(h)
        return h, feats

    # ---- training / estimation ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor, side: torch.Tensor) -> dict[str, Any]:
        hx_hat, lik_x = self.x_branch(x)
        hy_hat, lik_y = self.side_private(side)
        w, lik_w = self.common(side)
        y_hat, feats = self.decode_side(hy_hat, w)
        x_hat = self.decode_x(hx_hat, w, feats)
        return {
            "x_hat": x_hat,
            "y_hat": y_hat,
            "likelihoods": lik_x,  # transmitted: what bpp measures
            "likelihoods_y": lik_y,  # regulariser (alpha)
            "likelihoods_w": {"w": lik_w},  # regulariser (beta)
        }

    def rate(self, x: torch.Tensor) -> dict[str, Any]:
        """Likelihoods of x's transmitted latents only (no side view needed: the encoder's view)."""
        _, lik_x = self.x_branch(x)
        return {"likelihoods": lik_x}

    # ---- coding -------------------------------------------------------------------------------------
    def compress(self, x: torch.Tensor) -> dict[str, Any]:
        """Encoder: x only. The side view never enters."""
        return self.x_branch.compress(x)

    def decompress(self, strings: list, shape: Any, side: torch.Tensor) -> dict[str, torch.Tensor]:
        hx_hat = self.x_branch.decompress(strings, shape)
        w = self.g_a_w(side)
        feats = None
        if self.needs_side_features:
            hy_hat, _ = self.side_private(side)
            _, feats = self.decode_side(hy_hat, w)
        return {"x_hat": self.decode_x(hx_hat, w, feats).clamp_(0, 1)}

    needs_side_features = False  # the CAM variant needs the twin decoder's features at decoding time
