"""The likelihood estimate taken from the encoder's own pass (Codec.compress_with_estimate) is the same number
`estimate_bits` computes with a second analysis pass, and the bytes are those of `compress`; evaluate() reports
it unchanged. (Speed itself: perf/eval_overhead.py, run by hand.)"""
from __future__ import annotations

import pytest
import torch

from baselines.balle import _ZooCodec
from benchmark.contract.registry import METHODS, get_method, get_protocol
from benchmark.evaluation.inprocess import evaluate

# balle2017, balle2018, mbt2018_mean, dsi_disparity (balle2018's encoder path with a stereo decoder) and
# balle2018_per_view (balle2018 on each view of a frame)
ZOO = sorted(n for n in METHODS.names() if issubclass(get_method(n), _ZooCodec))


def _codec(name):
    cls = get_method(name)
    torch.manual_seed(0)
    c = cls(protocol=get_protocol("middlebury-sample/stereo"), **cls.test_options)
    c._require_models()
    return c


@pytest.mark.parametrize("name", ZOO)
def test_estimate_from_the_encoder_pass_is_exact(name):
    assert len(ZOO) == 5
    c = _codec(name)
    g = torch.Generator().manual_seed(1)
    for shape in ((3, 64, 64), (3, 37, 53 * getattr(c, "views", 1))):  # a frame of views: a whole number of views
        x = torch.rand(shape, generator=g)
        for p in c.rate_points():
            data, bits = c.compress_with_estimate(x, point=p)
            assert data == c.compress(x, point=p)
            assert bits is not None and bits == c.estimate_bits(x, point=p)


def test_evaluate_reports_the_encoder_estimate():
    from benchmark.contract.data import Sample

    c = _codec("balle2018")
    g = torch.Generator().manual_seed(2)
    samples = [Sample(x=torch.rand(3, 48, 64, generator=g), side=torch.rand(3, 48, 64, generator=g), name=f"i{i}")
               for i in range(2)]
    rows = evaluate(c, samples, get_protocol("middlebury-sample/stereo"), progress=False)
    for r in rows:
        s = samples[int(r["image"][1:])]
        assert r["bpp_estimated"] == c.estimate_bits(s.x, point=r["rate_point"]) / (48 * 64)


def test_default_hook_defers_to_estimate_bits():
    """A codec without a one-pass estimate returns compress's bytes and None (the runner then asks estimate_bits)."""
    c = get_method("jpeg")(protocol=get_protocol("middlebury-sample/stereo"))
    x = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(3))
    p = c.rate_points()[0]
    data, bits = c.compress_with_estimate(x, point=p)
    assert bits is None and data == c.compress(x, point=p)
