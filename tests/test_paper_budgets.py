"""Paper budgets per protocol (benchmark/contract/budgets.py): no `paper` training pads more than 5 % of its crop on
any registered protocol, and `bench list methods -v` shows each method's paper budgets per protocol with their
sources.

The size of a protocol's training samples is read from its own dataset reader: an embedded dataset as it ships, a
local one on a tiny fixture tree in the real layout (tests/fixtures_real.py) at the real frames' size, so the
readers' resizing decides it, not a number copied into this test. Protocols whose samples keep the sizes of the
user's own images (a folder of images, a folder of stereo pairs) have no fixed size and are listed with that
reason; a new protocol must be one or the other."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from benchmark.contract.budgets import padding_fraction, paper_by_protocol
from benchmark.contract.codec import LearnedCodec
from benchmark.contract.registry import METHODS, PROTOCOLS, get_dataset, get_method, get_protocol
from cli.main import app
from fixtures_real import make_celeba_tree, make_cityscapes_tree, make_kitti_tree, make_mnist_tree

MAX_PADDING = 0.05
# samples keep the sizes of the user's images: no fixed training size to compare a crop with
ANY_SIZE = {"images/full": "a folder of the user's images, coded whole", "stereo/pairs": "the user's stereo pairs, any size"}


def _stereo_kitti_folder(root: Path) -> Path:
    """A stereo folder (left/ right/ under train/) of KITTI-sized frames, for stereo/kitti-ndic."""
    for split in ("train", "val", "test"):
        for view in ("left", "right"):
            d = root / split / view
            d.mkdir(parents=True)
            Image.new("RGB", (1242, 375), (30, 60, 90)).save(d / "000000_10.png", compress_level=1)
    return root


def _wildtrack_folder(root: Path) -> Path:
    """The WildTrack layout (images/C1..C7/NNNNNNNN.png) at its 1920x1080 frames: one train and one test frame."""
    for cam in range(1, 8):
        d = root / "images" / f"C{cam}"
        d.mkdir(parents=True)
        for frame in (5, 2005):
            Image.new("RGB", (1920, 1080), (30, 60, 90)).save(d / f"{frame:08d}.png", compress_level=1)
    return root


def _instereo2k_folder(root: Path) -> Path:
    """The InStereo2K layout (train/<group>/<scene>/, test/<scene>/) at its 1080x860 frames."""
    for scene in (root / "train" / "part1" / "000001", root / "test" / "000001"):
        scene.mkdir(parents=True)
        for view in ("left", "right"):
            Image.new("RGB", (1080, 860), (30, 60, 90)).save(scene / f"{view}.png", compress_level=1)
    return root


FIXTURES = {  # dataset -> a fixture tree in its real layout, at the real frames' size
    "kitti": lambda root: make_kitti_tree(root, 1, 1, size=(375, 1242)),
    "cityscapes": lambda root: make_cityscapes_tree(root, {"train": 1, "val": 1, "test": 1}, size=(1024, 2048)),
    "celeba_hq": lambda root: make_celeba_tree(root, n=30),
    "mnist": lambda root: (make_mnist_tree(root, n_train=40, n_test=10), root)[1],
    "stereo": _stereo_kitti_folder,
    "multiview": _wildtrack_folder,
    "instereo2k": _instereo2k_folder,
}


def _modality(shape: tuple[int, ...]) -> str:
    """The MethodMeta modality of a sample of this shape (benchmark/contract/conformance.py's convention)."""
    if len(shape) == 1:
        return "scalar"
    return "gray" if shape[0] == 1 else "image"


@pytest.fixture(scope="module")
def sample_shapes(tmp_path_factory) -> dict[str, tuple[int, ...]]:
    """Protocol -> the shape of x of its first training sample, as its dataset reader gives it."""
    shapes = {}
    for name in PROTOCOLS.names():
        if name in ANY_SIZE:
            continue
        protocol = get_protocol(name)
        info = get_dataset(protocol.dataset)
        root = None
        if not (info.embedded or info.generated):
            assert protocol.dataset in FIXTURES, (
                f"protocol {name}: its dataset {protocol.dataset!r} has no fixture here; add one to FIXTURES (or the "
                "protocol to ANY_SIZE if its samples keep the user's image sizes)")
            root = FIXTURES[protocol.dataset](tmp_path_factory.mktemp(protocol.dataset))
        train = info.factory(root, protocol, "train", **protocol.options)
        shapes[name] = tuple(train[0].x.shape)
    return shapes


def test_the_readers_give_the_protocols_sample_sizes(sample_shapes):
    """The sizes the padding test compares with (so a reader that changes its resizing shows up here)."""
    assert sample_shapes["kitti-stereo/ndic"] == sample_shapes["cityscapes/ndic"] == (3, 128, 256)
    assert sample_shapes["stereo/kitti-ndic"] == sample_shapes["celeba-hq/neural-dsc"] == (3, 128, 256)
    assert sample_shapes["middlebury-sample/stereo"] == (3, 128, 128)
    assert sample_shapes["mnist/drasic-random"] == (1, 32, 32)


LEARNED = [n for n in METHODS.names() if issubclass(get_method(n), LearnedCodec)]


@pytest.mark.parametrize("method", LEARNED)
def test_no_paper_training_pads_more_than_5_percent_of_a_crop(method, sample_shapes):
    cls = get_method(method)
    checked = 0
    for protocol, shape in sample_shapes.items():
        if _modality(shape) not in cls.meta.modalities:
            continue  # the method cannot code this protocol's samples (e.g. RGB codecs on MNIST's grey digits)
        entry = cls.budget_table(protocol)["paper"]
        for stage, crop in entry.crops().items():
            frac = padding_fraction(crop, shape[-2:]) if len(shape) == 3 else 0.0
            assert frac <= MAX_PADDING, (
                f"{method} on {protocol}: the paper budget's {stage} crop {crop} pads {frac:.0%} of each crop of the "
                f"{shape[-2]}x{shape[-1]} training samples (limit {MAX_PADDING:.0%}); source: {entry.source}")
        checked += 1
    assert checked, f"{method} was checked on no protocol"


def test_padding_fraction_counts_the_replicated_pixels():
    assert padding_fraction(None, (128, 256)) == 0.0
    assert padding_fraction(256, (128, 256)) == 0.5  # the Ballé family's old paper crop on KITTI: half padding
    assert padding_fraction(128, (128, 256)) == 0.0
    assert padding_fraction(256, (300, 250)) == pytest.approx(1 - 250 / 256)


def test_every_paper_budget_names_its_source():
    for method in LEARNED:
        for protocols, entry in paper_by_protocol(get_method(method), PROTOCOLS.names()):
            assert entry.source.strip(), f"{method} on {protocols}: a paper budget without a source"


def test_paper_budgets_follow_the_authors_configs():
    """A few numbers by value, each from the authors' configuration its source names."""
    kitti = get_method("balle2018").budget_table("kitti-stereo/ndic")["paper"]
    tc = kitti.stage()
    assert (tc.crop, tc.batch_size, tc.lr, tc.amsgrad, tc.min_lr, tc.clip_grad) == (None, 1, 1e-4, True, 1e-7, None)
    assert kitti.model["N"] == kitti.model["M"] == 192 and len(kitti.model["lambdas"]) == 12  # NDIC's Ballé2018 list
    assert len(get_method("balle2017").budget_table("cityscapes/ndic")["paper"].model["lambdas"]) == 10
    # a twin pair sees the same training loop on the same protocol
    assert get_method("ndic_balle2018").budget_table("kitti-stereo/ndic")["paper"].stage() == tc
    assert get_method("balle2018").budget_table("images/full")["paper"].stage().crop == 256  # CompressAI's crops
    nd = get_method("neural_dsc").budget_table("kitti-stereo/ndic")["paper"]
    assert (nd.stage("vq").steps, nd.stage("vq").batch_size, nd.stage("vq").lr) == (99_000, 16, 2e-4)
    assert nd.epochs == {"prior": 100} and nd.stage("prior").warmup == 2000
    celeba = get_method("neural_dsc").budget_table("celeba-hq/neural-dsc")["paper"]
    assert (celeba.epochs["vq"], celeba.stage("vq").batch_size, celeba.stage("vq").lr) == (20, 32, 5e-4)


def test_list_methods_verbose_shows_the_paper_budgets_per_protocol_with_sources():
    out = CliRunner().invoke(app, ["list", "methods", "-v", "-p", "balle2018"]).output
    assert "--budget paper  on kitti-stereo/ndic, stereo/kitti-ndic: model: 500000 steps, batch 1, crop none" in out
    assert re.search(r"--budget paper  on [^:]*images/full[^:]*: model: 1000000 steps, batch 16, crop 256", out), out
    assert out.count("source: ") == out.count("--budget paper") >= 3
    assert "ipc-lab/NDIC" in out and "CompressAI documentation" in out
