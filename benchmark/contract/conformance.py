"""The contract inputs of a registered codec: the small seeded input, side view and instance that the codec
contract test (`tests/test_codec_contract.py`), the decoder fuzzer and the bit-flip benchmark all code.

A codec may set `test_options` (small widths) and `test_protocol`; the input shape follows
`meta.modalities[0]`: "image" -> 3x64x64, "gray" -> 1x32x32, "scalar" -> a 1-D block of 2048 samples.
A contributor can check a new method the same way: `coded_sample("my_method")` returns one valid stream."""
from __future__ import annotations

from typing import Any

import torch

from benchmark.contract.registry import METHODS, get_protocol


def contract_inputs(cls: type, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, its side view, an unrelated input) for codec class `cls`, seeded."""
    g = torch.Generator().manual_seed(seed)
    kind = cls.meta.modalities[0]
    if kind == "scalar":
        y = torch.randn(2048, generator=g)
        return y + 0.3 * torch.randn(2048, generator=g), y, torch.randn(2048, generator=g)
    shape = (1, 32, 32) if kind == "gray" else (3, 64, 64)
    # smooth-ish content so codecs behave like on images
    base = torch.nn.functional.interpolate(torch.rand(1, shape[0], 8, 8, generator=g), size=shape[1:], mode="bilinear",
                                           align_corners=False)[0]
    x = (base + 0.05 * torch.rand(shape, generator=g)).clamp(0, 1)
    side = (x.roll(3, dims=-1) * 0.9 + 0.05).clamp(0, 1)
    other = torch.rand(shape, generator=g)
    return x, side, other


def contract_codec(name: str) -> Any:
    """A fresh instance of the registered method `name` with its `test_options` on its `test_protocol`."""
    cls = METHODS.get(name)
    proto = get_protocol(getattr(cls, "test_protocol", "middlebury-sample/stereo"))
    return cls(protocol=proto, **getattr(cls, "test_options", {}))


def coded_sample(name: str) -> tuple[Any, bytes, torch.Tensor | None]:
    """A fresh contract instance of `name`, one valid stream of its contract input at the first rate point, and
    the side view its decoder gets (None where the scenario gives it none). Seeded: every caller gets the same
    bytes."""
    torch.manual_seed(0)
    codec = contract_codec(name)
    x, side, _ = contract_inputs(type(codec))
    scen = codec.meta.scenario
    data = codec.compress(x, side=side if scen.encoder_sees_side else None, point=codec.rate_points()[0])
    return codec, data, side if scen.decoder_sees_side else None
