"""Every registered codec: real bytes, encoder independence from the side view, exact decode, bad bytes refused.

The inputs and instances are `benchmark.contract.conformance`'s (codecs may set `test_options` and `test_protocol`)."""
import hashlib

import numpy as np
import pytest
import torch

from benchmark.contract.codec import LearnedCodec, Scenario
from benchmark.contract.container import Container
from benchmark.contract.conformance import contract_codec, contract_inputs
from benchmark.contract.data import Sample
from benchmark.errors import BitstreamError
from benchmark.contract.registry import METHODS, get_protocol
from benchmark.evaluation.inprocess import evaluate
from tests.cheaters import FitMemo, SideViewMemo

ALL = METHODS.names()


def _embedded_train(protocol, options=None, n: int = 4):
    """A few training samples of the protocol's embedded data set (the side views `fit` is handed)."""
    from benchmark.contract.registry import DATASETS

    info = next((i for _, i in DATASETS.items() if i.embedded and protocol.name in i.protocols), None)
    assert info is not None, f"protocol {protocol.name} has no embedded data set for the contract test"
    return _Few(info.factory(None, protocol, "train", **{**protocol.options, **(options or {})}), n)


class _Few(torch.utils.data.Dataset):
    """The first n samples of a data set, with its attributes (num_sources, sigma2, ...)."""

    def __init__(self, base, n):
        self.base, self.n = base, min(n, len(base))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.base[i]

    def __getattr__(self, k):
        if k in ("base", "n"):
            raise AttributeError(k)
        return getattr(self.base, k)


def check_isolation(cls, workdir) -> None:
    """The encoder's bytes depend on x (and, in `joint`, on the side view handed to it) only: never on what
    the same instance saw while training, decoding or estimating, nor on a side view handed to `compress`
    outside `joint`; and decoding is exact (two instances with the same weights decode the same bytes to the
    same tensor). Raises AssertionError naming the codec and the channel."""
    name = cls.meta.name
    proto = get_protocol(getattr(cls, "test_protocol", "middlebury-sample/stereo"))
    opts = {**getattr(cls, "test_options", {}), **getattr(cls, "test_fit_options", {})}
    dut = cls(protocol=proto, **opts)  # the instance that trains, decodes and estimates
    scen = dut.meta.scenario
    learned = isinstance(dut, LearnedCodec)
    # data-set options the codec was built with (e.g. DRASIC's number of sources), as the runner forwards them
    train = _embedded_train(proto, {k: opts[k] for k in getattr(cls, "dataset_options_used", ()) if k in opts})
    # several samples: a training side view (what a cheating fit() would remember) and two synthetic inputs
    xs, sides, others = [], [], []
    for seed in (0, 1):
        x, s, o = contract_inputs(cls, seed)
        xs.append(x), sides.append(s), others.append(o)
    if train[0].side is not None:
        t = train[0].side
        g = torch.Generator().manual_seed(7)
        xs.append(t), sides.append(train[0].x), others.append(torch.rand(t.shape, generator=g))
    if learned:
        dut.fit(train, None, budget="smoke", device="cpu", workdir=workdir / "fit", seed=0)
        dut.save_weights(workdir / "weights")
    ref = cls(protocol=proto, **opts)  # a fresh encoder: the options and the weights only
    if learned:
        ref.load_weights(workdir / "weights")
    all_points = ref.rate_points()
    assert all_points, f"{name} has no rate points"
    points = sorted({all_points[0], all_points[-1]}, key=all_points.index)
    joint = scen is Scenario.JOINT

    def encode(c, i, side=None):
        return {p: c.compress(xs[i], side=sides[i] if joint else side, point=p) for p in points}

    want = [encode(ref, i) for i in range(len(xs))]

    def same_bytes(channel: str) -> None:
        for i in range(len(xs)):
            got = encode(dut, i)
            for p in points:
                assert got[p] == want[i][p], (
                    f"{name}: channel {channel}: compress() of sample {i} at {p} gave {len(got[p])} bytes, a fresh "
                    f"instance with the same weights gives {len(want[i][p])} bytes (sha256 "
                    f"{hashlib.sha256(got[p]).hexdigest()[:12]} != {hashlib.sha256(want[i][p]).hexdigest()[:12]}): "
                    "the encoder used information it must not have")

    for i in range(len(xs)):
        for p in points:
            data = want[i][p]
            assert isinstance(data, bytes) and len(data) > 0, f"{name}: compress returned no bytes"
            c = Container.from_bytes(data, name)
            assert c.point == all_points.index(p) and tuple(c.shape) == tuple(xs[i].shape), \
                f"{name}: container header names point #{c.point} and shape {c.shape} for {p} of a {tuple(xs[i].shape)} input"
            assert Container(name, c.point, c.shape, c.streams).to_bytes() == data, f"{name}: bytes are not one container"
    same_bytes("fit() -> compress (training side views cached by the instance)" if learned else "construction")
    if not joint:  # the encoder ignores any side view it is handed
        for i in range(len(xs)):
            for v in (others[i], xs[i]):
                got = encode(dut, i, side=v)
                assert got == want[i], f"{name}: channel compress(side=...): the bytes depend on the side view handed to the encoder"
    # decode with arbitrary side views, including a view equal to x itself (what a cheating decoder would store)
    dec_views = lambda i: (sides[i], others[i], xs[i]) if scen.decoder_sees_side else (None,)
    for i in range(len(xs)):
        for p in points:
            for v in dec_views(i):
                a = dut.decompress(want[i][p], side=v)
                b = ref.decompress(want[i][p], side=v)
                assert a.shape == xs[i].shape, f"{name}: decoded shape {tuple(a.shape)} != {tuple(xs[i].shape)}"
                assert torch.equal(a, b), f"{name}: decode is not exact: two instances with the same weights decode " \
                                          f"the same bytes differently (max diff {(a - b).abs().max():g})"
    same_bytes("decompress(side=...) -> compress (side views seen by the decoder)")
    # the side views the decoder was handed, coded as images: a decoder that remembered them must not make them cheap
    for i in range(len(xs)):
        for v in dec_views(i):
            if v is None or tuple(v.shape) != tuple(xs[i].shape):
                continue
            for p in points:
                got = dut.compress(v, side=xs[i] if joint else None, point=p)
                fresh = ref.compress(v, side=xs[i] if joint else None, point=p)
                assert got == fresh, (f"{name}: channel decompress(side=...) -> compress(side view): a side view the decoder "
                                      f"was handed codes to {len(got)} bytes, {len(fresh)} with a fresh instance")
    for i in range(len(xs)):
        for p in points:
            for v in (sides[i], others[i], xs[i]):
                dut.estimate_bits(xs[i], side=v, point=p)
    same_bytes("estimate_bits(side=...) -> compress (side views seen by the estimator)")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.slow
