import pytest
import torch
from PIL import Image

from benchmark.errors import ConfigError, DatasetError
from benchmark.contract.registry import get_dataset, get_protocol
from datasets.middlebury import MiddleburySample, TEST_CROPS, TEST_SIZE, TILE
from tests.helpers import write_images, write_stereo


def _make(name, root, split="test", **opt):
    info = get_dataset(name)
    return info.factory(root, get_protocol(info.default_protocol), split, **opt)


def test_images_folder(tmp_path):
    write_images(tmp_path, n=3)
    ds = _make("images", tmp_path)
    assert len(ds) == 3
    s = ds[0]
    assert s.x.shape == (3, 64, 96) and s.side is None and 0 <= s.x.min() and s.x.max() <= 1


def test_stereo_folder_pairs_and_directions(tmp_path):
    write_stereo(tmp_path, n=2)
    both = _make("stereo", tmp_path)
    assert len(both) == 4
    left = _make("stereo", tmp_path, direction="left")
    right = _make("stereo", tmp_path, direction="right")
    assert torch.equal(left[0].x, right[0].side) and torch.equal(left[0].side, right[0].x)
    with pytest.raises(ConfigError):
        _make("stereo", tmp_path, direction="up")


def test_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        _make("images", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        _make("images", tmp_path / "empty")
    write_stereo(tmp_path / "st", n=2)
    (tmp_path / "st" / "right" / "000001.png").unlink()
    with pytest.raises(DatasetError, match="unpaired"):
        _make("stereo", tmp_path / "st")
    write_stereo(tmp_path / "sz", n=1)
    Image.new("RGB", (10, 10)).save(tmp_path / "sz" / "right" / "000000.png")
    with pytest.raises(DatasetError, match="same size"):
        _make("stereo", tmp_path / "sz")[0]
    write_images(tmp_path / "bad", n=2)
    (tmp_path / "bad" / "kodim02.png").write_bytes(b"garbage")
    ds = _make("images", tmp_path / "bad")
    with pytest.raises(DatasetError, match="kodim02.png"):
        ds[1]
    with pytest.warns(UserWarning, match="kodim02"):
        _make("images", tmp_path / "bad", skip_bad=True)[1]


def test_middlebury_sample_regions_are_disjoint_and_both_directions():
    train, val, test = MiddleburySample("train"), MiddleburySample("val"), MiddleburySample("test")
    assert (len(train), len(val), len(test)) == (48, 4, 4)
    assert test[0].x.shape == (3, *TEST_SIZE) and train[0].x.shape == (3, TILE, TILE)
    train_rows = max(r for (r, c), _ in train.items) + TILE
    assert train_rows <= min(r for r, _ in TEST_CROPS)
    assert {d for _, d in test.items} == {"left", "right"}
    # left->right and right->left are the same pair with roles swapped
    assert torch.equal(test[0].x, test[1].side)
    # deterministic
    assert torch.equal(MiddleburySample("train")[5].x, train[5].x)
