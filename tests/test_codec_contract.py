"""Every registered codec: real bytes, encoder independence from the side view, exact decode, bad bytes refused.

Codecs may set `test_options` (small widths) and `test_protocol`; the input shape follows
`meta.modalities[0]`: "image" -> 3x64x64, "gray" -> 1x32x32, "scalar" -> 1-D block of 2048 samples."""
import pytest
import torch

from benchmark import metrics
from benchmark.codec import Scenario
from benchmark.container import Container
from benchmark.data import Sample
from benchmark.errors import BitstreamError
from benchmark.registry import METHODS, get_protocol
from benchmark.runner import evaluate

ALL = METHODS.names()


def _inputs(cls):
    g = torch.Generator().manual_seed(0)
    kind = cls.meta.modalities[0]
    if kind == "scalar":
        y = torch.randn(2048, generator=g)
        return y + 0.3 * torch.randn(2048, generator=g), y, torch.randn(2048, generator=g)
    shape = (1, 32, 32) if kind == "gray" else (3, 64, 64)
    # smooth-ish content so codecs behave like on images
    base = torch.nn.functional.interpolate(torch.rand(1, shape[0], 8, 8, generator=g), size=shape[1:], mode="bilinear", align_corners=False)[0]
    x = (base + 0.05 * torch.rand(shape, generator=g)).clamp(0, 1)
    side = (x.roll(3, dims=-1) * 0.9 + 0.05).clamp(0, 1)
    other = torch.rand(shape, generator=g)
    return x, side, other


def _codec(name):
    cls = METHODS.get(name)
    proto = get_protocol(getattr(cls, "test_protocol", "middlebury-sample/stereo"))
    return cls(protocol=proto, **getattr(cls, "test_options", {}))


@pytest.mark.parametrize("name", ALL)
def test_bytes_independent_of_side_view_and_exact_decode(name):
    codec = _codec(name)
    x, side, other = _inputs(type(codec))
    points = codec.rate_points()
    assert points, f"{name} has no rate points"
    for p in {points[0], points[-1]}:
        a = codec.compress(x, side=None if codec.meta.scenario is not Scenario.JOINT else side, point=p)
        assert isinstance(a, bytes) and len(a) > 0
        if codec.meta.scenario is not Scenario.JOINT:
            # the encoder never uses side information, whatever it is handed
            assert codec.compress(x, side=side, point=p) == a
            assert codec.compress(x, side=other, point=p) == a
        c = Container.from_bytes(a, codec.meta.name)
        assert c.payload_bytes <= len(a)


@pytest.mark.parametrize("name", ALL)
def test_metrics_are_taken_on_the_decoded_bytes(name):
    codec = _codec(name)
    x, side, _ = _inputs(type(codec))
    proto = codec.protocol
    rows = evaluate(codec, [Sample(x=x, side=side, name="img")], proto, progress=False)
    assert {r["rate_point"] for r in rows} == set(codec.rate_points())
    scen = codec.meta.scenario
    image = proto.rate_unit == "bpp"
    for r in rows[:2] + rows[-1:]:
        p = r["rate_point"]
        data = codec.compress(x, side=side if scen.encoder_sees_side else None, point=p)
        if codec.meta.scalable:
            data = codec.truncate(codec.compress(x, side=side if scen.encoder_sees_side else None, point=codec.rate_points()[-1]), p) if p != codec.rate_points()[-1] else data
        assert len(data) == r["bytes"]
        pixels = x.shape[-2] * x.shape[-1] if image else x.numel()
        assert r["bpp"] == pytest.approx(8 * len(data) / pixels)
        x_hat = codec.decompress(data, side=side if scen.decoder_sees_side else None)
        assert x_hat.shape == x.shape
        m = metrics.mse_8bit(x, x_hat) if image else metrics.mse(x.double(), x_hat.double())
        assert r["mse"] == pytest.approx(m, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_bad_bytes_raise_bitstream_error(name):
    codec = _codec(name)
    x, side, _ = _inputs(type(codec))
    scen = codec.meta.scenario
    data = codec.compress(x, side=side if scen.encoder_sees_side else None, point=codec.rate_points()[0])
    dec_side = side if scen.decoder_sees_side else None
    foreign_name = "jpeg" if name != "jpeg" else "webp"
    foreign = Container(foreign_name, 0, tuple(x.shape), [b"\x00" * 16]).to_bytes()
    for bad in (b"", data[: len(data) // 2], data[:3], foreign, b"not a bitstream at all" * 3):
        with pytest.raises(BitstreamError):
            codec.decompress(bad, side=dec_side)
