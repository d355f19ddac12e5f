"""dsi_disparity: real bytes that are balle2018's, a decoder that finds the disparity, the ablation switches.

(The codec contract — encoder independence from the side view, exact decode, bad bytes — and the isolation
checks run for every registered codec, this one included, in tests/test_codec_contract.py; the one-pass
likelihood estimate in tests/test_encoder_estimate.py.)"""
from __future__ import annotations

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
from methods.dsi_disparity.model import CostVolume, StereoRefiner, unit, warp_horizontal
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
            out = m.refiner.fusion.out
            out.weight.copy_(scale * torch.randn(out.weight.shape, generator=g))


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
