"""CompressAI Ballé baselines and their side-information variants: real bytes that decode to exactly the model's
reconstruction, padding to the stride and cropping back, and a rate that falls with λ."""
from __future__ import annotations

import math

import pytest
import torch

from baselines.balle import SCALE_LEVELS
from benchmark.contract.coding import pad_to
from benchmark.contract.container import Container
from benchmark.contract.data import Sample
from benchmark.errors import BitstreamError, ConfigError
from benchmark.contract.registry import get_method, get_protocol

PROTO = get_protocol("middlebury-sample/stereo")
ALL = ("balle2017", "balle2018", "mbt2018_mean", "dsi_balle2018", "joint_balle2018")




def _codec(name: str, **kw):
    cls = get_method(name)
    return cls(protocol=PROTO, **{**cls.test_options, **kw})


_CODECS: dict[str, object] = {}


def _cached(name: str):
    """One codec per method for the coding tests (random weights of the test widths, built once)."""
    if name not in _CODECS:
        c = _codec(name)
        c._require_models()  # random weights are built lazily; tests that read c.models need them now
        _CODECS[name] = c
    return _CODECS[name]


def _pair(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w + 6), indexing="ij")
    img = torch.stack([torch.sin(5 * xx + c) * torch.cos(3 * yy - c) for c in range(3)]) * 0.35 + 0.5
    img = (img + 0.03 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    return img[:, :, 6:].contiguous(), img[:, :, :-6].contiguous()  # x and a side view shifted by 6 px


def _side_kw(codec, side):
    return {"side": side} if codec.meta.scenario.value in ("joint", "decoder_side_info") else {}


@pytest.mark.parametrize("name", ALL)
def test_decode_equals_model_reconstruction_at_any_size(name):
    c = _cached(name)
    for size, point in (((64, 64), c.rate_points()[0]), ((37, 53), c.rate_points()[-1]), ((1, 70), c.rate_points()[0])):
        x, side = _pair(*size)
        kw = _side_kw(c, side)
        data = c.compress(x, point=point, **kw)
        head = Container.from_bytes(data, name)
        assert head.shape == (3, *size) and len(head.streams) == c.n_streams
        x_hat = c.decompress(data, **kw)
        assert x_hat.shape == x.shape  # padded to the stride for coding, cropped back
        rec = c.reconstruct(x, side=kw.get("side"), point=point)
        assert torch.equal(x_hat, rec), (name, size, point, (x_hat - rec).abs().max())


def _bits(likelihoods) -> float:
    return sum(float(-torch.log(v.double()).sum()) for v in likelihoods.values()) / math.log(2.0)


def _reference_bits(c, x: torch.Tensor, side: torch.Tensor) -> float:
    """-log2 likelihood of the coded latents, computed without the codec's estimate path: CompressAI's own full
    forward pass (zoo models; dsi_balle2018 through a CompressAI ScaleHyperprior holding its encoder and entropy
    model), or for joint_balle2018 the Gaussian probabilities written out here (ndtr of the bin edges)."""
    import compressai.models as cm

    model = c.models[-1]
    xp, sp = pad_to(x[None], c.stride), pad_to(side[None], c.stride)
    with torch.no_grad():
        if c.meta.name in ("balle2017", "balle2018", "mbt2018_mean"):
            return _bits(model(xp)["likelihoods"])
        if c.meta.name == "dsi_balle2018":
            twin = cm.ScaleHyperprior(N=c.config["N"], M=c.config["M"]).eval()
            own = dict(model.named_parameters())
            for k, v in twin.named_parameters():
                if not k.startswith("g_s."):
                    v.copy_(own[k])
            return _bits(twin(xp)["likelihoods"])
        feats = model.side_encoder(sp)
        y = model.g_a(torch.cat([xp, sp], 1))
        z_hat, z_lik = model.entropy_bottleneck(model.h_a(torch.abs(y)))  # eval mode: z rounded around its medians
        scales, means = model._params(z_hat, feats[3])
        s = scales.double().clamp_min(0.11)  # CompressAI's lower bound on the scale
        r = torch.round(y - means).double()  # the coded integer residual
        p = torch.special.ndtr((r + 0.5) / s) - torch.special.ndtr((r - 0.5) / s)
        return _bits({"y": p.clamp_min(1e-9), "z": z_lik})


@pytest.mark.parametrize("name", ALL)
def test_estimate_is_the_bits_of_the_full_forward_pass(name):
    c = _cached(name)
    x, side = _pair(40, 72, seed=4)
    enc_side = side if c.meta.scenario.value == "joint" else None
    p = c.rate_points()[-1]
    assert c.estimate_bits(x, side=enc_side, point=p) == pytest.approx(_reference_bits(c, x, side), rel=1e-4)


@pytest.mark.slow
def test_bytes_are_within_2_percent_of_the_estimate_on_a_trained_codec(tmp_path):
    """A whole codec trained briefly on the Middlebury tiles, coding the four test crops at > 0.1 bpp: the rANS
    payload costs at most 2 % more than the likelihood estimate (and never less than it, minus rounding)."""
    from benchmark.contract.registry import get_dataset

    factory = get_dataset("middlebury_sample").factory
    c = _codec("balle2018", lambdas=[0.0483], N=32, M=48, steps=120, batch_size=8, crop=64, val_every=1000,
               checkpoint_every=1000)
    c.fit(factory(None, PROTO, "train"), None, budget="smoke", device="cpu", workdir=tmp_path, seed=0, progress=False)
    test = factory(None, PROTO, "test")
    p = c.rate_points()[0]
    payload = est = pixels = 0
    for i in range(len(test)):
        x = test[i].x
        payload += 8 * Container.from_bytes(c.compress(x, point=p), "balle2018").payload_bytes
        est += c.estimate_bits(x, point=p)
        pixels += x.shape[-1] * x.shape[-2]
    assert payload / pixels >= 0.1, payload / pixels
    assert 0.995 * est <= payload <= 1.02 * est, (payload, est, payload / est)


def test_padding_replicates_the_edge_to_the_stride():
    x = torch.rand(1, 3, 37, 53)
    for stride in (16, 64):
        p = pad_to(x, stride)
        assert p.shape[-2] % stride == 0 and p.shape[-1] % stride == 0 and p.shape[-2] - 37 < stride
        assert torch.equal(p[..., :37, :53], x)
        assert torch.equal(p[..., 37:, :53], x[..., 36:37, :].expand(-1, -1, p.shape[-2] - 37, -1))
        assert torch.equal(p[..., :37, 53:], x[..., :, 52:53].expand(-1, -1, -1, p.shape[-1] - 53))
    assert pad_to(torch.rand(1, 3, 64, 128), 64).shape == (1, 3, 64, 128)


def test_coder_uses_the_fine_scale_table():
    c = _cached("balle2018")
    c.compress(_pair(16, 16)[0], point=c.rate_points()[0])
    assert all(m.gaussian_conditional.scale_table.numel() == SCALE_LEVELS for m in c.models)


def test_wyner_ziv_encoder_ignores_side_and_decoder_needs_it():
    c = _cached("dsi_balle2018")
    x, side = _pair(40, 48)
    p = c.rate_points()[0]
    assert c.compress(x, point=p) == c.compress(x, side=side, point=p) == c.compress(x, side=1 - side, point=p)
    data = c.compress(x, point=p)
    with pytest.raises(ConfigError, match="needs the side view"):
        c.decompress(data)
    assert not torch.equal(c.decompress(data, side=side), c.decompress(data, side=torch.zeros_like(side)))


def test_joint_encoder_uses_the_side_view():
    c = _cached("joint_balle2018")
    x, side = _pair(40, 48)
    p = c.rate_points()[0]
    assert c.compress(x, side=side, point=p) != c.compress(x, side=torch.flip(side, dims=(-1,)), point=p)


def test_damaged_or_foreign_bytes_raise_bitstream_error():
    a, b = _cached("balle2017"), _cached("balle2018")
    x, _ = _pair(32, 48)
    data = a.compress(x, point=a.rate_points()[0])
    for bad in (b"", data[:-3], data + b"\x00", b.compress(x, point=b.rate_points()[0])):
        with pytest.raises(BitstreamError):
            a.decompress(bad)


def test_coder_bytes_track_the_gaussian_likelihood():
    """The rANS bytes of Gaussian latents with the suite's scale table stay within 1.5 % of -log2 likelihood
    (CompressAI's default 64-entry table costs 2-4 %; see baselines/balle.py)."""
    from compressai.entropy_models import GaussianConditional

    from baselines.balle import _set_gaussian_tables

    g = torch.Generator().manual_seed(0)
    scales = torch.exp(torch.empty(1, 32, 24, 24).uniform_(-1.5, 3.0, generator=g))
    y = torch.randn(scales.shape, generator=g) * scales
    gc = GaussianConditional(None).eval()
    _set_gaussian_tables(gc)
    assert gc.scale_table.numel() == SCALE_LEVELS
    bits = len(gc.compress(y, gc.build_indexes(scales))[0]) * 8
    with torch.no_grad():
        _, lik = gc(y, scales)
    ideal = float(-torch.log2(lik).sum())
    assert ideal > 20000 and 0.995 < bits / ideal < 1.015, (bits, ideal)
    y_hat = gc.decompress(gc.compress(y, gc.build_indexes(scales)), gc.build_indexes(scales))
    assert torch.equal(y_hat, torch.round(y))


class _Tiles(torch.utils.data.Dataset):
    """Smooth 64x64 stereo tiles."""

    def __init__(self, n: int = 12):
        self.items = [_pair(64, 64, seed=i) for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x, s = self.items[i]
        return Sample(x=x, side=s, name=f"t{i}")


@pytest.mark.slow
def test_rate_falls_as_lambda_falls(tmp_path):
    """balle2017 at two λ two orders of magnitude apart, trained briefly through the shared trainer."""
    c = _codec("balle2017", lambdas=[0.0018, 0.18], N=16, M=16, steps=100, batch_size=4, crop=32, lr=5e-3,
               val_samples=1)
    info = c.fit(_Tiles(), _Tiles(1), budget="smoke", device="cpu", workdir=tmp_path, seed=0, progress=False)
    assert info["budget"] == "smoke" and info["seed"] == 0 and info["steps"] == 100
    imgs = [_pair(96, 128, seed=50 + i)[0] for i in range(2)]
    pixels = sum(x.shape[1] * x.shape[2] for x in imgs)
    bpp = [8 * sum(len(c.compress(x, point=p)) for x in imgs) / pixels for p in c.rate_points()]  # λ ascending
    assert bpp[0] < bpp[1], bpp  # rate falls strictly as λ falls


def test_weights_trained_for_another_metric_are_refused(tmp_path):
    """A run asking for the MS-SSIM loss must not silently reuse MSE-trained weights (the runner then retrains)."""
    from benchmark.errors import WeightsError
    from benchmark.contract.registry import get_method, get_protocol

    proto = get_protocol("middlebury-sample/stereo")
    cls = get_method("balle2018")
    mse = cls(protocol=proto, **cls.test_options)
    mse.compress(torch.rand(3, 64, 64), point=mse.rate_points()[0])  # instantiates (random) models
    mse.save_weights(tmp_path / "w")
    with pytest.raises(WeightsError, match="metric"):
        cls(protocol=proto, metric="ms-ssim", **cls.test_options).load_weights(tmp_path / "w")
    cls(protocol=proto, **cls.test_options).load_weights(tmp_path / "w")  # same metric loads


def test_warm_start_chain_trains_lowest_lambda_first_and_starts_the_next_from_it(tmp_path, monkeypatch):
    """quick budget: λ ascending; each higher λ begins from the parameters the lower one ended with."""
    import baselines.balle as balle

    seen = []
    real_train = balle.train

    def spy(model, loss_fn, train_ds, val_ds, *, tag, **kw):
        seen.append((tag, {k: v.detach().clone() for k, v in model.named_parameters()}))
        return real_train(model, loss_fn, train_ds, val_ds, tag=tag, **kw)

    monkeypatch.setattr(balle, "train", spy)
    proto = get_protocol("middlebury-sample/stereo")
    c = get_method("balle2017")(protocol=proto, lambdas="[0.0483,0.0035]", N=8, M=8, steps=2, batch_size=2, crop=64,
                                val_every=1000, warm_start=True)
    g = torch.Generator().manual_seed(0)
    data = [Sample(x=torch.rand(3, 64, 64, generator=g), name=f"t{i}") for i in range(4)]
    c.fit(data, None, budget="smoke", device="cpu", workdir=tmp_path, seed=0, progress=False)
    assert "lambda=0.0035" in seen[0][0] and "lambda=0.0483" in seen[1][0] and "warm-from=lambda=0.0035" in seen[1][0]
    low = dict(c.models[c.rate_points().index("lambda=0.0035")].named_parameters())
    for k, v in seen[1][1].items():  # the second training starts exactly where the first ended (before quantiles update)
        if not k.endswith("quantiles"):
            assert torch.equal(v, low[k].detach()), k
    assert c.config["warm_start"] is True


def test_a_new_zoo_row_is_a_registered_codec_that_codes():
    """A CompressAI architecture is one row of the zoo table: `register_family` makes a registered codec from it."""
    from baselines import register_family
    from baselines.balle import ZOO, ZooArchitecture, _ZooCodec
    from benchmark.contract.registry import METHODS

    assert [get_method(row.name).arch for row in ZOO] == [row.arch for row in ZOO]
    row = ZooArchitecture("test_zoo_row", "mbt2018-mean", "MeanScaleHyperprior", stride=64, n_streams=2,
                          paper="a paper", description="a row added by a test")
    try:
        (cls,) = register_family(_ZooCodec, [row], __name__).values()
        assert get_method("test_zoo_row") is cls and cls.__name__ == "TestZooRow"
        assert (cls.meta.paper, cls.stride, cls.n_streams, cls.model_class) == ("a paper", 64, 2, "MeanScaleHyperprior")
        codec = cls(**cls.test_options)
        x = torch.rand(3, 64, 64)
        data = codec.compress(x, point=codec.rate_points()[0])
        assert len(Container.from_bytes(data, "test_zoo_row").streams) == 2
        assert codec.decompress(data).shape == x.shape
    finally:
        METHODS.remove("test_zoo_row")
