"""NDIC / NDIC-CAM: the loss, what is transmitted, the decoder's use of the side view, CAM sizes, paper settings.

(The codec contract — encoder independence from the side view, exact decode, bad bytes — runs for these codecs
in tests/test_codec_contract.py; the published NDIC curves in the leaderboard in tests/test_leaderboard.py.)"""
from __future__ import annotations

import math

import pytest
import torch

from benchmark.results import metrics
from benchmark.contract.container import Container
from benchmark.errors import ConfigError, WeightsError
from benchmark.contract.registry import METHODS, get_dataset, get_protocol
from benchmark.training.losses import bits_from_likelihoods
from methods.ndic import configs
from methods.ndic.codec import ndic_loss
from methods.ndic.model import NDIC

PROTO = "middlebury-sample/stereo"


def _pair(h: int = 64, w: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=g), size=(h, w), mode="bilinear",
                                           align_corners=False)[0]
    x = (base + 0.05 * torch.rand(3, h, w, generator=g)).clamp(0, 1)
    return x, x.roll(4, dims=-1)


def _codec(name: str, **options):
    return METHODS.get(name)(protocol=get_protocol(PROTO), **options)


def test_loss_is_the_papers_sum_of_terms():
    torch.manual_seed(0)
    model = NDIC(8, 8, hyperprior=True).train()
    x, side = _pair()
    torch.manual_seed(1)
    out = model(x[None], side[None])
    assert set(out["likelihoods"]) == {"y", "z"}  # transmitted: x's latent and hyper-latent only
    lam = 0.01
    px = 64 * 64
    bpp_x = float(bits_from_likelihoods(out["likelihoods"])) / px
    bpp_y = float(bits_from_likelihoods(out["likelihoods_y"])) / px
    bpp_w = float(bits_from_likelihoods(out["likelihoods_w"])) / px
    d_x = 255.0**2 * float(torch.mean((out["x_hat"] - x[None]) ** 2))
    d_y = 255.0**2 * float(torch.mean((out["y_hat"] - side[None]) ** 2))
    assert min(bpp_x, bpp_y, bpp_w) > 0
    only_x = ndic_loss(out, x[None], side[None], lam, 0.0, 0.0)
    assert float(only_x["loss"]) == pytest.approx(bpp_x + lam * d_x, rel=1e-5)
    assert float(only_x["bpp"]) == pytest.approx(bpp_x, rel=1e-5)
    full = ndic_loss(out, x[None], side[None], lam, 0.5, 2.0)
    assert float(full["loss"]) == pytest.approx(bpp_x + lam * d_x + 0.5 * (bpp_y + lam * d_y) + 2.0 * bpp_w, rel=1e-5)


def _compressai_twin(codec, i: int = 0):
    """CompressAI's own model (FactorizedPrior / ScaleHyperprior) holding the parameters of NDIC's x branch, with
    the same coder tables: an implementation of "code x's latents, nothing else" that the suite did not write."""
    import compressai.models as cm
    from compressai.models.base import get_scale_table

    from baselines.balle import SCALE_LEVELS

    branch = codec.models[i].x_branch
    hyper = codec.meta.name != "ndic_balle2017"
    twin = (cm.ScaleHyperprior if hyper else cm.FactorizedPrior)(N=codec.config["N"], M=codec.config["M"]).eval()
    own = dict(branch.named_parameters())
    with torch.no_grad():
        for k, v in twin.named_parameters():
            if not k.startswith("g_s."):  # the synthesis is not part of what is coded
                v.copy_(own[k])
    twin.update(force=True)
    if hyper:
        twin.gaussian_conditional.update_scale_table(get_scale_table(levels=SCALE_LEVELS), force=True)
        twin.gaussian_conditional.update()
    return twin


