"""Real dataset readers (KITTI, Cityscapes, CelebA-HQ, MNIST) on tiny fixture trees, and the embedded stand-ins."""
from __future__ import annotations

import gzip
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.errors import ConfigError, DatasetError
from benchmark.contract.registry import get_dataset, get_protocol
from fixtures_real import (celeba_colors, cityscapes_color, cityscapes_name, idx_bytes, kitti_color, make_celeba_tree,
                           make_cityscapes_tree, make_kitti_tree, make_mnist_tree)


def build(name, root, split, protocol=None, **options):
    info = get_dataset(name)
    return info.factory(root, get_protocol(protocol or info.default_protocol), split, **options)


def rgb_at(t, row, col):
    return tuple(int(round(float(v) * 255)) for v in t[:, row, col])


# ------------------------------------------------------------------------------------------------ KITTI
@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    return make_kitti_tree(tmp_path_factory.mktemp("kitti"), scenes_2012=2, scenes_2015=3)


def test_kitti_counts_and_directions(kitti_root):
    # 5 scenes per part; train = frames 10+11, val = 11, test = 10; both directions doubles
    assert [len(build("kitti", kitti_root, s)) for s in ("train", "val", "test")] == [20, 10, 10]
    assert [len(build("kitti", kitti_root, s, direction="left")) for s in ("train", "val", "test")] == [10, 5, 5]
    ds = build("kitti", kitti_root, "val")
    names = [it.name for it in ds.items]
    assert all(n.split("/")[1] == "testing" and n.split("/")[2].endswith("_11") for n in names)
    assert all(it.name.split("/")[2].endswith("_10") for it in build("kitti", kitti_root, "test").items)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("split", ["val", "test"])
def test_kitti_pairing_shapes_and_range(kitti_root, split):
    ds = build("kitti", kitti_root, split)
    for i in range(0, len(ds), 3):
        s = ds[i]
        assert s.x.shape == s.side.shape == (3, 128, 256) and s.x.dtype == torch.float32
        assert 0 <= float(s.x.min()) and float(s.x.max()) <= 1
        tag, part, stem, view = s.name.split("/")
        set_index = 0 if tag == "kitti2012" else 1
        scene, frame = int(stem[:6]), int(stem[7:])
        other = "right" if view == "left" else "left"
        assert rgb_at(s.x, 100, 128) == kitti_color(set_index, part, scene, frame, view)
        assert rgb_at(s.side, 100, 128) == kitti_color(set_index, part, scene, frame, other)
        assert s.source == 0


def test_kitti_flip_moves_x_and_side_together(kitti_root):
    plain = build("kitti", kitti_root, "train", augment=False)
    aug = build("kitti", kitti_root, "train", seed=3)
    assert aug.augment and not build("kitti", kitti_root, "val").augment
    flips = []
    for i in range(8):
        a, b = plain[i], aug[i]
        flipped = torch.equal(b.x, a.x.flip(-1))
        assert flipped or torch.equal(b.x, a.x)
        assert torch.equal(b.side, a.side.flip(-1) if flipped else a.side)
        flips.append(flipped)
    assert 0 < sum(flips) < len(flips)
    again = build("kitti", kitti_root, "train", seed=3)
    assert [aug._flip(i) for i in range(len(aug))] == [again._flip(i) for i in range(len(aug))]
    aug.set_epoch(1)
    assert [aug._flip(i) for i in range(len(aug))] != [again._flip(i) for i in range(len(aug))]


def test_kitti_single_release_layout(tmp_path):
    root = make_kitti_tree(tmp_path, scenes_2015=2, single=True)
    assert len(build("kitti", root, "train")) == 8
    reports = get_dataset("kitti").check(root)
    assert reports[0].expected is None and "one release" in reports[0].note


def test_kitti_only_one_release_warns(tmp_path):
    root = make_kitti_tree(tmp_path, scenes_2012=0, scenes_2015=1)
    assert not (root / "data_stereo_flow_multiview").exists()
    with pytest.warns(UserWarning, match="published split uses both"):
        assert len(build("kitti", root, "test")) == 2


