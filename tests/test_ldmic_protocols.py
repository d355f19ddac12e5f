"""LDMIC's Cityscapes and KITTI protocols (``cityscapes/ldmic``, ``kitti/ldmic``) on tiny generated release layouts,
and the per-view PSNR the runner records under the two-view LDMIC protocols."""
from __future__ import annotations

import math

import pytest
import torch

from benchmark.contract.registry import get_dataset, get_protocol
from benchmark.errors import ConfigError, DatasetError
from benchmark.evaluation.rows import aggregate, measure
from benchmark.contract.codec import Scenario
from fixtures_real import cityscapes_color, kitti_color, make_cityscapes_tree, make_kitti_tree


def _rgb(t: torch.Tensor, row: int, col: int) -> tuple[int, ...]:
    return tuple(int(round(float(v) * 255)) for v in t[:, row, col])


def test_cityscapes_ldmic_crops_the_artefacts_and_codes_both_views(tmp_path):
    root = make_cityscapes_tree(tmp_path / "cs", counts={"train": 2, "val": 1, "test": 2}, size=(1024, 2048))
    info, proto = get_dataset("cityscapes"), get_protocol("cityscapes/ldmic")
    assert "cityscapes/ldmic" in info.protocols and proto.options == {"views": 2} and proto.views_per_frame == 2
    test = info.factory(root, proto, "test", **proto.options)
    assert len(test) == 2  # one sample per pair
    s = test[0]
    assert s.side is None and tuple(s.x.shape) == (3, 704, 2 * 1792)
    assert s.name == "test/aachen/aachen_000000_000019"
    # the fixture's white block covers columns 0..511 and rows 0..511 of the frame: 128 px cut on the left and 64
    # on top leave it at columns 0..383, rows 0..447 of the crop
    assert _rgb(s.x, 447, 383) == (255, 255, 255) and _rgb(s.x, 448, 383) == cityscapes_color("test", 0, "left")
    assert _rgb(s.x, 0, 384) == cityscapes_color("test", 0, "left")
    assert _rgb(s.x, 600, 1792 + 1000) == cityscapes_color("test", 0, "right")
    train = info.factory(root, proto, "train", **proto.options)
    assert len(train) == 4  # each pair in both orders
    t = train[1]
    assert tuple(t.x.shape) == (3, 704, 1792) and tuple(t.side.shape) == (3, 704, 1792)
    assert _rgb(t.x, 600, 1000) == cityscapes_color("train", 0, "right")
    assert _rgb(t.side, 600, 1000) == cityscapes_color("train", 0, "left")
    assert len(info.factory(root, proto, "val", **proto.options)) == 2  # the official val folder
    with pytest.raises(ConfigError, match="views"):
        info.factory(root, proto, "test", views=3)
    with pytest.raises(ConfigError, match="augment"):
        info.factory(root, proto, "train", augment=True)


def test_cityscapes_ldmic_refuses_frames_of_another_size(tmp_path):
    root = make_cityscapes_tree(tmp_path / "cs", counts={"test": 1}, size=(512, 1024))
    proto = get_protocol("cityscapes/ldmic")
    test = get_dataset("cityscapes").factory(root, proto, "test", **proto.options)
    with pytest.raises(DatasetError, match="2048x1024"):
        test[0]


def test_kitti_ldmic_split_of_the_authors(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=11, scenes_2015=2)
    info, proto = get_dataset("kitti"), get_protocol("kitti/ldmic")
    assert "kitti/ldmic" in info.protocols
    test = info.factory(root, proto, "test", **proto.options)
    assert len(test) == 2 * (11 + 2)  # frames _10 and _11 of every testing/ scene, one sample per pair
    names = [test.scenes[i][0] for i in range(len(test))]
    assert names[:2] == ["kitti2012/testing/000000_10", "kitti2012/testing/000000_11"]
    s = test[1]
    assert s.side is None and tuple(s.x.shape) == (3, 320, 2 * 704)  # 372x744 -> 320x704 per view
    assert _rgb(s.x, 300, 700) == kitti_color(0, "testing", 0, 11, "left")
    assert _rgb(s.x, 300, 704 + 700) == kitti_color(0, "testing", 0, 11, "right")
    train = info.factory(root, proto, "train", **proto.options)
    val = info.factory(root, proto, "val", **proto.options)
    assert len(val) == 2 * 2  # scene 000009 of KITTI 2012: frames _10 and _11, each pair in both orders
    assert len(train) == 2 * 2 * (11 + 2 - 1)  # the other training scenes' pairs, both orders
    assert {n for n, _ in val.scenes} == {"kitti2012/training/000009_10", "kitti2012/training/000009_11"}
    t = train[0]
    assert tuple(t.x.shape) == (3, 372, 744) and tuple(t.side.shape) == (3, 372, 744)  # whole views for training
    with pytest.raises(ConfigError):
        info.factory(root, proto, "test", direction="left")
    (root / "data_scene_flow_multiview" / "testing" / "image_3" / "000001_11.png").unlink()
    with pytest.raises(DatasetError, match="000001_11.png"):
        info.factory(root, proto, "test", **proto.options)
    with pytest.warns(UserWarning, match="000001_11.png"):
        assert len(info.factory(root, proto, "test", **proto.options, skip_bad=True)) == 2 * 13 - 1


