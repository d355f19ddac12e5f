"""The runner enforces scenarios, aggregates per source, and resumes an interrupted evaluation."""
import csv

import pytest
import torch

from benchmark.contract.codec import Codec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.contract.data import Sample
from benchmark.contract.registry import get_protocol
from benchmark.evaluation.inprocess import evaluate
from benchmark.evaluation.rows import aggregate

PROTO = get_protocol("middlebury-sample/stereo")


class Spy(Codec):
    """Codes x as 8-bit bytes; records what each side saw."""

    meta = MethodMeta("spy", Scenario.SEPARATE)

    def __init__(self, scenario, **kw):
        super().__init__(**kw)
        self.meta = MethodMeta("spy", scenario)
        self.enc_sides, self.dec_sides, self.calls = [], [], 0

    def rate_points(self):
        return ["a", "b"]

    def compress(self, x, *, side=None, source=0, point):
        self.calls += 1
        self.enc_sides.append(side)
        q = ((x.clamp(0, 1) * 15).round() * 17).to(torch.uint8).numpy().tobytes()  # lossy: 16 levels
        return Container("spy", self.rate_points().index(point), tuple(x.shape), [q, bytes([source])]).to_bytes()

    def decompress(self, data, *, side=None, source=0):
        self.dec_sides.append(side)
        c = Container.from_bytes(data, "spy")
        return torch.frombuffer(bytearray(c.streams[0]), dtype=torch.uint8).float().reshape(c.shape) / 255


def _samples(n=3):
    return [Sample(x=torch.rand(3, 16, 16), side=torch.rand(3, 16, 16), name=f"s{i}") for i in range(n)]


@pytest.mark.parametrize("scenario, enc, dec", [
    (Scenario.SEPARATE, False, False),
    (Scenario.DECODER_SIDE_INFO, False, True),
    (Scenario.JOINT, True, True),
    (Scenario.DISTRIBUTED, False, False),
])
def test_runner_enforces_who_sees_the_side_view(scenario, enc, dec):
    c = Spy(scenario)
    evaluate(c, _samples(2), PROTO, progress=False)
    assert all((s is not None) == enc for s in c.enc_sides)
    assert all((s is not None) == dec for s in c.dec_sides)


class SourceSet(list):
    num_sources = 3


def test_distributed_evaluates_every_source_and_reports_the_band():
    c = Spy(Scenario.DISTRIBUTED)
    rows = evaluate(c, SourceSet(_samples(2)), PROTO, progress=False)
    assert len(rows) == 2 * 3 * 2
    pts = aggregate(rows, c.rate_points(), Scenario.DISTRIBUTED)
    assert [s["source"] for s in pts[0]["per_source"]] == [0, 1, 2]
    assert pts[0]["psnr_min"] <= pts[0]["psnr"] <= pts[0]["psnr_max"]


def test_interrupted_evaluation_resumes(tmp_path):
    partial = tmp_path / ".spy.partial.csv"

    class Crash(Spy):
        def compress(self, x, **kw):
            if self.calls == 3:
                raise KeyboardInterrupt
            return super().compress(x, **kw)

    with pytest.raises(KeyboardInterrupt):
        evaluate(Crash(Scenario.SEPARATE), _samples(3), PROTO, progress=False, partial_csv=partial, fingerprint="f1")
    assert len(list(csv.DictReader(open(partial)))) == 2  # the first sample's two points were kept
    again = Spy(Scenario.SEPARATE)
    rows = evaluate(again, _samples(3), PROTO, progress=False, partial_csv=partial, fingerprint="f1")
    assert len(rows) == 6 and again.calls == 4  # only the two unfinished samples were coded
    # another configuration never reuses stale rows
    other = Spy(Scenario.SEPARATE)
    evaluate(other, _samples(3), PROTO, progress=False, partial_csv=partial, fingerprint="f2")
    assert other.calls == 6
