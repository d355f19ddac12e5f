"""The networks of ``dsi_disparity``: balle2018's scale hyperprior, plus a decoder-side stereo refinement.

- ``CostVolume``: correlation of two feature maps over horizontal shifts −D..D, averaged over a window of cells,
  soft-argmin (softmax-weighted mean of the shifts) → a sub-pixel disparity per position. No parameters besides a
  learned inverse temperature; with features = pixels it recovers a known shift untrained (tests).
- ``warp_horizontal``: y(u − d(u)) by bilinear sampling (torch ``grid_sample``), border values outside.
- ``MatchFeatures``: 4×4 patches → a zero-mean linear map (stride-4 convolution) → per-position unit vectors; one network for
  both views (siamese), so a random initialisation is already a distance-preserving patch projection.
- ``Fusion``: (x̂₀, warped y) at 1/2 resolution (pixel unshuffle) → 1×1 conv, depthwise 3×3,
  1×1 conv → pixel shuffle → a residual added to x̂₀. Its last layer starts at zero: an untrained model decodes
  exactly what balle2018 with the same weights decodes.
- ``DisparityRefinement`` (``passes=2``): the second pass's matching at full resolution, ±R px around the first
  pass's disparity on the refined image, by soft-argmin over window-averaged squared grey-level differences; a
  second ``Fusion`` (one more input plane: the match's confidence) refines x̂₁ again, zero-initialised.
- ``DSIDisparity``: CompressAI's ``ScaleHyperprior`` (encoder, entropy models, synthesis g_s: unchanged, so the
  bytes are balle2018's) whose decoder refines x̂₀ = g_s(ŷ) with the side view: disparity between x̂₀ and y on
  the 1/4 grid, upsampled to full resolution, y warped into x's view, fused.

Disparity sign: d is defined by x(u) ≈ y(u − d). For x = left view, y = right view, d ≥ 0; for the reverse
direction (the protocol codes each pair both ways) and for the training flips (x and y mirrored together) d ≤ 0.
The decoder is not told which, so the search is symmetric."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from compressai.models import ScaleHyperprior
from torch import nn

MATCH_SCALE = 4  # the cost volume's grid: 1/4 of the image resolution
FUSION_SCALE = 2  # the fusion network's grid: 1/2 of the image resolution
# the second pass (passes=2): candidates ±REFINE_RADIUS px around the first pass's disparity, costs averaged over
# REFINE_WINDOW² pixels. ±2 rather than ±4: ±4 costs +32 % decoding time over balle2018 (the issue allows +25 %),
# ±2 +20–22 %, for the same PSNR in the design check at 1,000 steps (README, "Second pass")
REFINE_RADIUS = 2
REFINE_WINDOW = 5


def unit(f: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Feature vectors (dim 1) scaled to unit length (cheaper than F.normalize on small CPU tensors)."""
    return f * torch.rsqrt((f * f).sum(1, keepdim=True) + eps)


def correlation(fx: torch.Tensor, fy: torch.Tensor, max_shift: int) -> torch.Tensor:
    """(N, C, H, W) twice -> (N, 2D+1, H, W): entry k is Σ_c fx(u)·fy(u − d) for d = k − D (fy's border repeated)."""
    w = fy.shape[-1]
    padded = F.pad(fy, (max_shift, max_shift, 0, 0), mode="replicate")
    # fy(u − d) sits at padded column u + D − d
    return torch.stack([(fx * padded[..., max_shift - d: max_shift - d + w]).sum(1)
                        for d in range(-max_shift, max_shift + 1)], 1)


