"""DRASIC: scalable prefixes, distributed/separate/joint structure, robustness, low complexity, training, runner.

Tiny widths (`test_options`) and few iterations keep the whole file to a few seconds of CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.contract.codec import Scenario
from benchmark.contract.container import Container
from benchmark.contract.data import Batch
from benchmark.errors import BitstreamError, ConfigError, WeightsError
from benchmark.contract.registry import get_dataset, get_method, get_protocol
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec, make_codec
from fixtures_real import make_mnist_tree
from methods.drasic.model import CODE_CHANNELS, binarize


CLASS, RANDOM = "mnist/drasic-class", "mnist/drasic-random"
TINY = {"enc_stem": 2, "enc_hidden": 4, "dec_stem": 4, "dec_hidden": "4,4,4"}


def codec(config="distributed", sources=4, iterations=6, seed=0, **kw):
    cls = get_method("drasic")
    c = cls(protocol=get_protocol(CLASS), config=config, sources=sources, iterations=iterations, **TINY, **kw)
    # fresh random weights per seed, so different tests do not share an accidental structure
    c._build(c.widths, seed=seed)
    return c


def digit(seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, 6, 6, generator=g)
    return torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)


# ------------------------------------------------------------------------------------------- scalable bytes
@pytest.mark.parametrize("config", ["distributed", "separate", "joint"])
def test_prefix_of_t_iterations_decodes_exactly_to_iteration_t(config):
    c = codec(config, iterations=6, seed=1)
    x = digit(1)
    source = 2 if config != "joint" else 0
    full = c.compress(x, source=source, point="iter=6")
    _, recons = c.encode_iterations(x, source=source)  # the encoder's own reconstructions after 1..T iterations
    payload = Container.from_bytes(full, "drasic").streams[0]
    per_iter = CODE_CHANNELS * 4 * 4 // 8  # 8 x 4 x 4 bits = 16 bytes at 32x32
    assert len(payload) == 6 * per_iter
    previous = None
    for t in range(1, 7):
        cut = c.truncate(full, f"iter={t}")
        sub = Container.from_bytes(cut, "drasic")
        assert sub.point == t - 1
        assert sub.streams[0] == payload[: t * per_iter]  # a byte prefix of the one stream
        assert cut == c.compress(x, source=source, point=f"iter={t}")  # same as coding t iterations directly
        x_hat = c.decompress(cut, source=source)
        assert torch.equal(x_hat, recons[t - 1])  # exactly the reconstruction after t iterations
        if previous is not None:
            assert not torch.equal(x_hat, previous)  # every iteration changes the image
        previous = x_hat
    # 0.125 bpp of payload per iteration at 32x32
    assert 8 * (len(Container.from_bytes(c.truncate(full, "iter=3"), "drasic").streams[0])) / (32 * 32) == 3 * 0.125


def test_prefix_decoding_on_other_sizes_pads_and_crops():
    c = codec(iterations=3, seed=2)
    x = digit(2, size=32)[:, :27, :30]  # not a multiple of 8: padded to 32x32, cropped back
    full = c.compress(x, source=1, point="iter=3")
    _, recons = c.encode_iterations(x, source=1)
    for t in (1, 2, 3):
        out = c.decompress(c.truncate(full, f"iter={t}"), source=1)
        assert out.shape == x.shape and torch.equal(out, recons[t - 1])


def test_bad_streams_are_refused():
    c = codec(iterations=4)
    x = digit(3)
    data = c.compress(x, source=0, point="iter=2")
    cont = Container.from_bytes(data, "drasic")
    short = Container("drasic", 1, cont.shape, [cont.streams[0][:-1]]).to_bytes()  # payload one byte short
    beyond = Container("drasic", 7, cont.shape, [cont.streams[0] * 4]).to_bytes()  # names iteration 8 of 4
    two = Container("drasic", 1, cont.shape, [cont.streams[0], b""]).to_bytes()
    shape = Container("drasic", 1, (3, 32, 32), cont.streams).to_bytes()
    for bad in (short, beyond, two, shape):
        with pytest.raises(BitstreamError):
            c.decompress(bad)
    with pytest.raises(BitstreamError):
        c.truncate(data, "iter=3")  # cannot lengthen a 2-iteration stream
    with pytest.raises(ConfigError):
        c.compress(x, point="iter=5")
    with pytest.raises(ConfigError):
        c.compress(x, source=4, point="iter=1")  # M = 4: sources 0..3


# ------------------------------------------------------------------------------------------- configurations
def test_configurations_share_what_the_paper_says():
    d, s, j = codec("distributed"), codec("separate"), codec("joint")
    assert (len(d.model.encoders), len(d.model.decoders)) == (4, 1)
    assert (len(s.model.encoders), len(s.model.decoders)) == (4, 4)
    assert (len(j.model.encoders), len(j.model.decoders)) == (1, 1)
    assert d.meta.scenario is Scenario.DISTRIBUTED and s.meta.scenario is Scenario.DISTRIBUTED
    assert j.meta.scenario is Scenario.SEPARATE  # at test time the joint reference is a single-source codec
    assert (d.variant, s.variant, j.variant) == ("M4-T6", "separate-M4-T6", "joint-M4-T6")
    assert codec("distributed", iterations=16).variant == "M4"
    assert type(d).meta.scenario is Scenario.DISTRIBUTED  # the class meta is untouched by the joint instance
    # the encoders of the distributed configuration have their own weights
    w = [e.stem.weight for e in d.model.encoders]
    assert all(not torch.equal(w[0], v) for v in w[1:])
    with pytest.raises(ConfigError):
        codec("federated")
    with pytest.raises(ConfigError):
        codec("joint", low_complexity=True)


def test_one_shared_decoder_needs_no_source_id():
    d, s = codec("distributed", seed=3), codec("separate", seed=3)
    x = digit(4)
    data = d.compress(x, source=1, point="iter=6")
    out = d.decompress(data, source=1)
    for m in (0, 2, 3):
        assert torch.equal(d.decompress(data, source=m), out)  # one decoder for every source's stream
    data = s.compress(x, source=1, point="iter=6")
    assert not torch.equal(s.decompress(data, source=1), s.decompress(data, source=2))  # pairs: decoder m for m
    # sources code differently: each has its own encoder
    assert d.compress(x, source=0, point="iter=6") != d.compress(x, source=3, point="iter=6")


def test_a_source_decodes_with_no_other_source_present():
    """Robustness: source m's bytes and its reconstruction do not depend on any other encoder existing or
    sending, and decoding a batch of streams from several sources equals decoding each alone."""
    c = codec("distributed", seed=4)
    x = digit(5)
    data = c.compress(x, source=2, point="iter=6")
    alone = c.decompress(data, source=2)
    with torch.no_grad():
        for m in (0, 1, 3):  # wreck every other encoder
            for p in c.model.encoders[m].parameters():
                p.mul_(-3.0).add_(0.5)
    assert c.compress(x, source=2, point="iter=6") == data
    assert torch.equal(c.decompress(data, source=2), alone)
    # a mixed batch through the training graph (deterministic binarizer in eval mode) gives every sample the
    # reconstruction it gets alone: the sources need no synchronisation
    c.model.eval()
    xs = torch.stack([digit(10 + i) for i in range(4)])
    with torch.no_grad():
        batch = c.model(2 * xs - 1, torch.tensor([3, 0, 2, 1]), 6)[-1]
    for i, m in enumerate((3, 0, 2, 1)):
        single = c.decompress(c.compress(xs[i], source=m, point="iter=6"), source=m)
        ref = ((batch[i] + 1) / 2).clamp(0, 1)
        assert torch.allclose(single, ref, atol=1e-5)


def test_binarizer_stochastic_in_training_sign_at_test():
    z = torch.tensor([-0.9, -0.2, 0.0, 0.3, 0.8], requires_grad=True)
    torch.manual_seed(0)
    draws = torch.stack([binarize(z, True).detach() for _ in range(4000)])
    assert set(draws.unique().tolist()) == {-1.0, 1.0}
    assert torch.allclose(draws.mean(0), z.detach(), atol=0.05)  # E[b] = z
    binarize(z, True).sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight through
    assert binarize(z.detach(), False).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------------------- low complexity
def test_low_complexity_trains_the_second_half_with_half_the_iterations():
    c = codec("distributed", sources=4, iterations=6, low_complexity=True, seed=5)
    assert c.train_iterations() == [6, 6, 3, 3]
    assert c.variant == "M4-lowc-T6"
    assert len(c.rate_points()) == 6  # all sources code T iterations at test time
    c.model.eval()  # deterministic binarizer: the loss is a pure function of the weights
    xs = torch.stack([digit(20 + i) for i in range(4)])
    for m, t_m in ((0, 6), (3, 3)):
        batch = Batch(xs, None, torch.full((4,), m), ["a"] * 4)
        loss = c.loss_fn(c.model, batch)["loss"]
        with torch.no_grad():
            outs = c.model(2 * xs - 1, batch.source, 6)
        expect = torch.stack([((2 * xs - 1) - o).abs().mean() for o in outs[:t_m]]).mean()
        assert loss.item() == pytest.approx(expect.item(), rel=1e-5)


def test_low_complexity_encoder_gets_no_gradient_after_half_the_iterations(monkeypatch):
    """With a deterministic straight-through binarizer, encoder 3 (trained with T/2 = 3 of T = 6 iterations) in a
    batch that also holds a full-T source gets exactly the gradient of a T = 3 model: iterations 4..6 add nothing."""
    import methods.drasic.model as model_mod

    def sign_straight_through(z, training):
        return z + (torch.where(z >= 0, 1.0, -1.0) - z).detach()

    monkeypatch.setattr(model_mod, "binarize", sign_straight_through)
    lowc = codec("distributed", sources=4, iterations=6, low_complexity=True, seed=5)
    short = codec("distributed", sources=4, iterations=3, seed=5)
    short.model.load_state_dict(lowc.model.state_dict())
    x0, x2 = digit(40), digit(41)
    lowc.model.train().zero_grad()
    lowc.loss_fn(lowc.model, Batch(torch.stack([x0, x2]), None, torch.tensor([0, 3]), ["a", "b"]))["loss"].backward()
    short.model.train().zero_grad()
    short.loss_fn(short.model, Batch(x2[None], None, torch.tensor([3]), ["b"]))["loss"].backward()
    for a, b in zip(lowc.model.encoders[3].parameters(), short.model.encoders[3].parameters()):
        assert b.grad.abs().sum() > 0
        assert torch.allclose(a.grad, 0.5 * b.grad, rtol=1e-4, atol=1e-8)  # batch mean over 2 samples vs 1
    # the full-T source's encoder does get gradient from every iteration (the model runs T = 6 for it)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lowc.model.encoders[0].parameters())


# ------------------------------------------------------------------------------------------- training and weights
@pytest.fixture(scope="module")
def digits_split():
    info = get_dataset("digits")
    proto = get_protocol(CLASS)
    return (info.factory(None, proto, "train", sources=2), info.factory(None, proto, "val", sources=2),
            info.factory(None, proto, "test", sources=2))


@pytest.mark.parametrize("config", ["distributed", "separate", "joint"])
def test_smoke_fit_save_load_roundtrip(config, digits_split, tmp_path):
    train, val, test = digits_split
    c = codec(config, sources=2, iterations=3, steps=2, batch_size=4, val_samples=4)
    info = c.fit(train, val, budget="smoke", device="cpu", workdir=tmp_path / "w", seed=0, progress=False)
    assert info["budget"] == "smoke" and info["seed"] == 0 and info["steps"] == 2
    assert np.isfinite(info["final_train"]["loss"])
    c.save_weights(tmp_path / "weights")
    x = test[0].x
    data = c.compress(x, source=1 if config != "joint" else 0, point="iter=3")
    again = codec(config, sources=2, iterations=3, seed=9)  # other random weights until loaded
    summary = again.load_weights(tmp_path / "weights")
    assert summary["budget"] == "smoke" and summary["seed"] == 0
    assert again.compress(x, source=1 if config != "joint" else 0, point="iter=3") == data
    # a weights folder of another configuration is refused
    other = {"distributed": "separate", "separate": "joint", "joint": "distributed"}[config]
    with pytest.raises(WeightsError):
        codec(other, sources=2, iterations=3).load_weights(tmp_path / "weights")
    with pytest.raises(WeightsError):
        codec(config, sources=2, iterations=4).load_weights(tmp_path / "weights")


def test_fit_refuses_data_with_another_number_of_sources(digits_split, tmp_path):
    train, val, _ = digits_split  # M = 2
    with pytest.raises(ConfigError, match="sources"):
        codec("distributed", sources=4).fit(train, val, budget="smoke", device="cpu", workdir=tmp_path, progress=False)


def test_routing_sends_each_sample_through_its_own_encoder():
    c = codec("separate", sources=2, iterations=2, seed=6)
    c.model.train()
    xs = torch.stack([digit(30), digit(31)])
    loss = c.loss_fn(c.model, Batch(xs, None, torch.tensor([1, 1]), ["a", "b"]))["loss"]
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in c.model.encoders[0].parameters())
    assert all(p.grad is None or not p.grad.any() for p in c.model.decoders[0].parameters())
    assert any(p.grad is not None and p.grad.any() for p in c.model.encoders[1].parameters())


# ------------------------------------------------------------------------------------------- runner
def test_runner_forwards_the_number_of_sources():
    proto = get_protocol(CLASS)
    c = make_codec(RunSpec(method="drasic", dataset="digits", dataset_options={"sources": 2}, method_options=dict(TINY)), proto)
    assert c.M == 2
    c = make_codec(RunSpec(method="drasic", dataset="digits", method_options=dict(TINY)), proto)
    assert c.M == proto.options["sources"]  # the protocol's default M
    c = make_codec(RunSpec(method="drasic", dataset="digits", dataset_options={"sources": 2},
                           method_options={**TINY, "sources": 8}), proto)
    assert c.M == 8  # an explicit method option wins
    # a codec that does not list the option never receives it
    jpeg = make_codec(RunSpec(method="jpeg", dataset="digits", dataset_options={"sources": 2}), proto)
    assert "sources" not in jpeg.options


@pytest.mark.parametrize("dataset", ["mnist", "digits"])
def test_run_end_to_end_reports_every_source_and_iteration(dataset, tmp_path):
    root = None
    if dataset == "mnist":
        root = tmp_path / "mnist"
        make_mnist_tree(root, n_train=200, n_test=20)
    spec = RunSpec(method="drasic", dataset=dataset, root=root, protocol=CLASS, limit=2, out=tmp_path / "res",
                   budget="smoke", dataset_options={"sources": 2}, progress=False,
                   method_options={**TINY, "iterations": 3, "steps": 2, "batch_size": 4, "val_samples": 2})
    path, result = run(spec)
    assert path.name == "drasic.M2-T3.json" and result["scenario"] == "distributed"
    assert [p["rate_point"] for p in result["points"]] == ["iter=1", "iter=2", "iter=3"]
    for t, p in enumerate(result["points"], 1):
        assert p["bpp_payload"] == pytest.approx(t * 0.125)
        assert [s["source"] for s in p["per_source"]] == [0, 1]
        assert p["psnr_min"] <= p["psnr"] <= p["psnr_max"]
        assert p["n_images"] == 2
    assert result["training"]["budget"] == "smoke"
    assert json.loads(path.read_text())["dataset_options"]["sources"] == 2
    if dataset == "digits":
        return
    # the weights are reused by a second run (same budget and seed)
    _, again = run(spec)
    assert again["training"]["loaded_from"].endswith("drasic.M2-T3")
    assert [p["psnr"] for p in again["points"]] == [p["psnr"] for p in result["points"]]


# ------------------------------------------------------------------------------------------- leaderboard
def _fake_result(config, psnrs, sources=4, worst=None):
    variant = {"distributed": "M4", "separate": "separate-M4", "joint": "joint-M4"}[config]
    points = []
    for t, v in enumerate(psnrs, 1):
        p = {"rate_point": f"iter={t}", "bpp": 0.125 * t + 0.09, "psnr": v}
        if worst is not None:
            p["psnr_min"] = v - worst
        points.append(p)
    return {"method": "drasic", "variant": variant, "points": points,
            "codec_info": {"config": config, "sources": sources, "iterations": len(psnrs)}}


def test_leaderboard_reports_the_gap_to_joint():
    from leaderboard.drasic import gaps, joint_gap_section

    joint = _fake_result("joint", [20.0, 24.0, 27.0, 29.0, 31.0])
    dist = _fake_result("distributed", [19.0, 23.5, 27.0, 29.5, 30.0], worst=1.0)
    sep = _fake_result("separate", [18.0, 23.0, 26.0, 29.0, 30.5], worst=2.0)
    g = gaps(dist, joint)
    assert g["delta"] == {"iter=1": -1.0, "iter=2": -0.5, "iter=3": 0.0, "iter=4": 0.5, "iter=5": -1.0}
    assert g["delta_worst"]["iter=1"] == -2.0 and g["bd_psnr"] is not None
    md = joint_gap_section([sep, joint, dist])
    assert "gap to the joint reference `drasic.joint-M4` (M = 4, T = 5)" in md
    assert "| drasic.M4 | distributed |" in md and "| drasic.separate-M4 | separate |" in md
    assert "Distributed − separate: -0.50 to +1.00 dB over 5 iterations (smallest at iter=5)" in md
    assert "at least as good at 4 of 5" in md
    # nothing to compare: no section; other M: no section
    assert joint_gap_section([dist, sep]) is None
    assert joint_gap_section([_fake_result("joint", [1, 2, 3, 4, 5], sources=2), dist]) is None
    assert joint_gap_section([{"method": "jpeg", "points": []}]) is None
