"""dsi_disparity: real bytes that are balle2018's, a decoder that finds the disparity, the ablation switches.

(The codec contract — encoder independence from the side view, exact decode, bad bytes — and the isolation
checks run for every registered codec, this one included, in tests/test_codec_contract.py; the one-pass
likelihood estimate in tests/test_encoder_estimate.py.)"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmark.contract.container import Container
from benchmark.contract.data import Sample
from benchmark.contract.registry import METHODS, get_dataset, get_protocol
from benchmark.errors import ConfigError, TrainingError, WeightsError
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec
from methods.dsi_disparity.model import (CostVolume, DisparityRefinement, StereoRefiner, box_mean, grey, unit,
                                         warp_horizontal)
from tests.test_learning_curve import OPTS, _rows, kitti_like  # noqa: F401  (kitti_like: a fixture)

PROTO = "middlebury-sample/stereo"
TINY = {"N": 16, "M": 24, "lambdas": "0.0035,0.0483"}


def _codec(name: str = "dsi_disparity", **options):
    return METHODS.get(name)(protocol=get_protocol(PROTO), **{**TINY, **options})


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A 3xHxW image with structure at several scales (what stereo matching needs)."""
    g = torch.Generator().manual_seed(seed)
    img = sum(F.interpolate(torch.rand(1, 3, h // s, w // s, generator=g), size=(h, w), mode="bilinear",
                            align_corners=False) for s in (1, 2, 4, 8))[0] / 4
    return img.clamp(0, 1)


def _pair(d: int, h: int = 64, w: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) with x(u) = y(u − d): y is x moved left by d pixels (d > 0: x is the left view of a rectified pair)."""
    wide = _texture(h, w + 2 * abs(d), seed)
    m = abs(d)
    return wide[..., m:m + w], wide[..., m + d:m + d + w]


def _patches(img: torch.Tensor) -> torch.Tensor:
    """A test-only identity feature: each pixel's 3x3 neighbourhood of raw values, mean removed, unit length."""
    p = F.unfold(img[None], 3, padding=1).view(1, 27, *img.shape[-2:])
    return unit(p - p.mean(1, keepdim=True))


# ------------------------------------------------------------------------------------ the untrained modules
@pytest.mark.parametrize("d", [-6, -1, 0, 3, 7])
def test_soft_argmin_of_the_cost_volume_recovers_a_known_shift(d):
    x, y = _pair(d)
    cost = CostVolume(max_shift=8)
    with torch.no_grad():
        disp, corr = cost(_patches(x), _patches(y))
    assert corr.shape == (1, 17, 64, 128)
    inner = disp[0, 0, 4:-4, 12:-12]  # away from the borders, where y(u − d) exists
    assert (inner - d).abs().median() < 0.05, (d, inner.mean())
    assert ((inner - d).abs() < 0.5).float().mean() > 0.95


@pytest.mark.parametrize("d", [-12, 8, 16])
def test_the_decoders_disparity_is_right_with_its_untrained_features(d):
    """The refiner's own matching (random zero-mean projections of 4x4 patches, the 1/4 grid, ±32 px): the
    full-resolution disparity it hands to the warp, and the warped side view equals x."""
    x, y = _pair(d, h=64, w=192, seed=1)
    torch.manual_seed(0)
    refiner = StereoRefiner(max_disp=32, match_channels=32, fusion_width=8)
    with torch.no_grad():
        disp = refiner.disparity(x[None], y[None])
        warped = warp_horizontal(y[None], disp)
    inner = (slice(8, -8), slice(40, -40))
    assert (disp[0, 0][inner] - d).abs().median() < 1.0, disp[0, 0][inner].median()
    err_aligned = (warped[0][(slice(None), *inner)] - x[(slice(None), *inner)]).abs().mean()
    err_unaligned = (y[(slice(None), *inner)] - x[(slice(None), *inner)]).abs().mean()
    assert err_aligned < 0.25 * err_unaligned, (err_aligned, err_unaligned)


def test_warp_with_a_constant_disparity_is_a_shift():
    x, y = _pair(5)
    warped = warp_horizontal(y[None], torch.full((1, 1, 64, 128), 5.0))[0]
    assert torch.allclose(warped[..., 5:], x[..., 5:], atol=1e-5)


# ------------------------------------------------------------------------------------ bytes and decoding
def test_bytes_are_balle2018s_and_the_untrained_refinement_is_the_identity():
    """Same seed, same widths: the encoder's bytes are balle2018's byte for byte (its code path), whatever side
    view is handed to compress; with the fusion's last layer at zero, decoding gives balle2018's image."""
    dsi, balle = _codec(), _codec("balle2018")
    x, y = _pair(4, h=64, w=128)
    for p in dsi.rate_points():
        data = dsi.compress(x, point=p)
        assert data == dsi.compress(x, side=y, point=p) == dsi.compress(x, side=torch.rand_like(x), point=p)
        ref = balle.compress(x, point=p)
        mine, theirs = Container.from_bytes(data, "dsi_disparity"), Container.from_bytes(ref, "balle2018")
        assert mine.streams == theirs.streams and len(mine.streams) == 2 and min(map(len, mine.streams)) >= 8
        assert (mine.point, mine.shape) == (theirs.point, theirs.shape)
        assert torch.equal(dsi.decompress(data, side=y), balle.decompress(ref))


@pytest.mark.parametrize("shape", [(3, 64, 128), (3, 37, 53)])
def test_decoding_real_bytes_gives_the_models_reconstruction(shape):
    codec = _codec()
    _perturb(codec)
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    for p in codec.rate_points():
        decoded = codec.decompress(codec.compress(x, point=p), side=y)
        assert torch.allclose(decoded, codec.reconstruct(x, side=y, point=p), atol=1e-5)
        assert codec.estimate_bits(x, point=p) == codec.estimate_bits(x, side=y, point=p)  # x's latents only


def _perturb(codec, seed: int = 5, scale: float = 0.05) -> None:
    """Give the fusion's last layer weights (it starts at zero), so the side view changes the decoded image."""
    codec._require_models()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in codec.models:
            for fusion in (m.refiner.fusion, getattr(m.refiner, "fusion2", None)):
                if fusion is not None:  # the second pass's too (passes=2)
                    fusion.out.weight.copy_(scale * torch.randn(fusion.out.weight.shape, generator=g))


def test_the_decoder_needs_the_side_view():
    codec = _codec()
    x = torch.rand(3, 64, 64)
    data = codec.compress(x, point=codec.rate_points()[0])
    with pytest.raises(ConfigError, match="side view"):
        codec.decompress(data, side=None)


# ------------------------------------------------------------------------------------ the ablations
def test_ablation_options_change_the_decoder_path(tmp_path):
    trained = _codec()
    _perturb(trained)
    trained.save_weights(tmp_path / "w")
    x, y = _pair(12, h=64, w=128, seed=2)
    p = trained.rate_points()[0]
    data = trained.compress(x, point=p)
    zero = _codec(disparity="zero")
    zero.load_weights(tmp_path / "w")  # decode-time switch: the same weights
    assert zero.variant == "zero-disparity" and trained.variant is None
    assert zero.compress(x, point=p) == data
    estimated, unaligned = trained.decompress(data, side=y), zero.decompress(data, side=y)
    assert (estimated - unaligned).abs().max() > 1e-3
    with torch.no_grad():  # the forward pass (reconstruct, training) takes the same path as the decoder
        assert trained.models[0](x[None], y[None])["disparity"] is not None
        assert zero.models[0](x[None], y[None])["disparity"] is None
    assert torch.allclose(zero.reconstruct(x, side=y, point=p), unaligned, atol=1e-5)
    nowarp = _codec(warp=False)
    nowarp._require_models()
    names = {n for n, _ in nowarp.models[0].named_parameters()}
    assert nowarp.variant == "nowarp" and not any(n.startswith("refiner.cost") or n.startswith("refiner.features") for n in names)
    assert nowarp.training_plan("smoke")["warp"] is False and trained.training_plan("smoke")["warp"] is True
    assert "disparity" not in trained.training_plan("smoke")  # decode-time only: zero reuses the trained weights
    with pytest.raises(WeightsError, match="warp"):
        _codec(warp=False).load_weights(tmp_path / "w")
    with pytest.raises(ConfigError, match="warp=false"):
        _codec(warp=False, disparity="zero")
    with pytest.raises(TrainingError, match="decode-time"):
        _codec(disparity="zero").fit([], None, budget="smoke", device="cpu", workdir=tmp_path / "fit")
    with pytest.raises(ConfigError, match="multiple of 4"):
        _codec(max_disp=30)


def test_the_side_view_probe_runs_on_it():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "perf"))
    from side_info_probe import wrong_side

    codec = _codec()
    _perturb(codec)
    samples = []
    for i, d in enumerate((6, -6, 10, -10)):
        x, y = _pair(d, h=64, w=64, seed=10 + i)
        samples.append(Sample(x=x, side=y, name=f"p{i}"))
    out = wrong_side(codec, samples, get_protocol(PROTO))
    assert set(out) == set(codec.rate_points())
    for v in out.values():
        assert {"psnr_own_side", "psnr_other_pair_side", "psnr_grey_side"} <= set(v)
        assert all(math.isfinite(v[k]) for k in v)