class ShiftSearch(nn.Module):
    """What both matchings share: candidate shifts −max_shift..max_shift, a window of aggregation, and a soft-argmin
    with a learned inverse temperature (its logarithm is the parameter)."""

    def __init__(self, max_shift: int, window: int, inv_temperature: float):
        super().__init__()
        if max_shift < 1 or window < 1 or window % 2 == 0:
            raise ValueError(f"max_shift must be at least 1 and window a positive odd number, got {max_shift}, {window}")
        self.max_shift, self.window = int(max_shift), int(window)
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(inv_temperature)))
        self.register_buffer("shifts", torch.arange(-self.max_shift, self.max_shift + 1, dtype=torch.float32),
                             persistent=False)

    def soft_argmin(self, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ_k p_k·shift_k as N×1×H×W, p) for p = softmax over the shifts (dim 1) of score·β."""
        p = torch.softmax(score * self.log_inv_temperature.exp(), 1)
        return (p * self.shifts.view(1, -1, 1, 1)).sum(1, keepdim=True), p


class CostVolume(ShiftSearch):
    """Disparity d(u) with fx(u) ≈ fy(u − d), |d| ≤ max_shift, by soft-argmin over the window-aggregated correlation.

    Returns (disparity N×1×H×W in grid units, the correlation volume N×(2D+1)×H×W)."""

    def __init__(self, max_shift: int, window: int = 3, inv_temperature: float = 20.0):
        super().__init__(max_shift, window, inv_temperature)

    def correlation(self, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
        corr = correlation(fx, fy, self.max_shift)
        if self.window > 1:
            corr = F.avg_pool2d(corr, self.window, stride=1, padding=self.window // 2, count_include_pad=False)
        return corr

    def forward(self, fx: torch.Tensor, fy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        corr = self.correlation(fx, fy)
        return self.soft_argmin(corr)[0], corr


def warp_horizontal(y: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """y(u − d(u)) for a disparity field d (N×1×H×W, pixels of y's grid), bilinear, border values outside."""
    n, _, h, w = y.shape
    cols = torch.arange(w, dtype=y.dtype, device=y.device).view(1, 1, w) - disp[:, 0]
    rows = torch.arange(h, dtype=y.dtype, device=y.device).view(1, h, 1).expand(n, h, w)
    gx = 2.0 * cols / max(w - 1, 1) - 1.0
    gy = 2.0 * rows / max(h - 1, 1) - 1.0
    return F.grid_sample(y, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=True)


class MatchFeatures(nn.Module):
    """Image -> unit feature vectors on the 1/MATCH_SCALE grid: a linear map of each 4×4 patch (a stride-4 4×4
    convolution) whose weights have zero mean, so a brightness offset between the views does not change them."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(3, channels, MATCH_SCALE, stride=MATCH_SCALE, bias=False)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        w = self.proj.weight
        return unit(F.conv2d(img, w - w.mean((1, 2, 3), keepdim=True), stride=MATCH_SCALE))


class Fusion(nn.Module):
    """(x̂₀, aligned side view[, `extra` more planes]) -> x̂₀ + a residual computed on the 1/FUSION_SCALE grid."""

    def __init__(self, width: int, extra: int = 0):
        super().__init__()
        s2 = FUSION_SCALE**2
        self.inp = nn.Conv2d((6 + extra) * s2, width, 1)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.mix = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, 3 * s2, 1)
        nn.init.zeros_(self.out.weight)  # starts as the identity on x̂₀
        nn.init.zeros_(self.out.bias)

    def forward(self, x0: torch.Tensor, y_aligned: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        h = F.pixel_unshuffle(torch.cat([x0, y_aligned, *extra], 1), FUSION_SCALE)
        h = F.leaky_relu(self.inp(h), 0.1)
        h = F.leaky_relu(self.dw(h), 0.1)
        h = F.leaky_relu(self.mix(h), 0.1)
        return x0 + F.pixel_shuffle(self.out(h), FUSION_SCALE)


def box_mean(a: torch.Tensor, window: int) -> torch.Tensor:
    """The mean of `a` (…×H×W) over window×window neighbourhoods, of the entries inside the image only (torch's
    ``avg_pool2d(…, stride=1, padding=window // 2, count_include_pad=False)``, by separable shifted sums, rows
    first, accumulated in place: on one CPU thread many times faster than avg_pool2d at stride 1)."""
    r, (h, w) = window // 2, a.shape[-2:]
    p = F.pad(a, (0, 0, r, r))
    s = p[..., :h, :].clone()
    for i in range(1, window):
        s += p[..., i:i + h, :]
    p = F.pad(s, (r, r))
    s = p[..., :w].clone()
    for i in range(1, window):
        s += p[..., i:i + w]
    count = [window * F.avg_pool1d(torch.ones(1, 1, n, dtype=a.dtype, device=a.device), window, 1, r)[0, 0]
             for n in (h, w)]  # entries inside the image, per axis
    return s / (count[0][:, None] * count[1][None, :])


def grey(img: torch.Tensor) -> torch.Tensor:
    return img.mean(1, keepdim=True)


class DisparityRefinement(ShiftSearch):
    """The second pass's matching: a full-resolution correction of a disparity field d₁ by ±radius pixels.

    For each candidate δ ∈ {−R..R}: y warped by d₁+δ (bilinear, border values outside: what ``warp_horizontal``
    gives, built for all candidates at once from one gather of y's columns at u − ⌊d₁⌋ − m, m ∈ −R..R+1, and one
    interpolation by d₁ − ⌊d₁⌋); the cost is the squared difference of the grey levels (the mean over channels) of x
    and y_δ, averaged over window×window pixels (``box_mean``, the entries inside the image only); p = softmax(−β·cost)
    over δ with a learned inverse temperature β; d₂ = d₁ + Σ p_δ·δ. Also returns max_δ p_δ, how peaked the match
    is (the confidence the second fusion gets). Grey levels rather than the mean over channels of the colour
    differences: a third of the work, and the block matching that motivated the pass (SAD on grey levels) used them."""

    def __init__(self, radius: int = REFINE_RADIUS, window: int = REFINE_WINDOW, inv_temperature: float = 3000.0):
        super().__init__(radius, window, inv_temperature)
        self.radius = self.max_shift

    def candidates(self, y: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        """(N, 2R+1, H, W): y's grey levels warped by d₁ + δ for each δ (= warp_horizontal(grey(y), d₁ + δ))."""
        g = grey(y)
        n, _, h, w = g.shape
        k = len(self.shifts)
        base = torch.floor(d1)
        m = torch.arange(-self.radius, self.radius + 2, dtype=d1.dtype, device=d1.device).view(1, k + 1, 1, 1)
        cols = torch.arange(w, dtype=d1.dtype, device=d1.device).view(1, 1, 1, w)
        idx = (cols - base - m).clamp_(0, w - 1).long()  # y(u − ⌊d₁⌋ − m), border repeated
        taps = torch.gather(g.expand(n, k + 1, h, w), 3, idx)
        # y(u − d₁ − δ) = (1 − f)·y(u − ⌊d₁⌋ − δ) + f·y(u − ⌊d₁⌋ − δ − 1), f = d₁ − ⌊d₁⌋
        return torch.lerp(taps[:, :-1], taps[:, 1:], d1 - base)

    def costs(self, x: torch.Tensor, y: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        """(N, 2R+1, H, W): the window-averaged squared grey-level difference of x and y warped by d₁ + δ."""
        return box_mean((self.candidates(y, d1) - grey(x)).square(), self.window)

    def forward(self, x: torch.Tensor, y: torch.Tensor, d1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        correction, p = self.soft_argmin(-self.costs(x, y, d1))
        return d1 + correction, p.amax(1, keepdim=True)


class StereoRefiner(nn.Module):
    """x̂₀ and the side view y -> refined x̂ (disparity on the 1/4 grid, y warped at full resolution, fused).

    ``warp`` False: y enters the fusion unaligned (no cost volume); ``zero_disparity`` (a decode-time switch, not
    saved with the weights): the estimated disparity is replaced by 0 (in both passes).

    ``passes`` 2: a second pass on the refined x̂₁ (the first pass's output): the disparity re-matched at full
    resolution around the first pass's (`DisparityRefinement`, ±`refine_radius` px), y warped by it, and a second
    `Fusion` fed (x̂₁, that warped y, the match's confidence max_δ p_δ) adds a residual to x̂₁. Its last layer
    starts at zero: an untrained second pass returns x̂₁ exactly. The confidence is max_δ p_δ rather than the lowest
    cost: the fusion can compute the remaining mismatch of x̂₁ and the warped y from its own two inputs, not how
    ambiguous the match was among the candidates (flat or repetitive texture, occlusions); and max p lies in
    [1/(2R+1), 1] whatever the image's contrast, where a cost scales with it."""

    def __init__(self, max_disp: int, match_channels: int, fusion_width: int, warp: bool = True, window: int = 7,
                 passes: int = 1, refine_radius: int = REFINE_RADIUS, refine_window: int = REFINE_WINDOW,
                 fusion2_width: int | None = None):
        super().__init__()
        if max_disp % MATCH_SCALE:
            raise ValueError(f"max_disp must be a multiple of {MATCH_SCALE}, got {max_disp}")
        if passes not in (1, 2) or (passes == 2 and not warp):
            raise ValueError(f"passes must be 1 or 2 (2 needs warp=True: it refines the disparity), got {passes}")
        self.warp, self.passes = bool(warp), int(passes)
        self.zero_disparity = False
        if self.warp:
            self.features = MatchFeatures(match_channels)
            self.cost = CostVolume(max_disp // MATCH_SCALE, window=window)
        self.fusion = Fusion(fusion_width)
        if self.passes == 2:  # built after the first pass's modules: those initialise as in a one-pass refiner
            self.refine = DisparityRefinement(refine_radius, refine_window)
            self.fusion2 = Fusion(fusion2_width or fusion_width, extra=1)

    def disparity(self, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Full-resolution disparity field (pixels) with x̂₀(u) ≈ y(u − d)."""
        f = self.features(torch.cat([x0, y]))  # one call for both views (same network)
        d, _ = self.cost(f[: len(x0)], f[len(x0):])
        return MATCH_SCALE * F.interpolate(d, scale_factor=MATCH_SCALE, mode="bilinear", align_corners=False)

    def second_pass(self, x1: torch.Tensor, y: torch.Tensor, d1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂₂, d₂) from the first pass's x̂₁ and full-resolution d₁ (zero_disparity: matched around 0, fused at 0)."""
        d2, confidence = self.refine(x1, y, d1)
        if self.zero_disparity:  # y unaligned, as in the first pass
            return self.fusion2(x1, y, confidence), torch.zeros_like(d2)
        return self.fusion2(x1, warp_horizontal(y, d2), confidence), d2

    def forward(self, x0: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.warp:
            return self.fusion(x0, y), None
        d = torch.zeros_like(x0[:, :1]) if self.zero_disparity else self.disparity(x0, y)
        x1 = self.fusion(x0, y if self.zero_disparity else warp_horizontal(y, d))
        if self.passes == 1:
            return x1, None if self.zero_disparity else d
        x2, d2 = self.second_pass(x1, y, d)
        return x2, None if self.zero_disparity else d2


class DSIDisparity(ScaleHyperprior):
    """balle2018 (CompressAI's ScaleHyperprior: same encoder, entropy models, g_s and bytes) with a stereo-aware
    decoder: x̂ = refine(g_s(ŷ), y)."""

    def __init__(self, N: int, M: int, *, max_disp: int = 32, match_channels: int = 32, fusion_width: int = 32,
                 warp: bool = True, match_window: int = 7, passes: int = 1, refine_radius: int = REFINE_RADIUS,
                 refine_window: int = REFINE_WINDOW, fusion2_width: int | None = None, **kwargs: Any):
        super().__init__(N=N, M=M, **kwargs)  # built first: its initialisation is balle2018's under the same seed
        self.refiner = StereoRefiner(max_disp, match_channels, fusion_width, warp, match_window, passes, refine_radius,
                                     refine_window, fusion2_width)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> dict[str, Any]:  # type: ignore[override]
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        y_hat, y_likelihoods = self.gaussian_conditional(y, self.h_s(z_hat))
        x0 = self.g_s(y_hat)
        x_hat, disp = self.refiner(x0, side)
        return {"x_hat": x_hat, "x0": x0, "disparity": disp, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # compress(x) is ScaleHyperprior.compress: the encoder never sees the side view.

    def decompress(self, strings, shape, side: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        indexes = self.gaussian_conditional.build_indexes(self.h_s(z_hat))
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, z_hat.dtype)
        x_hat, _ = self.refiner(self.g_s(y_hat), side)
        return {"x_hat": x_hat.clamp_(0, 1)}