def test_bytes_independent_of_side_view_and_exact_decode(name, tmp_path):
    check_isolation(METHODS.get(name), tmp_path)


@pytest.mark.parametrize("cheater, channel", [(SideViewMemo, "decompress"), (FitMemo, "fit")])
def test_cheating_codecs_are_caught(cheater, channel, tmp_path):
    """Two codecs written to cheat (tests/cheaters.py) fail the check above, which names them and the channel."""
    with pytest.raises(AssertionError, match=rf"{cheater.meta.name}: channel {channel}"):
        check_isolation(cheater, tmp_path)


@pytest.mark.parametrize("name", ALL)
def test_metrics_are_taken_on_the_decoded_bytes(name):
    """Every row's bytes, sha256, bpp and MSE match what decoding the codec's own bytes gives, with the expected
    values computed here independently of benchmark.results.metrics (integer 8-bit code values in numpy)."""
    codec = contract_codec(name)
    x, side, _ = contract_inputs(type(codec))
    proto = codec.protocol
    rows = evaluate(codec, [Sample(x=x, side=side, name="img")], proto, progress=False)
    points = codec.rate_points()
    assert sorted(r["rate_point"] for r in rows) == sorted(points)
    scen = codec.meta.scenario
    enc_side = side if scen.encoder_sees_side else None
    image = proto.rate_unit == "bpp"
    full = codec.compress(x, side=enc_side, point=points[-1]) if codec.meta.scalable else None
    for r in rows:
        p = r["rate_point"]
        if codec.meta.scalable:
            data = full if p == points[-1] else codec.truncate(full, p)
        else:
            data = codec.compress(x, side=enc_side, point=p)
        assert r["sha256"] == hashlib.sha256(data).hexdigest() and r["bytes"] == len(data)
        n_px = x.shape[-1] * x.shape[-2] if image else x.shape[-1]
        assert r["bpp"] == pytest.approx(len(data) * 8 / n_px, rel=1e-12)
        x_hat = codec.decompress(data, side=side if scen.decoder_sees_side else None).numpy().astype(np.float64)
        ref = x.numpy().astype(np.float64)
        if image:  # 8-bit code values, as a PNG writer stores them (round half to even, like numpy.rint)
            qa = np.rint(np.clip(ref, 0.0, 1.0) * 255.0).astype(np.int64)
            qb = np.rint(np.clip(x_hat, 0.0, 1.0) * 255.0).astype(np.int64)
            sse = int(((qa - qb) ** 2).sum())
            want_mse = sse / qa.size / 65025.0
            if sse:
                want_psnr = 20.0 * np.log10(255.0) - 10.0 * np.log10(sse / qa.size)
                assert r["psnr"] == pytest.approx(min(want_psnr, 60.0), abs=1e-9)
        else:
            want_mse = float(np.square(ref - x_hat).sum()) / ref.size
        assert r["mse"] == pytest.approx(want_mse, rel=1e-9, abs=1e-15), (p, r["mse"], want_mse)


@pytest.mark.parametrize("name", ALL)
def test_bad_bytes_raise_bitstream_error(name):
    codec = contract_codec(name)
    x, side, _ = contract_inputs(type(codec))
    scen = codec.meta.scenario
    data = codec.compress(x, side=side if scen.encoder_sees_side else None, point=codec.rate_points()[0])
    dec_side = side if scen.decoder_sees_side else None
    foreign_name = "jpeg" if name != "jpeg" else "webp"
    foreign = Container(foreign_name, 0, tuple(x.shape), [b"\x00" * 16]).to_bytes()
    for bad in (b"", data[: len(data) // 2], data[:3], foreign, b"not a bitstream at all" * 3):
        with pytest.raises(BitstreamError):
            codec.decompress(bad, side=dec_side)