@pytest.mark.parametrize("name,streams", [("ndic_balle2017", 1), ("ndic_balle2018", 2)])
def test_only_x_latents_are_coded_and_the_estimate_counts_only_them(name, streams):
    """The streams are exactly what CompressAI's own coder makes of x's branch alone (no side-view latent, no w),
    and the estimate is CompressAI's own forward-pass likelihood of those latents."""
    from benchmark.contract.coding import pad_to

    codec = _codec(name, N=8, M=8, lambdas="0.0035")
    x, side = _pair(64, 128)
    p = codec.rate_points()[0]
    data = codec.compress(x, point=p)
    c = Container.from_bytes(data, name)
    assert len(c.streams) == streams
    twin = _compressai_twin(codec)
    xp = pad_to(x[None], codec.stride)
    with torch.no_grad():
        ref = twin.compress(xp)
        lik = twin(xp)["likelihoods"]
    assert c.streams == [s[0] for s in ref["strings"]]  # byte for byte
    want = sum(float(-torch.log(v).sum()) for v in lik.values()) / math.log(2.0)
    assert codec.estimate_bits(x, point=p) == pytest.approx(want, rel=1e-5)
    # the decoder's side view never enters the estimate (the runner may hand one to estimate_bits)
    assert codec.estimate_bits(x, side=side, point=p) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name", ["ndic_balle2017", "ndic_balle2018", "ndic_cam"])
def test_decode_equals_the_models_reconstruction(name):
    """decompress(compress(x), y) is the network's eval-mode output on (x, y): the full forward pass (x's latents
    rounded, w and the side latent from y) computes the same image the bitstream decodes to."""
    from benchmark.contract.coding import pad_to

    codec = _codec(name, N=8, M=8, lambdas="0.0035,0.0483")
    for (h, w), p in (((64, 64), codec.rate_points()[0]), ((40, 72), codec.rate_points()[-1])):
        x, side = _pair(64, 128)
        x, side = x[:, :h, :w].contiguous(), side[:, :h, :w].contiguous()
        got = codec.decompress(codec.compress(x, point=p), side=side)
        model = codec.models[codec.rate_points().index(p)]
        with torch.no_grad():
            full = model(pad_to(x[None], codec.stride), pad_to(side[None], codec.stride))["x_hat"]
        want = full[0, :, :h, :w].clamp(0, 1)
        assert torch.equal(got, want), (name, p, float((got - want).abs().max()))


def test_decoder_side_information_is_free_and_changes_the_output():
    codec = _codec("ndic_balle2018", N=8, M=8, lambdas="0.0035")
    x, side = _pair()
    data = codec.compress(x, point=codec.rate_points()[0])
    a = codec.decompress(data, side=side)
    assert torch.equal(a, codec.decompress(data, side=side))  # deterministic
    assert not torch.equal(a, codec.decompress(data, side=torch.rand_like(side)))
    with pytest.raises(ConfigError, match="side view"):
        codec.decompress(data, side=None)


# --------------------------------------------------------------------- a briefly trained model on the real pair
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """ndic_balle2018 (8/8 channels) trained 200 steps on the Middlebury tiles at a very low λ with β = 0 (w is
    free), so that x's own stream carries almost nothing and the decoder must draw x from the side view."""
    proto = get_protocol(PROTO)
    factory = get_dataset("middlebury_sample").factory
    codec = METHODS.get("ndic_balle2018")(protocol=proto, N=8, M=8, lambdas="1e-5", beta=0, steps=200, crop=64,
                                          batch_size=8, val_every=200, checkpoint_every=200)
    work = tmp_path_factory.mktemp("ndic_fit")
    info = codec.fit(factory(None, proto, "train"), None, budget="smoke", device="cpu", workdir=work, seed=0, progress=False)
    return codec, info, work, factory(None, proto, "test")


@pytest.mark.slow
def test_decoding_with_the_wrong_side_view_degrades_psnr(trained):
    codec, _, _, test = trained
    p = codec.rate_points()[0]
    right, wrong = [], []
    for i in range(len(test)):
        s = test[i]
        other = test[(i + 2) % len(test)]  # the other test region (i ± 1 is the same region seen from the other camera)
        data = codec.compress(s.x, point=p)
        right.append(metrics.psnr_from_mse(metrics.mse_8bit(s.x, codec.decompress(data, side=s.side))))
        wrong.append(metrics.psnr_from_mse(metrics.mse_8bit(s.x, codec.decompress(data, side=other.side))))
    gaps = [r - w for r, w in zip(right, wrong)]
    assert all(g > 0.5 for g in gaps), gaps
    assert sum(gaps) / len(gaps) > 1.5, gaps