def test_kitti_check_reports_counts_and_missing(kitti_root):
    reports = {r.split: r for r in get_dataset("kitti").check(kitti_root) if r.protocol == "kitti-stereo/ndic"}
    assert (reports["train"].expected, reports["val"].expected, reports["test"].expected) == (1576, 790, 790)
    assert (reports["train"].found, reports["val"].found, reports["test"].found) == (20, 10, 10)
    assert not reports["train"].ok
    assert reports["train"].missing[0] == "data_stereo_flow_multiview/training/image_2/000002_10.png"
    # (194 - 2) + (200 - 3) missing scenes x 2 frames x 2 views
    assert reports["train"].n_missing == ((194 - 2) + (200 - 3)) * 2 * 2


def test_kitti_missing_and_empty_root(tmp_path):
    with pytest.raises(DatasetError, match="--root"):
        build("kitti", None, "train")
    with pytest.raises(DatasetError, match="does not exist"):
        build("kitti", tmp_path / "nope", "train")
    with pytest.raises(DatasetError, match="data_stereo_flow_multiview"):
        build("kitti", tmp_path, "train")
    (tmp_path / "data_scene_flow_multiview" / "training" / "image_2").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no frames"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build("kitti", tmp_path, "train")


def test_kitti_unpaired_file(tmp_path):
    root = make_kitti_tree(tmp_path, scenes_2012=1, scenes_2015=1, frames=("10",))
    (root / "data_scene_flow_multiview/testing/image_3/000000_10.png").unlink()
    with pytest.raises(DatasetError, match=r"image_2/000000_10.png has no partner .*image_3/000000_10.png"):
        build("kitti", root, "test")
    with pytest.warns(UserWarning, match="no partner"):
        assert len(build("kitti", root, "test", skip_bad=True)) == 2
    report = {r.split: r for r in get_dataset("kitti").check(root) if r.protocol == "kitti-stereo/ndic"}["test"]
    assert report.found == 2 and report.n_missing == ((195 - 1) + (200 - 1)) * 2 + 1


def test_kitti_corrupt_png_and_skip_bad(tmp_path):
    root = make_kitti_tree(tmp_path, scenes_2012=1, scenes_2015=1, frames=("10",))
    bad = root / "data_stereo_flow_multiview/testing/image_3/000000_10.png"
    bad.write_bytes(b"not a png")
    ds = build("kitti", root, "test")
    with pytest.raises(DatasetError, match="000000_10.png"):
        ds[0]
    with pytest.warns(UserWarning, match="skipping unreadable"):
        ds = build("kitti", root, "test", skip_bad=True)
    assert len(ds) == 2 and all("kitti2015" in it.name for it in ds.items)


def test_kitti_too_small_and_mismatched(tmp_path):
    root = make_kitti_tree(tmp_path, scenes_2012=1, scenes_2015=1, frames=("10",))
    small = root / "data_stereo_flow_multiview/testing/image_2/000000_10.png"
    Image.new("RGB", (700, 360)).save(small)
    Image.new("RGB", (700, 360)).save(small.parent.parent / "image_3" / small.name)
    with pytest.raises(DatasetError, match="smaller than the protocol's centre crop 740x370"):
        build("kitti", root, "test")[0]
    Image.new("RGB", (800, 380)).save(small)
    with pytest.raises(DatasetError, match="differ in size"):
        build("kitti", root, "test")[0]


def test_kitti_bad_options(kitti_root):
    with pytest.raises(ConfigError, match="valid options are .*direction"):
        build("kitti", kitti_root, "train", directoin="left")
    with pytest.raises(ConfigError, match="both, left, right"):
        build("kitti", kitti_root, "train", direction="up")
    with pytest.raises(ConfigError, match="valid splits"):
        build("kitti", kitti_root, "training")
    with pytest.raises(ConfigError, match="supports kitti-stereo/ndic"):
        get_dataset("kitti").factory(kitti_root, get_protocol("cityscapes/ndic"), "train")


# ------------------------------------------------------------------------------------------------ Cityscapes
@pytest.fixture(scope="module")
def city_root(tmp_path_factory):
    return make_cityscapes_tree(tmp_path_factory.mktemp("city"))


