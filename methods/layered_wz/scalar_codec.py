"""`scalar_sw`: the anchor of `gaussian/wz` — uniform scalar quantizer, MMSE decoding with y.

Rate points are target ideal Slepian–Wolf rates ("rate=1.0": the step Δ whose H(Q|Y) is 1 bit/sample).
bytes: the indices range-coded under the marginal P(Q=i) of X ~ N(0, 1+σ²) — a real coder without
Slepian–Wolf binning, so the bytes exceed H(Q|Y) by about I(Q; Y). bpp_estimated: the ideal Slepian–Wolf
code length Σ −log2 P(Q=q | Y=y) (computed with y, as an evaluator would). Decoding: E[X | Q, Y] exactly."""
from __future__ import annotations

import math
from typing import Any

import constriction
import numpy as np
import torch

from benchmark.contract.codec import Codec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError
from benchmark.contract.options import Option
from benchmark.contract.registry import register_method
from benchmark.results.bounds import (conditional_code_length, marginal_pmf, mmse_reconstruct, quantize,
                                      scalar_sw_step_for_rate)

RATES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
_RANGE_SD = 12.0  # indices cover ±12 standard deviations of X; samples beyond are clamped to the edge bins


@register_method
class ScalarSWCodec(Codec):
    meta = MethodMeta(
        name="scalar_sw",
        scenario=Scenario.DECODER_SIDE_INFO,
        paper="reference: uniform scalar quantization + (ideal) Slepian–Wolf coding + MMSE reconstruction E[X|Q,Y]",
        description="uniform scalar quantizer of x, MMSE decoding with y; estimate = ideal H(Q|Y); bytes = marginal range coder",
        modalities=("scalar",),
    )
    test_protocol = "gaussian/wz"
    dataset_options_used = ("sigma2",)  # the runner forwards --dataset-option sigma2=... to the codec
    estimate_uses_decoder_side = True  # bpp_estimated = ideal Slepian–Wolf rate, measured with y by the runner

    options_spec = (
        Option("sigma2", float, None, "variance of the side-information noise (default: the protocol's sigma2, else 0.1)",
               minimum=0, exclusive=True),
        Option("rates", list[float], RATES, "rate points in bits per sample", minimum=0, exclusive=True, unique=True),
        Option("offset", float, 0.0, "offset of the quantiser's reconstruction grid"),
    )

    def __init__(self, protocol: Any = None, *, sigma2: float | None = None, rates: tuple[float, ...] | list[float] | None = None,
                 offset: float | None = None):
        rates = RATES if rates is None else rates
        offset = 0.0 if offset is None else offset
        if sigma2 is None:
            sigma2 = float(getattr(protocol, "options", {}).get("sigma2", 0.1)) if protocol is not None else 0.1
        super().__init__(protocol, sigma2=float(sigma2), rates=[float(r) for r in rates], offset=float(offset))
        self.sigma2, self.offset = float(sigma2), float(offset)
        self.rates = [float(r) for r in rates]
        self.variant = f"s{self.sigma2:g}"
        self._steps = [scalar_sw_step_for_rate(r, self.sigma2, self.offset) for r in self.rates]

    def rate_points(self) -> list[str]:
        return [f"rate={r:g}" for r in self.rates]

    def _index(self, point: str) -> int:
        try:
            return self.rate_points().index(point)
        except ValueError:
            raise ConfigError(f"scalar_sw: unknown rate point {point!r}; use one of {self.rate_points()}") from None

    def step(self, point: str) -> float:
        return self._steps[self._index(point)]

    def _alphabet(self, delta: float) -> tuple[int, np.ndarray]:
        imax = int(math.ceil(_RANGE_SD * math.sqrt(1.0 + self.sigma2) / delta)) + 1
        pmf = marginal_pmf(np.arange(-imax, imax + 1), delta, self.sigma2, self.offset)
        pmf = np.maximum(pmf, 1e-12)
        return imax, pmf / pmf.sum()

    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        i = self._index(point)
        delta = self._steps[i]
        imax, pmf = self._alphabet(delta)
        q = np.clip(quantize(x.reshape(-1).double().numpy(), delta, self.offset), -imax, imax)
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode((q + imax).astype(np.int32), constriction.stream.model.Categorical(pmf, perfect=False))
        return Container(self.meta.name, i, tuple(int(d) for d in x.shape), [enc.get_compressed().astype("<u4").tobytes()]).to_bytes()

    def decode_indices(self, data: bytes) -> tuple[np.ndarray, float, tuple[int, ...]]:
        c = Container.from_bytes(data, self.meta.name)
        if c.point >= len(self._steps) or len(c.streams) != 1:
            raise BitstreamError(f"scalar_sw: stream names rate point {c.point} with {len(c.streams)} sub-streams; expected one of "
                                 f"{len(self._steps)} points with one sub-stream")
        delta = self._steps[c.point]
        imax, pmf = self._alphabet(delta)
        s = c.streams[0]
        if len(s) % 4:
            raise BitstreamError("scalar_sw: sub-stream is not a whole number of 32-bit words")
        n = int(np.prod(c.shape)) if c.shape else 1
        try:
            dec = constriction.stream.queue.RangeDecoder(np.frombuffer(s, dtype="<u4").astype(np.uint32))
            sym = np.asarray(dec.decode(constriction.stream.model.Categorical(pmf, perfect=False), n))
        except Exception as exc:
            raise BitstreamError(f"scalar_sw: corrupt sub-stream: {exc}") from exc
        return sym.astype(np.int64) - imax, delta, tuple(c.shape)

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        q, delta, shape = self.decode_indices(data)
        if side is None:
            raise ConfigError("scalar_sw decodes with the side information y (side=...)")
        y = side.reshape(-1).double().numpy()
        if y.size != q.size:
            raise BitstreamError(f"scalar_sw: the bitstream codes {q.size} samples but the side information has {y.size}; "
                                 "the bitstream is corrupt or belongs to other data")
        xh = mmse_reconstruct(q, y, delta, self.sigma2, self.offset)
        return torch.from_numpy(xh.astype(np.float32)).reshape(shape)

    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        if side is None:
            return None
        delta = self.step(point)
        q = quantize(x.reshape(-1).double().numpy(), delta, self.offset)
        return conditional_code_length(q, side.reshape(-1).double().numpy(), delta, self.sigma2, self.offset)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["steps"] = dict(zip(self.rate_points(), self._steps))
        out["rate_notes"] = ("bytes: indices range-coded under the marginal pmf of X (no Slepian-Wolf binning built); "
                             "bpp_estimated: ideal Slepian-Wolf rate H(Q|Y) = mean -log2 P(Q|Y), needs y")
        return out