def _stereo_release(root, folder: str, left: str, right: str, scenes: dict[str, int], size=(70, 130)) -> None:
    from fixtures_real import _save

    for part, n in scenes.items():
        for scene in range(n):
            for frame in ("10", "11"):
                for view, sub in (("left", left), ("right", right)):
                    _save(root / folder / part / sub / f"{scene:06d}_{frame}.png",
                          kitti_color(0 if "2012" in folder or "stereo_flow" in folder else 1, part, scene, int(frame),
                                      view), size)


def test_kitti_ldmic_reads_the_stereo_releases_the_authors_read(tmp_path):
    """data_stereo_flow/ (colored_0, colored_1) and data_scene_flow/ (image_2, image_3), or the authors' names
    stereo2012/ and stereo2015/, are read in preference to the multi-view releases."""
    root = tmp_path / "kitti"
    _stereo_release(root, "data_stereo_flow", "colored_0", "colored_1", {"training": 10, "testing": 2})
    _stereo_release(root, "stereo2015", "image_2", "image_3", {"training": 1, "testing": 1})
    make_kitti_tree(root, scenes_2012=1, scenes_2015=1, size=(70, 130))  # multi-view releases beside: not read
    info, proto = get_dataset("kitti"), get_protocol("kitti/ldmic")
    test = info.factory(root, proto, "test", **proto.options)
    assert [n for n, _ in test.scenes] == ["kitti2012/testing/000000_10", "kitti2012/testing/000000_11",
                                            "kitti2012/testing/000001_10", "kitti2012/testing/000001_11",
                                            "kitti2015/testing/000000_10", "kitti2015/testing/000000_11"]
    assert test.scenes[0][1][0].parent.name == "colored_0" and test.scenes[0][1][1].parent.name == "colored_1"
    assert _rgb(test[3].x, 50, 100) == kitti_color(0, "testing", 1, 11, "left")
    assert _rgb(test[3].x, 50, 128 + 100) == kitti_color(0, "testing", 1, 11, "right")
    assert len(info.factory(root, proto, "val", **proto.options)) == 2 * 2  # scene 9: frames _10, _11, both orders
    assert len(info.factory(root, proto, "train", **proto.options)) == 2 * 2 * (9 + 1)
    _stereo_release(root, "stereo2012", "colored_0", "colored_1", {"testing": 1})
    with pytest.raises(DatasetError, match="same release twice"):
        info.factory(root, proto, "test", **proto.options)


def test_per_view_psnr_mean_is_recorded_for_two_view_frames():
    proto = get_protocol("kitti/ldmic")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 64, 128, generator=g)
    x_hat = x.clone()
    x_hat[..., :64] = (x_hat[..., :64] + 0.02).clamp(0, 1)  # view 0 distorted, view 1 exact (60 dB cap)
    x_hat[..., 64:] = (x_hat[..., 64:] + 0.002).clamp(0, 1)
    m = measure(x, x_hat, proto)
    q = lambda t: torch.round(t.double().clamp(0, 1) * 255)
    per = [10 * math.log10(255.0 ** 2 / float(((q(a) - q(b)) ** 2).mean()))
           for a, b in ((x[..., :64], x_hat[..., :64]), (x[..., 64:], x_hat[..., 64:]))]
    assert m["_psnr_view_mean"] == pytest.approx(sum(per) / 2, abs=1e-9)
    assert m["_psnr_view_mean"] > m["psnr"]  # the mean of PSNRs exceeds the PSNR of the mean MSE (Jensen)
    row = {"image": "a", "source": 0, "rate_point": "p", "bpp": 0.1, "bpp_payload": 0.1, "bpp_estimated": None,
           "encode_s": 0.0, "decode_s": 0.0, **m}
    point = aggregate([row, {**row, "image": "b"}], ["p"], Scenario.SEPARATE)[0]
    assert point["extra"] == {"psnr_view_mean": pytest.approx(m["_psnr_view_mean"])}
    # protocols whose frames are not views side by side record nothing of the kind
    assert "_psnr_view_mean" not in measure(x, x_hat, get_protocol("kitti-stereo/ndic"))
    # WildTrack's frames hold the views of the run's option (tests/test_ldmic_view_psnr.py): two here
    wildtrack = get_protocol("multiview/wildtrack-ldmic").for_run({"views": 2})
    assert measure(x, x_hat, wildtrack)["_psnr_view_mean"] == pytest.approx(m["_psnr_view_mean"], abs=1e-12)
    assert "extra" not in aggregate([{**row, "_psnr_view_mean": None}], ["p"], Scenario.SEPARATE)[0]
