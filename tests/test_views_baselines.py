"""The baselines for frames of views side by side (baselines/views.py): balle2018 per view and the joint
(predictive) pair coder, under the LDMIC protocols."""
from __future__ import annotations

import json

import pytest
import torch

from benchmark.contract.container import Container
from benchmark.contract.registry import get_method, get_protocol
from benchmark.errors import BitstreamError, ConfigError


def _frame(*views: torch.Tensor) -> torch.Tensor:
    return torch.cat(views, dim=-1)


def _views(n: int, seed: int = 0, h: int = 64, w: int = 64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=g) for _ in range(n)]


def test_balle2018_per_view_codes_every_view_alone_as_balle2018_does():
    codec = get_method("balle2018_per_view")(**get_method("balle2018_per_view").test_options)
    single = get_method("balle2018")(**get_method("balle2018").test_options)
    codec._require_models(), single._require_models()
    with torch.no_grad():  # random weights; a steeper analysis makes the latents follow the pixels
        for model in codec.models:
            model.g_a[-1].weight.mul_(30)
    for a, b in zip(codec.models, single.models):
        b.load_state_dict(a.state_dict())
    a, b, b2 = _views(3)
    point = codec.rate_points()[-1]
    one = Container.from_bytes(codec.compress(_frame(a, b), point=point), "balle2018_per_view").streams
    two = Container.from_bytes(codec.compress(_frame(a, b2), point=point), "balle2018_per_view").streams
    assert len(one) == 4 and one[:2] == two[:2] and one[2:] != two[2:]  # view 1's strings ignore view 2
    alone = Container.from_bytes(single.compress(a, point=point), "balle2018").streams
    assert one[:2] == alone  # the same strings balle2018 writes for the view alone: nothing crosses the seam
    data = codec.compress(_frame(a, b), point=point)
    x_hat = codec.decompress(data)
    assert torch.equal(x_hat[..., :64], single.decompress(single.compress(a, point=point)))
    assert codec.estimate_bits(_frame(a, b), point=point) == pytest.approx(
        single.estimate_bits(a, point=point) + single.estimate_bits(b, point=point))


def test_balle2018_per_view_takes_the_protocols_views():
    cls = get_method("balle2018_per_view")
    codec = cls(protocol=get_protocol("multiview/wildtrack-ldmic"), **cls.test_options, views=3)
    assert codec.views == 3 and codec.variant == "V3" and codec.n_streams == 6
    frame = _frame(*_views(3, h=64, w=48))
    data = codec.compress(frame, point=codec.rate_points()[0])
    assert len(Container.from_bytes(data, "balle2018_per_view").streams) == 6
    assert codec.decompress(data).shape == frame.shape
    assert cls(protocol=get_protocol("multiview/wildtrack-ldmic"), **cls.test_options).views == 7
    with pytest.raises(ConfigError, match="multiple of 3"):
        codec.compress(torch.rand(3, 64, 100), point=codec.rate_points()[0])


def test_joint_pair_conditions_view_two_on_the_decoded_view_one():
    cls = get_method("joint_balle2018_pair")
    codec = cls(protocol=get_protocol("kitti/ldmic"), **cls.test_options)
    codec._require_models()
    with torch.no_grad():  # random weights; a steeper analysis makes the latents follow the pixels
        for model in codec.models:
            model.base.g_a[-1].weight.mul_(30)
            model.cond.g_a[-1].weight.mul_(30)
            model.cond.side_encoder.s4.weight.mul_(30)
    a, a2, b = _views(3, seed=1)
    point = codec.rate_points()[-1]
    one = Container.from_bytes(codec.compress(_frame(a, b), point=point), "joint_balle2018_pair").streams
    two = Container.from_bytes(codec.compress(_frame(a2, b), point=point), "joint_balle2018_pair").streams
    assert len(one) == 4 and one[:2] != two[:2]
    assert one[2:] != two[2:]  # view 2's strings follow view 1 (its reference), view 2 unchanged
    data = codec.compress(_frame(a, b), point=point)
    x_hat = codec.decompress(data)
    assert x_hat.shape == (3, 64, 128) and torch.equal(x_hat, codec.decompress(data))
    assert codec.estimate_bits(_frame(a, b), point=point) > 0
    with pytest.raises(BitstreamError):
        codec.decompress(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="2 views"):
        cls(protocol=get_protocol("multiview/wildtrack-ldmic"), **cls.test_options)


