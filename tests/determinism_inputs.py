"""Inputs of the thread/process determinism test, rebuilt identically in the test and its subprocess: larger
than the contract test's, so that convolutions and reductions are split over threads."""
from __future__ import annotations

import torch


def det_input(cls) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    kind = cls.meta.modalities[0]
    if kind == "scalar":
        y = torch.randn(8192, generator=g)
        return y + 0.3 * torch.randn(8192, generator=g), y
    shape = (1, 64, 64) if kind == "gray" else (3, 128, 192)
    base = torch.nn.functional.interpolate(torch.rand(1, shape[0], 16, 24, generator=g), size=shape[1:], mode="bicubic",
                                           align_corners=False)[0]
    x = (base + 0.08 * torch.rand(shape, generator=g)).clamp(0, 1)
    return x, (x.roll(5, dims=-1) * 0.9 + 0.05).clamp(0, 1)