# ------------------------------------------------------------------------------------ training
@pytest.mark.slow
def test_a_short_training_lowers_the_loss_and_trains_the_fusion(tmp_path):
    """300 steps at tiny widths on the embedded Middlebury tiles: the RD loss falls and the fusion's last layer
    (zero at the start: balle2018's decoder) has left zero."""
    from benchmark.contract.budgets import TrainConfig
    from benchmark.training.trainer import train

    proto = get_protocol(PROTO)
    codec = METHODS.get("dsi_disparity")(protocol=proto, N=8, M=8, lambdas="0.0483")
    cfg, _ = codec.resolve_config("smoke")
    codec._instantiate(cfg)
    model = codec.models[0]
    losses: list[float] = []
    tc = TrainConfig(steps=300, batch_size=4, crop=64, lr=1e-3, aux_lr=1e-2, schedule="constant", clip_grad=1.0,
                     val_every=0, val_samples=0, checkpoint_every=1000, restore="last")
    train(model, codec.make_loss(0.0483), get_dataset("middlebury_sample").factory(None, proto, "train"), None,
          config=tc, workdir=tmp_path, seed=0, progress=False, on_step=lambda s, logs: losses.append(float(logs["loss"])))
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    assert len(losses) == 300 and last < 0.7 * first, (first, last)
    assert model.refiner.fusion.out.weight.abs().max() > 1e-3