@pytest.mark.slow
def test_trained_weights_round_trip_and_loss_weights_are_checked(trained, tmp_path):
    codec, info, work, test = trained
    assert info["budget"] == "smoke" and info["seed"] == 0 and info["config"]["beta"] == 0 and info["config"]["alpha"] == 1
    assert (work / "alpha=1,beta=0" / "smoke-seed0").is_dir()  # other loss weights never resume this run
    codec.save_weights(tmp_path / "w")
    again = _codec("ndic_balle2018")
    assert again.load_weights(tmp_path / "w")["budget"] == "smoke"
    s = test[0]
    p = codec.rate_points()[0]
    data = codec.compress(s.x, point=p)
    assert again.compress(s.x, point=p) == data
    assert torch.equal(again.decompress(data, side=s.side), codec.decompress(data, side=s.side))
    with pytest.raises(WeightsError, match="beta"):
        _codec("ndic_balle2018", beta=1).load_weights(tmp_path / "w")


# --------------------------------------------------------------------- NDIC-CAM
def test_cam_codes_any_size_and_refuses_too_many_tokens():
    codec = _codec("ndic_cam", N=8, M=8, lambdas="0.0035")
    g = torch.Generator().manual_seed(3)
    x, side = torch.rand(3, 40, 100, generator=g), torch.rand(3, 40, 100, generator=g)
    data = codec.compress(x, point=codec.rate_points()[0])
    assert codec.decompress(data, side=side).shape == x.shape
    small = _codec("ndic_cam", N=8, M=8, lambdas="0.0035", max_tokens=64)  # 64x128 padded -> 8x16 = 128 tokens
    data = small.compress(x, point=small.rate_points()[0])  # the encoder has no attention: no limit
    with pytest.raises(ConfigError, match="max_tokens"):
        small.decompress(data, side=side)
    with pytest.raises(ConfigError, match="only apply to ndic_cam"):
        _codec("ndic_balle2018", heads=4)


# --------------------------------------------------------------------- settings
def test_paper_settings_and_shared_quick_budget():
    from baselines.balle import BUDGETS

    for name, lo, hi, n in (("ndic_balle2018", 2e-4, 4.8e-3, 10), ("ndic_balle2017", 2e-5, 5.6e-3, 15),
                            ("ndic_cam", 2e-4, 4.8e-3, 10)):
        codec = METHODS.get(name)(protocol=get_protocol("kitti-stereo/ndic"))
        cfg, tc = codec.resolve_config("paper")
        lams = cfg["lambdas"]
        assert (len(lams), lams[0], lams[-1]) == (n, lo, hi) and lams == sorted(lams)
        assert (cfg["N"], cfg["M"], tc.batch_size, tc.lr, tc.amsgrad, tc.schedule, tc.hflip, tc.crop) == \
            (192, 192, 1, 1e-4, True, "plateau", True, None)
        assert tc.val_every == 1576  # the plateau rule validates once per KITTI epoch
        assert (cfg["alpha"], cfg["beta"]) == ((0.0, 0.0) if name == "ndic_cam" else (1.0, 1.0))
        for budget in ("smoke", "quick"):  # same steps, λ, crops, widths as the Ballé anchors
            c, t = codec.resolve_config(budget)
            assert t == BUDGETS[budget].stage()
            m = BUDGETS[budget].model
            assert (c["N"], c["M"], tuple(c["lambdas"])) == (m["N"], m["M"], tuple(m["lambdas"]))
    assert configs.budgets("cityscapes/ndic", configs.LAMBDAS_NDIC_BALLE2018)["paper"].stage().val_every == 2975
