"""Distortion and rate metrics, measured the way the protocols state (see shared reference protocols)."""
from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim

# pytorch_msssim uses 5 scales: the smaller image side must exceed (win_size - 1) * 2**4.
MS_SSIM_SCALES = 5


def to_8bit(img: torch.Tensor) -> torch.Tensor:
    """Clamp to [0,1] and round to the 8-bit grid (as a decoder writing a PNG would), keep float."""
    return torch.round(img.detach().float().clamp(0.0, 1.0) * 255.0) / 255.0


def mse_8bit(a: torch.Tensor, b: torch.Tensor) -> float:
    """MSE on the [0,1] scale computed exactly from 8-bit code values (clamped, rounded)."""
    ia = torch.round(a.detach().double().clamp(0, 1) * 255.0)
    ib = torch.round(b.detach().double().clamp(0, 1) * 255.0)
    return float(torch.mean((ia - ib) ** 2)) / 255.0**2


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.mean((a.double() - b.double()) ** 2))


def psnr_from_mse(m: float, data_range: float = 1.0) -> float:
    return float("inf") if m == 0.0 else 10.0 * math.log10(data_range**2 / m)


# An exactly reproduced 8-bit image has MSE 0 and PSNR +inf, which no mean over images survives. As libvmaf
# does (psnr_max = 6 * bits per component + 12), per-image PSNR on the 8-bit grid is capped at 60 dB; result
# points count the images that were decoded losslessly (`n_lossless`).
PSNR_MAX_8BIT = 6.0 * 8 + 12.0


def psnr_8bit_capped(m: float) -> float:
    """PSNR of an 8-bit-grid MSE on the [0,1] scale, capped at PSNR_MAX_8BIT (lossless -> 60 dB, not inf)."""
    return min(psnr_from_mse(m), PSNR_MAX_8BIT)


def ms_ssim_supported(height: int, width: int, win_size: int) -> tuple[bool, str | None]:
    need = (win_size - 1) * 2 ** (MS_SSIM_SCALES - 1)
    if min(height, width) <= need:
        return False, f"image {height}x{width} too small for 5-scale MS-SSIM with window {win_size} (needs side > {need})"
    return True, None


def msssim(a: torch.Tensor, b: torch.Tensor, win_size: int = 11) -> tuple[float | None, str | None]:
    """MS-SSIM of two CxHxW images in [0,1] (pytorch_msssim, data_range=1); (None, reason) if too small."""
    ok, reason = ms_ssim_supported(a.shape[-2], a.shape[-1], win_size)
    if not ok:
        return None, reason
    if a.shape[-3] not in (1, 3):
        return None, f"MS-SSIM is defined here for 1 or 3 channels, got {a.shape[-3]}"
    val = ms_ssim(a[None].float(), b[None].float(), data_range=1.0, win_size=win_size, size_average=True)
    return float(val), None


def ms_ssim_db(value: float | None) -> float | None:
    if value is None:
        return None
    if value >= 1.0:
        return float("inf")
    return -10.0 * math.log10(1.0 - value)


def bpp(n_bytes: int, pixels: int) -> float:
    """Bits per pixel (or per sample) of `n_bytes` bytes: the one rate formula of the runner and of its checks."""
    return 8.0 * n_bytes / pixels