@pytest.mark.slow
def test_training_extends_in_segments_and_the_learning_curves_probe_runs(kitti_like, tmp_path):
    """With the learning curves' options (constant lr, last weights, no warm start: perf/learning_curve.py) a run of
    4 steps continues the 2-step checkpoint and equals 4 steps from scratch (same bytes, same weights); the curve's
    side-view probe (decode the same bytes with another pair's and a grey side view) runs on the weights."""
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "perf"))
    from learning_curve import side_probe

    def run4(out, steps, retrain=False, **extra):
        return run(RunSpec(method="dsi_disparity", dataset="stereo", protocol="stereo/kitti-ndic", root=kitti_like,
                           out=out, budget="quick", method_options={**OPTS, "steps": steps, **extra}, progress=False,
                           retrain=retrain))

    seg = tmp_path / "seg"
    run4(seg, 2)
    p4, r4 = run4(seg, 4, retrain=True)
    assert all(pt["resumed_at"] == [2] for pt in r4["training"]["points"].values())
    p4s, r4s = run4(tmp_path / "scratch", 4)
    assert _rows(p4) == _rows(p4s)
    assert {k: v["weights_sha256"] for k, v in r4["training"]["points"].items()} == \
           {k: v["weights_sha256"] for k, v in r4s["training"]["points"].items()}
    probe = side_probe(argparse.Namespace(method="dsi_disparity", root=str(kitti_like), work=str(seg)),
                       {**{k: str(v) for k, v in OPTS.items()}, "steps": "4"})
    assert set(probe) == {"lambda=0.0035", "lambda=0.013"}
    assert all({"loss_other_pair_db", "loss_grey_db"} <= set(v) for v in probe.values())
    # the ablation without warping, in the same folder: its own weights (dsi_disparity.nowarp), its own probe
    path, result = run4(seg, 2, warp=False)
    assert path.name == "dsi_disparity.nowarp.json" and result["training"]["config"]["warp"] is False
    probe = side_probe(argparse.Namespace(method="dsi_disparity", root=str(kitti_like), work=str(seg)),
                       {**{k: str(v) for k, v in OPTS.items()}, "steps": "2", "warp": "false"})
    assert set(probe) == {"lambda=0.0035", "lambda=0.013"}