def test_cityscapes_pairs_shapes_and_directions(city_root):
    assert [len(build("cityscapes", city_root, s)) for s in ("train", "val", "test")] == [3, 2, 2]
    assert len(build("cityscapes", city_root, "val", direction="both")) == 4
    ds = build("cityscapes", city_root, "train")
    for s in (ds[0], ds[2]):
        assert s.x.shape == s.side.shape == (3, 128, 256)
        split, city, name, view = s.name.split("/")
        i = int(name.split("_")[1])
        assert name == cityscapes_name(city, i) and view == "left"
        assert rgb_at(s.x, 100, 128) == cityscapes_color(split, i, "left")
        assert rgb_at(s.side, 100, 128) == cityscapes_color(split, i, "right")


def test_cityscapes_unpaired_missing_and_check(tmp_path):
    root = make_cityscapes_tree(tmp_path, counts={"train": 2, "val": 1})
    with pytest.raises(DatasetError, match="leftImg8bit/test/ is missing"):
        build("cityscapes", root, "test")
    (root / "rightImg8bit/train/aachen" / f"{cityscapes_name('aachen', 0)}_rightImg8bit.png").unlink()
    with pytest.raises(DatasetError, match="has no partner rightImg8bit/train/aachen/aachen_000000_000019_right"):
        build("cityscapes", root, "train")
    with pytest.warns(UserWarning):
        assert len(build("cityscapes", root, "train", skip_bad=True)) == 1
    reports = {r.split: r for r in get_dataset("cityscapes").check(root)}
    assert (reports["train"].found, reports["train"].expected) == (1, 2975)
    assert reports["train"].missing == ["rightImg8bit/train/aachen/aachen_000000_000019_rightImg8bit.png"]
    assert reports["test"].n_missing == 2 and reports["test"].expected == 1525 and reports["val"].expected == 500
    with pytest.raises(DatasetError, match="does not exist"):
        get_dataset("cityscapes").check(tmp_path / "none")


# ------------------------------------------------------------------------------------------------ CelebA-HQ
@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    return make_celeba_tree(tmp_path_factory.mktemp("celeba"), n=30)


def test_celeba_split_halves_and_rate_note(celeba_root):
    with pytest.warns(UserWarning, match="published set has 30000"):
        sizes = [len(build("celeba_hq", celeba_root, s)) for s in ("train", "val", "test")]
    assert sizes == [26, 1, 3]  # the published 30,000 give 26,000 / 1,000 / 3,000
    with pytest.warns(UserWarning):
        ds = build("celeba_hq", celeba_root, "test")
    s = ds[0]
    assert s.name == "00027" and s.x.shape == s.side.shape == (3, 128, 256)
    top, bottom = celeba_colors(27)
    assert rgb_at(s.x, 100, 200) == top and rgb_at(s.side, 100, 200) == bottom
    assert "128*256" in get_protocol("celeba-hq/neural-dsc").rate_accounting


def test_celeba_wrong_side_is_seeded_and_never_own(celeba_root):
    with pytest.warns(UserWarning):
        a = build("celeba_hq", celeba_root, "train", variant="wrong_side", augment=False)
        b = build("celeba_hq", celeba_root, "train", variant="wrong_side", augment=False)
        c = build("celeba_hq", celeba_root, "train", variant="wrong_side", augment=False, seed=5)
    assert (a.partner != np.arange(len(a))).all() and (a.partner == b.partner).all()
    assert (a.partner != c.partner).any()
    s = a[4]
    j = int(a.partner[4])
    assert rgb_at(s.x, 100, 200) == celeba_colors(4)[0] and rgb_at(s.side, 100, 200) == celeba_colors(j)[1]