def test_joint_pair_loss_counts_both_views():
    from benchmark.contract.data import Batch

    cls = get_method("joint_balle2018_pair")
    codec = cls(**cls.test_options)
    codec._instantiate(codec.resolve_config("smoke")[0])
    model = codec.models[0].train()
    x, side = _views(2, seed=4)
    batch = Batch(x=x[None], side=side[None], source=torch.zeros(1, dtype=torch.long), names=["a"])
    torch.manual_seed(0)
    out = codec.make_loss(codec.lambdas[0])(model, batch)
    torch.manual_seed(0)
    fwd = model(x[None], side[None])
    from benchmark.training.losses import bits_from_likelihoods

    bits = [float(bits_from_likelihoods(lik).detach()) for lik in fwd["likelihoods"]]
    assert float(out["bpp"]) == pytest.approx(sum(bits) / (2 * 64 * 64), rel=1e-5)  # mean bpp over both views
    out["loss"].backward()
    assert model.base.g_a[0].weight.grad is not None and model.cond.g_a[0].weight.grad is not None
    with pytest.raises(Exception, match="side"):
        codec.make_loss(codec.lambdas[0])(model, Batch(x=x[None], side=None, source=torch.zeros(1), names=["a"]))


@pytest.mark.slow
def test_kitti_ldmic_end_to_end_with_the_per_view_psnr(tmp_path, cli_runner):
    """`bench run` of jpeg under kitti/ldmic on a generated release layout: valid result, per-view PSNR recorded."""
    from cli.main import app
    from fixtures_real import make_kitti_tree

    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=1, scenes_2015=1, size=(70, 130), frames=("10",))
    out = tmp_path / "out"
    res = cli_runner.invoke(app, ["run", "--method", "jpeg", "--dataset", "kitti", "--protocol", "kitti/ldmic",
                                  "--root", str(root), "--isolation", "none", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    path = next(out.rglob("jpeg*.json"))
    result = json.loads(path.read_text())
    for p in result["points"]:
        assert p["n_images"] == 2 and p["bpp"] > 0
        assert p["extra"]["psnr_view_mean"] >= p["psnr"] - 1e-9  # mean of per-view PSNRs >= PSNR of the mean MSE
    v = cli_runner.invoke(app, ["validate", str(path)])
    assert v.exit_code == 0, v.output


@pytest.mark.slow
@pytest.mark.parametrize("method", ["balle2018_per_view", "joint_balle2018_pair"])
def test_baselines_train_and_code_under_kitti_ldmic(tmp_path, cli_runner, method):
    """`bench run` trains each baseline on the protocol's view pairs and codes every test pair once, both views
    counted: real bytes, a valid result."""
    from cli.main import app
    from fixtures_real import make_kitti_tree

    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=2, scenes_2015=1, size=(70, 130), frames=("10",))
    out = tmp_path / "out"
    res = cli_runner.invoke(app, ["run", "--method", method, "--dataset", "kitti", "--protocol", "kitti/ldmic",
                                  "--root", str(root), "--budget", "smoke", "--option", "steps=2", "--option", "N=16",
                                  "--option", "M=16", "--isolation", "none", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    path = next(out.rglob(f"{method}*.json"))
    result = json.loads(path.read_text())
    assert [p["n_images"] for p in result["points"]] == [3, 3, 3]  # the three testing pairs, once each
    assert all(p["bpp"] > 0 and "psnr_view_mean" in p["extra"] for p in result["points"])
    v = cli_runner.invoke(app, ["validate", str(path)])
    assert v.exit_code == 0, v.output
