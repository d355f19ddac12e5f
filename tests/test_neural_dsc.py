"""Neural DSC (methods/neural_dsc): the range coder against the prior's ideal code length, exact decoding of
the indices, who sees the side view in each mode, the authors' settings, and end-to-end runs (KITTI fixture
tree, middlebury_sample, lfw_sample) through the command line."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from benchmark.contract.container import Container
from benchmark.contract.data import Sample
from benchmark.errors import BitstreamError, ConfigError, WeightsError
from benchmark.contract.registry import get_dataset, get_protocol
from fixtures_real import make_kitti_tree
from methods.neural_dsc import configs
from methods.neural_dsc import prior as P
from methods.neural_dsc.codec import NeuralDSC, NeuralDSCJoint, NeuralDSCSeparate

cli = CliRunner(env={"COLUMNS": "250"})


TINY = {"ch": 8, "n_res": 1, "emb_dim": 8, "prior_dim": 16, "prior_layers": 1, "prior_heads": 2}
TINY_CLI = [a for k, v in TINY.items() for a in ("--option", f"{k}={v}")]


def _middlebury_128x256(n: int = 2) -> list[torch.Tensor]:
    """Natural 128x256 content: crops of the embedded Middlebury test views."""
    ds = get_dataset("middlebury_sample").factory(None, get_protocol("middlebury-sample/stereo"), "test")
    return [ds[i].x[:, 20:148, 40 + 30 * i : 296 + 30 * i].contiguous() for i in range(n)]


def _codec(cls=NeuralDSC, protocol="kitti-stereo/ndic", **kw):
    return cls(protocol=get_protocol(protocol), **{**TINY, **kw})


# ------------------------------------------------------------------------------------------ range coding
def test_range_coder_round_trip_on_arbitrary_distributions():
    rng = np.random.default_rng(0)
    for K, L, temp in ((2, 300, 1.0), (16, 500, 0.2), (256, 400, 3.0)):
        logits = rng.normal(size=(L, K)) * temp * 4
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        symbols = np.array([rng.choice(K, p=p) for p in probs])
        symbols[:5] = probs[:5].argmin(1)  # include very unlikely symbols
        data = P.range_encode(symbols, probs)
        assert np.array_equal(P.range_decode_all(data, probs), symbols)
        ideal = float(-np.log2(probs[np.arange(L), symbols]).sum())
        # the trimmed stream is not longer than the untrimmed one, and close to the ideal length
        assert len(data) <= len(P.range_encode(symbols, probs, trim=False))
        assert 8 * len(data) <= math.ceil(ideal) + 1 + 64


def test_autoregressive_coding_decodes_the_same_indices():
    torch.manual_seed(1)
    prior = P.to_float64(P.CausalTransformerPrior(16, dim=16, layers=2, heads=2, dropout=0.1))
    h, w = 5, 7
    symbols = np.random.default_rng(1).integers(0, 16, size=h * w)
    data, probs = P.encode_indices(prior, symbols, h, w)
    assert probs.shape == (h * w, 16) and np.allclose(probs.sum(1), 1.0)
    assert np.array_equal(P.decode_indices(prior, data, h, w), symbols)
    # the incremental (cached) pass gives the batched pass's probabilities
    with torch.no_grad():
        batched = torch.softmax(prior(torch.as_tensor(symbols)[None], h, w), -1)[0].numpy()
    assert np.allclose(probs, batched, atol=1e-10)


def test_payload_within_64_bits_and_2_percent_of_ideal_code_length_on_128x256():
    images = _middlebury_128x256()
    cases = [(2, 1.0), (4, 1.0), (8, 1.0), (4, 4.0), (8, 4.0)]  # (codebook bits, prior sharpening)
    for i, (bits, sharpen) in enumerate(cases):
        codec = _codec(bits=[bits])
        point = f"bits={bits}"
        codec._require_models()
        with torch.no_grad():  # a peakier prior (lower entropy) as well as the untrained one
            codec.models[point][1].head.weight.mul_(sharpen)
        x = images[i % len(images)]
        assert tuple(x.shape) == (3, 128, 256)
        data = codec.compress(x, point=point)
        payload_bits = 8 * Container.from_bytes(data, "neural_dsc").payload_bytes
        ideal = codec.estimate_bits(x, point=point)  # ceil(sum -log2 p) + 1
        assert payload_bits <= ideal + 64, (bits, sharpen)
        assert abs(payload_bits - ideal) <= 0.02 * ideal, (bits, sharpen)
        # arithmetic-coded bytes decode to exactly the encoder's indices
        idx = codec._indices(x, None, point).reshape(-1).numpy()
        assert idx.size == 16 * 32
        assert np.array_equal(codec.decode_symbols(data), idx)
        assert codec.info()["fixed_length_bpp"][point] * x.shape[-2] * x.shape[-1] == bits * 16 * 32  # b * latents


# ------------------------------------------------------------------------------------------ modes
def test_who_sees_the_side_view():
    g = torch.Generator().manual_seed(0)
    x, s1, s2 = (torch.rand(3, 32, 64, generator=g) for _ in range(3))
    dist, joint, sep = (_codec(c, bits=[3]) for c in (NeuralDSC, NeuralDSCJoint, NeuralDSCSeparate))
    p = "bits=3"
    assert (dist.meta.scenario.value, joint.meta.scenario.value, sep.meta.scenario.value) == ("decoder_side_info", "joint", "separate")
    # distributed: encoder ignores the side view, decoder uses it
    d = dist.compress(x, point=p)
    assert dist.compress(x, side=s1, point=p) == d
    assert not torch.equal(dist.decompress(d, side=s1), dist.decompress(d, side=s2))
    with pytest.raises(ConfigError):
        dist.decompress(d)
    # separate: neither side uses it
    d = sep.compress(x, side=s1, point=p)
    assert torch.equal(sep.decompress(d, side=s1), sep.decompress(d, side=s2)) and sep.models[p][0].cond is None
    # joint: the encoder reads the side view (bytes or indices change with it)
    with pytest.raises(ConfigError):
        joint.compress(x, point=p)
    vq = joint.models[p][0]
    with torch.no_grad():
        assert not torch.equal(vq.encode(x[None], s1[None]), vq.encode(x[None], s2[None]))
    # same widths in every mode
    widths = {m.models[p][0].decoder.net[0].in_channels for m in (dist, joint, sep)}
    assert len(widths) == 1
    # --option mode=joint is a spelling of neural_dsc_joint
    assert NeuralDSC(protocol=get_protocol("kitti-stereo/ndic"), mode="joint").meta.name == "neural_dsc_joint"
    with pytest.raises(ConfigError):
        NeuralDSCSeparate(protocol=None, mode="joint")
    with pytest.raises(ConfigError):
        NeuralDSC(protocol=None, bits="[0]")
    with pytest.raises(ConfigError):
        NeuralDSC(protocol=None, no_such_option=1)


def test_corrupt_payload_raises_bitstream_error():
    codec = _codec(bits=[2])
    x = _middlebury_128x256(1)[0]
    side = x.flip(-1)
    data = codec.compress(x, point="bits=2")
    c = Container.from_bytes(data, "neural_dsc")
    for bad in (Container("neural_dsc", 5, c.shape, c.streams).to_bytes(),  # unknown rate point
                Container("neural_dsc", 0, (3, 0, 4), c.streams).to_bytes(),  # no pixels
                Container("neural_dsc", 0, c.shape, [c.streams[0], b"x"]).to_bytes()):
        with pytest.raises(BitstreamError):
            codec.decompress(bad, side=side)


# ------------------------------------------------------------------------------------------ training, weights
def test_fit_save_load_reproduces_the_bytes(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = torch.rand(6, 3, 32, 72, generator=g)
    train = [Sample(x=b[:, :, :64], side=b[:, :, 8:]) for b in base]
    codec = _codec(protocol="middlebury-sample/stereo", bits=[2, 3], steps=4, prior_steps=3, batch_size=2, prior_batch_size=2)
    info = codec.fit(train, train[:2], budget="smoke", device="cpu", workdir=tmp_path / "w", seed=3)
    assert info["budget"] == "smoke" and info["seed"] == 3 and info["steps"] == 4 and info["prior_steps"] == 3
    assert codec.rate_points() == ["bits=2", "bits=3"]
    codec.save_weights(tmp_path / "weights")
    again = _codec(protocol="middlebury-sample/stereo", bits=[2, 3])
    loaded = again.load_weights(tmp_path / "weights")
    assert loaded["budget"] == "smoke" and loaded["seed"] == 3
    x, side = train[0].x, train[0].side
    for p in codec.rate_points():
        data = codec.compress(x, point=p)
        assert again.compress(x, point=p) == data
        assert torch.equal(again.decompress(data, side=side), codec.decompress(data, side=side))
    with pytest.raises(WeightsError):  # another mode's weights
        _codec(NeuralDSCJoint, protocol="middlebury-sample/stereo").load_weights(tmp_path / "weights")
    with pytest.raises(WeightsError):  # other widths than the options ask for
        _codec(protocol="middlebury-sample/stereo", bits=[2, 3], ch=16).load_weights(tmp_path / "weights")


def test_authors_settings_under_the_paper_budget():
    kitti = NeuralDSC(protocol=get_protocol("kitti-stereo/ndic"))
    arch, bits, vq, prior = kitti.resolve("paper", 1576)
    assert (arch.down, arch.ch, arch.n_res, arch.emb_dim) == (8, 48, 4, 64) and bits == (1, 2, 3, 8)
    assert vq.batch_size == 16 and 2e-4 <= vq.lr <= 5e-4 and vq.steps == 99_000
    assert prior.lr == 3e-4 and prior.schedule == "cosine" and prior.warmup > 0
    assert (arch.prior_dim, arch.prior_dropout) == (128, 0.1) and 2 <= arch.prior_layers <= 4
    for name, down, ch, b in (("4x", 4, 64, (3, 4, 6)), ("2x", 2, 64, (3, 4))):
        a, bb, _, _ = NeuralDSC(protocol=get_protocol("kitti-stereo/ndic"), arch=name).resolve("paper", 1576)
        assert (a.down, a.ch, bb) == (down, ch, b)
    celeba = NeuralDSC(protocol=get_protocol("celeba-hq/neural-dsc"))
    _, _, vq, _ = celeba.resolve("paper", 26_000)
    assert vq.batch_size == 32 and vq.steps == math.ceil(20 * 26_000 / 32)
    # CPU budgets keep the structure but are short
    for budget in ("smoke", "quick"):
        _, bits, vq, prior = kitti.resolve(budget, 1576)
        assert len(bits) >= 2 and vq.steps <= 1000 and prior.steps <= 1000
    assert set(configs.PROTOCOLS) >= {"kitti-stereo/ndic", "celeba-hq/neural-dsc"}


# ------------------------------------------------------------------------------------------ end to end
def _run(tmp_path, dataset, extra):
    out = tmp_path / "out"
    res = cli.invoke(app, ["run", "--method", "neural_dsc", "--dataset", dataset, "--budget", "smoke", "--out", str(out),
                           "-q", "--limit", "1", *extra])
    assert res.exit_code == 0, res.output
    paths = list(out.glob("**/neural_dsc.json"))
    assert len(paths) == 1
    v = cli.invoke(app, ["validate", str(paths[0])])
    assert v.exit_code == 0, v.output
    return paths[0], json.loads(paths[0].read_text())


def _check_result(path, result, protocol, pixels, bits):
    assert result["protocol"] == protocol and result["scenario"] == "decoder_side_info"
    assert result["training"]["budget"] == "smoke"
    assert [p["rate_point"] for p in result["points"]] == [f"bits={b}" for b in bits]
    rows = list(csv.DictReader(open(path.parent / result["per_image_csv"])))
    assert len(rows) == len(bits)
    for r in rows:
        payload_bits = 8 * int(r["payload_bytes"])
        ideal = float(r["bpp_estimated"]) * pixels
        assert int(r["height"]) * int(r["width"]) == pixels
        assert payload_bits <= ideal + 64
    fixed = result["codec_info"]["fixed_length_bpp"]
    assert set(fixed) == {f"bits={b}" for b in bits}


def test_bench_run_kitti_fixture_smoke_end_to_end(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=1, scenes_2015=1)
    extra = ["--root", str(root), "--option", "bits=[2]", "--option", "steps=3", "--option", "prior_steps=2", *TINY_CLI]
    path, result = _run(tmp_path, "kitti", extra)
    _check_result(path, result, "kitti-stereo/ndic", 128 * 256, [2])
    assert result["points"][0]["n_images"] == 1
    # a second run reuses the saved weights
    path2, result2 = _run(tmp_path, "kitti", extra)
    assert "loaded_from" in result2["training"]
    assert result2["points"][0]["bpp"] == result["points"][0]["bpp"]


def test_smoke_run_on_middlebury_sample(tmp_path):
    extra = ["--option", "bits=[2,4]", "--option", "steps=3", "--option", "prior_steps=2", *TINY_CLI]
    path, result = _run(tmp_path, "middlebury_sample", extra)
    _check_result(path, result, "middlebury-sample/stereo", 192 * 368, [2, 4])


def test_smoke_run_on_lfw_sample(tmp_path):
    # the smoke budget unchanged (its own widths and steps): 32x64 faces are cheap
    path, result = _run(tmp_path, "lfw_sample", [])
    _check_result(path, result, "celeba-hq/neural-dsc", 32 * 64, list(configs.CELEBA_BUDGETS["smoke"].model["bits"]))
    assert result["training"]["steps"] == configs.CELEBA_BUDGETS["smoke"].stage("vq").steps


@pytest.mark.parametrize("cls", [NeuralDSC, NeuralDSCJoint, NeuralDSCSeparate])
def test_decode_equals_the_models_reconstruction(cls):
    """decompress(compress(x)) is the VQ-VAE's own eval-mode forward pass on (x, y): the bitstream carries its
    codebook indices exactly and the decoder turns them into its output (separate, distributed and joint)."""
    from benchmark.contract.coding import pad_to

    codec = cls(protocol=get_protocol("middlebury-sample/stereo"), **cls.test_options)
    g = torch.Generator().manual_seed(5)
    for h, w in ((64, 96), (40, 70)):
        x, side = torch.rand(3, h, w, generator=g), torch.rand(3, h, w, generator=g)
        for p in codec.rate_points():
            enc_side = side if codec.meta.scenario.encoder_sees_side else None
            data = codec.compress(x, side=enc_side, point=p)
            got = codec.decompress(data, side=side if codec.meta.scenario.decoder_sees_side else None)
            vq = codec.models[p][0]
            with torch.no_grad():
                out = vq(pad_to(x[None], codec.down), pad_to(side[None], codec.down))
            assert np.array_equal(codec.decode_symbols(data), out.indices[0].reshape(-1).numpy())
            want = out.x_hat[0, :, :h, :w].clamp(0, 1)
            assert torch.allclose(got, want, atol=1e-5, rtol=0), (cls.meta.name, p, float((got - want).abs().max()))