def test_celeba_split_file_resize_and_errors(tmp_path):
    root = make_celeba_tree(tmp_path / "faces", n=4, size=300)
    (tmp_path / "split.txt").write_text("# name split\n00000.png train\n00001 test\n00003.png test\n")
    ds = build("celeba_hq", root, "test", split_file=tmp_path / "split.txt")
    assert [p.name for p in ds.files] == ["00001.png", "00003.png"]
    assert ds[0].x.shape == (3, 128, 256)  # 300x300 resized (bicubic) to 256
    report = {r.split: r for r in get_dataset("celeba_hq").check(root, split_file=tmp_path / "split.txt")}
    assert (report["test"].found, report["test"].expected, report["train"].found) == (2, 2, 1)
    (tmp_path / "bad.txt").write_text("00000.png training\n")
    with pytest.raises(DatasetError, match="train|val|test"):
        build("celeba_hq", root, "train", split_file=tmp_path / "bad.txt")
    (tmp_path / "miss.txt").write_text("99999.png train\n")
    with pytest.raises(DatasetError, match="not in the root"):
        build("celeba_hq", root, "train", split_file=tmp_path / "miss.txt")
    Image.new("RGB", (256, 200)).save(root / "00002.png")
    with pytest.warns(UserWarning):
        ds = build("celeba_hq", root, "train")
    with pytest.raises(DatasetError, match="256x200.*square"):
        ds[2]
    with pytest.raises(ConfigError, match="matched, wrong_side"):
        build("celeba_hq", root, "train", variant="wrong")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no images"):
        build("celeba_hq", empty, "train")
    report = {r.split: r for r in get_dataset("celeba_hq").check(root)}
    assert report["test"].expected == 3000 and report["train"].expected == 26000


# ------------------------------------------------------------------------------------------------ MNIST
@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    return root, make_mnist_tree(root, n_train=200, n_test=50)


def test_mnist_idx_raw_and_gz(mnist_root, tmp_path):
    root, data = mnist_root
    gz = tmp_path / "gz"
    make_mnist_tree(gz, n_train=200, n_test=50, gz=True)
    a, b = build("mnist", root, "test"), build("mnist", gz, "test")
    assert len(a) == len(b) == 50
    for i in (0, 17):
        assert torch.equal(a[i].x, b[i].x) and a[i].label == b[i].label == i % 10
    s = a[3]
    assert s.x.shape == (1, 32, 32) and s.side is None and 0 <= float(s.x.min()) and float(s.x.max()) <= 1
    expected = np.asarray(Image.fromarray(data["t10k-images-idx3-ubyte"][3]).resize((32, 32), Image.BILINEAR)) / 255
    assert np.allclose(s.x[0].numpy(), expected, atol=1e-6)


def test_mnist_random_partition_equal_disjoint_seeded(mnist_root):
    root, _ = mnist_root
    def parts(seed, m=4):
        tr = build("mnist", root, "train", "mnist/drasic-random", sources=m, seed=seed)
        va = build("mnist", root, "val", "mnist/drasic-random", sources=m, seed=seed)
        assert tr.num_sources == va.num_sources == m
        return [set(tr.indices[tr.sources == k]) | set(va.indices[va.sources == k]) for k in range(m)]
    p = parts(0)
    assert [len(s) for s in p] == [50] * 4
    assert len(set().union(*p)) == 200
    assert parts(0) == p and parts(1) != p
    p3 = parts(0, m=3)  # 200 // 3 = 66 each, remainder 2 dropped
    assert [len(s) for s in p3] == [66] * 3
    tr = build("mnist", root, "train", "mnist/drasic-random", sources=4)
    va = build("mnist", root, "val", "mnist/drasic-random", sources=4)
    assert len(tr) == 4 * 45 and len(va) == 4 * 5 and not set(tr.indices) & set(va.indices)
    test = build("mnist", root, "test", "mnist/drasic-random", sources=4)
    assert len(test) == 50 and test.num_sources == 4 and {test[i].source for i in range(5)} == {0}


def test_mnist_class_protocol(mnist_root):
    root, _ = mnist_root
    tr = build("mnist", root, "train", "mnist/drasic-class", sources=2)
    assert len(tr) == 2 * 18  # 20 images per digit, last 2 = val
    for i in range(0, len(tr), 7):
        s = tr[i]
        assert s.label == s.source < 2
    te = build("mnist", root, "test", "mnist/drasic-class", sources=2)
    assert len(te) == 10 and all(te[i].label < 2 and te[i].source == 0 for i in range(len(te)))