def test_grey_side_control_ignores_the_side_view(tmp_path):
    """side=grey: the same decoder fed a grey image (the control without side information); saved with the weights."""
    grey = _codec(side="grey")
    _perturb(grey)
    assert grey.variant == "greyside" and grey.training_plan("smoke")["side"] == "grey"
    x, y = _pair(12, h=64, w=128, seed=2)
    p = grey.rate_points()[0]
    data = grey.compress(x, point=p)
    other = torch.rand_like(y)
    assert torch.equal(grey.decompress(data, side=y), grey.decompress(data, side=other))
    view = _codec()
    view.models = grey.models  # the same weights fed the real side view decode differently
    assert (view.decompress(data, side=y) - grey.decompress(data, side=y)).abs().max() > 1e-4
    grey.save_weights(tmp_path / "w")
    with pytest.raises(WeightsError, match="side"):
        _codec().load_weights(tmp_path / "w")


# ------------------------------------------------------------------------------------ the second pass (passes=2)
def _one_pass_reference(refiner: StereoRefiner, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The one-pass refinement as it was written before `passes` existed: match on the 1/4 grid, warp, fuse."""
    f = refiner.features(torch.cat([x0, y]))
    d, _ = refiner.cost(f[:1], f[1:])
    d = 4 * F.interpolate(d, scale_factor=4, mode="bilinear", align_corners=False)
    return refiner.fusion(x0, warp_horizontal(y, d))


def test_one_pass_is_unchanged_by_the_option(tmp_path):
    """passes=1 (the default): the same networks, training plan and weights as before the option (no `passes` key,
    so saved one-pass plans and weights still match), the same bytes, and a decoded image that is the one-pass
    refinement of g_s(ŷ) exactly."""
    codec, explicit = _codec(), _codec(passes=1)
    _perturb(codec)
    assert codec.variant is None and explicit.variant is None and "passes" not in codec.training_plan("smoke")
    assert not any(n.startswith(("refiner.refine", "refiner.fusion2")) for n in codec.models[0].state_dict())
    x, y = _pair(8, h=64, w=128, seed=4)
    p = codec.rate_points()[0]
    data = codec.compress(x, point=p)
    streams = Container.from_bytes(data, "dsi_disparity").streams
    assert streams == Container.from_bytes(_codec("balle2018").compress(x, point=p), "balle2018").streams
    model = codec.models[codec.point_index(p)]
    with torch.no_grad():
        z_hat = model.entropy_bottleneck.decompress([streams[1]], (1, 2))
        y_hat = model.gaussian_conditional.decompress([streams[0]], model.gaussian_conditional.build_indexes(
            model.h_s(z_hat)), z_hat.dtype)
        expected = _one_pass_reference(model.refiner, model.g_s(y_hat), y[None]).clamp(0, 1)[0]
    assert torch.equal(codec.decompress(data, side=y), expected)
    codec.save_weights(tmp_path / "w")
    assert "passes" not in json.loads((tmp_path / "w" / "manifest.json").read_text())["config"]
    _codec(passes=1).load_weights(tmp_path / "w")  # weights without the key are one-pass weights


def test_an_untrained_second_pass_decodes_what_one_pass_decodes(tmp_path):
    """passes=2 built under the same seed holds the one-pass networks with the same weights (built first) plus the
    second pass, whose fusion's last layer starts at zero: the same bytes decode to the same image, exactly."""
    one, two = _codec(), _codec(passes=2)
    one._require_models(), two._require_models()
    _perturb(one)
    assert two.variant == "2pass" and two.training_plan("smoke")["passes"] == 2
    for m1, m2 in zip(one.models, two.models):
        sd1, sd2 = m1.state_dict(), m2.state_dict()
        assert set(sd1) < set(sd2) and {k.split(".")[1] for k in set(sd2) - set(sd1)} == {"refine", "fusion2"}
        m2.load_state_dict({**sd2, **sd1})  # the one-pass weights, the second pass untrained
    x, y = _pair(-8, h=64, w=128, seed=6)
    for p in one.rate_points():
        data = one.compress(x, point=p)
        assert data == two.compress(x, point=p)
        assert torch.equal(two.decompress(data, side=y), one.decompress(data, side=y))


@pytest.mark.parametrize("error, radius", [(2.0, None), (-1.5, None), (-3.0, 4)])
def test_the_second_pass_recovers_a_known_disparity_error(error, radius):
    """A textured pair with x(u) = y(u − 8) and a first-pass disparity off by `error` px: the full-resolution
    re-matching (the codec's ±2 px around it, or ±4; untrained) brings it back to 8, and the warped side view to x."""
    x, y = _pair(8, h=64, w=192, seed=1)
    d1 = torch.full((1, 1, 64, 192), 8.0 + error)
    refine = DisparityRefinement() if radius is None else DisparityRefinement(radius=radius)
    with torch.no_grad():
        d2, confidence = refine(x[None], y[None], d1)
    inner = (0, 0, slice(8, -8), slice(24, -24))
    assert (d2[inner] - 8).abs().median() < 0.1 < abs(error), d2[inner].median()
    assert ((d2[inner] - 8).abs() < 0.5).float().mean() > 0.9
    assert confidence.shape == d1.shape and 1 / len(refine.shifts) <= confidence.min() and confidence.max() <= 1
    err = lambda d: (warp_horizontal(y[None], d) - x[None])[..., 8:-8, 24:-24].abs().mean()  # noqa: E731
    assert err(d2) < 0.25 * err(d1)


def test_the_second_pass_matching_is_the_warp_it_stands_for():
    """The candidates built by one gather are the grey side view warped by d₁ + δ (`warp_horizontal`), and the
    box filter is torch's avg_pool2d without the padding counted."""
    g = torch.Generator().manual_seed(7)
    y, d1 = torch.rand(2, 3, 21, 37, generator=g), 12 * torch.randn(2, 1, 21, 37, generator=g)
    refine = DisparityRefinement(radius=3)
    expected = torch.cat([warp_horizontal(grey(y), d1 + s) for s in range(-3, 4)], 1)
    assert torch.allclose(refine.candidates(y, d1), expected, atol=1e-5)
    cost = torch.rand(2, 7, 21, 37, generator=g)
    assert torch.allclose(box_mean(cost, 5), F.avg_pool2d(cost, 5, 1, 2, count_include_pad=False), atol=1e-6)


def test_decoding_real_bytes_gives_the_models_reconstruction_with_two_passes():
    codec = _codec(passes=2)
    _perturb(codec)
    x, y = _pair(6, h=64, w=128, seed=8)
    for p in codec.rate_points():
        data = codec.compress(x, point=p)
        decoded = codec.decompress(data, side=y)
        assert torch.allclose(decoded, codec.reconstruct(x, side=y, point=p), atol=1e-5)
        # the trained-like second pass changes the image (it is not the identity)
        assert (decoded - _codec_sharing(codec, passes=1).decompress(data, side=y)).abs().max() > 1e-4


def _codec_sharing(codec, **options):
    """A codec with other options whose models are `codec`'s (the networks it has in common)."""
    other = _codec(**options)
    other._require_models()
    for mine, theirs in zip(other.models, codec.models):
        mine.load_state_dict({k: v for k, v in theirs.state_dict().items() if k in mine.state_dict()})
    return other


def test_two_pass_options_are_checked_and_saved_with_the_weights(tmp_path):
    one, two = _codec(), _codec(passes=2)
    _perturb(one), _perturb(two)
    one.save_weights(tmp_path / "one")
    two.save_weights(tmp_path / "two")
    with pytest.raises(WeightsError, match="passes=1, the options ask for passes=2"):
        _codec(passes=2).load_weights(tmp_path / "one")
    with pytest.raises(WeightsError, match="passes=2, the options ask for passes=1"):
        _codec().load_weights(tmp_path / "two")
    loaded = _codec(passes=2)
    loaded.load_weights(tmp_path / "two")
    x, y = _pair(4, h=64, w=128, seed=9)
    p = two.rate_points()[0]
    data = two.compress(x, point=p)
    assert torch.equal(loaded.decompress(data, side=y), two.decompress(data, side=y))
    with pytest.raises(ConfigError, match="warp=false"):
        _codec(passes=2, warp=False)
    with pytest.raises(ConfigError, match="passes"):
        _codec(passes=3)
    # the grey-side control of the two-pass decoder: the same decoder without side information
    control = _codec(passes=2, side="grey")
    assert control.variant == "2pass+greyside"
    control.models = two.models
    assert torch.equal(control.decompress(data, side=y), control.decompress(data, side=torch.rand_like(y)))


def test_zero_disparity_zeroes_both_passes(tmp_path):
    """disparity=zero with passes=2: the first pass fuses y unaligned, the second matches around 0 for its
    confidence but warps by 0 as well."""
    two = _codec(passes=2)
    _perturb(two)
    two.save_weights(tmp_path / "w")
    zero = _codec(passes=2, disparity="zero")
    zero.load_weights(tmp_path / "w")
    assert zero.variant == "2pass+zero-disparity"
    x, y = _pair(12, h=64, w=128, seed=2)
    model = zero.models[0]
    with torch.no_grad():
        x0 = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
        out, disp = model.refiner(x0, y[None])
        r = model.refiner
        x1 = r.fusion(x0, y[None])
        _, confidence = r.refine(x1, y[None], torch.zeros_like(x0[:, :1]))
        assert disp is None and torch.equal(out, r.fusion2(x1, y[None], confidence))
    p = two.rate_points()[0]
    data = two.compress(x, point=p)
    assert (zero.decompress(data, side=y) - two.decompress(data, side=y)).abs().max() > 1e-3


# ------------------------------------------------------------------------------------ the x̂₀ anchor (anchor=a)
def test_the_anchor_adds_its_image_loss_on_x0_and_is_saved_with_the_weights(tmp_path):
    """anchor=a: the training loss is the RD loss plus a·λ·255²·MSE(x̂₀, x) for the same forward pass; the plan and
    the weights carry it (weights of another anchor, or none, are refused); anchor=0 has no key in the plan (the
    decoder as first built: its saved weights have none). The default is 0.1 for a matching decoder with MSE, 0 with
    MS-SSIM, for the grey-side control and without warping."""
    from benchmark.contract.data import Batch

    default, plain, anchored = _codec(), _codec(anchor=0), _codec(anchor=0.5)
    assert default.variant is None and default.training_plan("smoke")["anchor"] == 0.1
    assert anchored.variant == "anchor0.5" and plain.variant == "anchor0"
    assert anchored.training_plan("smoke")["anchor"] == 0.5 and "anchor" not in plain.training_plan("smoke")
    for no_match in (_codec(metric="ms-ssim"), _codec(side="grey"), _codec(warp=False)):  # default 0: no key
        assert "anchor" not in no_match.training_plan("smoke") and "anchor" not in (no_match.variant or "")
    assert _codec(side="grey", anchor=0.1).variant == "anchor0.1+greyside"
    with pytest.raises(ConfigError, match="anchor"):
        _codec(anchor=0.5, metric="ms-ssim")
    cfg, _ = anchored.resolve_config("smoke")
    anchored._instantiate(cfg)
    _perturb(anchored)
    model = anchored.models[0]
    x, y = _pair(8, h=64, w=64, seed=5)
    batch = Batch(x=x[None], side=y[None], source=torch.zeros(1, dtype=torch.long), names=["pair"])
    lam = anchored.lambdas[0]
    torch.manual_seed(0)
    with_anchor = anchored.make_loss(lam)(model, batch)
    torch.manual_seed(0)
    rd = plain.make_loss(lam)(model, batch)
    torch.manual_seed(0)
    with torch.no_grad():
        x0 = model(batch.x, batch.side)["x0"]
    extra = 0.5 * lam * 255.0**2 * F.mse_loss(x0, batch.x)
    assert float(extra) > 1e-3
    assert torch.allclose(with_anchor["loss"], rd["loss"] + extra, rtol=1e-5)
    assert math.isclose(float(with_anchor["x0_psnr"]), float(-10 * torch.log10(F.mse_loss(x0, batch.x))), rel_tol=1e-5)
    anchored.save_weights(tmp_path / "w")
    assert json.loads((tmp_path / "w" / "manifest.json").read_text())["config"]["anchor"] == 0.5
    _codec(anchor=0.5).load_weights(tmp_path / "w")
    for other in ({}, {"anchor": 0}, {"anchor": 0.25}):
        with pytest.raises(WeightsError, match="anchor"):
            _codec(**other).load_weights(tmp_path / "w")
    plain._instantiate(plain.resolve_config("smoke")[0])
    plain.save_weights(tmp_path / "w0")  # the plan without the key: weights of before the option
    assert "anchor" not in json.loads((tmp_path / "w0" / "manifest.json").read_text())["config"]
    _codec(anchor=0).load_weights(tmp_path / "w0")
    with pytest.raises(WeightsError, match="anchor=0"):
        _codec().load_weights(tmp_path / "w0")
