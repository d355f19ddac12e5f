"""Codecs that code each sample as its raw float32 values and count the streams they decode, honestly
(`counting_raw`) or with a hostile answer to `Codec.decoder_counts` (a negative count, a float, 10^5 keys, a
mapping nested too deep). Used by tests/test_decoder_counts.py, in this process unregistered and in role processes
through tests/hostile_counts_plugin.py, which registers them."""
from __future__ import annotations

from typing import Any

import torch

from benchmark.contract.codec import Codec, MethodMeta, Scenario
from benchmark.contract.container import Container


class CountingRaw(Codec):
    """Raw float32 values, no side view used; the decoder counts its streams (`decoder_counts`: {"streams": n})."""

    meta = MethodMeta("counting_raw", Scenario.DECODER_SIDE_INFO, description="test fixture: counts decoded streams")

    def __init__(self, protocol: Any = None, **options: Any):
        super().__init__(protocol, **options)
        self.decoded = 0

    def rate_points(self) -> list[str]:
        return ["raw"]

    def compress(self, x, *, side=None, source=0, point):
        return Container(self.meta.name, 0, tuple(x.shape), [x.float().numpy().tobytes()]).to_bytes()

    def decompress(self, data, *, side=None, source=0):
        c = Container.from_bytes(data, self.meta.name)
        self.decoded += 1
        return torch.frombuffer(bytearray(c.streams[0]), dtype=torch.float32).reshape(c.shape)

    def decoder_counts(self) -> dict[str, Any] | None:
        return {"streams": self.decoded, "per_source": {"0": self.decoded}}


def _hostile(name: str, answer: Any) -> type[CountingRaw]:
    return type(f"Hostile_{name}", (CountingRaw,), {
        "meta": MethodMeta(name, Scenario.DECODER_SIDE_INFO, description="test fixture: hostile decoder counts"),
        "decoder_counts": lambda self: answer(self)})


def _deep(levels: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": 1}
    for _ in range(levels - 1):
        out = {"d": out}
    return out


HOSTILE = {cls.meta.name: cls for cls in (
    _hostile("counts_negative", lambda self: {"streams": -1 - self.decoded}),
    _hostile("counts_float", lambda self: {"streams": self.decoded + 0.5}),
    _hostile("counts_many_keys", lambda self: {f"k{i}": 1 for i in range(100_000)}),
    _hostile("counts_too_deep", lambda self: _deep(5)),
    _hostile("counts_not_a_mapping", lambda self: [self.decoded]),
)}