def test_mnist_errors_and_check(mnist_root, tmp_path):
    root, _ = mnist_root
    with pytest.raises(ConfigError, match="2 to 10"):
        build("mnist", root, "train", sources=11)
    with pytest.raises(ConfigError, match="valid options are"):
        build("mnist", root, "train", colour=True)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        build("mnist", tmp_path, "train")
    bad = tmp_path / "bad"
    make_mnist_tree(bad, n_train=20, n_test=10)
    (bad / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros(10, np.uint8)))  # 1-D: wrong magic
    with pytest.raises(DatasetError, match="not an IDX file.*3 dimension"):
        build("mnist", bad, "test")
    (bad / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((10, 28, 28), np.uint8))[:-5])
    with pytest.raises(DatasetError, match="truncated"):
        build("mnist", bad, "test")[0]
    (bad / "t10k-images-idx3-ubyte").write_bytes(gzip.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8))))
    with pytest.raises(DatasetError, match=r"\.gz"):
        build("mnist", bad, "test")
    reports = {r.split: r for r in get_dataset("mnist").check(root)}
    assert (reports["train"].found, reports["train"].expected, reports["test"].expected) == (200, 60000, 10000)
    (bad / "t10k-labels-idx1-ubyte").unlink()
    assert get_dataset("mnist").check(bad)[1].missing == ["t10k-labels-idx1-ubyte[.gz]"]


# ------------------------------------------------------------------------------------------------ embedded
def test_digits_embedded():
    info = get_dataset("digits")
    assert info.embedded and info.default_protocol == "mnist/drasic-class"
    train = build("digits", None, "train", "mnist/drasic-random", sources=4)
    val = build("digits", None, "val", "mnist/drasic-random", sources=4)
    test = build("digits", None, "test", "mnist/drasic-random", sources=4)
    assert len(test) == 360 and len(train) + len(val) == 4 * (1437 // 4)
    assert not set(test.indices) & set(train.indices)
    s = train[0]
    assert s.x.shape == (1, 32, 32) and 0 <= float(s.x.min()) and float(s.x.max()) <= 1
    cls = build("digits", None, "train", sources=3)
    assert {int(cls.labels[i]) for i in cls.indices} == {0, 1, 2} and (cls.labels[cls.indices] == cls.sources).all()


def test_lfw_sample_embedded():
    info = get_dataset("lfw_sample")
    assert info.embedded and info.default_protocol == "celeba-hq/neural-dsc"
    sizes = [len(build("lfw_sample", None, s)) for s in ("train", "val", "test")]
    assert sizes == [70, 10, 20]
    s = build("lfw_sample", None, "test")[0]
    assert s.x.shape == s.side.shape == (3, 32, 64) and torch.equal(s.x[0], s.x[2])
    w = build("lfw_sample", None, "test", variant="wrong_side")
    assert "+" in w[0].name


def test_protocols_registered():
    for name, anchor in (("kitti-stereo/ndic", "balle2018"), ("cityscapes/ndic", "balle2018"),
                         ("celeba-hq/neural-dsc", "balle2018"), ("mnist/drasic-random", "jpeg"),
                         ("mnist/drasic-class", "jpeg")):
        p = get_protocol(name)
        assert p.anchor == anchor and p.ms_ssim_win == 7 and p.description and "\n" not in p.description


def test_bench_run_jpeg_on_kitti_fixture(tmp_path):
    """`bench run --method jpeg --dataset kitti --root FIXTURE` end to end: a result file from the real-data reader."""
    import json

    from typer.testing import CliRunner

    from cli.main import app

    root = make_kitti_tree(tmp_path / "kitti", scenes_2012=1, scenes_2015=1)
    out = tmp_path / "out"
    res = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["run", "--method", "jpeg", "--dataset", "kitti", "--root", str(root), "--out", str(out), "--limit", "2", "-q"])
    assert res.exit_code == 0, res.output
    path = out / "kitti-stereo" / "ndic" / "jpeg.json"
    result = json.loads(path.read_text())
    assert result["dataset"] == "kitti" and result["protocol"] == "kitti-stereo/ndic"
    bpps = [p["bpp"] for p in result["points"]]
    assert len(bpps) == 19 and all(a < b for a, b in zip(bpps, bpps[1:]))  # rate rises with quality
    assert all(p["n_images"] == 2 for p in result["points"])
