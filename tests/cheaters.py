"""Two codecs written to cheat the scenario: fixtures the integrity tests must catch. Never registered outside
the test that uses them (tests register them for the length of one test and remove them again).

Both code x losslessly as zlib-compressed 8-bit values, except when x equals a view they remember: then the
bitstream is a 2-byte token naming that view. An honest Wyner–Ziv encoder cannot know the side view, so it
cannot know when x equals it; these two learn side views through the decoder (`SideViewMemo`) or through
training (`FitMemo`) and hand them to the encoder of the same instance."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import torch

from benchmark.contract.codec import Codec, LearnedCodec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.errors import BitstreamError
from benchmark.training.weights import load_into, load_weights, save_weights


class _Memo:
    """The shared coding: a token when x equals a remembered view, else zlib of the 8-bit values."""

    memory: list[torch.Tensor]

    def rate_points(self) -> list[str]:
        return ["lossless"]

    def _token_or_raw(self, x: torch.Tensor) -> bytes:
        for i, v in enumerate(self.memory):
            if v.shape == x.shape and torch.equal(v, x):
                return Container(self.meta.name, 0, tuple(x.shape), [b"T" + bytes([i % 256])]).to_bytes()
        q = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()
        return Container(self.meta.name, 0, tuple(x.shape), [b"R" + zlib.compress(q, 9)]).to_bytes()

    def _decode(self, data: bytes) -> torch.Tensor:
        c = Container.from_bytes(data, self.meta.name)
        if len(c.streams) != 1 or not c.streams[0] or c.streams[0][:1] not in (b"T", b"R"):
            raise BitstreamError(f"{self.meta.name}: not one of its streams")
        body = c.streams[0][1:]
        if c.streams[0][:1] == b"T":
            if len(body) != 1 or body[0] >= len(self.memory):
                raise BitstreamError(f"{self.meta.name}: unknown token")
            return self.memory[body[0]].clone()
        try:
            raw = zlib.decompress(body)
        except zlib.error as exc:
            raise BitstreamError(f"{self.meta.name}: corrupt payload ({exc})") from exc
        n = 1
        for d in c.shape:
            n *= d
        if len(raw) != n:
            raise BitstreamError(f"{self.meta.name}: payload size does not match the shape")
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).float().reshape(c.shape) / 255.0


class SideViewMemo(_Memo, Codec):
    """`decompress` stores every side view it is given; `compress` sends a token when x equals one of them."""

    meta = MethodMeta("cheat_side_view_memo", Scenario.DECODER_SIDE_INFO, description="test fixture: cheats")

    def __init__(self, protocol: Any = None, **options: Any):
        super().__init__(protocol, **options)
        self.memory = []

    def compress(self, x, *, side=None, source=0, point):
        return self._token_or_raw(x)

    def decompress(self, data, *, side=None, source=0):
        if side is not None and not any(v.shape == side.shape and torch.equal(v, side) for v in self.memory):
            self.memory.append(side.detach().clone())
        return self._decode(data)


class FitMemo(_Memo, LearnedCodec):
    """`fit` caches the training side views; `compress` sends a token when x equals one of them. Its weights
    (one scalar) say nothing about the cache, so an instance loaded from them codes honestly."""

    meta = MethodMeta("cheat_fit_memo", Scenario.DECODER_SIDE_INFO, trainable=True, description="test fixture: cheats")

    def __init__(self, protocol: Any = None, **options: Any):
        super().__init__(protocol, **options)
        self.memory = []
        self.net = torch.nn.Linear(1, 1)

    def fit(self, train, val, *, budget, device, workdir, seed=0):
        self.memory = [train[i].side.detach().clone() for i in range(len(train)) if train[i].side is not None]
        return {"budget": budget, "seed": seed}

    def save_weights(self, directory: Path) -> Path:
        return save_weights(directory, method=self.meta.name, models={"net": self.net}, config={}, points=self.rate_points())

    def load_weights(self, directory: Path) -> dict[str, Any]:
        loaded = load_weights(directory, method=self.meta.name)
        load_into(self.net, loaded.tensors["net"], self.meta.name)
        return loaded.summary()

    def compress(self, x, *, side=None, source=0, point):
        return self._token_or_raw(x)

    def decompress(self, data, *, side=None, source=0):
        return self._decode(data)
