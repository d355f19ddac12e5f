"""Training-mode parity: the same quantisation noise in the authors' graph and ours.

The authors draw uniform noise with ``torch.rand_like`` on latents laid out as (C, 1, B·H·W), and the noise
on w with ``torch.randn_like``; CompressAI draws with ``Tensor.uniform_`` inside ``EntropyModel.quantize``, on
(C, 1, B·H·W) in its EntropyBottleneck and on (B, C, H, W) in its GaussianConditional. ``fixed_noise()``
replaces all of them, for the duration of the block, by draws that depend only on the tensor's shape in the
channel-major layout, so both graphs see identical noise whatever order they draw in."""
from __future__ import annotations

import contextlib
import zlib

import torch
from compressai.entropy_models import EntropyModel


def _draw(shape: tuple[int, ...], kind: str, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(f"{kind}{shape}".encode()))
    t = torch.rand(shape, generator=g, dtype=torch.float64) if kind == "u" else torch.randn(shape, generator=g, dtype=torch.float64)
    return t.to(dtype)


def channel_major(kind: str, x: torch.Tensor) -> torch.Tensor:
    """Noise for ``x``: drawn as (C, N) over the channel-major flattening, returned in ``x``'s layout."""
    if x.dim() == 4:  # (B, C, H, W): draw as (C, 1, B*H*W), then back
        b, c, h, w = x.shape
        return _draw((c, 1, b * h * w), kind, x.dtype).reshape(c, b, h, w).permute(1, 0, 2, 3)
    return _draw(tuple(x.shape), kind, x.dtype)


@contextlib.contextmanager
def fixed_noise():
    real_rand_like, real_randn_like, real_quantize = torch.rand_like, torch.randn_like, EntropyModel.quantize

    def quantize(self, inputs, mode, means=None):
        if mode != "noise":
            return real_quantize(self, inputs, mode, means)
        return inputs + (channel_major("u", inputs) - 0.5)

    torch.rand_like = lambda x, **kw: channel_major("u", x)
    torch.randn_like = lambda x, **kw: channel_major("n", x)
    EntropyModel.quantize = quantize
    try:
        yield
    finally:
        torch.rand_like, torch.randn_like, EntropyModel.quantize = real_rand_like, real_randn_like, real_quantize
